-- Unlinks one identity unless it is a passwordless user's last one; the
-- user's record must still be the one the caller read (it says whether
-- there is a password).
-- ARGV: prefix, user id, record as read, identity key (hex), has password (1/0)
local P, uid, k = ARGV[1], ARGV[2], ARGV[4]
local current = redis.call('GET', P .. 'user:' .. uid)
if not current then return {'no_such_user'} end
if current ~= ARGV[3] then return {'retry'} end
if redis.call('HEXISTS', P .. 'user_idents:' .. uid, k) == 0 then return {'none'} end
if ARGV[5] == '0' and redis.call('HLEN', P .. 'user_idents:' .. uid) <= 1 then
  return {'last_identity'}
end
if redis.call('GET', P .. 'ident:' .. k) == uid then redis.call('DEL', P .. 'ident:' .. k) end
redis.call('HDEL', P .. 'user_idents:' .. uid, k)
return {'ok'}
