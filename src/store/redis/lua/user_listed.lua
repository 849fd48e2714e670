-- Lists a registered user and counts them if admin: a registration's
-- last step.
-- KEYS: the user list, the admin count; ARGV: id, is admin (1/0)
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
if ARGV[2] == '1' then redis.call('INCR', KEYS[2]) end
return {'ok'}
