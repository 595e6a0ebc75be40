--[[ release: frees slots held by permit `id`.

ARGV[1]   permits  the caller's permit count, negative when unbounded (0: the stored one)
ARGV[2]   id       permit id
ARGV[3]   line     the waiter line the permit's acquire stood in, or ''
ARGV[4]   leave    1: take that line off the queue (its last waiter gave up)
ARGV[5..] slots    the slots to free; none given frees all of the id's slots
Reply: the number of slots freed: 0 means the id held none of them (its lease had already
expired, or it never got a grant).
A request of `id` registered with `line` (an acquire that gave up) is taken back, so that
no release grants a permit to a waiter that is gone.

Uncontended, with nobody waiting: 5 calls (TIME, the earliest lease, HOLDS, the slots' new
scores, HOLDS fields deleted). CONFIG is read only to wake waiters. A freed slot that a
registered waiter at the head of the queue can take is handed to it in the same write
that frees it (slots.lua, defer_frees).
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local id, line, leaving = ARGV[2], ARGV[3], ARGV[4] == '1'
if #ARGV - 4 > MAX_SLOTS then
  error({ err = E_LIMIT .. ' a permit holds at most ' .. MAX_SLOTS .. ' slots' })
end
local now = now_ms()
reclaim(now)
local mine, place = nil, nil
if line ~= '' then
  mine, place = read_holds('i:' .. id, 'w:' .. line)
else
  mine = read_holds('i:' .. id)
end
local only = nil
if #ARGV > 4 then
  only = {}
  for i = 5, #ARGV do
    only[ARGV[i]] = true
  end
end

-- Freed slots may go straight to a waiter: the writes wait for the end.
defer_frees()
local dequeued = false
if place then
  local expiry, joined, registered = parse_place(place)
  if leaving then
    -- The line's waiters are gone: the next line may go now.
    leave({ line })
    dequeued = true
  elseif registered == id then
    redis.call('HSET', HOLDS, 'w:' .. line, place_value(expiry, joined, nil))
  end
end
local freed = 0
if mine then
  freed = free_id(id, mine, only, nil)
end
wake(now, function() return load_config(true) end, dequeued)
finish_frees()
return freed
