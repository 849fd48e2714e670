-- Links an identity to an existing user; again to the same user is a no-op.
-- ARGV: prefix, user id, identity key (hex), identity record
local P, uid, k = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'user:' .. uid) == 0 then return {'no_such_user'} end
local owner = redis.call('GET', P .. 'ident:' .. k)
if owner == uid then return {'ok'} end
if owner then return {'identity_taken'} end
redis.call('SET', P .. 'ident:' .. k, uid)
redis.call('HSET', P .. 'user_idents:' .. uid, k, ARGV[4])
return {'ok'}
