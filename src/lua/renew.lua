--[[ renew: makes permit `id` hold exactly the listed slots on this master, as far as it can.
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
if #ARGV - 6 > MAX_SLOTS then
  error({ err = E_LIMIT .. ' a permit holds at most ' .. MAX_SLOTS .. ' slots' })
end
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

-- How many slots this script may still make members below a claim (take).
local fill_left = MAX_SLOTS

-- Takes free `slot` for the id; false when it is held, or at or past the limit.
local function take(slot)
  local n = tonumber(slot)
  if n >= conf.limit then
    return false
  end
  if n < next_slot then
    local score = redis.call('ZSCORE', SLOTS, slot)
    return score and tonumber(score) < HELD
  end
  -- Never granted here: `next` moves past it, and the slots between become free members,
  -- so that every slot below `next` is a member. A claim further past `next` than the
  -- budget is refused: the permit then does not spread to this master, which costs it
  -- only a spare copy (it holds its slots on a majority elsewhere).
  local gap = n - next_slot
  if gap > fill_left then
    return false
  end
  fill_left = fill_left - gap
  local free = {}
  for s = next_slot, n - 1 do
    free[#free + 1] = s
    free[#free + 1] = s
  end
  chunked('ZADD', SLOTS, free)
  next_slot = n + 1
  return true
end

-- A HOLDS made anew has no last token: its counter starts at the floor (next_token), never
-- at a lower token a claiming permit brings.
if holds_token == 0 then
  holds_token = math.max(conf.token, tonumber(stamp()))
end
local fresh = next_slot == 0
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
  moving = keep(expiry, fields, fresh)
  chunked('ZADD', SLOTS, leases)
end
with_next(fields)
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
