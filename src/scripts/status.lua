-- status: what the semaphore looks like now (creates the config on first use, so building
-- a handle checks the stored permit count and the keys' types).
--
-- Returns {available, limit, held, wait_ms}: free slots below the limit, the limit, slots
-- held, and milliseconds until the earliest lease expires (-1 when nothing is held).
local limit = load_config()
local now = now_ms()
reclaim(now)
return { free_count(limit), limit, redis.call('ZCARD', LEASES), earliest_wait(now) }
