-- acquire: grants `k` free slots to permit `id`, or reports how long to wait.
--
-- ARGV[2] id        permit id (random, made by the client before the first request)
-- ARGV[3] k         slots wanted, 1 <= k
-- ARGV[4] lease_ms  lease length
-- Returns {1, token, lease_ms, slot, ...} when granted: the lowest free slots, all or none.
--         {0, wait_ms} when fewer than k are free: wait_ms until the earliest lease
--         expires (-1 when nothing is held).
-- An id that already holds slots gets them back with a fresh lease and its old token, so a
-- retried request (its reply was lost) never takes a second grant.
local id, k, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local limit = load_config()
local now = now_ms()
reclaim(now)

local expiry = now + lease
local held = extend(id, expiry)
if held then
  touch()
  local reply = { 1, tonumber(redis.call('HGET', STATE, 't:' .. id)), lease }
  for _, slot in ipairs(held) do
    reply[#reply + 1] = slot
  end
  return reply
end

if free_count(limit) < k then
  return { 0, earliest_wait(now) }
end

local slots = redis.call('ZRANGEBYSCORE', FREE, '-inf', '(' .. limit, 'LIMIT', 0, k)
for _, slot in ipairs(slots) do
  redis.call('ZREM', FREE, slot)
end
local next_slot = tonumber(redis.call('HGET', STATE, 'next') or '0')
while #slots < k do
  slots[#slots + 1] = tostring(next_slot)
  next_slot = next_slot + 1
end

local token = redis.call('HINCRBY', CONFIG, 'token', 1)
local reply = { 1, token, lease }
for _, slot in ipairs(slots) do
  redis.call('ZADD', LEASES, expiry, slot)
  redis.call('HSET', STATE, 's:' .. slot, id)
  reply[#reply + 1] = tonumber(slot)
end
redis.call('HSET', STATE, 'next', next_slot, 'i:' .. id, table.concat(slots, ','), 't:' .. id, token)
touch()
return reply
