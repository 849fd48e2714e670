-- Ends one session: the record, both index entries, and the ending
-- published to every instance. Returns the record, or nothing.
-- ARGV: prefix, token hash (hex)
local P, h = ARGV[1], ARGV[2]
local k = P .. 'sess:' .. h
local s = redis.call('HMGET', k, 'r', 'u')
if not s[1] then return false end
redis.call('DEL', k)
redis.call('ZREM', P .. 'user_sessions:' .. s[2], h)
redis.call('ZREM', P .. 'expiry', s[2] .. ':' .. h)
redis.call('PUBLISH', P .. 'events', 'e' .. h)
return s[1]
