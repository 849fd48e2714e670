-- Counts one failed login against a subject: a sorted set of attempt
-- times, trimmed to the window, living as long as the window.
-- KEYS: the subject's set; ARGV: now, window (ms), unique attempt id
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
