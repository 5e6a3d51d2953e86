-- `HINCRBY` and `EXPIRE`, atomically; as write.lua for dead ids, the field
-- cap and a session being moved. Flags: CREATE, LEASED. ARGV[4..]:
-- maxFields, field, increment. Reply: {DONE, new value}, {ENDED}, {FULL},
-- {CLAIMED}.
local exists = redis.call('EXISTS', key) == 1
if exists and being_moved() then return {CLAIMED} end
if not exists and not flag(CREATE) then return {ENDED} end
local left = exists and session_ttl()
if exists and not left then return {ENDED} end
local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, CREATED)
if redis.call('HEXISTS', key, ARGV[5]) == 0 and held + 1 > tonumber(ARGV[4]) then return {FULL} end
if not exists then redis.call('HSET', key, CREATED, now_ms()) end
local value = redis.call('HINCRBY', key, ARGV[5], ARGV[6])
redis.call('PEXPIRE', key, left or lifetime_ttl())
return {DONE, value}
