-- Removes a user with both indexes, every session (each ending published)
-- and every linked identity, if the record is still the one the caller read.
-- ARGV: prefix, id, record as read, name key, email key, is admin (1/0)
local P, id = ARGV[1], ARGV[2]
local current = redis.call('GET', P .. 'user:' .. id)
if not current then return {'no_such_user'} end
if current ~= ARGV[3] then return {'retry'} end
if ARGV[6] == '1' then
  if tonumber(redis.call('GET', P .. 'admin_count') or '0') <= 1 then return {'last_admin'} end
  redis.call('DECR', P .. 'admin_count')
end
redis.call('DEL', P .. 'user:' .. id, P .. 'name:' .. ARGV[4], P .. 'email:' .. ARGV[5])
redis.call('ZREM', P .. 'users', id)
local ended = {'ok'}
for _, h in ipairs(redis.call('ZRANGE', P .. 'user_sessions:' .. id, 0, -1)) do
  if redis.call('DEL', P .. 'sess:' .. h) == 1 then
    ended[#ended + 1] = h
    redis.call('PUBLISH', P .. 'events', 'e' .. h)
  end
  redis.call('ZREM', P .. 'expiry', id .. ':' .. h)
end
redis.call('DEL', P .. 'user_sessions:' .. id)
for _, k in ipairs(redis.call('HKEYS', P .. 'user_idents:' .. id)) do
  if redis.call('GET', P .. 'ident:' .. k) == id then redis.call('DEL', P .. 'ident:' .. k) end
end
redis.call('DEL', P .. 'user_idents:' .. id)
return ended
