-- Stores a session with its per-user and expiry index entries, unless its
-- user is gone. The key lives until grace after its deadline (lookups
-- decide by the deadline; the pruner publishes the ending).
-- ARGV: prefix, token hash (hex), user id, record, deadline, expire at
local P, h, uid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'user:' .. uid) == 0 then return {'no_such_user'} end
local k = P .. 'sess:' .. h
redis.call('HSET', k, 'r', ARGV[4], 'u', uid)
redis.call('PEXPIREAT', k, ARGV[6])
redis.call('ZADD', P .. 'user_sessions:' .. uid, ARGV[5], h)
-- The per-user index lives as long as the user's latest session.
local us = P .. 'user_sessions:' .. uid
redis.call('PEXPIREAT', us, ARGV[6], 'NX')
redis.call('PEXPIREAT', us, ARGV[6], 'GT')
redis.call('ZADD', P .. 'expiry', ARGV[5], uid .. ':' .. h)
return {'ok'}
