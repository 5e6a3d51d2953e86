-- Shared by the scripts on a user's index (`KEYS[1]`, which session.lua
-- calls `key`): drops at most `ARGV[4]` (the prune batch) entries whose
-- lease is over, and returns Redis's time.
local index = key
local function prune()
  local now = now_ms()
  local stale = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  if #stale > 0 then redis.call('ZREM', index, unpack(stale)) end
  return now
end
