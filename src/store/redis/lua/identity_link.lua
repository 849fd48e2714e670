-- Lists an identity on an existing user, before its index entry is
-- claimed (users.rs). Answers whether it was newly listed (1/0): again
-- for the same user is a no-op.
-- KEYS: the user; ARGV: identity key (hex), identity record, log entries
-- (written if newly listed)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_such_user'} end
local new = redis.call('HSETNX', KEYS[1] .. ':identities', ARGV[1], ARGV[2])
if new == 1 then audit(KEYS[1] .. ':audit', ARGV[3]) end
return {'ok', new}
