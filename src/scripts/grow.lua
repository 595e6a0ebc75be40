-- grow: adds permits to an unbounded semaphore (a release of more than its handle held).
--
-- ARGV[2] n  permits to add, n >= 1
-- Returns the new limit; refuses one past 2^32 - 1, the most a client can count.
local limit = load_config()
local n = tonumber(ARGV[2])
if limit + n > 4294967295 then
  error({ err = 'SEMLIMIT cannot add ' .. n .. ' permits to ' .. limit .. ': the most is 4294967295' })
end
local grown = redis.call('HINCRBY', CONFIG, 'limit', n)
wake(now_ms(), grown, true)
return grown
