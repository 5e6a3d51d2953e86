-- A cluster's regenerate(), step 4, on the old key's node, once the copy is
-- in place under the new key: the old key goes. ARGV[4..]: the new key, the
-- claim (claim_move.lua's reply). Reply: {DONE}; {ENDED} when the session
-- ended meanwhile (an invalidate() raced the move); {LAPSED} when the claim
-- is no longer this move's, or lapsed (a write may have gone to the old key
-- since the copy).
if redis.call('EXISTS', key) == 0 then return {ENDED} end
local until_ms = tonumber(string.match(ARGV[5], '^%d+'))
if redis.call('HGET', key, MOVING) ~= ARGV[5] or until_ms <= now_ms() then
  return {LAPSED}
end
redis.call('DEL', key)
return {DONE}
