-- holders: who holds the semaphore's slots on this master.
--
-- Returns {slot, id, token, ms_left, ...} for every held slot, lowest slot first: the
-- permit id holding it, that permit's fencing token, and the milliseconds left on its
-- lease by this master's clock.
load_config(true)
local now = now_ms()
reclaim(now)
local reply = {}
local held = redis.call('ZRANGE', LEASES, 0, -1, 'WITHSCORES')
local slots = {}
for i = 1, #held, 2 do
  slots[#slots + 1] = { tonumber(held[i]), tonumber(held[i + 1]) }
end
table.sort(slots, function(a, b) return a[1] < b[1] end)
for _, entry in ipairs(slots) do
  local slot, expiry = entry[1], entry[2]
  local id = redis.call('HGET', STATE, 's:' .. slot) or ''
  local token = redis.call('HGET', STATE, 't:' .. id) or '0'
  reply[#reply + 1] = slot
  reply[#reply + 1] = id
  reply[#reply + 1] = token
  reply[#reply + 1] = math.max(0, expiry - now)
end
return reply
