-- grow: adds permits to an unbounded semaphore (a release of more than its handle held).
--
-- ARGV[2] n  permits to add, n >= 1
-- Returns the new limit.
load_config()
return redis.call('HINCRBY', CONFIG, 'limit', tonumber(ARGV[2]))
