-- Claims the first mail due: its next try moves past the send's longest
-- time, so of several instances one sends it, and one that dies mid-send
-- leaves it to the next try.
-- KEYS: due, mails; ARGV: now, lease (millis)
for _ = 1, 16 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #ids == 0 then return false end
  local record = redis.call('HGET', KEYS[2], ids[1])
  if record then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ids[1])
    return {ids[1], record}
  end
  -- An entry whose mail is gone: drop it, look again.
  redis.call('ZREM', KEYS[1], ids[1])
end
return false
