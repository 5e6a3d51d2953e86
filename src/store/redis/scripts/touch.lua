-- `EXPIRE` with an absolute lifetime or a lease (without either, a plain
-- `EXPIRE` is sent). Flags: LEASED. Reply: {DONE}, or {ENDED}.
if redis.call('EXISTS', key) == 0 then return {ENDED} end
local left = session_ttl()
if not left then return {ENDED} end
redis.call('PEXPIRE', key, left)
return {DONE}
