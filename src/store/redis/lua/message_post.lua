-- Appends a message to its room's stream under the id the caller took
-- from the counter, and publishes it, in that order, so every instance
-- sees a room's messages in stream order. 0 if a later id got there first
-- (the caller takes a new id).
-- KEYS: the room; ARGV: id, record (its id field is the entry's), cap, channel
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[1] .. '-0', 'r', ARGV[2])
if type(added) == 'table' and added.err then return 0 end
redis.call('PUBLISH', ARGV[4], 'm' .. ARGV[1] .. ':' .. ARGV[2])
return 1
