-- Queues a mail, or puts a queued one back for another try (never one
-- finished meanwhile). All keys share the {outbox} tag.
-- KEYS: due (zset id by next try), mails (hash id -> record), next id
-- ARGV: id ('' for a new mail), record, next try (Unix millis)
local id = ARGV[1]
if id == '' then
  id = tostring(redis.call('INCR', KEYS[3]))
elseif redis.call('HEXISTS', KEYS[2], id) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], id)
return tonumber(id)
