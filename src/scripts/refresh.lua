-- refresh: renews the lease of every slot permit `id` holds.
--
-- ARGV[2] id        permit id
-- ARGV[3] lease_ms  new lease length, from now
-- Returns {1, slot, ...} with the slots still held, or {0} when the lease had already
-- expired (the permit is lost: its slots may belong to someone else by now).
local id, lease = ARGV[2], tonumber(ARGV[3])
load_config()
local now = now_ms()
reclaim(now)
local held = extend(id, now + lease)
if not held then
  return { 0 }
end
touch()
local reply = { 1 }
for _, slot in ipairs(held) do
  reply[#reply + 1] = slot
end
return reply
