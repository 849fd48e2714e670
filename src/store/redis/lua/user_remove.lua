-- Removes a user with every session (each ending published) and their
-- identity list, if the record is still the one the caller read; the log
-- stays, with this removal's entries. Returns each session hash and
-- whether it was still stored (1/0).
-- KEYS: the user; ARGV: record as read, channel, log entries
local u = KEYS[1]
local current = redis.call('GET', u)
if not current then return {'no_such_user'} end
if current ~= ARGV[1] then return {'retry'} end
local out = {'ok'}
for _, h in ipairs(redis.call('ZRANGE', u .. ':sessions', 0, -1)) do
  local stored = redis.call('DEL', u .. ':session:' .. h)
  if stored == 1 then redis.call('PUBLISH', ARGV[2], 'e' .. h) end
  out[#out + 1] = h
  out[#out + 1] = stored
end
redis.call('DEL', u, u .. ':sessions', u .. ':identities')
audit(u .. ':audit', ARGV[3])
return out
