-- Up to limit user records with ids above after, in id order.
-- ARGV: prefix, after, limit
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. 'users', '(' .. ARGV[2], '+inf', 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local r = redis.call('GET', P .. 'user:' .. id)
  if r then out[#out + 1] = r end
end
return out
