-- Unlists one identity unless it is a passwordless user's last one; the
-- record must still be the one the caller read (it says whether there is
-- a password). Its index entry is given up afterwards.
-- KEYS: the user; ARGV: record as read, identity key (hex), has password
-- (1/0), log entries
local current = redis.call('GET', KEYS[1])
if not current then return {'no_such_user'} end
if current ~= ARGV[1] then return {'retry'} end
local ids = KEYS[1] .. ':identities'
if redis.call('HEXISTS', ids, ARGV[2]) == 0 then return {'none'} end
if ARGV[3] == '0' and redis.call('HLEN', ids) <= 1 then return {'last_identity'} end
redis.call('HDEL', ids, ARGV[2])
audit(KEYS[1] .. ':audit', ARGV[4])
return {'ok'}
