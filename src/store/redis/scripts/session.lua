-- Shared by the scripts. `key`, `ttl` and `life`: the session, its idle
-- timeout and its absolute lifetime (`maxLifetime`, 0 for none), in seconds,
-- from the head of every script's arguments. `now_ms`: Redis's clock in
-- unix milliseconds (one clock for every app server). `start_ttl`: the TTL
-- (ms) of a session that starts now. `lifetime_ttl`: the TTL (in ms, for
-- `PEXPIRE`) to set on a session that exists, its idle timeout capped by
-- what is left of its absolute lifetime (counted from the creation time
-- kept in the hash; a session written before the option was on, or by
-- alt-session 0.0.1, starts counting now). `false` when the lifetime is
-- over: the session is deleted.
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function start_ttl()
  if life > 0 and life < ttl then return life * 1000 end
  return ttl * 1000
end
local function lifetime_ttl()
  if life == 0 then return ttl * 1000 end
  local now = now_ms()
  local created = tonumber(redis.call('HGET', key, CREATED))
  if not created then
    created = now
    -- A pcall: out of memory, a refresh goes on (and a write's own HSET is
    -- refused after it, as it would be anyway).
    redis.pcall('HSET', key, CREATED, now)
  end
  local left = created + life * 1000 - now
  if left <= 0 then
    redis.call('DEL', key)
    return false
  end
  return math.min(ttl * 1000, left)
end
-- `left` capped by a signed-in session's lease (unix ms, see Op::Bind): the
-- session never outlives its entry in the user's index. `false`, and the
-- session deleted, once the lease is over.
local function within_lease(left, lease, now)
  if not lease then return left end
  left = math.min(left, lease - now)
  if left > 0 then return left end
  redis.call('DEL', key)
  return false
end
-- Whether a regenerate() on a cluster is copying this session to another
-- node (its claim, `until:new key`, is in the hash, see claim_move): a
-- write now would be lost with the old key.
local function being_moved()
  local claim = redis.call('HGET', key, MOVING)
  return claim and tonumber(string.match(claim, '^%d+')) > now_ms()
end
-- lifetime_ttl, within its lease for a session that may be signed in (the
-- LEASED flag: its id says so). Other sessions pay nothing for it.
local function session_ttl()
  local left = lifetime_ttl()
  if not left or not flag(LEASED) then return left end
  return within_lease(left, tonumber(redis.call('HGET', key, UNTIL)), now_ms())
end
-- A persistent session's cookie (COOKIE: when the one last sent expires in
-- the browser, unix ms), once the session's expiry is `left` ms from `now`:
-- the `Max-Age` (ms) to send it again with when it would expire first,
-- recorded, else 0. The `Max-Age` is twice the idle timeout, so that a
-- session in use sends its cookie about once per idle timeout, and never
-- beyond what is left of its lifetime (at least `left`: the session's own).
local function cookie_renewal(left, now)
  local sent = tonumber(redis.call('HGET', key, COOKIE))
  if sent and sent >= now + left then return 0 end
  local max_age = 2 * ttl * 1000
  local created = life > 0 and tonumber(redis.call('HGET', key, CREATED))
  if created then max_age = math.max(left, math.min(max_age, created + life * 1000 - now)) end
  -- A pcall: out of memory the record is lost, and the cookie sent again next time.
  redis.pcall('HSET', key, COOKIE, now + max_age)
  return max_age
end
-- The per-request refresh of a session that may be signed in (seen.lua,
-- load.lua), given its user, lease and cookie record: its expiry within
-- its lifetime and lease, and when signed in, when it was last seen (a
-- pcall: with Redis out of memory, the time goes unrecorded, and the
-- request still learns who is signed in). `lease_ms`: a lease's length.
-- {DONE, user id, renew (0/1), cookie}, `cookie` -1 for a cookie that ends
-- with the browser session, else as cookie_renewal's; `false` once the
-- session's lifetime or lease is over.
local function refresh_seen(user, lease, remembered, lease_ms)
  local left = lifetime_ttl()
  if not left then return false end
  local now = now_ms()
  left = within_lease(left, lease, now)
  if not left then return false end
  if user then redis.pcall('HSET', key, SEEN, now) end
  redis.call('PEXPIRE', key, left)
  local renew = 0
  if lease and lease - now < lease_ms / 2 then renew = 1 end
  local cookie = -1
  if remembered or flag(PERSISTENT) then cookie = cookie_renewal(left, now) end
  return {DONE, user or false, renew, cookie}
end
