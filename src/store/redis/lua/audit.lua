-- Shared by every script that records a change: appends each security-log
-- entry in `blob` to the stream `key`, in the same script as the change.
-- Per entry, `blob` holds a 2-digit length and the entry's time (Unix ms),
-- then an 8-digit length and the encoded entry. The stream id is the
-- entry's time, so logs order alike on every backend; a time before the
-- log's newest (another instance's clock) takes the server's instead.
local function audit(key, blob)
  local i = 1
  while i + 9 <= #blob do
    local ml = tonumber(string.sub(blob, i, i + 1))
    local ms = string.sub(blob, i + 2, i + 1 + ml)
    i = i + 2 + ml
    local len = tonumber(string.sub(blob, i, i + 7))
    local e = string.sub(blob, i + 8, i + 7 + len)
    i = i + 8 + len
    local added = redis.pcall('XADD', key, ms .. '-*', 'e', e)
    if type(added) == 'table' and added.err then
      redis.call('XADD', key, '*', 'e', e)
    end
  end
end
