-- A cluster's regenerate(), step 4, on the old key's node, once the copy is
-- in place under the new key: the old key goes.
-- KEYS: the session. ARGV: the claim (claim_move.lua's reply).
-- Reply: 1 when done; 0 when the session ended meanwhile (an invalidate()
-- raced the move); -1 when the claim is no longer this move's, or lapsed (a
-- write may have gone to the old key since the copy).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local until_ms = tonumber(string.match(ARGV[1], '^%d+'))
if redis.call('HGET', KEYS[1], MOVING) ~= ARGV[1] or until_ms <= now_ms() then
  return -1
end
return redis.call('DEL', KEYS[1])
