-- Records a session as its id is issued: its creation time, expiring after
-- the idle timeout (or `maxLifetime`, when shorter). The one command of a
-- new visitor, in the place of a returning visitor's idle refresh.
-- ARGV: ttl, maxLifetime.
redis.call('HSETNX', KEYS[1], CREATED, now_ms())
redis.call('PEXPIRE', KEYS[1], start_ttl(tonumber(ARGV[1]), tonumber(ARGV[2])))
return 1
