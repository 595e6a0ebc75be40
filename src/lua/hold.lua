--[[ hold: makes permit `id` hold exactly the listed slots on this master, as far as it can.
It renews a permit's lease, settles an acquire on several masters and spreads a permit to
masters that did not grant it, in one script.

ARGV[1]   permits   the caller's permit count, negative when unbounded (0: the stored one)
ARGV[2]   id        permit id
ARGV[3]   lease_ms  new lease length, from now
ARGV[4]   token     the permit's fencing token: stored for the id, and the master's token
                    counter is raised to it, so later grants here get higher tokens
ARGV[5]   claim     1: also take listed slots that are free here; 0: only keep those held
ARGV[6]   line      a waiter line to take off the queue (its acquire was granted on the
                    other masters), or ''
ARGV[7..] slots     the permit's slots
Reply: the listed slots the id holds afterwards, with a fresh lease; slots of the id that
are not listed are freed. An empty reply with claim 0 means the lease had expired here (the
permit is lost on this master: its slots may belong to someone else by now).

Claiming is safe only on several masters, while the permit holds each slot on a majority:
no other id can hold a majority of that slot then.

A plain renewal: 5 calls (config, TIME, the earliest lease, HOLDS, the leases).
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local id, lease, token, claim, line = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1', ARGV[6]
local conf = load_config(true)
local now = now_ms()
reclaim(now)
local mine, place = nil, nil
if line ~= '' then
  mine, place = read_holds('i:' .. id, 'w:' .. line)
  if place then
    leave({ line })
  end
else
  mine = read_holds('i:' .. id)
end

local wanted = {}
for i = 7, #ARGV do
  wanted[ARGV[i]] = true
end
local have, dropping = {}, {}
if mine then
  local _, slots = holding(mine)
  for _, slot in ipairs(slots) do
    if wanted[slot] then
      have[slot] = true
    else
      dropping[#dropping + 1] = slot
    end
  end
end

-- Takes free `slot` for the id; false when it is held, or at or past the limit.
local function take(slot)
  local n = tonumber(slot)
  if n >= conf.limit then
    return false
  end
  local score = redis.call('ZSCORE', SLOTS, slot)
  if n < next_slot then
    return score and tonumber(score) < HELD
  end
  if score then
    return false
  end
  -- Never granted here in order: held out of order, counted in `above` and skipped when
  -- `next` reaches it, so the cost does not grow with the slot number.
  above = above + 1
  return true
end

-- A HOLDS made anew has no last token: its counter starts at the floor (next_token), never
-- at a lower token a claiming permit brings.
if holds_token == 0 then
  holds_token = math.max(conf.token, tonumber(stamp()))
end
local expiry = now + lease
local held, leases, fields, gone = {}, {}, {}, {}
for i = 7, #ARGV do
  local slot = ARGV[i]
  if have[slot] or (claim and take(slot)) then
    held[#held + 1] = slot
    leases[#leases + 1] = expiry
    leases[#leases + 1] = slot
    if not have[slot] then
      fields[#fields + 1] = 's:' .. slot
      fields[#fields + 1] = id
    end
  end
end
free_list(dropping)
for _, slot in ipairs(dropping) do
  gone[#gone + 1] = 's:' .. slot
end

local moving = false
if #held == 0 then
  if mine then
    gone[#gone + 1] = 'i:' .. id
  end
else
  local entry = token .. ':' .. table.concat(held, ',')
  if entry ~= mine then
    fields[#fields + 1] = 'i:' .. id
    fields[#fields + 1] = entry
  end
  if tonumber(token) > holds_token then
    fields[#fields + 1] = 'token'
    fields[#fields + 1] = token
  end
  leased_until(expiry)
  moving = keep(expiry, fields, next_slot == 0)
  chunked('ZADD', SLOTS, leases)
end
with_above(fields)
chunked('HSET', HOLDS, fields)
chunked('HDEL', HOLDS, gone)
if moving then
  expire_keys()
end
if #held > 0 and tonumber(token) > holds_token then
  holds_token = tonumber(token)
  if holds_token > conf.token then
    redis.call('HSET', CONFIG, 'token', token)
  end
end
wake(now, conf, false)
local reply = {}
for i, slot in ipairs(held) do
  reply[i] = tonumber(slot)
end
return reply
