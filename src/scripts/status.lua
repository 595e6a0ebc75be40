-- status: what the semaphore looks like now (creates the config on first use, so building
-- a handle checks the stored permit count and the keys' types).
--
-- ARGV[2] list  1: also list the held slots (several masters count a slot held only where a
--               majority holds it)
-- Returns {available, limit, held, wait_ms, permits, slot...}: free slots below the limit,
-- the limit, slots held, milliseconds until the earliest lease expires (-1 when nothing is
-- held), the stored permit count, and with `list` the held slots.
local limit, permits = load_config()
local now = now_ms()
reclaim(now)
wake(now, limit, false)
local reply = { free_count(limit), limit, redis.call('ZCARD', LEASES), earliest_wait(now), permits }
if ARGV[2] == '1' then
  for _, slot in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
    reply[#reply + 1] = tonumber(slot)
  end
end
return reply
