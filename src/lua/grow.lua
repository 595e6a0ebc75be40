--[[ grow: adds permits to an unbounded semaphore (a release of more than its handle held).

ARGV[1] permits  the caller's permit count, negative for an unbounded handle (a bounded
                 semaphore is never grown: its config refuses the caller)
ARGV[2] n        permits to add, n >= 1
Reply: the new limit; one past 2^32 - 1, the most a client can count, is refused.
]]
--- @include "config"
--- @include "slots"
--- @include "queue"

local conf = load_config(false)
local n = tonumber(ARGV[2])
if conf.limit + n > 4294967295 then
  error({ err = E_LIMIT .. ' cannot add ' .. n .. ' permits to ' .. conf.limit .. ': the most is 4294967295' })
end
local now = now_ms()
reclaim(now)
need_holds()
conf.limit = redis.call('HINCRBY', CONFIG, 'limit', n)
wake(now, conf, true)
return conf.limit
