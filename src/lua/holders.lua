--[[ holders: who holds the semaphore's slots on this master, a page at a time.

ARGV[1] permits  the caller's permit count, negative when unbounded (0: the stored one)
ARGV[2] detail   1: each slot with its holder; 0: the slots only
ARGV[3] expiry   the cursor: the last slot of the previous page and its lease expiry (ms,
ARGV[4] slot     as this script returned them), or '' from the first page
Reply: {held, more, expiry, slot, entry...}: the slots held here (expired leases not yet
reclaimed included), 1 if another page may follow (0: this was the last), the cursor of the
next page (the last entry's expiry and slot), then at most PAGE entries in lease order:
with detail, {slot, id, token, ms_left} (the permit id holding the slot, that permit's
fencing token, the milliseconds left on its lease by this master's clock); without, slot.
Paged because a script blocks every client of the server while it runs: a page is at most
PAGE slots, whatever the number of holders.
]]
--- @include "config"
--- @include "slots"

load_config(true)
local now = now_ms()
reclaim(now)
need_holds()
local after = nil
if ARGV[3] ~= '' then
  after = { tonumber(ARGV[3]), ARGV[4] }
end
local page, more = held_page(after)
local reply = { redis.call('ZCOUNT', SLOTS, HELD, '+inf'), more and 1 or 0, 0, 0 }
if #page > 0 then
  reply[3], reply[4] = page[#page], page[#page - 1]
end
if ARGV[2] ~= '1' then
  for i = 1, #page, 2 do
    reply[#reply + 1] = page[i]
  end
  return reply
end
local fields = {}
for i = 1, #page, 2 do
  fields[#fields + 1] = 's:' .. page[i]
end
local ids = #fields > 0 and redis.call('HMGET', HOLDS, unpack(fields)) or {}
local distinct, entries = {}, {}
for _, id in ipairs(ids) do
  if id and not distinct[id] then
    distinct[id] = true
    entries[#entries + 1] = 'i:' .. id
  end
end
local tokens = {}
if #entries > 0 then
  for i, entry in ipairs(redis.call('HMGET', HOLDS, unpack(entries))) do
    if entry then
      tokens[string.sub(entries[i], 3)] = string.sub(entry, 1, string.find(entry, ':', 1, true) - 1)
    end
  end
end
for i = 1, #page, 2 do
  local id = ids[(i + 1) / 2] or ''
  reply[#reply + 1] = page[i]
  reply[#reply + 1] = id
  reply[#reply + 1] = tokens[id] or '0'
  reply[#reply + 1] = math.max(0, page[i + 1] - now)
end
return reply
