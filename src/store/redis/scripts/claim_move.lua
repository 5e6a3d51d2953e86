-- A cluster's regenerate(), step 2, on the old key's node (see moves.rs):
-- copies the session out (`DUMP`), leaving it in place, and claims the move
-- in the hash itself: MOVING = `<until, Redis's unix ms>:<new key>`, so
-- that every write script on the session sees the claim (`being_moved`) and
-- refuses to write what the copy would miss. ARGV[4..]: the new key, the
-- claim's life (ms). Reply: {DONE, dump, claim}, or {ENDED} when there is
-- nothing to move (the session ended).
if redis.call('EXISTS', key) == 0 then return {ENDED} end
local copy = redis.call('DUMP', key)
local claim = (now_ms() + tonumber(ARGV[5])) .. ':' .. ARGV[4]
redis.call('HSET', key, MOVING, claim)
return {DONE, copy, claim}
