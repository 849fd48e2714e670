-- Replaces a user's record if it is still the one the caller read, moving
-- the admin count by delta; refuses to take it from one to zero.
-- ARGV: prefix, id, record as read, new record, admin delta (-1/0/1)
local P, id = ARGV[1], ARGV[2]
local current = redis.call('GET', P .. 'user:' .. id)
if not current then return {'no_such_user'} end
if current ~= ARGV[3] then return {'retry'} end
local delta = tonumber(ARGV[5])
if delta < 0 and tonumber(redis.call('GET', P .. 'admin_count') or '0') <= 1 then
  return {'last_admin'}
end
if delta ~= 0 then redis.call('INCRBY', P .. 'admin_count', delta) end
redis.call('SET', P .. 'user:' .. id, ARGV[4])
return {'ok'}
