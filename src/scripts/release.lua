-- release: frees slots held by permit `id`.
--
-- ARGV[2]   id       permit id
-- ARGV[3]   line     the waiter line the permit's acquire stood in, or ''
-- ARGV[4]   dequeue  1: take that line off the queue (its last waiter gave up)
-- ARGV[5..] slots    the slots to free; none given frees all of the id's slots
-- A registration of `id` with `line` (an acquire that gave up) is taken back, so that no
-- release grants a permit to a waiter that is gone.
-- Returns the number of slots freed: 0 means the id held none of them (its lease had
-- already expired, or it never got a grant).
local id, line, leave = ARGV[2], ARGV[3], ARGV[4] == '1'
local limit = load_config(true)
local now = now_ms()
reclaim(now)
local only = nil
if #ARGV > 4 then
  only = {}
  for i = 5, #ARGV do
    only[ARGV[i]] = true
  end
end
if line ~= '' then
  local pending = redis.call('HGET', STATE, 'w:' .. line)
  if pending and string.sub(pending, 1, #id + 1) == id .. ' ' then
    redis.call('HDEL', STATE, 'w:' .. line)
  end
end
local freed = free_slots(id, only)
-- A line whose waiters gave up leaves the queue; the next line may go now.
local dequeued = leave and dequeue(line)
reset_if_idle()
touch()
wake(now, limit, dequeued)
return freed
