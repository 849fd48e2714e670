-- A subject's failed logins within the window, and the oldest one's time
-- (0 if none).
-- KEYS: the subject's set; ARGV: now, window (ms)
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), tonumber(oldest[2] or '0')}
