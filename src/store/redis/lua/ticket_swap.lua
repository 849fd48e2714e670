-- Replaces a ticket if it still holds what the caller read.
-- KEYS: ticket; ARGV: expected present (1/0), expected, new present (1/0),
-- new, new deadline (Unix ms)
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
else
  redis.call('DEL', KEYS[1])
end
return 1
