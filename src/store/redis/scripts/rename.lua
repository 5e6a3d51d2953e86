-- Moves a session to a new key in one step; its lifetime goes with it, and
-- a marker stays at `KEYS[3]` for a few seconds. With nothing to move (the
-- session ended), the new key starts a session of its own ({ENDED}); when
-- the marker says another request moved the session away moments ago (two
-- requests regenerating one cookie at once), nothing is done ({TAKEN}).
-- KEYS: the session, its new key, the marker. Flags: LEASED. ARGV[4]: the
-- marker's life in ms. Reply: {DONE}, {ENDED}, {TAKEN}.
local new, moved = KEYS[2], KEYS[3]
if redis.call('EXISTS', key) == 1 then
  redis.call('RENAME', key, new)
  redis.call('SET', moved, '1', 'PX', ARGV[4])
  -- From here on the session is the new key.
  key = new
  local left = session_ttl()
  if left then
    redis.call('PEXPIRE', key, left)
    return {DONE}
  end
elseif redis.call('EXISTS', moved) == 1 then
  return {TAKEN}
end
redis.call('HSETNX', new, CREATED, now_ms())
redis.call('PEXPIRE', new, start_ttl())
return {ENDED}
