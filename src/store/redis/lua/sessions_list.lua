-- A user's stored sessions: hash, record, hash, record, ...
-- KEYS: the user
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1] .. ':sessions', 0, -1)) do
  local r = redis.call('GET', KEYS[1] .. ':session:' .. h)
  if r then
    out[#out + 1] = h
    out[#out + 1] = r
  end
end
return out
