-- A user by name or e-mail index, in one round trip.
-- ARGV: prefix, index key (name:... or email:...)
local P = ARGV[1]
local id = redis.call('GET', P .. ARGV[2])
if not id then return false end
return redis.call('GET', P .. 'user:' .. id)
