-- Records a session as its id is issued: its creation time, expiring after
-- the idle timeout (or `maxLifetime`, when shorter). The one command of a
-- new visitor, in the place of a returning visitor's idle refresh.
-- Reply: {DONE}.
redis.call('HSETNX', key, CREATED, now_ms())
redis.call('PEXPIRE', key, start_ttl())
return {DONE}
