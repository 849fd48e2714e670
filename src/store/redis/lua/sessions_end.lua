-- Ends every session of a user but one, publishing each ending. Returns
-- each hash and whether it was still stored (1/0).
-- KEYS: the user; ARGV: hash to keep (or empty), channel
local u = KEYS[1]
local out = {}
for _, h in ipairs(redis.call('ZRANGE', u .. ':sessions', 0, -1)) do
  if h ~= ARGV[1] then
    local stored = redis.call('DEL', u .. ':session:' .. h)
    if stored == 1 then redis.call('PUBLISH', ARGV[2], 'e' .. h) end
    redis.call('ZREM', u .. ':sessions', h)
    out[#out + 1] = h
    out[#out + 1] = stored
  end
end
return out
