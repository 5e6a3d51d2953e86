-- A cluster's regenerate(), step 2, on the old key's node (see moves.rs):
-- copies the session out (`DUMP`), leaving it in place, and claims the move
-- in the hash itself for `ARGV[1]` ms: MOVING = `<until, Redis's unix
-- ms>:<new key>`, so that every write script on the session sees the claim
-- (`being_moved`) and refuses to write what the copy would miss.
-- KEYS: the session. ARGV: the claim's life (ms), the new key.
-- Reply: `{DUMP, claim}`; 0 when there is nothing to move (the session ended).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local copy = redis.call('DUMP', KEYS[1])
local claim = (now_ms() + tonumber(ARGV[1])) .. ':' .. ARGV[2]
redis.call('HSET', KEYS[1], MOVING, claim)
return {copy, claim}
