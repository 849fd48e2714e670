-- A user's stored sessions: hash, record, hash, record, ...
-- ARGV: prefix, user id
local P = ARGV[1]
local out = {}
for _, h in ipairs(redis.call('ZRANGE', P .. 'user_sessions:' .. ARGV[2], 0, -1)) do
  local r = redis.call('HGET', P .. 'sess:' .. h, 'r')
  if r then
    out[#out + 1] = h
    out[#out + 1] = r
  end
end
return out
