--[[ status: what the semaphore looks like now. It creates the config on first use, so
building a handle checks the stored permit count and the keys' types.

ARGV[1] permits  the caller's permit count, negative for an unbounded handle (0: the
                 stored configuration; -0: unbounded with no permits)
ARGV[2] list     1: also list the held slots (several masters count a slot held only where
                 a majority holds it)
Reply: {available, limit, held, wait_ms, permits, bounded, more, expiry, slot, slot...}:
free slots below the limit, the limit, slots held, milliseconds until the earliest lease
expires (-1 when nothing is held), the stored permit count, whether the semaphore is bounded
(1) or not (0); with `list`, whether more held slots follow (1: page on with holders.lua
from the cursor `expiry`, `slot`), then the first PAGE held slots (without: 0, 0, 0).
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local conf = load_config(false)
local now = now_ms()
reclaim(now)
need_holds()
-- The queue's key is checked too, though only waiters use it.
read('zset', 'ZCARD', QUEUE)
wake(now, conf, false)
local reply = {
  free_count(conf.limit),
  conf.limit,
  redis.call('ZCOUNT', SLOTS, HELD, '+inf'),
  earliest_wait(now),
  conf.permits,
  conf.bounded and 1 or 0,
  0, 0, 0,
}
if ARGV[2] == '1' then
  local page, more = held_page(nil)
  if more then
    reply[7], reply[8], reply[9] = 1, page[#page], page[#page - 1]
  end
  for i = 1, #page, 2 do
    reply[#reply + 1] = page[i]
  end
end
return reply
