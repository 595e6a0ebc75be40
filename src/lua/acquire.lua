--[[ acquire: grants `k` free slots to permit `id`, or says how long to wait.

ARGV[1]  permits    the caller's permit count, negative for an unbounded handle (0: adopt
                    the stored configuration; -0: unbounded with no permits)
ARGV[2]  id         permit id (random, made by the client before the first request)
ARGV[3]  k          slots wanted, 1 <= k <= MAX_SLOTS (more is refused: E_LIMIT)
ARGV[4]  lease_ms   lease length
ARGV[5]  queue      0: grant whatever is free (an unfair handle); 1: wait in line (first
                    come, first served across processes), joining the queue when not
                    granted; 2: respect the queue but do not join it (a try)
ARGV[6]  waiter_ms  how long a queued line keeps its place without asking again (a place
                    lease: minutes), or how long a waiter outside the queue waits
                    without asking again (an unfair handle's)
ARGV[7]  line       the waiter line the request comes from (a handle's waiters, in order)
ARGV[8]  more       1: more waiters stand in that line behind this one
ARGV[9]  arrival    the line's place if it joins now: the client's clock (µs) when this
                    acquire first asked (the same in every retry, and on every master)
ARGV[10] again      the client's clock now: the line's new place when it goes back to the
                    tail after a grant (`more`)
ARGV[11] push       1: register the request with the queued line, so that a release can
                    grant it at once and publish the grant (one master only)
ARGV[12] waits      1: the caller waits for a wake-up if not granted
Reply: {1, token, stamp, slot...} when granted: the lowest free slots, all or none;
       {0, wait_ms, stamp, ahead} when not: wait_ms until the earliest lease expires (-1
       when nothing is held), and the lines ahead of the caller's in the queue (-1 when it
       is not queued). The stamp is the script's time in µs (see queue.lua).
An id that holds slots already gets them back with a fresh lease and its token, so a
retried request (its reply was lost) never takes a second grant.

Fair waiting: free slots go to the lines at the head of the queue. A request is granted
when the lines ahead of its own (each counted as wanting one slot) leave it k free slots;
otherwise its line joins the queue, or keeps its place, for a waiter lease. A granted
request with more waiters behind it puts its line back at the tail (round robin between
processes) and wakes the lines that may go now.

Uncontended, with nobody waiting: 7 calls (config, TIME, the earliest lease, HOLDS, the
lowest free slot, the lease, HOLDS written). A busy reply that joins the queue: 6 or 7.
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local id, k, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fair, joins, waiter_ms = ARGV[5] ~= '0', ARGV[5] == '1', tonumber(ARGV[6])
local line, more, arrival, again = ARGV[7], ARGV[8] == '1', ARGV[9], ARGV[10]
local push, waits = ARGV[11] == '1', ARGV[12] == '1'
if k > MAX_SLOTS then
  error({ err = E_LIMIT .. ' cannot acquire ' .. k .. ' permits in one call: the most is '
    .. MAX_SLOTS })
end

local conf = load_config(false)
local limit = conf.limit
local now = now_ms()
reclaim(now)
local mine, place = read_holds('i:' .. id, 'w:' .. line)
local expiry = now + lease

local function granted(token, slots)
  local reply = { 1, token, tonumber(stamp()) }
  for _, slot in ipairs(slots) do
    reply[#reply + 1] = tonumber(slot)
  end
  return reply
end

if mine then
  local token, slots = extend(mine, expiry)
  wake(now, conf, false)
  return granted(token, slots)
end

local place_expiry = parse_place(place)
local queued = place_expiry ~= nil and place_expiry >= now
local go = false
-- Lines ahead of this one in the queue, once known; the lowest free slots, when read.
local ahead, listed = nil, nil
if fair and now < waiting then
  -- Someone may be queued: the lines ahead keep a free slot each.
  local free = free_count(limit)
  if free >= k then
    local messages, _, pushed = serve(now, conf, free, line, false)
    if pushed > 0 then
      publish(messages)
    end
    free = free - pushed
    local rank = queued and redis.call('ZRANK', QUEUE, line)
    if rank then
      ahead = rank - 1
    else
      -- A try, or a line that is not queued: behind every line.
      ahead = math.max(0, redis.call('ZCARD', QUEUE) - 1)
      queued = false
    end
    go = ahead + k <= free
    if not queued then
      ahead = nil
    end
  end
else
  -- Nobody queued: whatever is free.
  listed = free_members(limit, k)
  go = #listed + untouched(limit) >= k
end

if not go then
  if waits or joins then
    mark_waiting(now, waiter_ms)
  end
  if joins then
    -- A pushed grant lasts at most PUSHED_MS until the waiter renews it: one pushed to a
    -- waiter that cannot hear of it (gone since it asked) keeps the slot from others only
    -- that long.
    local request = push and (id .. ' ' .. k .. ' ' .. math.min(lease, PUSHED_MS)) or nil
    join(line, place, now, waiter_ms, arrival, request)
    if not ahead then
      local rank = redis.call('ZRANK', QUEUE, line)
      ahead = rank and rank - 1 or -1
    end
  end
  wake(now, conf, false)
  return { 0, earliest_wait(now), tonumber(stamp()), ahead or -1 }
end

local token, slots = grant(id, k, expiry, conf, listed)
if joins and more then
  -- Back at the tail, with no request: the next waiter registers when it asks.
  join(line, nil, now, waiter_ms, again, nil)
elseif queued then
  leave({ line })
end
wake(now, conf, joins and more)
return granted(token, slots)
