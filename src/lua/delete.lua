--[[ delete: removes every key of the semaphore, its config included (an operator's action).

Reply: 1 if the semaphore existed here, 0 if not. Holders lose their permits (their next
renewal finds nothing) and waiters are woken (their next attempt creates the semaphore
again with their own count). Nothing that is not the semaphore's is deleted: every key must
be of its own type or absent.
]]
--- @include "clock"
--- @include "errors"

local kinds = { [CONFIG] = 'hash', [SLOTS] = 'zset', [HOLDS] = 'hash', [QUEUE] = 'zset' }
for _, key in ipairs(KEYS) do
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= kinds[key] then
    wrong_type(key, kinds[key])
  end
end
local existed = redis.call('EXISTS', CONFIG)
-- UNLINK frees a large key on a background thread: a DEL of a semaphore of a million used
-- slots would run for a good part of a second, blocking every client. A user whose ACL
-- rule predates UNLINK (it was +del only) is still served, by DEL.
local unlinked = redis.pcall('UNLINK', unpack(KEYS))
if type(unlinked) == 'table' and unlinked.err then
  redis.call('DEL', unpack(KEYS))
end
redis.call(PUBLISH, CHANNEL, stamp())
return existed
