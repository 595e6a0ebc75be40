-- delete: removes every key of the semaphore, its config included (an operator's action).
--
-- Returns 1 if the semaphore existed here, 0 if not. Holders lose their permits (their next
-- renewal finds nothing) and waiters are woken (their next attempt creates the semaphore
-- again with their own count).
-- Deletes nothing that is not the semaphore's: every key must be of its own type or absent.
local kinds = { 'hash', 'zset', 'zset', 'hash', 'zset', 'zset' }
for i = 1, 6 do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= kinds[i] then
    wrong_type(KEYS[i], kinds[i])
  end
end
local existed = redis.call('EXISTS', CONFIG)
redis.call('DEL', CONFIG, LEASES, FREE, STATE, QUEUE, WAITERS)
redis.call(PUBLISH, CHANNEL, stamp())
return existed
