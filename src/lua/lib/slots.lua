--[[ slots: which permit holds which slot until when, the free slots, reclaiming, TTLs.

SLOTS zset, one member per slot below `next`:
  score = the lease expiry (ms, master clock) of a held slot, or the slot number of a free
  one. Expiries are above 2^32 (HELD: 2^32 ms is 1970-02-19) and slot numbers below it, so
  one range read finds the expired leases, [HELD, now], and another the lowest free slots,
  [0, limit). A grant or a release rewrites a member's score: one call, no second key.
HOLDS hash:
  next      lowest slot never granted since the keys were made: the slots at or past it
            are free and are not members of SLOTS (a claim past it, renew.lua, first makes
            the slots between members, within a budget)
  until     when SLOTS and HOLDS expire (ms): moved only when a lease would outlive it
  token     the last fencing token granted here; CONFIG's token stays at or above it (a
            block of TOKEN_BLOCK ahead), so a HOLDS made anew starts above every token given
  waiting   until when someone may be waiting (queue.lua)
  s:<slot>  the id of the permit holding the slot
  i:<id>    "token:slot,slot": that permit's fencing token and its slots on this master
  w:<line>  a queued waiter line's place (queue.lua)

Invariants:
* a slot is held iff its SLOTS score is at least HELD; it then has an s: field, and its
  holder's i: field lists it (but for the rest of an expired lease that a reclaim batch
  did not finish: the i: field went with the first batch);
* all slots of one id on this master share one expiry;
* expired leases, a batch of them, are reclaimed before anything else is read, using only
  TIME; one not reclaimed yet stays held (never granted twice);
* SLOTS and HOLDS expire together at `until`, a second after the last lease (or waiter
  place) they record; nothing costs more than O(log N) in the number of permits;
* no script walks more than a bounded number of slots, whatever its arguments and the state
  it finds (the bounds come in the header, from lua.rs): a permit holds at most MAX_SLOTS;
  a script reclaims at most RECLAIM_BATCH expired slots (the rest stay held, so never
  granted twice, until the next scripts reclaim them, a batch each), pushes at most
  PUSH_BUDGET slots to waiters, lists at most PAGE held slots, and fills at most MAX_SLOTS
  slots below a claim.
]]
--- @include "clock"
--- @include "errors"

local HELD = 4294967296
-- How far CONFIG's token runs ahead of the last token granted: CONFIG is written once per
-- this many grants, not at each.
local TOKEN_BLOCK = 1000

-- The HOLDS fields every script reads first (read_holds), kept up to date by what it writes.
local next_slot, until_ms, holds_token, waiting = 0, 0, 0, 0
local next_read, holds_read = 0, false
-- The expiry of the earliest lease after reclaiming (false: none), while it is known.
local earliest = nil
-- Set when this script freed a slot: it wakes waiters before it returns (queue.lua).
local freed_any = false
-- A release defers its writes (defer_frees): the slots it freed below `next`, lowest first,
-- not yet scored free, which a grant in the same script takes first (a hand-off to a
-- waiter: one ZADD instead of two, and no read of the free slots); and the HOLDS fields it
-- deletes, with those of the lines that leave the queue, in one HDEL at the end
-- (finish_frees). `regranted`: the s: fields granted again meanwhile, kept.
local handoff, deferred_gone, regranted = nil, nil, {}

local function defer_frees()
  handoff, deferred_gone = {}, {}
end

-- Reads `next`, `until`, `token` and `waiting` of HOLDS, and the given fields, in one call;
-- returns the given fields' values (false for absent ones).
local function read_holds(...)
  local got = read('hash', 'HMGET', HOLDS, 'next', 'until', 'token', 'waiting', ...)
  next_slot, until_ms = tonumber(got[1] or 0), tonumber(got[2] or 0)
  holds_token, waiting = tonumber(got[3] or 0), tonumber(got[4] or 0)
  next_read, holds_read = next_slot, true
  return unpack(got, 5, 4 + select('#', ...))
end

local function need_holds()
  if not holds_read then
    read_holds()
  end
end

-- "token:3,7" -> token (a number), slots (strings).
local function holding(entry)
  local colon = string.find(entry, ':', 1, true)
  local slots = {}
  for slot in string.gmatch(string.sub(entry, colon + 1), '%d+') do
    slots[#slots + 1] = slot
  end
  return tonumber(string.sub(entry, 1, colon - 1)), slots
end

-- Adds `next` to `fields` (HSET pairs) if this script changed it.
local function with_next(fields)
  if next_slot ~= next_read then
    fields[#fields + 1] = 'next'
    fields[#fields + 1] = next_slot
    next_read = next_slot
  end
  return fields
end

-- SLOTS and HOLDS must outlive a lease (or waiter place) that ends at `expiry`. Returns
-- true if their TTL must move (then `until` is added to `fields`, to be written by the
-- caller, who calls expire_keys once the keys exist). `force` when SLOTS may have been made
-- anew without a TTL (it has no member below `next` when next is 0).
local function keep(expiry, fields, force)
  if until_ms >= expiry and not force then
    return false
  end
  until_ms = expiry + 1000
  fields[#fields + 1] = 'until'
  fields[#fields + 1] = until_ms
  return true
end

local function expire_keys()
  redis.call('PEXPIREAT', SLOTS, until_ms)
  redis.call('PEXPIREAT', HOLDS, until_ms)
end

-- keep() for a caller with nothing else to write to HOLDS.
local function keep_now(expiry, force)
  local fields = {}
  if keep(expiry, fields, force) then
    redis.call('HSET', HOLDS, unpack(fields))
    expire_keys()
  end
end

-- Frees `slots` (strings): each becomes a free member again, scored by its number. The
-- caller deletes their s: fields.
local function free_list(slots)
  local back = {}
  for _, slot in ipairs(slots) do
    if handoff then
      handoff[#handoff + 1] = slot
    else
      back[#back + 1] = tonumber(slot)
      back[#back + 1] = slot
    end
  end
  chunked('ZADD', SLOTS, back)
  if #slots > 0 then
    freed_any, earliest = true, nil
  end
  if handoff then
    table.sort(handoff, function(a, b) return tonumber(a) < tonumber(b) end)
  end
end

-- Deletes HOLDS `fields` now, or at finish_frees when the script defers its writes.
local function delete_fields(fields)
  if deferred_gone then
    for _, field in ipairs(fields) do
      deferred_gone[#deferred_gone + 1] = field
    end
  else
    chunked('HDEL', HOLDS, fields)
  end
end

-- Writes what defer_frees held back: the slots not handed off become free members.
local function finish_frees()
  local back, gone = {}, {}
  for _, slot in ipairs(handoff) do
    back[#back + 1] = tonumber(slot)
    back[#back + 1] = slot
  end
  for _, field in ipairs(deferred_gone) do
    if not regranted[field] then
      gone[#gone + 1] = field
    end
  end
  handoff, deferred_gone = nil, nil
  chunked('ZADD', SLOTS, back)
  chunked('HDEL', HOLDS, gone)
end

-- Frees the slots of permit `id` (its i: entry `entry`) that are in `only` (a set of slot
-- strings), or all of them when `only` is nil; also deletes the HOLDS fields in `drop`.
-- Returns how many slots were freed.
local function free_id(id, entry, only, drop)
  local token, slots = holding(entry)
  local freeing, kept = {}, {}
  for _, slot in ipairs(slots) do
    if only == nil or only[slot] then
      freeing[#freeing + 1] = slot
    else
      kept[#kept + 1] = slot
    end
  end
  free_list(freeing)
  local gone = drop or {}
  for _, slot in ipairs(freeing) do
    gone[#gone + 1] = 's:' .. slot
  end
  if #kept == 0 then
    gone[#gone + 1] = 'i:' .. id
  else
    redis.call('HSET', HOLDS, 'i:' .. id, int(token) .. ':' .. table.concat(kept, ','))
  end
  delete_fields(gone)
  return #freeing
end

-- Reclaims the leases that expired by `now`, the earliest RECLAIM_BATCH slots of them: a
-- crowd of leases that expired together is reclaimed by the next few scripts, a batch
-- each, and stays held (never granted twice) until then. The first read, of the earliest
-- lease, is all it costs when none has expired, and tells a busy reply how long to wait.
local function reclaim(now)
  local first = read('zset', 'ZRANGEBYSCORE', SLOTS, HELD, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if not first[2] or tonumber(first[2]) > now then
    earliest = first[2] and tonumber(first[2]) or false
    return
  end
  local expired = redis.call('ZRANGEBYSCORE', SLOTS, HELD, now, 'LIMIT', 0, RECLAIM_BATCH)
  need_holds()
  local fields, gone, ids = {}, {}, {}
  for i, slot in ipairs(expired) do
    fields[i] = 's:' .. slot
  end
  local holders = redis.call('HMGET', HOLDS, unpack(fields))
  for i, field in ipairs(fields) do
    gone[#gone + 1] = field
    local id = holders[i]
    -- Every slot of an id expires at once: its whole i: entry goes (slots of it past this
    -- batch keep their s: fields until the next batch frees them).
    if id and not ids[id] then
      ids[id] = true
      gone[#gone + 1] = 'i:' .. id
    end
  end
  free_list(expired)
  chunked('HDEL', HOLDS, gone)
end

-- Milliseconds until the earliest lease expires, or -1 when nothing is held.
local function earliest_wait(now)
  if earliest == nil then
    local first = redis.call('ZRANGEBYSCORE', SLOTS, HELD, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    earliest = first[2] and tonumber(first[2]) or false
  end
  if earliest then
    return math.max(0, earliest - now)
  end
  return -1
end

-- A lease granted or renewed until `expiry` may now be the earliest.
local function leased_until(expiry)
  if earliest ~= nil and (earliest == false or expiry < earliest) then
    earliest = expiry
  end
end

-- The next fencing token: one above the last granted here, or, in a HOLDS made anew, above
-- every token CONFIG has reserved and above the master's clock in µs (a master restarted
-- empty starts above what it gave before). CONFIG keeps a block reserved ahead.
local function next_token(conf)
  if holds_token > 0 then
    holds_token = holds_token + 1
  else
    holds_token = math.max(conf.token, tonumber(stamp())) + 1
  end
  if holds_token > conf.token then
    conf.token = holds_token + TOKEN_BLOCK
    redis.call('HSET', CONFIG, 'token', int(conf.token))
  end
  return holds_token
end

-- Free slots below `limit` that were never granted (at or past `next`).
local function untouched(limit)
  return math.max(0, limit - next_slot)
end

-- How many slots below `limit` are free.
local function free_count(limit)
  need_holds()
  local listed = 0
  if next_slot > 0 then
    listed = redis.call('ZCOUNT', SLOTS, 0, '(' .. limit)
  end
  for _, slot in ipairs(handoff or {}) do
    if tonumber(slot) < limit then
      listed = listed + 1
    end
  end
  return listed + untouched(limit)
end

-- The lowest free members of SLOTS below `limit`, at most `n`.
local function free_members(limit, n)
  need_holds()
  if next_slot == 0 then
    return {}
  end
  return redis.call('ZRANGEBYSCORE', SLOTS, 0, '(' .. limit, 'LIMIT', 0, n)
end

-- Grants `k` slots below the limit to permit `id` until `expiry`: the lowest free ones, as
-- the caller has checked that k are free. `listed`: the lowest free members, when the
-- caller has read them. Returns the new fencing token and the slots.
local function grant(id, k, expiry, conf, listed)
  local slots = {}
  if not listed and handoff then
    -- Slots this script freed first: they are still scored as held, so the free members
    -- read below do not list them again.
    local kept = {}
    for _, slot in ipairs(handoff) do
      if #slots < k and tonumber(slot) < conf.limit then
        slots[#slots + 1] = slot
        regranted['s:' .. slot] = true
      else
        kept[#kept + 1] = slot
      end
    end
    handoff = kept
  end
  if #slots < k then
    listed = listed or free_members(conf.limit, k - #slots)
    for i = 1, math.min(k - #slots, #listed) do
      slots[#slots + 1] = listed[i]
    end
  end
  local fresh = next_slot == 0
  while #slots < k do
    slots[#slots + 1] = tostring(next_slot)
    next_slot = next_slot + 1
  end
  local token = next_token(conf)
  leased_until(expiry)
  local leases = {}
  local fields = { 'token', int(token), 'i:' .. id, int(token) .. ':' .. table.concat(slots, ',') }
  for _, slot in ipairs(slots) do
    leases[#leases + 1] = expiry
    leases[#leases + 1] = slot
    fields[#fields + 1] = 's:' .. slot
    fields[#fields + 1] = id
  end
  with_next(fields)
  local moving = keep(expiry, fields, fresh)
  chunked('ZADD', SLOTS, leases)
  chunked('HSET', HOLDS, fields)
  if moving then
    expire_keys()
  end
  return token, slots
end

-- Renews the lease of permit `id`, whose i: entry is `entry`, until `expiry`. Returns its
-- token and slots.
local function extend(entry, expiry)
  local token, slots = holding(entry)
  local leases = {}
  for _, slot in ipairs(slots) do
    leases[#leases + 1] = expiry
    leases[#leases + 1] = slot
  end
  chunked('ZADD', SLOTS, leases)
  leased_until(expiry)
  keep_now(expiry, false)
  return token, slots
end

-- At most PAGE held slots, in lease order, after the cursor `after` ({expiry, slot}: the
-- last slot of the previous page), or from the first held slot when `after` is nil.
-- Returns {slot, expiry, ...} (numbers) and whether more may follow. A cursor whose slot
-- was renewed or freed since goes on from its old expiry: slots of that expiry may come
-- again, which the client lists once.
local function held_page(after)
  local start
  if after then
    local rank = redis.call('ZRANK', SLOTS, after[2])
    local score = rank and tonumber(redis.call('ZSCORE', SLOTS, after[2]))
    if score == after[1] then
      start = rank + 1
    else
      start = redis.call('ZCOUNT', SLOTS, '-inf', '(' .. after[1])
    end
  else
    start = redis.call('ZCOUNT', SLOTS, '-inf', '(' .. HELD)
  end
  local page = redis.call('ZRANGE', SLOTS, start, start + PAGE - 1, 'WITHSCORES')
  local held = {}
  for i = 1, #page, 2 do
    held[#held + 1] = tonumber(page[i])
    held[#held + 1] = tonumber(page[i + 1])
  end
  return held, #page == 2 * PAGE
end
