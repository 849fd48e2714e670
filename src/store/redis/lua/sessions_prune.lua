-- For each of a user's sessions the pruner found due: ends it if its
-- deadline (its score in the user's index) is at or before now, publishing
-- the ending; a touch that moved the deadline meanwhile wins. Answers per
-- hash: its deadline if it lives on, 0 if ended here (its log entry
-- written), -1 if already gone.
-- KEYS: the user; ARGV: now, channel, then per session: hash, log entry
local u, now = KEYS[1], tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV - 1, 2 do
  local h = ARGV[i]
  local k = u .. ':session:' .. h
  local d = tonumber(redis.call('ZSCORE', u .. ':sessions', h) or '0')
  if d > now and redis.call('EXISTS', k) == 1 then
    out[#out + 1] = d
  else
    redis.call('ZREM', u .. ':sessions', h)
    if redis.call('DEL', k) == 1 then
      redis.call('PUBLISH', ARGV[2], 'e' .. h)
      audit(u .. ':audit', ARGV[i + 1])
      out[#out + 1] = 0
    else
      out[#out + 1] = -1
    end
  end
end
return out
