-- hold: makes permit `id` hold exactly the listed slots on this master, as far as it can.
-- It renews a permit's lease, settles an acquire on several masters and spreads a permit
-- to masters that did not grant it, in one script.
--
-- ARGV[2]   id        permit id
-- ARGV[3]   lease_ms  new lease length, from now
-- ARGV[4]   token     the permit's fencing token: stored for the id, and the master's token
--                     counter is raised to it, so later grants here get higher tokens
-- ARGV[5]   claim     1: also take listed slots that are free here; 0: only keep those held
-- ARGV[6]   line      a waiter line to take off the queue (its acquire was granted on the
--                     other masters), or ''
-- ARGV[7..] slots     the permit's slots
-- Returns the listed slots the id holds afterwards, with a fresh lease; slots of the id
-- that are not listed are freed. An empty reply with claim 0 means the lease had expired
-- here (the permit is lost on this master: its slots may belong to someone else by now).
--
-- Claiming is safe only on several masters, while the permit holds each slot on a
-- majority: no other id can hold a majority of that slot then.
local id, lease, token, claim = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
if ARGV[6] ~= '' then
  dequeue(ARGV[6])
end
local limit = load_config(true)
local now = now_ms()
reclaim(now)

local wanted, have = {}, {}
for i = 7, #ARGV do
  wanted[ARGV[i]] = true
end
local list = redis.call('HGET', STATE, 'i:' .. id)
if list then
  local drop, dropping = {}, false
  for slot in string.gmatch(list, '%d+') do
    if wanted[slot] then
      have[slot] = true
    else
      drop[slot], dropping = true, true
    end
  end
  if dropping then
    free_slots(id, drop)
  end
end

-- Takes free `slot` for the id; false when it is held or past the limit.
local function take(slot)
  local n = tonumber(slot)
  if n >= limit or redis.call('ZSCORE', LEASES, slot) then
    return false
  end
  local next_slot = tonumber(redis.call('HGET', STATE, 'next') or '0')
  if n < next_slot then
    return redis.call('ZREM', FREE, slot) == 1
  end
  -- Never granted here since the last idle: held out of order, counted in `above` and
  -- skipped when `next` reaches it, so the cost does not grow with the slot number.
  redis.call('HINCRBY', STATE, 'above', 1)
  return true
end

local expiry = now + lease
local held = {}
for i = 7, #ARGV do
  local slot = ARGV[i]
  if have[slot] then
    redis.call('ZADD', LEASES, 'XX', expiry, slot)
    held[#held + 1] = slot
  elseif claim and take(slot) then
    redis.call('ZADD', LEASES, expiry, slot)
    redis.call('HSET', STATE, 's:' .. slot, id)
    held[#held + 1] = slot
  end
end

if #held == 0 then
  redis.call('HDEL', STATE, 'i:' .. id, 't:' .. id)
  reset_if_idle()
  touch()
  wake(now, limit, false)
  return {}
end
redis.call('HSET', STATE, 'i:' .. id, table.concat(held, ','), 't:' .. id, ARGV[4])
if tonumber(redis.call('HGET', CONFIG, 'token')) < token then
  redis.call('HSET', CONFIG, 'token', ARGV[4])
end
touch()
wake(now, limit, false)
local reply = {}
for i, slot in ipairs(held) do
  reply[i] = tonumber(slot)
end
return reply
