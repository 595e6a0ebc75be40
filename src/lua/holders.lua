--[[ holders: who holds the semaphore's slots on this master.

ARGV[1] permits  the caller's permit count, negative when unbounded (0: the stored one)
Reply: {slot, id, token, ms_left, ...} for every held slot, lowest slot first: the permit id
holding it, that permit's fencing token, and the milliseconds left on its lease by this
master's clock.
]]
--- @include "config"
--- @include "slots"

load_config(true)
local now = now_ms()
reclaim(now)
need_holds()
local held = redis.call('ZRANGEBYSCORE', SLOTS, HELD, '+inf', 'WITHSCORES')
local slots = {}
for i = 1, #held, 2 do
  slots[#slots + 1] = { tonumber(held[i]), tonumber(held[i + 1]) }
end
table.sort(slots, function(a, b) return a[1] < b[1] end)
local reply = {}
for _, entry in ipairs(slots) do
  local slot, expiry = entry[1], entry[2]
  local id = redis.call('HGET', HOLDS, 's:' .. slot) or ''
  local token = '0'
  local mine = id ~= '' and redis.call('HGET', HOLDS, 'i:' .. id)
  if mine then
    token = string.sub(mine, 1, string.find(mine, ':', 1, true) - 1)
  end
  reply[#reply + 1] = slot
  reply[#reply + 1] = id
  reply[#reply + 1] = token
  reply[#reply + 1] = math.max(0, expiry - now)
end
return reply
