-- The per-request load of the express-session entry point (see `Op::Load`):
-- seen.lua's refresh and the whole hash, in one command. Flags:
-- PERSISTENT. ARGV[4]: the lease's length (ms).
-- Reply: {DONE, user id, renew (0/1), cookie, field, value, ...} (as
-- seen.lua's, then every field, the store's own among them); or {ENDED}.
local all = redis.call('HGETALL', key)
if #all == 0 then return {ENDED} end
local fields = {}
for i = 1, #all, 2 do fields[all[i]] = all[i + 1] end
local user, lease, remembered = fields[USER], tonumber(fields[UNTIL]), fields[COOKIE]
local left = lifetime_ttl()
if not left then return {ENDED} end
local now = now_ms()
left = within_lease(left, lease, now)
if not left then return {ENDED} end
-- A pcall, as in seen.lua: out of memory, the time goes unrecorded.
if user then redis.pcall('HSET', key, SEEN, now) end
redis.call('PEXPIRE', key, left)
local renew = 0
if lease and lease - now < tonumber(ARGV[4]) / 2 then renew = 1 end
local cookie = -1
if remembered or flag(PERSISTENT) then cookie = cookie_renewal(left, now) end
return {DONE, user or false, renew, cookie, unpack(all)}
