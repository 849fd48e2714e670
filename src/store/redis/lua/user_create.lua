-- Writes a new user's record and any identities they start with (an
-- ID-token sign-in, a migration), in the user's slot. The id is fresh
-- from the counter; the indexes that lead here are claimed afterwards
-- (users.rs).
-- KEYS: the user; ARGV: record, log entries, then identity key (hex),
-- identity record, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return {'retry'} end
redis.call('SET', KEYS[1], ARGV[1])
audit(KEYS[1] .. ':audit', ARGV[2])
for i = 3, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[1] .. ':identities', ARGV[i], ARGV[i + 1])
end
return {'ok'}
