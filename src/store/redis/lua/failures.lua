-- For each subject: failed logins within the window, and the oldest one's
-- time (0 if none).
-- ARGV: prefix, now, window (ms), subject...
local P, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local k = P .. 'fail:' .. ARGV[i]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  out[#out + 1] = redis.call('ZCARD', k)
  local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  out[#out + 1] = tonumber(oldest[2] or '0')
end
return out
