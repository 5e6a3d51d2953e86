-- The per-request load of the express-session entry point (see `Op::Load`):
-- seen.lua's refresh and the whole hash, in one command. Flags:
-- PERSISTENT. ARGV[4]: the lease's length (ms).
-- Reply: `refresh_seen`'s {DONE, user id, renew (0/1), cookie}, then
-- field, value, ... (the store's own among them); or {ENDED}.
local all = redis.call('HGETALL', key)
if #all == 0 then return {ENDED} end
local fields = {}
for i = 1, #all, 2 do fields[all[i]] = all[i + 1] end
local reply = refresh_seen(fields[USER], tonumber(fields[UNTIL]), fields[COOKIE], tonumber(ARGV[4]))
if not reply then return {ENDED} end
for i = 1, #all do reply[#reply + 1] = all[i] end
return reply
