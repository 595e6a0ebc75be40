-- acquire: grants `k` free slots to permit `id`, or reports how long to wait.
--
-- ARGV[2] id        permit id (random, made by the client before the first request)
-- ARGV[3] k         slots wanted, 1 <= k
-- ARGV[4] lease_ms  lease length
-- ARGV[5] fair      0: grant whatever is free; 1: wait in line (first come, first served
--                   across processes), joining the queue when not granted; 2: respect
--                   the queue but do not join it (a try)
-- ARGV[6] waiter_ms how long a queued waiter keeps its place without asking again
-- Returns {1, token, lease_ms, slot, ...} when granted: the lowest free slots, all or none.
--         {0, wait_ms} when fewer than k are free: wait_ms until the earliest lease
--         expires (-1 when nothing is held).
-- An id that already holds slots gets them back with a fresh lease and its old token, so a
-- retried request (its reply was lost) never takes a second grant.
--
-- Fair waiting: free slots go to the queued waiters in arrival order. An id is granted when
-- the waiters ahead of it (each counted as wanting one slot) leave it k free slots;
-- otherwise it joins the queue, or keeps its place, until its waiter lease runs out.
local id, k, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fair, join, waiter_ms = ARGV[5] ~= '0', ARGV[5] == '1', tonumber(ARGV[6])
local limit = load_config()
local now = now_ms()
reclaim(now)

local expiry = now + lease
local held = extend(id, expiry)
if held then
  touch()
  wake(now, limit, false)
  local reply = { 1, tonumber(redis.call('HGET', STATE, 't:' .. id)), lease }
  for _, slot in ipairs(held) do
    reply[#reply + 1] = slot
  end
  return reply
end

local free = free_count(limit)
local queued = nil
if fair then
  drop_dead_waiters(now)
  queued = redis.call('ZRANK', QUEUE, id)
  local ahead = queued or redis.call('ZCARD', QUEUE)
  if ahead + k > free then
    if not join then
      return { 0, earliest_wait(now) }
    end
    if not queued then
      redis.call('ZADD', QUEUE, redis.call('HINCRBY', CONFIG, 'waiters', 1), id)
    end
    redis.call('ZADD', WAITERS, now + waiter_ms, id)
    redis.call('PEXPIRE', QUEUE, waiter_ms + 1000)
    redis.call('PEXPIRE', WAITERS, waiter_ms + 1000)
    wake(now, limit, false)
    return { 0, earliest_wait(now) }
  end
elseif free < k then
  wake(now, limit, false)
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
if queued then
  dequeue(id)
end
touch()
wake(now, limit, false)
return reply
