-- Records activity on a session that still exists; a session ended
-- meanwhile stays ended (nothing is written).
-- ARGV: prefix, token hash (hex), user id, new record, new deadline, expire at
local P, h, uid = ARGV[1], ARGV[2], ARGV[3]
local k = P .. 'sess:' .. h
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'r', ARGV[4])
redis.call('PEXPIREAT', k, ARGV[6])
redis.call('ZADD', P .. 'user_sessions:' .. uid, ARGV[5], h)
-- The per-user index lives as long as the user's latest session.
local us = P .. 'user_sessions:' .. uid
redis.call('PEXPIREAT', us, ARGV[6], 'NX')
redis.call('PEXPIREAT', us, ARGV[6], 'GT')
redis.call('ZADD', P .. 'expiry', ARGV[5], uid .. ':' .. h)
return 1
