-- Ends every session of a user but one, publishing each ending.
-- ARGV: prefix, user id, token hash to keep (hex, or empty)
local P, uid = ARGV[1], ARGV[2]
local ended = {}
for _, h in ipairs(redis.call('ZRANGE', P .. 'user_sessions:' .. uid, 0, -1)) do
  if h ~= ARGV[3] then
    if redis.call('DEL', P .. 'sess:' .. h) == 1 then
      ended[#ended + 1] = h
      redis.call('PUBLISH', P .. 'events', 'e' .. h)
    end
    redis.call('ZREM', P .. 'user_sessions:' .. uid, h)
    redis.call('ZREM', P .. 'expiry', uid .. ':' .. h)
  end
end
return ended
