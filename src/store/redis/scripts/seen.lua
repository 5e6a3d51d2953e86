-- The per-request refresh of a signed-in session (see `Op::Seen`). Flags:
-- PERSISTENT (every session's cookie is; else only a remembered one's,
-- which has a COOKIE record). ARGV[4]: the lease's length (ms).
-- Reply: `refresh_seen`'s {DONE, user id, renew (0/1), cookie}; or {ENDED}.
-- The usual request's one command: as few calls as it can be.
local fields = redis.call('HMGET', key, USER, UNTIL, COOKIE)
local user, lease, remembered = fields[1], tonumber(fields[2]), fields[3]
if not user and redis.call('EXISTS', key) == 0 then return {ENDED} end
return refresh_seen(user, lease, remembered, tonumber(ARGV[4])) or {ENDED}
