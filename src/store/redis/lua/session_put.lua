-- Writes a session and its entry in the user's index. "new": a login,
-- refused if the user is gone. "touch": activity, which writes nothing if
-- the session ended meanwhile, so an ended session stays ended. Keys live
-- until a grace period after the deadline (lookups decide by the deadline;
-- the pruner removes them and publishes the ending).
-- KEYS: the user; ARGV: "new" | "touch", hash, record, deadline, expire at,
-- log entries (a login's)
local u, h = KEYS[1], ARGV[2]
local k = u .. ':session:' .. h
if ARGV[1] == 'new' then
  if redis.call('EXISTS', u) == 0 then return {'no_such_user'} end
elseif redis.call('EXISTS', k) == 0 then
  return {'none'}
end
redis.call('SET', k, ARGV[3], 'PXAT', ARGV[5])
local us = u .. ':sessions'
redis.call('ZADD', us, ARGV[4], h)
-- The index lives as long as the user's latest session.
redis.call('PEXPIREAT', us, ARGV[5], 'NX')
redis.call('PEXPIREAT', us, ARGV[5], 'GT')
audit(u .. ':audit', ARGV[6] or '')
return {'ok'}
