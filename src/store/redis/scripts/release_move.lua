-- A cluster's regenerate() to the key `ARGV[1]` that failed gives up its
-- claim, if it is still its own: the old key, left in place, is the
-- session's again. KEYS: the session. ARGV: the new key.
-- Reply: 1 when the claim was taken back, else 0.
local held = redis.call('HGET', KEYS[1], MOVING)
local mine = ':' .. ARGV[1]
if held and string.sub(held, -#mine) == mine then
  return redis.call('HDEL', KEYS[1], MOVING)
end
return 0
