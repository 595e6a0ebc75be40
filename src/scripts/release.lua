-- release: frees slots held by permit `id`.
--
-- ARGV[2]   id     permit id
-- ARGV[3..] slots  the slots to free; none given frees all of the id's slots
-- Releasing all of an id's slots also takes it off the waiter queue (a cancelled acquire).
-- Returns the number of slots freed: 0 means the id held none of them (its lease had
-- already expired, or it never got a grant).
local id = ARGV[2]
local limit = load_config()
local now = now_ms()
reclaim(now)
local only = nil
if #ARGV > 2 then
  only = {}
  for i = 3, #ARGV do
    only[ARGV[i]] = true
  end
end
local freed = free_slots(id, only)
-- A cancelled waiter leaves the queue; the next one may go now.
local was_queued = only == nil and dequeue(id)
reset_if_idle()
touch()
wake(now, limit, was_queued)
return freed
