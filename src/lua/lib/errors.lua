--[[ errors: a key of another type is reported, never overwritten.

The first touch of every key in a script is a read through `read`, before the script
writes anything (Redis does not roll a script back), so a foreign key fails the script
with an error naming it and nothing is changed. No TYPE call on the hot path: the read
the script needs anyway reports WRONGTYPE.
]]

local function wrong_type(key, expected)
  local found = redis.call('TYPE', key)['ok']
  error({ err = E_WRONGTYPE .. ' ' .. key .. ' holds a ' .. found .. ', expected a ' .. expected })
end

-- Runs a read command on `key`, which must be a `expected` (or absent).
local function read(expected, command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'WRONGTYPE', 1, true) then
      wrong_type(key, expected)
    end
    error(reply)
  end
  return reply
end

-- Runs `command key item...` for `items`, at most 1000 at a time: Lua's unpack() fails
-- past about 8000 values. `items` has an even length when they come in pairs.
local function chunked(command, key, items)
  for first = 1, #items, 1000 do
    redis.call(command, key, unpack(items, first, math.min(first + 999, #items)))
  end
end
