-- acquire: grants `k` free slots to permit `id`, or reports how long to wait.
--
-- ARGV[2] id        permit id (random, made by the client before the first request)
-- ARGV[3] k         slots wanted, 1 <= k
-- ARGV[4] lease_ms  lease length
-- ARGV[5] fair      0: grant whatever is free; 1: wait in line (first come, first served
--                   across processes), joining the queue when not granted; 2: respect
--                   the queue but do not join it (a try)
-- ARGV[6] waiter_ms how long a queued line keeps its place without asking again
-- ARGV[7] line      the waiter line the request comes from (a handle's waiters, in order)
-- ARGV[8] more      1: more waiters stand in that line behind this one
-- ARGV[9] arrival   the line's place in the queue if it joins now: the client's clock in
--                   microseconds when this acquire first asked (the same in every retry,
--                   and on every master)
-- ARGV[10] again    the client's clock when it sent this request: the line's new place
--                   when it goes back to the tail after a grant (`more`)
-- ARGV[11] push     1: register the request with the queued line, so that a release can
--                   grant it at once and publish the grant (one master only)
-- Returns {1, token, stamp, slot, ...} when granted: the lowest free slots, all or none.
--         {0, wait_ms, stamp} when fewer than k are free: wait_ms until the earliest lease
--         expires (-1 when nothing is held).
--         The stamp is the script's time in microseconds (see wake() in the prelude).
-- An id that already holds slots gets them back with a fresh lease and its old token, so a
-- retried request (its reply was lost) never takes a second grant.
--
-- Fair waiting: the queue holds waiter lines (each the waiters of one handle, served in
-- order by the client) in arrival order, and free slots go to the lines at its head. A
-- request is granted when the lines ahead of its own (each counted as wanting one slot)
-- leave it k free slots; otherwise its line joins the queue, or keeps its place, until its
-- waiter lease runs out. A granted request with more waiters behind it puts its line back
-- at the tail (round robin between processes) and wakes the lines that may go now, so the
-- next waiter of a line asks once, when its turn comes.
local id, k, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fair, join, waiter_ms = ARGV[5] ~= '0', ARGV[5] == '1', tonumber(ARGV[6])
local line, more, arrival, again = ARGV[7], ARGV[8] == '1', ARGV[9], ARGV[10]
local push = ARGV[11] == '1'
local limit = load_config()
local now = now_ms()
reclaim(now)

-- One read of what the grant needs from `state` (after reclaiming, which may change it).
local state = redis.call('HMGET', STATE, 'next', 'above', 'i:' .. id, 't:' .. id)
local next_slot, above = tonumber(state[1] or '0'), tonumber(state[2] or '0')

local expiry = now + lease
local held = state[3] and extend(state[3], expiry)
if held then
  touch()
  wake(now, limit, false)
  local reply = { 1, tonumber(state[4]), tonumber(stamp()) }
  for _, slot in ipairs(held) do
    reply[#reply + 1] = slot
  end
  return reply
end

local free = free_count(limit, next_slot, above)
local queued = nil
if fair then
  local ahead = redis.call('ZCARD', QUEUE)
  if ahead > 0 then
    drop_dead_waiters(now)
    -- A try stands behind every queued line, its own included.
    queued = join and redis.call('ZRANK', QUEUE, line) or nil
    ahead = queued or redis.call('ZCARD', QUEUE)
  end
  if ahead + k > free then
    if not join then
      return { 0, earliest_wait(now), tonumber(stamp()) }
    end
    join_queue(line, now, waiter_ms, arrival)
    if push then
      -- A pushed grant lasts at most a waiter lease until the waiter renews it: one pushed
      -- to a waiter that cannot hear of it keeps the slot from others only that long.
      redis.call('HSET', STATE, 'w:' .. line, id .. ' ' .. k .. ' ' .. math.min(lease, waiter_ms))
      -- `state` lives at least as long as the registration (never shorter than it was),
      -- and keys 2-4 keep one TTL: `state` holds the leases' bookkeeping, and must never
      -- outlive `leases` (a slot it records as held would stay held with no lease).
      local keep = waiter_ms + 1000
      local ttl = redis.call('PTTL', STATE)
      if ttl < keep then
        redis.call('PEXPIRE', LEASES, keep)
        redis.call('PEXPIRE', FREE, keep)
        redis.call('PEXPIRE', STATE, keep)
      end
    end
    wake(now, limit, false)
    return { 0, earliest_wait(now), tonumber(stamp()) }
  end
elseif free < k then
  wake(now, limit, false)
  return { 0, earliest_wait(now), tonumber(stamp()) }
end

local token, slots = grant_slots(id, k, expiry, limit, next_slot, above)
local reply = { 1, token, tonumber(stamp()) }
for _, slot in ipairs(slots) do
  reply[#reply + 1] = tonumber(slot)
end
if queued then
  dequeue(line)
end
if join and more then
  -- Back at the tail, with no registration: the next waiter registers when it asks.
  redis.call('HDEL', STATE, 'w:' .. line)
  join_queue(line, now, waiter_ms, again)
end
touch()
wake(now, limit, join and more)
return reply
