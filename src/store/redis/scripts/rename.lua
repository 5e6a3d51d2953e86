-- Moves a session to a new key in one step; its lifetime goes with it, and
-- a marker stays at `KEYS[3]` for a few seconds. Returns 1 when it moved;
-- -2 when the session was moved away by another request moments ago (the
-- marker: two requests regenerating one cookie at once), and nothing is
-- done; 0 when there was nothing to move (the session ended), and the new
-- key starts a session of its own.
-- KEYS: the session, its new key, the marker. ARGV: ttl, maxLifetime, the
-- marker's life in ms.
local old, new, moved = KEYS[1], KEYS[2], KEYS[3]
local ttl, life = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', old) == 1 then
  redis.call('RENAME', old, new)
  redis.call('SET', moved, '1', 'PX', ARGV[3])
  local left = session_ttl(new, ttl, life, true)
  if left then
    redis.call('PEXPIRE', new, left)
    return 1
  end
elseif redis.call('EXISTS', moved) == 1 then
  return -2
end
redis.call('HSETNX', new, CREATED, now_ms())
redis.call('PEXPIRE', new, start_ttl(ttl, life))
return 0
