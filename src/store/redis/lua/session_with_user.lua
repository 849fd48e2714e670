-- A session and its user's record, in one round trip: every request's read.
-- ARGV: prefix, token hash (hex)
local P = ARGV[1]
local s = redis.call('HMGET', P .. 'sess:' .. ARGV[2], 'r', 'u')
if not s[1] then return {} end
local u = redis.call('GET', P .. 'user:' .. s[2])
if not u then return {s[1]} end
return {s[1], u}
