-- `EXPIRE` with an absolute lifetime, a lease or a persistent cookie
-- (without any, a plain `EXPIRE` is sent). Flags: LEASED, PERSISTENT.
-- Reply: {DONE, cookie}, `cookie` the `Max-Age` (ms) to send a persistent
-- cookie again with, 0 when it need not be (see `cookie_renewal`); or
-- {ENDED}.
if redis.call('EXISTS', key) == 0 then return {ENDED} end
local left = session_ttl()
if not left then return {ENDED} end
redis.call('PEXPIRE', key, left)
if flag(PERSISTENT) then return {DONE, cookie_renewal(left, now_ms())} end
return {DONE, 0}
