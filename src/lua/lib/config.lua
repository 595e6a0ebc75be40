--[[ config: the stored permit count, checked against the caller's.

CONFIG hash, persistent: permits (the count the semaphore was created with), limit (permits
plus those added by unbounded releases), token (at or above every fencing token granted:
see next_token in slots.lua; never lowered).
]]
--- @include "clock"
--- @include "errors"

-- Returns {limit, permits, token} (numbers), creating the config on first use and refusing a
-- handle built with another permit count, unless `lenient` (renewing or releasing a permit
-- granted before the count was changed). ARGV[1] is the caller's count; 0 (a handle that
-- adopts the stored count) creates nothing and accepts any stored count.
local function load_config(lenient)
  local permits = tonumber(ARGV[1])
  local stored = read('hash', 'HMGET', CONFIG, 'permits', 'limit', 'token')
  if not stored[1] then
    if permits == 0 then
      error({ err = E_NOTFOUND .. ' ' .. CONFIG .. ' does not exist' })
    end
    if redis.call('HLEN', CONFIG) > 0 then
      error({ err = E_WRONGTYPE .. ' ' .. CONFIG .. ' is a hash this library did not write' })
    end
    -- Tokens start at the master's time in microseconds: a master that restarts empty
    -- starts above every token it gave before (no semaphore grants once a microsecond),
    -- so fencing tokens keep rising across restarts.
    local token = stamp()
    redis.call('HSET', CONFIG, 'permits', permits, 'limit', permits, 'token', token)
    return { limit = permits, permits = permits, token = tonumber(token) }
  end
  if permits ~= 0 and tonumber(stored[1]) ~= permits and not lenient then
    error({ err = E_CONFIG .. ' ' .. stored[1] })
  end
  return {
    limit = tonumber(stored[2]),
    permits = tonumber(stored[1]),
    token = tonumber(stored[3] or 0),
  }
end
