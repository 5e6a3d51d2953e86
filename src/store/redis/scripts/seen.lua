-- The per-request refresh of a signed-in session (see `Op::Seen`). Flags:
-- PERSISTENT (every session's cookie is; else only a remembered one's,
-- which has a COOKIE record). ARGV[4]: the lease's length (ms).
-- Reply: {DONE, user id, renew (0/1), cookie}, `cookie` -1 for a cookie
-- that ends with the browser session, else as touch.lua's; or {ENDED}.
-- The usual request's one command: as few calls as it can be.
local fields = redis.call('HMGET', key, USER, UNTIL, COOKIE)
local user, lease, remembered = fields[1], tonumber(fields[2]), fields[3]
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
local cookie = -1
if remembered or flag(PERSISTENT) then cookie = cookie_renewal(left, now) end
return {DONE, user, renew, cookie}
