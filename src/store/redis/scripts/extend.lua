-- Moves a signed-in session's lease on (see `Op::Extend`). Flags: LEASED.
-- ARGV[4]: the lease's end (unix ms). Reply: {DONE}, {ENDED}, {CLAIMED}.
if redis.call('EXISTS', key) == 0 then return {ENDED} end
if being_moved() then return {CLAIMED} end
redis.call('HSET', key, UNTIL, ARGV[4])
local left = session_ttl()
if not left then return {ENDED} end
redis.call('PEXPIRE', key, left)
return {DONE}
