-- Removes the given expiry entries whose deadline (their score) is at or
-- before now: a touch that moved one meanwhile wins. Also cleans what Redis
-- itself reclaimed. Publishes each ending; returns the hashes ended.
-- ARGV: prefix, now, member (user id:hash)...
local P, now = ARGV[1], tonumber(ARGV[2])
local ended = {}
for i = 3, #ARGV do
  local m = ARGV[i]
  local score = redis.call('ZSCORE', P .. 'expiry', m)
  if score and tonumber(score) <= now then
    local sep = string.find(m, ':', 1, true)
    local uid, h = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    redis.call('DEL', P .. 'sess:' .. h)
    redis.call('ZREM', P .. 'expiry', m)
    redis.call('ZREM', P .. 'user_sessions:' .. uid, h)
    redis.call('PUBLISH', P .. 'events', 'e' .. h)
    ended[#ended + 1] = h
  end
end
return ended
