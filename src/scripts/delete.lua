-- delete: removes every key of the semaphore, its config included (an operator's action).
--
-- Returns 1 if the semaphore existed here, 0 if not. Holders lose their permits (their next
-- renewal finds nothing) and waiters are woken (their next attempt creates the semaphore
-- again with their own count).
local existed = redis.call('EXISTS', CONFIG)
redis.call('DEL', CONFIG, LEASES, FREE, STATE, QUEUE, WAITERS)
redis.call(PUBLISH, CHANNEL, stamp())
return existed
