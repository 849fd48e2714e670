-- A session and its user's record, from the user's slot.
-- KEYS: the user; ARGV: hash
local s = redis.call('GET', KEYS[1] .. ':session:' .. ARGV[1])
if not s then return {} end
local u = redis.call('GET', KEYS[1])
if not u then return {s} end
return {s, u}
