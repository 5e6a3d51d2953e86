-- Binds a live session to a user (see `Op::Bind`); 0 when it ended, -2
-- while a `regenerate()` moves it. ARGV: ttl, maxLifetime, lease end (unix ms), user id, meta (optional:
-- without it the meta already bound stays).
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
if being_moved(key) then return -2 end
local left = lifetime_ttl(key, ttl, life)
if not left then return 0 end
local now = now_ms()
redis.call('HSET', key, USER, ARGV[4], LOGIN, now, SEEN, now, UNTIL, ARGV[3])
if ARGV[5] then redis.call('HSET', key, META, ARGV[5]) end
redis.call('PEXPIRE', key, math.min(left, tonumber(ARGV[3]) - now))
return 1
