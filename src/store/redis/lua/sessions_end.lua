-- Ends every session of a user but one, publishing each ending. Returns
-- each hash and whether it was still stored (1/0).
-- KEYS: the user; ARGV: hash to keep (or empty), channel, log entries
-- (written if any session was still stored)
local u = KEYS[1]
local out = {}
local any = false
for _, h in ipairs(redis.call('ZRANGE', u .. ':sessions', 0, -1)) do
  if h ~= ARGV[1] then
    local stored = redis.call('DEL', u .. ':session:' .. h)
    if stored == 1 then
      redis.call('PUBLISH', ARGV[2], 'e' .. h)
      any = true
    end
    redis.call('ZREM', u .. ':sessions', h)
    out[#out + 1] = h
    out[#out + 1] = stored
  end
end
if any then audit(u .. ':audit', ARGV[3]) end
return out
