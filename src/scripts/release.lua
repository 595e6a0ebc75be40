-- release: frees slots held by permit `id`.
--
-- ARGV[2]   id     permit id
-- ARGV[3]   line   a waiter line to take off the queue (its last waiter gave up), or ''
-- ARGV[4..] slots  the slots to free; none given frees all of the id's slots
-- Returns the number of slots freed: 0 means the id held none of them (its lease had
-- already expired, or it never got a grant).
local id, line = ARGV[2], ARGV[3]
local limit = load_config(true)
local now = now_ms()
reclaim(now)
local only = nil
if #ARGV > 3 then
  only = {}
  for i = 4, #ARGV do
    only[ARGV[i]] = true
  end
end
local freed = free_slots(id, only)
-- A line whose waiters gave up leaves the queue; the next line may go now.
local dequeued = line ~= '' and dequeue(line)
reset_if_idle()
touch()
wake(now, limit, dequeued)
return freed
