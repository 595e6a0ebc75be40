--[[ resize: sets the semaphore's permit count (an operator's explicit change).

ARGV[1] permits  the caller's permit count, negative when unbounded (0: the stored one)
ARGV[2] n        the new count, 1 <= n <= 4294967295
Permits added by unbounded releases are kept on top of it. Held slots at or past the new
limit stay held until released; only slots below it are granted. Reply: the new limit.
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local conf = load_config(true)
local n = tonumber(ARGV[2])
local grown = math.max(0, conf.limit - conf.permits)
if n + grown > 4294967295 then
  error({ err = E_LIMIT .. ' cannot have ' .. (n + grown) .. ' permits: the most is 4294967295' })
end
local now = now_ms()
reclaim(now)
need_holds()
redis.call('HSET', CONFIG, 'permits', n, 'limit', n + grown)
conf.limit = n + grown
wake(now, conf, true)
return conf.limit
