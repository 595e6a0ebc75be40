--[[ The observer: an independent count of who is inside a semaphore, kept on a server that
  is none of its masters. Every holder counts itself in after its permit is granted and out
  before it releases, with the slots it holds; the most inside at once is kept, and so is the
  first violation. Also a fenced resource: a write is accepted only with a fencing token
  above every token accepted for its slot.

  One file for every user: testkit/src/observer.rs (the Rust tests and the tools) and
  python/tests/conftest.py.

  KEYS[1] inside   holders inside now
  KEYS[2] max      the most holders inside at once so far
  KEYS[3] over     the first violation seen, kept: "3 holders", "slot 1 held twice"
  KEYS[4] slots    hash: slot -> holders inside with it
  KEYS[5] fences   hash: slot -> the highest fencing token accepted for it
  ARGV[1] the operation, and its arguments after it:
    enter LIMIT SLOT...  counts a holder of SLOTs in (LIMIT 0: no limit);
                         returns {holders inside now, a slot another holder inside has, or -1}
    exit SLOT...         counts a holder of SLOTs out; returns the holders left inside
    fence SLOT TOKEN     a write to the resource of SLOT with TOKEN (decimal, any length);
                         returns 1 if accepted, 0 if a token as high was accepted before
]]
local op = ARGV[1]
if op == 'enter' then
  local inside = redis.call('INCR', KEYS[1])
  if inside > tonumber(redis.call('GET', KEYS[2]) or '0') then
    redis.call('SET', KEYS[2], inside)
  end
  local limit = tonumber(ARGV[2])
  if limit > 0 and inside > limit then
    redis.call('SETNX', KEYS[3], inside .. ' holders')
  end
  local shared = -1
  for i = 3, #ARGV do
    if redis.call('HINCRBY', KEYS[4], ARGV[i], 1) > 1 then
      shared = tonumber(ARGV[i])
      redis.call('SETNX', KEYS[3], 'slot ' .. ARGV[i] .. ' held twice')
    end
  end
  return {inside, shared}
elseif op == 'exit' then
  local inside = redis.call('DECR', KEYS[1])
  for i = 2, #ARGV do
    redis.call('HINCRBY', KEYS[4], ARGV[i], -1)
  end
  return inside
elseif op == 'fence' then
  -- Tokens are compared as decimal strings: a longer one is higher.
  local top = redis.call('HGET', KEYS[5], ARGV[2])
  local token = ARGV[3]
  if top and (#token < #top or (#token == #top and token <= top)) then
    return 0
  end
  redis.call('HSET', KEYS[5], ARGV[2], token)
  return 1
end
return redis.error_reply('observer: unknown operation ' .. tostring(op))
