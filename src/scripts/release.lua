-- release: frees slots held by permit `id`.
--
-- ARGV[2]   id     permit id
-- ARGV[3..] slots  the slots to free; none given frees all of the id's slots
-- Returns the number of slots freed: 0 means the id held none of them (its lease had
-- already expired, or it never got a grant).
local id = ARGV[2]
load_config()
local now = now_ms()
reclaim(now)
local only = nil
if #ARGV > 2 then
  only = {}
  for i = 3, #ARGV do
    only[ARGV[i]] = true
  end
end
local freed = free_slots(id, only)
reset_if_idle()
touch()
return freed
