-- Changes an index entry only if it still holds what the caller read:
-- takes over an entry whose user does not have it, or gives one up.
-- KEYS: the entry; ARGV: value as read, new value (empty: delete)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2])
return 1
