-- Every request's read on one Redis server: the token's user, the session
-- and the user's record in one round trip. It reads keys of several slots,
-- so a Cluster runs session_read.lua after reading the token instead.
-- KEYS: the token; ARGV: prefix, hash
local id = redis.call('GET', KEYS[1])
if not id then return {} end
local u = ARGV[1] .. 'user:{' .. id .. '}'
local s = redis.call('GET', u .. ':session:' .. ARGV[2])
if not s then return {} end
local r = redis.call('GET', u)
if not r then return {s} end
return {s, r}
