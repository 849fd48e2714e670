-- Writes a session's record with its per-user and expiry index entries.
-- "new": a login, refused if the user is gone. "touch": activity, which
-- writes nothing if the session ended meanwhile, so an ended session stays
-- ended. The key lives until grace after its deadline (lookups decide by
-- the deadline; the pruner removes it and publishes the ending).
-- ARGV: prefix, "new" | "touch", token hash (hex), user id, record,
--       deadline, expire at
local P, h, uid = ARGV[1], ARGV[3], ARGV[4]
local k = P .. 'sess:' .. h
if ARGV[2] == 'new' then
  if redis.call('EXISTS', P .. 'user:' .. uid) == 0 then return {'no_such_user'} end
elseif redis.call('EXISTS', k) == 0 then
  return {'none'}
end
redis.call('HSET', k, 'r', ARGV[5], 'u', uid)
redis.call('PEXPIREAT', k, ARGV[7])
local us = P .. 'user_sessions:' .. uid
redis.call('ZADD', us, ARGV[6], h)
-- The per-user index lives as long as the user's latest session.
redis.call('PEXPIREAT', us, ARGV[7], 'NX')
redis.call('PEXPIREAT', us, ARGV[7], 'GT')
redis.call('ZADD', P .. 'expiry', ARGV[6], uid .. ':' .. h)
return {'ok'}
