--[[ queue: fair waiting across processes, pushed grants and wake-ups.

HOLDS waiting   until when (ms, master clock) someone may be waiting: set by an acquire
                that goes on to wait, a waiter lease plus a second ahead at least, and
                QUEUE expires then (HOLDS a second later). Past it nobody listens and
                nobody is queued, so the scripts neither read the queue nor publish, and a
                release does not even read CONFIG: waiting costs nothing while nobody
                waits. It is moved only when it would end within that margin.
QUEUE zset      member = a waiter line (one handle's waiters, served in order by the
                client), score = its arrival by the client's clock (µs); and the member
                '~' scored -1, which keeps the key, and so its TTL, when the last line
                leaves (so ranks here are one past the line's place)
HOLDS w:<line>  the line's place: "expiry", or "expiry id k lease" with a registered
                request: when its slots are freed, the script that frees them grants them
                to `id` for `lease` ms and publishes the grant (one master only). A line
                whose expiry (its waiter lease) has passed is dead: dropped when it reaches
                the head of the queue. A live place implies the line is in QUEUE.

Wake-up message, on the channel `semaphore:{name}:wake`: the script's stamp (µs), then,
space-separated, the live lines at the head of the queue that the free slots are kept for,
each as `line` (ask now) or `line=id:token:slot,slot` (granted: hold it without asking).
A stamp alone: anyone may try. A waiter ignores wake-ups stamped before its last request.
]]
--- @include "clock"
--- @include "errors"
--- @include "slots"

-- Someone will wait on this semaphore for up to a waiter lease from now: until then,
-- releases must wake it, and the queue must be kept.
local function mark_waiting(now, waiter_ms)
  if waiting >= now + waiter_ms + 1000 then
    return
  end
  waiting = now + 2 * waiter_ms + 1000
  read('zset', 'ZCARD', QUEUE)
  local fields = { 'waiting', waiting }
  local moving = keep(waiting, fields, false)
  redis.call('HSET', HOLDS, unpack(fields))
  redis.call('PEXPIREAT', QUEUE, waiting)
  if moving then
    expire_keys()
  end
end

-- "expiry id k lease" or "expiry" -> expiry, id, k, lease (numbers but the id); nil when
-- there is no place.
local function parse_place(place)
  if not place then
    return nil
  end
  local expiry, id, k, lease = string.match(place, '^(%d+) (%S+) (%d+) (%d+)$')
  if expiry then
    return tonumber(expiry), id, tonumber(k), tonumber(lease)
  end
  return tonumber(place)
end

-- Takes `lines` off the queue, with their places.
local function leave(lines)
  local fields = {}
  for i, line in ipairs(lines) do
    fields[i] = 'w:' .. line
  end
  chunked('ZREM', QUEUE, lines)
  delete_fields(fields)
end

-- Puts `line` in the queue at `arrival` unless it holds a live place there (`place`, its
-- w: field as read), and renews its waiter lease with `request` ("id k lease", or nil).
-- `arrival` is the client's clock when the acquire first asked: every master gets the
-- same value, so several masters order the lines alike and keep their free slots for the
-- same lines (a per-master counter would order them as each master happened to see them).
local function join(line, place, now, waiter_ms, arrival, request)
  mark_waiting(now, waiter_ms)
  local expiry = parse_place(place)
  local value = int(now + waiter_ms) .. (request and (' ' .. request) or '')
  if expiry and expiry >= now then
    -- Queued already: write only a new request, or a lease that would soon lapse.
    local old = string.match(place, '^%d+ (.*)$')
    if old == request and expiry >= now + waiter_ms / 2 then
      return
    end
  else
    local added = read('zset', 'ZADD', QUEUE, -1, '~', arrival, line)
    if added == 2 then
      -- A new key: it expires with the mark.
      redis.call('PEXPIREAT', QUEUE, waiting)
    end
  end
  local fields = { 'w:' .. line, value }
  local moving = keep(now + waiter_ms, fields, false)
  redis.call('HSET', HOLDS, unpack(fields))
  if moving then
    expire_keys()
  end
end

-- Serves the head of the queue with `free` free slots below the limit: drops dead lines,
-- grants the registered requests that fit (first come, first served: each live line
-- counts as wanting one slot, and one whose request needs more than is free holds the
-- rest), and names the rest. At most 100 lines, and pushed grants of PUSH_BUDGET slots in
-- all: a request past the budget is named, and its line asks itself. `asking`: the line
-- of the acquire running this script, whose request is its own (not granted here).
-- Returns the parts of a wake-up message (stamp first) and the slots it granted.
local function serve(now, conf, free, asking)
  local parts, leaving, granted = { stamp() }, {}, 0
  local push_left = PUSH_BUDGET
  local first, scanned = 1, 0
  while free > 0 and scanned < 100 do
    -- At most 100 lines a script (and so a bounded HMGET below).
    local lines = read('zset', 'ZRANGE', QUEUE, first, first + math.min(free, 100 - scanned) - 1)
    if #lines == 0 then
      break
    end
    first = first + #lines
    local fields = {}
    for i, line in ipairs(lines) do
      fields[i] = 'w:' .. line
    end
    local places = redis.call('HMGET', HOLDS, unpack(fields))
    for i, line in ipairs(lines) do
      scanned = scanned + 1
      local expiry, id, k, lease = parse_place(places[i])
      if not expiry or expiry < now then
        leaving[#leaving + 1] = line
      elseif id and k <= free and k <= push_left and line ~= asking then
        local token, slots = grant(id, k, now + lease, conf)
        leaving[#leaving + 1] = line
        free, granted, push_left = free - k, granted + k, push_left - k
        parts[#parts + 1] = line .. '=' .. id .. ':' .. int(token) .. ':' .. table.concat(slots, ',')
      else
        parts[#parts + 1] = line
        free = id and 0 or free - 1
      end
      if free <= 0 then
        break
      end
    end
  end
  if #leaving > 0 then
    leave(leaving)
  end
  return parts, granted
end

-- Publishes a wake-up if this script freed a slot (or `force`) and someone may be
-- waiting, granting what it can to the head of the queue first. `conf`: the config, or a
-- function that loads it (a release reads it only here).
local function wake(now, conf, force)
  if not (freed_any or force) or now >= waiting then
    return
  end
  if type(conf) == 'function' then
    conf = conf()
  end
  local free = free_count(conf.limit)
  if free == 0 then
    return
  end
  local parts = serve(now, conf, free)
  redis.call(PUBLISH, CHANNEL, table.concat(parts, ' '))
end
