-- The per-request refresh of a signed-in session (see `Op::Seen`):
-- `{user id, renew (0/1)}`, or false when the session ended.
-- ARGV: ttl, maxLifetime, lease length (ms).
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
-- The usual request's one command: as few calls as it can be.
local fields = redis.call('HMGET', key, USER, UNTIL)
local user, lease = fields[1], tonumber(fields[2])
if not user and redis.call('EXISTS', key) == 0 then return false end
local left = lifetime_ttl(key, ttl, life)
if not left then return false end
local now = now_ms()
left = within_lease(key, left, lease, now)
if not left then return false end
-- A pcall: with Redis out of memory (maxmemory), the time goes unrecorded,
-- and the request still learns who is signed in.
if user then redis.pcall('HSET', key, SEEN, now) end
redis.call('PEXPIRE', key, left)
local renew = 0
if lease and lease - now < tonumber(ARGV[3]) / 2 then renew = 1 end
return {user, renew}
