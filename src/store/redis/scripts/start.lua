-- Records a session as its id is issued: its creation time, expiring after
-- the idle timeout (or `maxLifetime`, when shorter). The one command of a
-- new visitor, in the place of a returning visitor's idle refresh. Flags:
-- PERSISTENT (its cookie, sent with a `Max-Age` of ARGV[4] ms, is
-- recorded). Reply: {DONE}.
local now = now_ms()
redis.call('HSETNX', key, CREATED, now)
if flag(PERSISTENT) then redis.call('HSET', key, COOKIE, now + tonumber(ARGV[4])) end
redis.call('PEXPIRE', key, start_ttl())
return {DONE}
