-- Ends one session and publishes the ending. Returns the record, or
-- nothing if it was gone.
-- KEYS: the user; ARGV: hash, channel, log entries (written if it was there)
local k = KEYS[1] .. ':session:' .. ARGV[1]
local s = redis.call('GET', k)
redis.call('ZREM', KEYS[1] .. ':sessions', ARGV[1])
if not s then return false end
redis.call('DEL', k)
redis.call('PUBLISH', ARGV[2], 'e' .. ARGV[1])
audit(KEYS[1] .. ':audit', ARGV[3])
return s
