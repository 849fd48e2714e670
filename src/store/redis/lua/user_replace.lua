-- Replaces a user's record if it is still the one the caller read.
-- KEYS: the user; ARGV: record as read, new record, log entries
local current = redis.call('GET', KEYS[1])
if not current then return {'no_such_user'} end
if current ~= ARGV[1] then return {'retry'} end
redis.call('SET', KEYS[1], ARGV[2])
audit(KEYS[1] .. ':audit', ARGV[3])
return {'ok'}
