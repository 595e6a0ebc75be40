--[[ config: the stored permit count and boundedness, checked against the caller's.

CONFIG hash, persistent: permits (the count the semaphore was created with), limit (permits
plus those added by unbounded releases), token (at or above every fencing token granted:
see next_token in slots.lua; never lowered), bounded (1: a release of more than a handle
holds is refused; 0: it adds permits). A config written before `bounded` was stored has no
such field and counts as bounded, the default.
]]
--- @include "clock"
--- @include "errors"

-- Returns {limit, permits, token, bounded}, creating the config on first use and refusing a
-- handle built with another permit count or boundedness, unless `lenient` (renewing or
-- releasing a permit granted before the count was changed). ARGV[1] is the caller's count,
-- negative for an unbounded handle; 0 (a handle that adopts the stored configuration)
-- creates nothing and accepts any stored one; -0 is an unbounded semaphore of no permits
-- (releases open it), told apart from 0 by its sign. The refusal's detail is the stored
-- count and boundedness (`E_CONFIG 3 1`).
local function load_config(lenient)
  local raw = ARGV[1]
  local adopt = raw == '0'
  local permits, bounded = math.abs(tonumber(raw)), string.sub(raw, 1, 1) ~= '-'
  local stored = read('hash', 'HMGET', CONFIG, 'permits', 'limit', 'token', 'bounded')
  if not stored[1] then
    if adopt then
      error({ err = E_NOTFOUND .. ' ' .. CONFIG .. ' does not exist' })
    end
    if redis.call('HLEN', CONFIG) > 0 then
      error({ err = E_WRONGTYPE .. ' ' .. CONFIG .. ' is a hash this library did not write' })
    end
    -- Tokens start at the master's time in microseconds: a master that restarts empty
    -- starts above every token it gave before (no semaphore grants once a microsecond),
    -- so fencing tokens keep rising across restarts.
    local token = stamp()
    redis.call('HSET', CONFIG, 'permits', permits, 'limit', permits, 'token', token,
      'bounded', bounded and 1 or 0)
    return { limit = permits, permits = permits, token = tonumber(token), bounded = bounded }
  end
  local stored_bounded = stored[4] ~= '0'
  if not adopt and not lenient
    and (tonumber(stored[1]) ~= permits or stored_bounded ~= bounded) then
    error({ err = E_CONFIG .. ' ' .. stored[1] .. ' ' .. (stored_bounded and 1 or 0) })
  end
  return {
    limit = tonumber(stored[2]),
    permits = tonumber(stored[1]),
    token = tonumber(stored[3] or 0),
    bounded = stored_bounded,
  }
end
