-- `EXPIRE` with an absolute lifetime (without one, a plain `EXPIRE` is sent).
-- ARGV: ttl, maxLifetime, leased.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = session_ttl(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1')
if not ttl then return 0 end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
