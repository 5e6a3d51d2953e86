-- Shared by the scripts on a user's index: drops at most `ARGV[1]`
-- entries whose lease is over, and returns Redis's time.
local index = KEYS[1]
local function prune()
  local now = now_ms()
  local stale = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  if #stale > 0 then redis.call('ZREM', index, unpack(stale)) end
  return now
end
