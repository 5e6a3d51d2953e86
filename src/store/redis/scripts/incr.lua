-- `HINCRBY` and `EXPIRE`, atomically; as `WRITE` for dead ids (returns
-- false), the field cap (returns a table `{-1}`) and a session being moved
-- (`{-2}`). ARGV: create (0/1), ttl, maxFields, maxLifetime, field,
-- increment, leased.
local key, ttl, life = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local exists = redis.call('EXISTS', key) == 1
if exists and being_moved(key) then return {-2} end
if not exists and ARGV[1] == '0' then return false end
local left = exists and session_ttl(key, ttl, life, ARGV[7] == '1')
if exists and not left then return false end
local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, CREATED)
if redis.call('HEXISTS', key, ARGV[5]) == 0 and held + 1 > tonumber(ARGV[3]) then return {-1} end
if not exists then redis.call('HSET', key, CREATED, now_ms()) end
local value = redis.call('HINCRBY', key, ARGV[5], ARGV[6])
redis.call('PEXPIRE', key, left or lifetime_ttl(key, ttl, life))
return value
