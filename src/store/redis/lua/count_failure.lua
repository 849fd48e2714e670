-- Counts one failed login against each subject: a sorted set of attempt
-- times per subject, trimmed to the window, living as long as the window.
-- ARGV: prefix, now, window (ms), unique attempt id, subject...
local P, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 5, #ARGV do
  local k = P .. 'fail:' .. ARGV[i]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  redis.call('ZADD', k, now, ARGV[4])
  redis.call('PEXPIRE', k, window)
end
return 1
