--[[ queue: fair waiting across processes, pushed grants and wake-ups.

HOLDS waiting   until when (ms, master clock) someone may be waiting: set by an acquire
                that goes on to wait, its waiter lease (a place lease for a line that
                joins the queue) plus a second ahead at least, and QUEUE expires then
                (HOLDS a second later); cleared when the last line leaves the queue. Past
                it nobody listens and nobody is queued, so the scripts neither read the
                queue nor publish, and a release does not even read CONFIG: waiting costs
                nothing while nobody waits. It is moved only when it would end within that
                margin.
QUEUE zset      member = a waiter line (one handle's waiters, served in order by the
                client), score = its arrival by the client's clock (µs); and the member
                '~' scored -1, which keeps the key, and so its TTL, when the last line
                leaves (so ranks here are one past the line's place)
HOLDS w:<line>  the line's place: "expiry joined", or "expiry joined id k lease" with a
                registered request: when its slots are freed, the script that frees them
                grants them to `id` for `lease` ms and publishes the grant (one master
                only). `expiry` is the place lease (minutes: keeping a place costs no
                request), cut to a second when the line is named in a wake-up (a line
                woken must ask at once; one that does not is gone); `joined`, when the
                line joined. A place is dead when its expiry has passed, or when nobody in
                its process listens (below) and it joined more than JOIN_GRACE_MS ago: dropped
                when it reaches the head of the queue. A live place implies the line is in
                QUEUE.

Wake-ups go to the processes they serve, not to everyone. A line is named
`<process>.<rest>`, and its process listens on `semaphore:{name}:wake:<process>` while any
of its lines waits (the wake-up subscriber of each process and master), so a script checks
that a process is alive with PUBSUB NUMSUB (a process that died closed its connection) and
publishes each line's wake-up on its process's channel: a hand-off costs one message to one
process, however many wait. A message is the script's stamp (µs), then, space-separated,
that process's lines at the head of the queue that the free slots are kept for, each as
`line` (ask now) or `line=id:token:slot,slot` (granted: hold it without asking). Waiters
that do not queue (an unfair handle's) listen on `semaphore:{name}:wake`, where a stamp
alone means anyone may try. A waiter ignores wake-ups stamped before its last request.
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

-- "expiry joined id k lease" or "expiry joined" -> expiry, joined, id, k, lease (numbers
-- but the id); nil when there is no place.
local function parse_place(place)
  if not place then
    return nil
  end
  local expiry, joined, rest = string.match(place, '^(%d+) (%d+)(.*)$')
  if not expiry then
    return nil
  end
  local id, k, lease = string.match(rest, '^ (%S+) (%d+) (%d+)$')
  return tonumber(expiry), tonumber(joined), id, tonumber(k), tonumber(lease)
end

-- A place's value: `request` is "id k lease", or nil.
local function place_value(expiry, joined, request)
  return int(expiry) .. ' ' .. int(joined) .. (request and (' ' .. request) or '')
end

-- The channel of the process that waits in `line` ("<process>.<rest>"); nil for a line
-- named otherwise (its wake-ups go to everyone).
local function line_channel(line)
  local process = string.match(line, '^(%w+)%.')
  return process and (CHANNEL .. ':' .. process)
end

-- Takes `lines` off the queue, with their places; the mark too, when nobody is left.
-- `empty`: whether that leaves the queue empty, when the caller knows (else it is read).
local function leave(lines, empty)
  local fields = {}
  for i, line in ipairs(lines) do
    fields[i] = 'w:' .. line
  end
  chunked('ZREM', QUEUE, lines)
  delete_fields(fields)
  if empty == nil then
    empty = redis.call('ZCARD', QUEUE) <= 1
  end
  if empty then
    waiting = 0
    redis.call('HSET', HOLDS, 'waiting', 0)
  end
end

-- Puts `line` in the queue at `arrival` unless it holds a live place there (`place`, its
-- w: field as read), and renews its waiter lease with `request` ("id k lease", or nil).
-- `arrival` is the client's clock when the acquire first asked: every master gets the
-- same value, so several masters order the lines alike and keep their free slots for the
-- same lines (a per-master counter would order them as each master happened to see them).
local function join(line, place, now, waiter_ms, arrival, request)
  mark_waiting(now, waiter_ms)
  local expiry, joined = parse_place(place)
  if expiry and expiry >= now then
    -- Queued already: write only a new request, or a lease that would soon lapse.
    local old = string.match(place, '^%d+ %d+ (.*)$')
    if old == request and expiry >= now + waiter_ms / 2 then
      return
    end
  else
    joined = now
    local added = read('zset', 'ZADD', QUEUE, -1, '~', arrival, line)
    if added == 2 then
      -- A new key: it expires with the mark.
      redis.call('PEXPIREAT', QUEUE, waiting)
    end
  end
  local fields = { 'w:' .. line, place_value(now + waiter_ms, joined, request) }
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
-- Returns the wake-ups to publish ({channel = {stamp, entry...}}), whether it named or
-- granted any line, and the slots it granted. Unless `naming`, the lines it would only
-- name (not grant) are left as they are: they were woken by the script that freed the
-- slots.
local function serve(now, conf, free, asking, naming)
  local messages, served, leaving, granted = {}, false, {}, 0
  local push_left = PUSH_BUDGET
  local listened, named = {}, {}
  -- Whether the process of `line` listens (it is alive); the moment after the line joined
  -- counts as listening (its process subscribes once told to wait: JOIN_GRACE_MS).
  local function listening(line, joined)
    local channel = line_channel(line)
    if not channel or joined >= now - JOIN_GRACE_MS then
      return true
    end
    if listened[channel] == nil then
      listened[channel] = redis.call('PUBSUB', NUMSUB, channel)[2] > 0
    end
    return listened[channel]
  end
  local function tell(line, entry)
    local channel = line_channel(line) or CHANNEL
    messages[channel] = messages[channel] or { stamp() }
    local message = messages[channel]
    message[#message + 1] = entry
    served = true
  end
  -- The lines in the queue, once a read reached its end: one line more than needed is
  -- read, so the script knows whether it empties the queue without asking.
  local first, scanned, total = 1, 0, nil
  while free > 0 and scanned < 100 do
    -- At most 100 lines a script (and so a bounded HMGET below).
    local want = math.min(free, 100 - scanned)
    local lines = read('zset', 'ZRANGE', QUEUE, first, first + want)
    if #lines <= want then
      total = first - 1 + #lines
    end
    if #lines == 0 then
      break
    end
    first = first + want
    local fields = {}
    for i = 1, math.min(#lines, want) do
      fields[i] = 'w:' .. lines[i]
    end
    local places = redis.call('HMGET', HOLDS, unpack(fields))
    for i, line in ipairs(fields) do
      line = string.sub(line, 3)
      scanned = scanned + 1
      local expiry, joined, id, k, lease = parse_place(places[i])
      -- The line asking now is alive, whatever its process's subscription says.
      if not expiry or expiry < now or (line ~= asking and not listening(line, joined)) then
        leaving[#leaving + 1] = line
      elseif id and k <= free and k <= push_left and line ~= asking then
        local token, slots = grant(id, k, now + lease, conf)
        leaving[#leaving + 1] = line
        free, granted, push_left = free - k, granted + k, push_left - k
        tell(line, line .. '=' .. id .. ':' .. int(token) .. ':' .. table.concat(slots, ','))
      else
        if naming then
          tell(line, line)
        end
        free = id and 0 or free - 1
        if naming and line ~= asking and expiry > now + PUSHED_MS then
          -- Woken, it asks at once; if it does not within a second, it is gone.
          named[#named + 1] = 'w:' .. line
          named[#named + 1] = place_value(now + PUSHED_MS, joined, id and (id .. ' ' .. k .. ' ' .. lease))
        end
      end
      if free <= 0 then
        break
      end
    end
  end
  if #named > 0 then
    redis.call('HSET', HOLDS, unpack(named))
  end
  if #leaving > 0 then
    leave(leaving, total and total == #leaving)
  end
  return messages, served, granted
end

-- Publishes the wake-ups of serve().
local function publish(messages)
  for channel, message in pairs(messages) do
    redis.call(PUBLISH, channel, table.concat(message, ' '))
  end
end

-- Wakes waiters if this script freed a slot (or `force`) and someone may be waiting:
-- grants what it can to the head of the queue and wakes the lines it names, each on its
-- process's channel; with nobody queued, tells whoever waits outside the queue (an
-- unfair handle's waiters) that anyone may try. `conf`: the config, or a function that
-- loads it (a release reads it only here).
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
  local messages, served = serve(now, conf, free, nil, true)
  if not served then
    messages[CHANNEL] = { stamp() }
  end
  publish(messages)
end
