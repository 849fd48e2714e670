-- Moves the admin count. A demotion or removal takes one first and is
-- refused when none would be left; a promotion adds one once done. So the
-- count is never above the admins there are, whatever fails in between.
-- KEYS: the admin count; ARGV: delta (-1 or 1)
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < 0 and n <= 1 then return {'last_admin'} end
redis.call('INCRBY', KEYS[1], ARGV[1])
return {'ok'}
