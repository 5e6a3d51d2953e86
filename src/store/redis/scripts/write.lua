-- Every write: `HSET` pairs and `HDEL` fields, and the idle TTL, atomically.
-- Unless it may create the session (CREATE: an id issued in this request),
-- it writes only to a session that exists: a dead id is never revived, even
-- by a write racing the `invalidate` that killed it ({ENDED}). A write that
-- would take the session over `maxFields` fields writes nothing ({FULL});
-- nor does a write to a session a `regenerate()` is moving ({CLAIMED}, see
-- `being_moved`).
-- It reads before it writes: Redis checks a script against `maxmemory` at
-- its first write command and lets it write on after that, so that first
-- write must be the `HSET`, which Redis refuses when out of memory (an
-- `EXPIRE` first would let every later `HSET` through). Deletions free
-- memory and pass. A session this write creates, or empties (one of 0.0.1's,
-- which has no creation time), keeps a creation time: with no keys left it
-- still lives. Arguments go to Redis in chunks: Lua's `unpack` is limited to
-- a few thousand values.
-- Flags: CREATE, LEASED. ARGV[4..]: maxFields, number of set arguments,
-- field, value, ..., fields to delete. Reply: {DONE}, {ENDED}, {FULL},
-- {CLAIMED}.
local function in_chunks(command, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
local exists = redis.call('EXISTS', key) == 1
if exists and being_moved() then return {CLAIMED} end
if not exists and not flag(CREATE) then return {ENDED} end
local left = exists and session_ttl()
if exists and not left then return {ENDED} end
local sets = tonumber(ARGV[5])
if sets > 0 then
  local max = tonumber(ARGV[4])
  -- Count the fields this write adds only when the cap could be reached.
  if exists and redis.call('HLEN', key) + sets / 2 > max then
    local added = 0
    for i = 6, 5 + sets, 2 do
      if redis.call('HEXISTS', key, ARGV[i]) == 0 then added = added + 1 end
    end
    local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, CREATED)
    if added > 0 and held + added > max then return {FULL} end
  end
  in_chunks('HSET', 6, 5 + sets)
end
local deletes = #ARGV > 5 + sets
if deletes then in_chunks('HDEL', 6 + sets, #ARGV) end
if not exists or (deletes and redis.call('EXISTS', key) == 0) then
  redis.call('HSETNX', key, CREATED, now_ms())
end
-- A session this write created: its whole idle timeout (or lifetime).
redis.call('PEXPIRE', key, left or lifetime_ttl())
return {DONE}
