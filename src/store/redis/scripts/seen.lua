-- The per-request refresh of a signed-in session (see `Op::Seen`).
-- ARGV[4]: the lease's length (ms). Reply: {DONE, user id, renew (0/1)},
-- or {ENDED}.
-- The usual request's one command: as few calls as it can be.
local fields = redis.call('HMGET', key, USER, UNTIL)
local user, lease = fields[1], tonumber(fields[2])
if not user and redis.call('EXISTS', key) == 0 then return {ENDED} end
local left = lifetime_ttl()
if not left then return {ENDED} end
local now = now_ms()
left = within_lease(left, lease, now)
if not left then return {ENDED} end
-- A pcall: with Redis out of memory (maxmemory), the time goes unrecorded,
-- and the request still learns who is signed in.
if user then redis.pcall('HSET', key, SEEN, now) end
redis.call('PEXPIRE', key, left)
local renew = 0
if lease and lease - now < tonumber(ARGV[4]) / 2 then renew = 1 end
return {DONE, user, renew}
