-- Prelude shared by every script of the semaphore: src/scripts.rs puts it in front of each,
-- after one line that sets PUBLISH to 'PUBLISH' (a plain server) or 'SPUBLISH' (a cluster).
--
-- KEYS[1] config  hash, persistent:
--                   permits  the count the semaphore was created with
--                   limit    slots in use: permits plus those added by unbounded releases
--                   token    fencing counter: rises with every grant, never reset
-- KEYS[2] leases  zset: member = held slot number, score = lease expiry (ms, master clock)
-- KEYS[3] free    zset: slots below `next` that are free again (score = slot number)
-- KEYS[4] state   hash: next      lowest slot never granted in order since the semaphore
--                                 went idle
--                       above     slots at or past `next` held out of order (taken by a
--                                 permit spreading to this master, hold.lua)
--                       s:<slot>  id of the permit holding the slot
--                       i:<id>    that permit's slots on this master, "3,7"
--                       t:<id>    that permit's fencing token
-- KEYS[5] queue   zset: member = waiter line (one handle's waiters, served in order by the
--                 client), score = its arrival, by the client's clock (fair waiting)
-- KEYS[6] waiters zset: member = waiter line, score = its waiter lease expiry (ms)
-- ARGV[1]         the permit count the caller's handle was built with
--
-- Wake-ups: a script that frees a slot publishes on the channel `semaphore:{name}:wake`
-- its stamp (the master's time in microseconds) and the waiter lines that the free slots
-- are kept for (the head of the queue); no lines when nobody is queued (anyone may try).
--
-- Invariants kept by every script:
-- * a slot is held iff it is a member of `leases`; the free slots below `limit` are the
--   members of `free` below `limit` plus the slots next .. limit-1 that are not held (there
--   are `above` held ones among those);
-- * all slots of one id on this master share one expiry, so a lease is reclaimed whole;
-- * an expired lease is reclaimed before anything else is read, using only TIME;
-- * keys 2-4 hold only leases: they expire a second after the last lease, and when no lease
--   is left they are deleted, which is the all-free state (next = 0, free empty). Nothing a
--   script does costs more than O(log N) in the number of permits, except reclaiming, which
--   is paid once per expired lease.

local CONFIG, LEASES, FREE, STATE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local QUEUE, WAITERS = KEYS[5], KEYS[6]
-- 'semaphore:{name}:config' -> 'semaphore:{name}:wake'
local CHANNEL = string.sub(CONFIG, 1, -7) .. 'wake'
-- Set when this script freed a slot: it publishes a wake-up before it returns.
local freed_any = false

-- A key of the semaphore that holds something else is an error, and is never overwritten.
local function wrong_type(key, expected)
  local found = redis.call('TYPE', key)['ok']
  error({ err = 'SEMWRONGTYPE ' .. key .. ' holds a ' .. found .. ', expected a ' .. expected })
end

-- `free`, `state` and the queue keys are checked first: they can be deleted or given a
-- TTL before they are read, or be written after other keys, and Redis does not roll a
-- script back. `config` and `leases` are read first by every script that writes them
-- (load_config, reclaim), which turns the server's WRONGTYPE into the same error there.
-- (Each call from Lua costs about a microsecond: two checks fewer per script is ~5%.)
for i, expected in pairs({ [3] = 'zset', [4] = 'hash', [5] = 'zset', [6] = 'zset' }) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= expected then
    wrong_type(KEYS[i], expected)
  end
end

-- The master's clock, read once per script.
local clock = nil
local function read_clock()
  if not clock then
    clock = redis.call('TIME')
  end
  return clock
end

local function now_ms()
  local t = read_clock()
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The script's time in microseconds, as an integer string (exact: no float formatting).
-- Scripts run one at a time and each takes well over a microsecond, so it orders them.
local function stamp()
  local t = read_clock()
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- An integer as a string: a Lua number passed to redis.call may be formatted as a float.
local function int(x)
  return string.format('%d', x)
end

-- Returns the limit and the stored permit count, creating the config on first use and
-- refusing a handle built with another permit count, unless `lenient` (renewing or
-- releasing a permit granted before the count was changed). A count of 0 (a handle that
-- adopts the stored count) creates nothing and accepts any stored count.
local function load_config(lenient)
  local permits = tonumber(ARGV[1])
  local stored = redis.pcall('HMGET', CONFIG, 'permits', 'limit')
  if stored.err then
    wrong_type(CONFIG, 'hash')
  end
  if permits == 0 then
    if not stored[1] then
      error({ err = 'SEMNOTFOUND ' .. CONFIG .. ' does not exist' })
    end
    return tonumber(stored[2]), tonumber(stored[1])
  end
  if not stored[1] then
    if redis.call('HLEN', CONFIG) > 0 then
      error({ err = 'SEMWRONGTYPE ' .. CONFIG .. ' is a hash this library did not write' })
    end
    -- Tokens start at the master's time in microseconds: a master that restarts empty
    -- starts above every token it gave before (no semaphore grants once a microsecond),
    -- so fencing tokens keep rising across restarts.
    redis.call('HSET', CONFIG, 'permits', permits, 'limit', permits, 'token', stamp())
    return permits, permits
  end
  if tonumber(stored[1]) ~= permits and not lenient then
    error({ err = 'SEMCONFIG ' .. stored[1] })
  end
  return tonumber(stored[2]), tonumber(stored[1])
end

-- Puts a slot that was just taken off `leases` back among the free ones.
local function put_free(slot)
  local next_slot = tonumber(redis.call('HGET', STATE, 'next') or '0')
  if tonumber(slot) < next_slot then
    redis.call('ZADD', FREE, slot, slot)
  else
    -- Held out of order past `next`: it is a never-granted slot again.
    redis.call('HINCRBY', STATE, 'above', -1)
  end
  freed_any = true
end

-- Frees the slots of `id` (those in `only`, a set of slot strings, or all when nil).
-- Returns how many were freed.
local function free_slots(id, only)
  local list = redis.call('HGET', STATE, 'i:' .. id)
  if not list then
    return 0
  end
  local kept, freed = {}, 0
  for slot in string.gmatch(list, '%d+') do
    if only == nil or only[slot] then
      redis.call('ZREM', LEASES, slot)
      redis.call('HDEL', STATE, 's:' .. slot)
      put_free(slot)
      freed = freed + 1
    else
      kept[#kept + 1] = slot
    end
  end
  if #kept == 0 then
    redis.call('HDEL', STATE, 'i:' .. id, 't:' .. id)
  else
    redis.call('HSET', STATE, 'i:' .. id, table.concat(kept, ','))
  end
  return freed
end

-- Keys 2-4 expire a second after the latest lease.
local function touch()
  local last = redis.call('ZRANGE', LEASES, -1, -1, 'WITHSCORES')
  if last[2] then
    local at = tonumber(last[2]) + 1000
    redis.call('PEXPIREAT', LEASES, at)
    redis.call('PEXPIREAT', FREE, at)
    redis.call('PEXPIREAT', STATE, at)
  end
end

-- With no lease left, every slot is free: back to the canonical empty state.
-- (`state` then holds no i:, s: or t: fields; waiters' registrations, w:, are kept while
-- anyone is queued, so that the release that emptied the semaphore can still push them.)
local function reset_if_idle()
  if redis.call('ZCARD', LEASES) == 0 then
    if redis.call('ZCARD', QUEUE) == 0 then
      redis.call('DEL', FREE, STATE)
    else
      redis.call('DEL', FREE)
      redis.call('HDEL', STATE, 'next', 'above')
    end
  end
end

-- Reclaims every lease that expired by `now`; restores the all-free state when none is left.
local function reclaim(now)
  local expired = redis.pcall('ZRANGEBYSCORE', LEASES, '-inf', now)
  if expired.err then
    wrong_type(LEASES, 'zset')
  end
  for _, slot in ipairs(expired) do
    local id = redis.call('HGET', STATE, 's:' .. slot)
    if id then
      free_slots(id, nil)
    else
      redis.call('ZREM', LEASES, slot)
      put_free(slot)
    end
  end
  if #expired > 0 then
    reset_if_idle()
    -- Reclaiming may have recreated `free`: it expires with the leases like the others.
    touch()
  end
end

-- Milliseconds until the earliest lease expires, or -1 when nothing is held.
local function earliest_wait(now)
  local first = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
  if first[2] then
    return math.max(0, tonumber(first[2]) - now)
  end
  return -1
end

-- Sets every slot in `list` (an id's `i:` entry in `state`, "3,7") to expire at `expiry`;
-- returns the slots.
local function extend(list, expiry)
  local slots = {}
  for slot in string.gmatch(list, '%d+') do
    redis.call('ZADD', LEASES, 'XX', expiry, slot)
    slots[#slots + 1] = tonumber(slot)
  end
  return slots
end

-- Free slots below `limit`. `next_slot` and `above` are the state's fields when the caller
-- has read them already.
local function free_count(limit, next_slot, above)
  if not next_slot then
    local state = redis.call('HMGET', STATE, 'next', 'above')
    next_slot, above = tonumber(state[1] or '0'), tonumber(state[2] or '0')
  end
  return redis.call('ZCOUNT', FREE, '-inf', '(' .. limit) + math.max(0, limit - next_slot) - above
end


-- Runs `command key item...` for `items`, at most 1000 at a time: Lua's unpack() fails
-- past about 8000 values. `items` has an even length when they come in pairs.
local function chunked(command, key, items)
  for first = 1, #items, 1000 do
    redis.call(command, key, unpack(items, first, math.min(first + 999, #items)))
  end
end

-- Grants `k` slots below `limit` to permit `id` until `expiry`: the lowest free ones, as
-- the caller has checked that k are free. `next_slot` and `above` are the state's fields
-- when the caller has read them already. Returns the new fencing token and the slots.
local function grant_slots(id, k, expiry, limit, next_slot, above)
  local slots = redis.call('ZRANGEBYSCORE', FREE, '-inf', '(' .. limit, 'LIMIT', 0, k)
  chunked('ZREM', FREE, slots)
  if not next_slot then
    local state = redis.call('HMGET', STATE, 'next', 'above')
    next_slot, above = tonumber(state[1] or '0'), tonumber(state[2] or '0')
  end
  local above_read = above
  while #slots < k do
    -- Skip slots held out of order: once below `next`, they are ordinary held slots.
    if above > 0 and redis.call('ZSCORE', LEASES, next_slot) then
      above = above - 1
    else
      slots[#slots + 1] = tostring(next_slot)
    end
    next_slot = next_slot + 1
  end
  local token = redis.call('HINCRBY', CONFIG, 'token', 1)
  local leases = {}
  local fields = { 'next', next_slot, 'i:' .. id, table.concat(slots, ','), 't:' .. id, int(token) }
  if above ~= above_read then
    fields[#fields + 1] = 'above'
    fields[#fields + 1] = above
  end
  for _, slot in ipairs(slots) do
    leases[#leases + 1] = expiry
    leases[#leases + 1] = slot
    fields[#fields + 1] = 's:' .. slot
    fields[#fields + 1] = id
  end
  chunked('ZADD', LEASES, leases)
  chunked('HSET', STATE, fields)
  return token, slots
end

-- Drops queued lines whose waiter lease ran out (a crashed waiter never holds up the queue
-- for longer than its waiter lease), at most 100 per call, with their registrations.
local function drop_dead_waiters(now)
  local dead = redis.call('ZRANGEBYSCORE', WAITERS, '-inf', now, 'LIMIT', 0, 100)
  if #dead > 0 then
    redis.call('ZREM', WAITERS, unpack(dead))
    redis.call('ZREM', QUEUE, unpack(dead))
    local fields = {}
    for i, line in ipairs(dead) do
      fields[i] = 'w:' .. line
    end
    redis.call('HDEL', STATE, unpack(fields))
  end
end

-- Puts waiter line `line` in the queue at `arrival` unless it is queued already, and renews
-- its waiter lease. `arrival` is the client's clock in microseconds when it sent the
-- request: every master gets the same value, so several masters order the lines alike
-- and keep their free slots for the same lines (a per-master counter would order them
-- as each master happened to see them, and the masters would grant different lines).
-- The queue keys live as long as the longest waiter lease.
local function join_queue(line, now, waiter_ms, arrival)
  redis.call('ZADD', QUEUE, 'NX', arrival, line)
  redis.call('ZADD', WAITERS, now + waiter_ms, line)
  redis.call('PEXPIRE', QUEUE, waiter_ms + 1000)
  redis.call('PEXPIRE', WAITERS, waiter_ms + 1000)
end

-- Takes `line` off the waiter queue, with its registration; true if it was queued.
local function dequeue(line)
  redis.call('ZREM', WAITERS, line)
  redis.call('HDEL', STATE, 'w:' .. line)
  return redis.call('ZREM', QUEUE, line) == 1
end

-- Publishes a wake-up if this script freed a slot (or `force`): the script's stamp, then
-- the live waiter lines at the head of the queue that the free slots are kept for (none:
-- anyone may try). A waiter ignores wake-ups stamped before its own last request.
--
-- A line whose waiter registered its permit (`w:<line>` in state: "id k lease", one
-- master only) is granted here and now, in the script that freed the slot, and the
-- wake-up carries the grant as `line=id:token:slot,slot`: the waiter holds the permit
-- without asking again, so a contended acquire costs one script call, the one that
-- queued it. A waiter that misses the message finds the grant when it next asks (a
-- retried acquire with the same id gets its grant back); one that gave up has its
-- registration taken back with its release.
local function wake(now, limit, force)
  if not (freed_any or force) then
    return
  end
  if redis.call('ZCARD', QUEUE) == 0 then
    redis.call(PUBLISH, CHANNEL, stamp())
    return
  end
  drop_dead_waiters(now)
  local free = free_count(limit)
  if free == 0 then
    return
  end
  local lines = redis.call('ZRANGE', QUEUE, 0, free - 1)
  local parts, granted = { stamp() }, false
  for _, line in ipairs(lines) do
    local entry = line
    local pending = redis.call('HGET', STATE, 'w:' .. line)
    if pending and free > 0 then
      local id, k, lease = string.match(pending, '^(%S+) (%d+) (%d+)$')
      k, lease = tonumber(k), tonumber(lease)
      if id and k <= free then
        local token, slots = grant_slots(id, k, now + lease, limit)
        dequeue(line)
        free = free - k
        granted = true
        entry = line .. '=' .. id .. ':' .. int(token) .. ':' .. table.concat(slots, ',')
      end
    end
    parts[#parts + 1] = entry
    -- First come, first served: a line that needs more than is free holds the rest.
    free = free - (entry == line and 1 or 0)
    if free <= 0 then
      break
    end
  end
  if granted then
    touch()
  end
  redis.call(PUBLISH, CHANNEL, table.concat(parts, ' '))
end
