-- Binds a live session to a user (see `Op::Bind`). Flags: PERSISTENT (the
-- session is remembered: its cookie, sent with a `Max-Age` of ARGV[7] ms,
-- is recorded; without it, a record from before goes). ARGV[4..]: lease end (unix ms), user id, meta ('' keeps
-- the meta already bound), the cookie's `Max-Age`. Reply: {DONE}, {ENDED},
-- {CLAIMED}.
if redis.call('EXISTS', key) == 0 then return {ENDED} end
if being_moved() then return {CLAIMED} end
local left = lifetime_ttl()
if not left then return {ENDED} end
local now = now_ms()
redis.call('HSET', key, USER, ARGV[5], LOGIN, now, SEEN, now, UNTIL, ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', key, META, ARGV[6]) end
if flag(PERSISTENT) then
  redis.call('HSET', key, COOKIE, now + tonumber(ARGV[7]))
else
  redis.call('HDEL', key, COOKIE)
end
redis.call('PEXPIRE', key, math.min(left, tonumber(ARGV[4]) - now))
return {DONE}
