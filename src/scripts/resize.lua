-- resize: sets the semaphore's permit count (an operator's explicit change).
--
-- ARGV[2] n  the new count, 1 <= n <= 4294967295
-- Permits added by unbounded releases are kept on top of it. Held slots at or past the new
-- limit stay held until released; only slots below it are granted. Returns the new limit.
local limit, permits = load_config(true)
local n = tonumber(ARGV[2])
local grown = math.max(0, limit - permits)
if n + grown > 4294967295 then
  error({ err = 'SEMLIMIT cannot have ' .. (n + grown) .. ' permits: the most is 4294967295' })
end
redis.call('HSET', CONFIG, 'permits', n, 'limit', n + grown)
wake(now_ms(), n + grown, true)
return n + grown
