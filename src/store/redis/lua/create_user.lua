-- Registers a user: the counter, the record, both indexes, the user list,
-- the admin count and, for an ID-token sign-in, the identity, all at once.
-- ARGV: prefix, expected id, name key, email key, record, is admin (1/0),
--       identity key (hex, or empty), identity record
local P, id = ARGV[1], ARGV[2]
local next_id = redis.call('GET', P .. 'next_user_id') or '1'
if next_id ~= id then return {'retry'} end
if redis.call('EXISTS', P .. 'name:' .. ARGV[3]) == 1 then return {'username_taken'} end
if redis.call('EXISTS', P .. 'email:' .. ARGV[4]) == 1 then return {'email_taken'} end
if ARGV[7] ~= '' and redis.call('EXISTS', P .. 'ident:' .. ARGV[7]) == 1 then
  return {'identity_taken'}
end
redis.call('SET', P .. 'next_user_id', tonumber(id) + 1)
redis.call('SET', P .. 'user:' .. id, ARGV[5])
redis.call('SET', P .. 'name:' .. ARGV[3], id)
redis.call('SET', P .. 'email:' .. ARGV[4], id)
redis.call('ZADD', P .. 'users', id, id)
if ARGV[6] == '1' then redis.call('INCR', P .. 'admin_count') end
if ARGV[7] ~= '' then
  redis.call('SET', P .. 'ident:' .. ARGV[7], id)
  redis.call('HSET', P .. 'user_idents:' .. id, ARGV[7], ARGV[8])
end
return {'ok'}
