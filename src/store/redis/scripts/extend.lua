-- Moves a signed-in session's lease on (see `Op::Extend`); 0 when it
-- ended, -2 while a `regenerate()` moves it. ARGV: ttl, maxLifetime, lease
-- end (unix ms).
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
if being_moved(key) then return -2 end
redis.call('HSET', key, UNTIL, ARGV[3])
local left = session_ttl(key, ttl, life, true)
if not left then return 0 end
redis.call('PEXPIRE', key, left)
return 1
