--[[ clock: the master's clock, read once per script, and exact integer formatting.

Leases are timed on the master's clock only (TIME), never on a client's.
]]

local clock = nil

local function read_clock()
  if not clock then
    clock = redis.call('TIME')
  end
  return clock
end

-- The master's time in milliseconds.
local function now_ms()
  local t = read_clock()
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The script's time in microseconds, as an integer string (exact: no float formatting).
-- Scripts run one at a time and each takes well over a microsecond, so it orders them.
local function stamp()
  local t = read_clock()
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- An integer as a string: Lua formats numbers passed to redis.call with 14 digits, which
-- rounds a microsecond stamp.
local function int(x)
  return string.format('%d', x)
end
