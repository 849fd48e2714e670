-- Appends a message to its room's stream under the next message id and
-- publishes it to every instance, in that order, so every instance sees a
-- room's messages in stream order. Returns the id.
-- ARGV: prefix, room, record (its id field is the stream entry's), cap
local P = ARGV[1]
local id = redis.call('INCR', P .. 'next_message_id')
redis.call('XADD', P .. 'room:' .. ARGV[2], 'MAXLEN', '~', ARGV[4], id .. '-0', 'r', ARGV[3])
redis.call('PUBLISH', P .. 'events', 'm' .. id .. ':' .. ARGV[3])
return id
