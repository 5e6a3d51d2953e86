-- Binds a live session to a user (see `Op::Bind`). ARGV[4..]: lease end
-- (unix ms), user id, meta (optional: without it the meta already bound
-- stays). Reply: {DONE}, {ENDED}, {CLAIMED}.
if redis.call('EXISTS', key) == 0 then return {ENDED} end
if being_moved() then return {CLAIMED} end
local left = lifetime_ttl()
if not left then return {ENDED} end
local now = now_ms()
redis.call('HSET', key, USER, ARGV[5], LOGIN, now, SEEN, now, UNTIL, ARGV[4])
if ARGV[6] then redis.call('HSET', key, META, ARGV[6]) end
redis.call('PEXPIRE', key, math.min(left, tonumber(ARGV[4]) - now))
return {DONE}
