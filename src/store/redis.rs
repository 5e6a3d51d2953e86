//! The Redis data format: the original's (one hash per session, JSON values,
//! fields and idle TTL written together). Here: where to connect, how each
//! operation is written as a command, and what its reply means. The
//! connection itself is [`super::link`].

use std::sync::LazyLock;

use redis::{from_redis_value, Cmd, ConnectionAddr, IntoConnectionInfo, Script, Value};

use super::{is_reserved, lease_until, too_many_fields, Limits, Op, Reply};
use super::{
    CREATED_FIELD, INDEX_MARGIN_MS, LOGIN_FIELD, META_FIELD, PRUNE_BATCH, SEEN_FIELD, USER_FIELD,
};
use crate::config::{Durability, RedisOptions, TlsOptions};
use crate::error::{ErrorCode, Result, SessionError};

/// Where the socket connects to (Node resolves the host name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Where to connect and what every connection says first.
#[derive(Debug)]
pub struct Target {
    pub address: Address,
    /// TLS, for `redis.tls` or a `rediss://` URL (the handshake is Node's).
    pub tls: Option<TlsOptions>,
    /// `AUTH` (when a password is set) and `SELECT` (when the database is not 0).
    pub handshake: Vec<Cmd>,
    /// The credentials in that `AUTH` (Sentinel checks the primary with them).
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The URL (or host and port), with explicit credentials and database
/// (`session.dbIndex`) taking precedence over the URL's.
pub fn target(redis: &RedisOptions, db_index: Option<i64>) -> Result<Target> {
    let (url, url_tls) = match &redis.url {
        // redis-rs reads the rest of a rediss:// URL as it reads redis://;
        // TLS itself is Node's, so only the scheme says to use it.
        Some(url) => match url.strip_prefix("rediss://") {
            Some(rest) => (format!("redis://{rest}"), true),
            None => (url.clone(), false),
        },
        None => match redis.host.contains(':') {
            true => (format!("redis://[{}]:{}", redis.host, redis.port), false),
            false => (format!("redis://{}:{}", redis.host, redis.port), false),
        },
    };
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis options", &err))?;
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Err(SessionError::config("redis.url must name a host and port"));
    };
    let address = Address {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: *port,
    };
    let tls = match (&redis.tls, url_tls) {
        (Some(tls), _) => Some(tls.clone()),
        (None, true) => Some(TlsOptions::default_verified()),
        (None, false) => None,
    };
    let settings = info.redis_settings();
    let username = redis.username.as_deref().or(settings.username());
    let password = redis.password.as_deref().or(settings.password());
    let db = db_index.unwrap_or(settings.db());
    let mut handshake = Vec::new();
    if let Some(password) = password {
        let mut auth = redis::cmd("AUTH");
        if let Some(username) = username {
            auth.arg(username);
        }
        handshake.push(with(auth, password));
    }
    if db != 0 {
        handshake.push(with(redis::cmd("SELECT"), db));
    }
    Ok(Target {
        address,
        tls,
        handshake,
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
    })
}

/// Shared by the scripts. `now_ms`: Redis's clock in unix milliseconds (one
/// clock for every app server). `start_ttl`: the TTL (ms) of a session that
/// starts now. `lifetime_ttl`: the TTL (in ms, for
/// `PEXPIRE`) to set on a session that exists, its idle timeout capped by what
/// is left of its absolute lifetime (`maxLifetime`, counted from the creation
/// time kept in the hash; a session written before the option was on, or by
/// alt-session 0.0.1, starts counting now). `false` when the lifetime is
/// over: the session is deleted.
macro_rules! lua_with_lifetime {
    ($($body:literal),+) => {
        concat!(
            r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function start_ttl(ttl, life)
  if life > 0 and life < ttl then return life * 1000 end
  return ttl * 1000
end
local function lifetime_ttl(key, ttl, life)
  if life == 0 then return ttl * 1000 end
  local now = now_ms()
  local created = tonumber(redis.call('HGET', key, '\0created'))
  if not created then
    created = now
    -- A pcall: out of memory, a refresh goes on (and a write's own HSET is
    -- refused after it, as it would be anyway).
    redis.pcall('HSET', key, '\0created', now)
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
local function within_lease(key, left, lease, now)
  if not lease then return left end
  left = math.min(left, lease - now)
  if left > 0 then return left end
  redis.call('DEL', key)
  return false
end
-- Whether a regenerate() on a cluster is copying this session to another
-- node (its claim, `until:new key`, is in the hash, see claim_move): a
-- write now would be lost with the old key.
local function being_moved(key)
  local claim = redis.call('HGET', key, '\0moving')
  return claim and tonumber(string.match(claim, '^%d+')) > now_ms()
end
-- lifetime_ttl, within its lease for a session that may be signed in
-- (`leased`: its id says so). Other sessions pay nothing for it.
local function session_ttl(key, ttl, life, leased)
  local left = lifetime_ttl(key, ttl, life)
  if not left or not leased then return left end
  return within_lease(key, left, tonumber(redis.call('HGET', key, '\0until')), now_ms())
end
"#,
            $($body),+
        )
    };
}

/// Records a session as its id is issued: its creation time, expiring after
/// the idle timeout (or `maxLifetime`, when shorter). The one command of a
/// new visitor, in the place of a returning visitor's idle refresh.
/// ARGV: ttl, maxLifetime.
const START: &str = lua_with_lifetime!(
    r#"
redis.call('HSETNX', KEYS[1], '\0created', now_ms())
redis.call('PEXPIRE', KEYS[1], start_ttl(tonumber(ARGV[1]), tonumber(ARGV[2])))
return 1
"#
);

/// Every write: `HSET` pairs and `HDEL` fields, and the idle TTL, atomically.
/// Unless it may create the session (an id issued in this request), it writes
/// only to a session that exists: a dead id is never revived, even by a write
/// racing the `invalidate` that killed it (returns 0). A write that would take
/// the session over `maxFields` fields writes nothing (returns -1); so does a
/// write to a session a `regenerate()` is moving (-2, see `being_moved`).
/// It reads before it writes: Redis checks a script against `maxmemory` at
/// its first write command and lets it write on after that, so that first
/// write must be the `HSET`, which Redis refuses when out of memory (an
/// `EXPIRE` first would let every later `HSET` through). Deletions free
/// memory and pass. A session this write creates, or empties (one of 0.0.1's,
/// which has no creation time), keeps a creation time: with no keys left it
/// still lives. Arguments go to Redis in chunks: Lua's `unpack` is limited to
/// a few thousand values.
/// ARGV: create (0/1), ttl, maxFields, maxLifetime (0: none), leased (0/1,
/// see `session_ttl`), number of set arguments, field, value, ..., fields to
/// delete.
const WRITE: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local function in_chunks(command, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
local exists = redis.call('EXISTS', key) == 1
if exists and being_moved(key) then return -2 end
if not exists and ARGV[1] == '0' then return 0 end
local left = exists and session_ttl(key, ttl, life, ARGV[5] == '1')
if exists and not left then return 0 end
local sets = tonumber(ARGV[6])
if sets > 0 then
  local max = tonumber(ARGV[3])
  -- Count the fields this write adds only when the cap could be reached.
  if exists and redis.call('HLEN', key) + sets / 2 > max then
    local added = 0
    for i = 7, 6 + sets, 2 do
      if redis.call('HEXISTS', key, ARGV[i]) == 0 then added = added + 1 end
    end
    local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, '\0created')
    if added > 0 and held + added > max then return -1 end
  end
  in_chunks('HSET', 7, 6 + sets)
end
local deletes = #ARGV > 6 + sets
if deletes then in_chunks('HDEL', 7 + sets, #ARGV) end
if not exists or (deletes and redis.call('EXISTS', key) == 0) then
  redis.call('HSETNX', key, '\0created', now_ms())
end
-- A session this write created: its whole idle timeout (or lifetime).
redis.call('PEXPIRE', key, left or lifetime_ttl(key, ttl, life))
return 1
"#
);

/// `HINCRBY` and `EXPIRE`, atomically; as `WRITE` for dead ids (returns
/// false), the field cap (returns a table `{-1}`) and a session being moved
/// (`{-2}`). ARGV: create (0/1), ttl, maxFields, maxLifetime, field,
/// increment, leased.
const INCR: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local exists = redis.call('EXISTS', key) == 1
if exists and being_moved(key) then return {-2} end
if not exists and ARGV[1] == '0' then return false end
local left = exists and session_ttl(key, ttl, life, ARGV[7] == '1')
if exists and not left then return false end
local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, '\0created')
if redis.call('HEXISTS', key, ARGV[5]) == 0 and held + 1 > tonumber(ARGV[3]) then return {-1} end
if not exists then redis.call('HSET', key, '\0created', now_ms()) end
local value = redis.call('HINCRBY', key, ARGV[5], ARGV[6])
redis.call('PEXPIRE', key, left or lifetime_ttl(key, ttl, life))
return value
"#
);

/// `EXPIRE` with an absolute lifetime (without one, a plain `EXPIRE` is sent).
/// ARGV: ttl, maxLifetime, leased.
const TOUCH: &str = lua_with_lifetime!(
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = session_ttl(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1')
if not ttl then return 0 end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"#
);

/// Moves a session to a new key in one step; its lifetime goes with it, and
/// a marker stays at `KEYS[3]` for a few seconds. Returns 1 when it moved;
/// -2 when the session was moved away by another request moments ago (the
/// marker: two requests regenerating one cookie at once), and nothing is
/// done; 0 when there was nothing to move (the session ended), and the new
/// key starts a session of its own.
/// KEYS: the session, its new key, the marker. ARGV: ttl, maxLifetime, the
/// marker's life in ms.
const RENAME: &str = lua_with_lifetime!(
    r#"
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
redis.call('HSETNX', new, '\0created', now_ms())
redis.call('PEXPIRE', new, start_ttl(ttl, life))
return 0
"#
);

/// Binds a live session to a user (see [`Op::Bind`]); 0 when it ended, -2
/// while a `regenerate()` moves it. ARGV: ttl, maxLifetime, lease end (unix ms), user id, meta (optional:
/// without it the meta already bound stays).
const BIND: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
if being_moved(key) then return -2 end
local left = lifetime_ttl(key, ttl, life)
if not left then return 0 end
local now = now_ms()
redis.call('HSET', key, '\0user', ARGV[4], '\0login', now, '\0seen', now, '\0until', ARGV[3])
if ARGV[5] then redis.call('HSET', key, '\0meta', ARGV[5]) end
redis.call('PEXPIRE', key, math.min(left, tonumber(ARGV[3]) - now))
return 1
"#
);

/// The per-request refresh of a signed-in session (see [`Op::Seen`]):
/// `{user id, renew (0/1)}`, or false when the session ended.
/// ARGV: ttl, maxLifetime, lease length (ms).
const SEEN: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
-- The usual request's one command: as few calls as it can be.
local fields = redis.call('HMGET', key, '\0user', '\0until')
local user, lease = fields[1], tonumber(fields[2])
if not user and redis.call('EXISTS', key) == 0 then return false end
local left = lifetime_ttl(key, ttl, life)
if not left then return false end
local now = now_ms()
left = within_lease(key, left, lease, now)
if not left then return false end
-- A pcall: with Redis out of memory (maxmemory), the time goes unrecorded,
-- and the request still learns who is signed in.
if user then redis.pcall('HSET', key, '\0seen', now) end
redis.call('PEXPIRE', key, left)
local renew = 0
if lease and lease - now < tonumber(ARGV[3]) / 2 then renew = 1 end
return {user, renew}
"#
);

/// Moves a signed-in session's lease on (see [`Op::Extend`]); 0 when it
/// ended, -2 while a `regenerate()` moves it. ARGV: ttl, maxLifetime, lease
/// end (unix ms).
const EXTEND: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('EXISTS', key) == 0 then return 0 end
if being_moved(key) then return -2 end
redis.call('HSET', key, '\0until', ARGV[3])
local left = session_ttl(key, ttl, life, true)
if not left then return 0 end
redis.call('PEXPIRE', key, left)
return 1
"#
);

/// Shared by the scripts on a user's index: drops at most `ARGV[1]`
/// entries whose lease is over, and returns Redis's time.
macro_rules! lua_on_index {
    ($body:literal) => {
        lua_with_lifetime!(
            r#"
local index = KEYS[1]
local function prune()
  local now = now_ms()
  local stale = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  if #stale > 0 then redis.call('ZREM', index, unpack(stale)) end
  return now
end
"#,
            $body
        )
    };
}

/// Enters a session in a user's index (see [`Op::IndexAdd`]); the index
/// itself expires with its last lease. ARGV: prune batch, session id, score
/// (lease end plus [`super::INDEX_MARGIN_MS`]), renew (0/1).
const INDEX_ADD: &str = lua_on_index!(
    r#"
prune()
if ARGV[4] == '1' then
  if not redis.call('ZSCORE', index, ARGV[2]) then return 0 end
  redis.call('ZADD', index, 'GT', ARGV[3], ARGV[2])
else
  redis.call('ZADD', index, ARGV[3], ARGV[2])
end
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return 1
"#
);

/// The ids in a user's index whose lease is not over, most recently renewed
/// first, at most `ARGV[2]` (`maxSessionsPerUser`). ARGV: prune batch, cap.
const INDEX_LIST: &str = lua_on_index!(
    r#"
return redis.call('ZRANGE', index, '+inf', prune(), 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[2]))
"#
);

/// The ids in a user's index ranked beyond the cap by lease (a session in
/// use renews its lease every hour or so: the least recently active ones),
/// at most a prune batch of them. ARGV: prune batch, cap.
const INDEX_OVERFLOW: &str = lua_on_index!(
    r#"
prune()
local cap = tonumber(ARGV[2])
return redis.call('ZRANGE', index, cap, cap + tonumber(ARGV[1]) - 1, 'REV')
"#
);

/// The store's Lua scripts.
#[derive(Clone, Copy)]
enum Lua {
    Start,
    Write,
    Incr,
    Touch,
    Rename,
    Bind,
    Seen,
    Extend,
    IndexAdd,
    IndexList,
    IndexOverflow,
}

/// Every script's body, indexed by [`Lua`].
const BODIES: [&str; 11] = [
    START,
    WRITE,
    INCR,
    TOUCH,
    RENAME,
    BIND,
    SEEN,
    EXTEND,
    INDEX_ADD,
    INDEX_LIST,
    INDEX_OVERFLOW,
];

/// Each script with its digest, computed once, indexed by [`Lua`].
static SCRIPTS: LazyLock<[Script; 11]> = LazyLock::new(|| BODIES.map(Script::new));

/// `SCRIPT LOAD` of every script: sent as each connection opens, so that
/// `EVALSHA` finds them. Otherwise a `NOSCRIPT` write would be sent again
/// behind the commands that followed it in its pipeline, and run after them.
pub fn preload_scripts() -> Vec<Cmd> {
    BODIES
        .iter()
        .map(|body| with(redis::cmd("SCRIPT"), ("LOAD", *body)))
        .collect()
}

/// `EVALSHA` (Redis then neither receives nor hashes the body), or `EVAL`
/// with the body for a Redis that does not know the script yet.
fn script_cmd(lua: Lua, keys: &[&str], with_body: bool) -> Cmd {
    let mut cmd = if with_body {
        let mut eval = redis::cmd("EVAL");
        eval.arg(BODIES[lua as usize]);
        eval
    } else {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(SCRIPTS[lua as usize].get_hash());
        evalsha
    };
    cmd.arg(keys.len()).arg(keys);
    cmd
}

/// Cluster regenerate(), step 1, on the old key's node: marks the move
/// beside the session (`SET NX`, as the one-server rename leaves its
/// marker), so that a second `regenerate()` of the same session sees it and
/// fails; `nil` when another one marked it first. The marker is a key of its
/// own (`prefix:id:moved`, under the session prefix an ACL user is given),
/// so it lives in another slot than the session.
pub fn mark_move(key: &str, to: &str, ms: u64) -> Cmd {
    with(redis::cmd("SET"), (moved_marker(key), to, "NX", "PX", ms))
}

/// Step 2, on the old key's node: copies the session out (`DUMP`), leaving
/// it in place, and claims the move in the hash itself for `claim_ms`
/// (`\0moving` = `<until, Redis's unix ms>:<new key>`), so that every write
/// script on the session sees the claim atomically and refuses to write
/// what the copy would miss. `{DUMP, claim}`; 0 when there is nothing to
/// move (the session ended).
pub fn claim_move(key: &str, to: &str, claim_ms: u64) -> Cmd {
    const CLAIM: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local copy = redis.call('DUMP', KEYS[1])
local claim = (now + tonumber(ARGV[1])) .. ':' .. ARGV[2]
redis.call('HSET', KEYS[1], '\0moving', claim)
return {copy, claim}
"#;
    with(redis::cmd("EVAL"), (CLAIM, 1, key, claim_ms, to))
}

/// Step 3, on the new key's node: the copy, under the new key, for no
/// longer than the claim (`ttl_ms`), so that a copy whose move does not
/// complete (the process dies, the node stalls and the command lands late)
/// goes by itself; the move gives it the session's TTL once it is in place.
pub fn place_move(to: &str, dump: &[u8], ttl_ms: u64) -> Cmd {
    with(redis::cmd("RESTORE"), (to, ttl_ms, dump, "REPLACE"))
}

/// Step 4, on the old key's node, once the copy is in place: the old key
/// goes. 1 when done; 0 when the session ended meanwhile (an `invalidate()`
/// raced the move); -1 when the claim is no longer this move's, or lapsed
/// (a write may have gone to the old key since the copy).
pub fn finish_move(key: &str, claim: &str) -> Cmd {
    const FINISH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local until_ms = tonumber(string.match(ARGV[1], '^%d+'))
if redis.call('HGET', KEYS[1], '\0moving') ~= ARGV[1] or until_ms <= now then
  return -1
end
return redis.call('DEL', KEYS[1])
"#;
    with(redis::cmd("EVAL"), (FINISH, 1, key, claim))
}

/// A move to `to` that failed gives up its claim, if it is still its own:
/// the old key, left in place, is the session's again.
pub fn release_move_claim(key: &str, to: &str) -> Cmd {
    const RELEASE: &str = r#"
local held = redis.call('HGET', KEYS[1], '\0moving')
local mine = ':' .. ARGV[1]
if held and string.sub(held, -#mine) == mine then
  return redis.call('HDEL', KEYS[1], '\0moving')
end
return 0
"#;
    with(redis::cmd("EVAL"), (RELEASE, 1, key, to))
}

/// A move to `to` that failed, or found nothing to move, takes its marker
/// back, if it is still its own: a later `regenerate()` may go ahead.
pub fn unmark_move(key: &str, to: &str) -> Cmd {
    const UNMARK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
    with(redis::cmd("EVAL"), (UNMARK, 1, moved_marker(key), to))
}

/// The key of the marker a `regenerate()` leaves for a few seconds where a
/// session was: `prefix:id:moved`. Ids hold no `:`, so no session key is
/// ever shaped like it.
fn moved_marker(key: &str) -> String {
    let mut marker = String::with_capacity(key.len() + 6);
    marker.push_str(key);
    marker.push_str(":moved");
    marker
}

fn hash_cmd(name: &str, key: &str) -> Cmd {
    with(redis::cmd(name), key)
}

/// `cmd` with `args` appended (`Cmd::arg` borrows; this keeps it by value, without a copy).
fn with(mut cmd: Cmd, args: impl redis::ToRedisArgs) -> Cmd {
    cmd.arg(args);
    cmd
}

/// Appends the command of one operation to `out`; `false` when there is
/// nothing to ask (an `mget` of no keys). `script_bodies`: `EVAL` with the
/// script itself instead of `EVALSHA`, for a Redis that does not know it.
pub fn encode(out: &mut Vec<u8>, key: &str, op: &Op, limits: Limits, script_bodies: bool) -> bool {
    match command(key, op, limits, script_bodies) {
        Some(cmd) => {
            cmd.write_packed_command(out);
            true
        }
        None => false,
    }
}

/// The command of one operation on `key`, as [`encode`] writes it; `None`
/// when there is nothing to ask.
pub fn command(key: &str, op: &Op, limits: Limits, script_bodies: bool) -> Option<Cmd> {
    let eval = |lua: Lua, keys: &[&str]| script_cmd(lua, keys, script_bodies);
    let ttl = limits.ttl_secs;
    let life = limits.max_lifetime_secs.unwrap_or(0);
    // Only for the commands that refresh a TTL: the check costs a scan of the key.
    let leased = || u8::from(may_be_leased(key));
    Some(match op {
        Op::Get(field) => with(hash_cmd("HGET", key), field),
        Op::MGet(fields) if fields.is_empty() => return None,
        Op::MGet(fields) => with(hash_cmd("HMGET", key), fields),
        Op::GetAll => hash_cmd("HGETALL", key),
        Op::Start => with(eval(Lua::Start, &[key]), (ttl, life)),
        Op::Touch => match (limits.max_lifetime_secs, leased()) {
            (None, 0) => with(hash_cmd("EXPIRE", key), ttl),
            (life, leased) => with(eval(Lua::Touch, &[key]), (ttl, life.unwrap_or(0), leased)),
        },
        Op::Destroy => hash_cmd("DEL", key),
        Op::Write {
            set,
            delete,
            create,
        } => {
            let flat: Vec<&String> = set.iter().flat_map(|(f, v)| [f, v]).collect();
            let head = (u8::from(*create), ttl, limits.max_fields, life, leased());
            let head = (head, flat.len());
            with(eval(Lua::Write, &[key]), (head, flat, delete))
        }
        Op::Incr { field, by, create } => with(
            eval(Lua::Incr, &[key]),
            (
                u8::from(*create),
                ttl,
                limits.max_fields,
                life,
                field,
                by,
                leased(),
            ),
        ),
        Op::Rename { to } => {
            let marker_ms = super::MOVED_MARKER.as_millis() as u64;
            with(
                eval(Lua::Rename, &[key, to, &moved_marker(key)]),
                (ttl, life, marker_ms),
            )
        }
        Op::Bind { user, meta } => with(
            eval(Lua::Bind, &[key]),
            (ttl, life, lease_until(limits), user, meta),
        ),
        Op::Seen => with(eval(Lua::Seen, &[key]), (ttl, life, limits.lease_ms())),
        Op::Extend => with(eval(Lua::Extend, &[key]), (ttl, life, lease_until(limits))),
        Op::Describe => with(
            hash_cmd("HMGET", key),
            (
                USER_FIELD,
                META_FIELD,
                LOGIN_FIELD,
                SEEN_FIELD,
                CREATED_FIELD,
            ),
        ),
        Op::IndexAdd { id, renew } => with(
            eval(Lua::IndexAdd, &[key]),
            (
                PRUNE_BATCH,
                id,
                lease_until(limits) + INDEX_MARGIN_MS,
                u8::from(*renew),
            ),
        ),
        Op::IndexList => with(
            eval(Lua::IndexList, &[key]),
            (PRUNE_BATCH, limits.max_sessions_per_user),
        ),
        Op::IndexOverflow => with(
            eval(Lua::IndexOverflow, &[key]),
            (PRUNE_BATCH, limits.max_sessions_per_user),
        ),
        Op::IndexRemove(ids) if ids.is_empty() => return None,
        Op::IndexRemove(ids) => with(hash_cmd("ZREM", key), ids),
    })
}

/// Whether the session at `key` (`prefix:id`) may be signed in, so that its
/// expiry is capped by a lease: its id has a signed-in session's shape.
fn may_be_leased(key: &str) -> bool {
    key.rsplit_once(':')
        .is_some_and(|(_, id)| crate::sid::is_bound(id))
}

/// A script's `NOSCRIPT`: Redis does not know its digest, and ran nothing.
pub fn is_noscript(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(err) if err.code() == "NOSCRIPT")
}

/// Turns the reply of one operation's command into its result.
pub fn decode(key: &str, op: &Op, reply: Option<Value>, limits: Limits) -> Result<Reply> {
    let reply = match reply {
        Some(Value::ServerError(err)) => return Err(operation_error(&err, key)),
        Some(value) => value,
        // Nothing was sent: an mget of no keys, a removal of no ids.
        None if matches!(op, Op::IndexRemove(_)) => return Ok(Reply::Done),
        None => return Ok(Reply::Values(Vec::new())),
    };
    let parsed = match op {
        Op::Get(_) => from_redis_value(reply).map(Reply::Value),
        Op::MGet(_) => from_redis_value(reply).map(Reply::Values),
        Op::GetAll => from_redis_value::<Vec<(String, String)>>(reply).map(|pairs| {
            // The store's own fields (maxLifetime's creation time) are not the app's.
            Reply::Pairs(pairs.into_iter().filter(|(f, _)| !is_reserved(f)).collect())
        }),
        Op::Start | Op::Touch | Op::IndexRemove(_) => Ok(Reply::Done),
        Op::Destroy | Op::IndexAdd { .. } => from_redis_value(reply).map(Reply::Int),
        Op::Describe | Op::IndexList | Op::IndexOverflow => {
            from_redis_value(reply).map(Reply::Values)
        }
        Op::Seen => match reply {
            Value::Nil => Ok(Reply::Gone),
            value => from_redis_value::<(Option<String>, i64)>(value).map(|(user, renew)| {
                Reply::Values(vec![user, (renew == 1).then(|| "renew".to_owned())])
            }),
        },
        Op::Bind { .. } | Op::Extend => match from_redis_value::<i64>(reply) {
            Ok(-2) => return Err(super::being_moved()),
            done => done.map(done_or_gone),
        },
        Op::Write { .. } => match from_redis_value::<i64>(reply) {
            Ok(-1) => return Err(too_many_fields(limits.max_fields)),
            Ok(-2) => return Err(super::being_moved()),
            done => done.map(done_or_gone),
        },
        Op::Rename { .. } => match from_redis_value::<i64>(reply) {
            Ok(-2) => return Err(super::regenerated_elsewhere()),
            done => done.map(done_or_gone),
        },
        Op::Incr { .. } => match reply {
            Value::Nil => Ok(Reply::Gone),
            Value::Array(code) if code.first() == Some(&Value::Int(-2)) => {
                return Err(super::being_moved())
            }
            Value::Array(_) => return Err(too_many_fields(limits.max_fields)),
            value => from_redis_value(value).map(Reply::Int),
        },
    };
    // Not redis-rs's own text: it quotes the reply, which may be a session value.
    parsed.map_err(|_| {
        SessionError::new(
            ErrorCode::Store,
            "redis answered with a reply of another type than asked for",
        )
    })
}

/// The `WAIT` that follows writes under `redis.waitReplicas`: the error
/// those writes fail with when fewer replicas than asked confirmed them.
pub fn wait_for(durability: Durability) -> Cmd {
    with(
        redis::cmd("WAIT"),
        (durability.replicas, durability.timeout.as_millis() as u64),
    )
}

/// What the reply to [`wait_for`] means for the writes before it: `None`
/// when enough replicas confirmed them, else the error they fail with.
pub fn unconfirmed(reply: &Value, durability: Durability) -> Option<SessionError> {
    let wanted = durability.replicas;
    let what = match reply {
        Value::Int(count) if *count >= i64::from(wanted) => return None,
        Value::Int(count) => format!("only {count} of {wanted} replicas confirmed it"),
        Value::ServerError(err) => format!(
            "the wait for {wanted} replicas failed ({})",
            server_error(err, None).message
        ),
        _ => format!("the wait for {wanted} replicas got no count"),
    };
    Some(super::not_replicated(&what, durability.timeout))
}

/// A script's 1 (done) or 0 (the session does not exist).
fn done_or_gone(done: i64) -> Reply {
    if done == 0 {
        Reply::Gone
    } else {
        Reply::Done
    }
}

/// The error reply to one operation: `HINCRBY` on a field that is not an
/// integer is the caller's mistake; anything else is [`server_error`].
fn operation_error(err: &redis::ServerError, key: &str) -> SessionError {
    reply_error(err.code(), err.details(), Some(key))
}

/// [`operation_error`] from an error reply's code and details, as redis-rs's
/// cluster client returns them.
pub fn reply_error(code: &str, details: Option<&str>, key: Option<&str>) -> SessionError {
    let text = details.unwrap_or_default();
    if text.contains("not an integer") || text.contains("overflow") {
        return SessionError::argument(format!("incr: {text}"));
    }
    error_reply(code, details, key)
}

/// A Redis error reply as a session error, with a code for what the
/// application can act on: refused credentials or permissions, and a Redis
/// out of memory. Its text is Redis's minus anything that could name the
/// session, which logs must never hold: the key (it holds the id) and the
/// arguments some replies quote ("unknown command ..., with args beginning
/// with: ...").
pub fn server_error(err: &redis::ServerError, key: Option<&str>) -> SessionError {
    error_reply(err.code(), err.details(), key)
}

/// [`server_error`] from the reply's code and details.
fn error_reply(server_code: &str, details: Option<&str>, key: Option<&str>) -> SessionError {
    let code = match server_code {
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorCode::Auth,
        "OOM" => ErrorCode::Full,
        _ => ErrorCode::Store,
    };
    let mut text = format!("{server_code} {}", details.unwrap_or_default());
    if let Some(at) = text.find(", with args beginning with") {
        text.truncate(at);
    }
    if let Some(key) = key {
        text = text.replace(key, "<session key>");
    }
    let text = text.trim_end();
    SessionError::new(
        code,
        match code {
            ErrorCode::Auth => {
                format!("redis refused the credentials or permissions of this connection: {text}")
            }
            ErrorCode::Full => {
                format!("redis is out of memory (maxmemory); nothing was written: {text}")
            }
            _ => format!("redis: {text}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    /// The target, with its handshake as readable words.
    fn target_of(options: serde_json::Value) -> (Address, Vec<Vec<String>>) {
        let config = Config::from_json(&options).unwrap();
        let target = target(&config.redis, config.session.db_index).unwrap();
        let words = target
            .handshake
            .iter()
            .map(|cmd| {
                cmd.args_iter()
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => "<not a simple argument>".into(),
                    })
                    .collect()
            })
            .collect();
        (target.address, words)
    }

    fn tcp(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn host_port_password_and_db_index() {
        let (address, handshake) = target_of(json!({
            "redis": {"host": "localhost", "port": 6390, "auth_pass": "p@ss:/"},
            "session": {"dbIndex": 2}
        }));
        assert_eq!(address, tcp("localhost", 6390));
        assert_eq!(handshake, [vec!["AUTH", "p@ss:/"], vec!["SELECT", "2"]]);
        let (_, none) = target_of(json!({}));
        assert!(
            none.is_empty(),
            "no password, database 0: nothing to say first"
        );
        let (v6, _) = target_of(json!({"redis": {"host": "::1"}}));
        assert_eq!(v6, tcp("::1", 6379));
    }

    #[test]
    fn rediss_and_tls_options_ask_for_tls() {
        let config = |options| Config::from_json(&options).unwrap();
        let url = config(json!({"redis": {"url": "rediss://u:pw@h:6380/2"}}));
        let target_of_url = target(&url.redis, None).unwrap();
        assert_eq!(target_of_url.address, tcp("h", 6380));
        assert_eq!(target_of_url.tls, Some(TlsOptions::default_verified()));
        assert_eq!(
            target_of_url.handshake.len(),
            2,
            "AUTH and SELECT as for redis://"
        );
        let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----";
        let object =
            config(json!({"redis": {"port": 6380, "tls": {"ca": ca, "servername": "db"}}}));
        let tls = target(&object.redis, None).unwrap().tls.unwrap();
        assert_eq!(
            (
                tls.ca.as_deref(),
                tls.servername.as_deref(),
                tls.reject_unauthorized
            ),
            (Some(ca), Some("db"), true)
        );
        assert_eq!(target(&config(json!({})).redis, None).unwrap().tls, None);
    }

    #[test]
    fn explicit_options_override_the_url() {
        let (address, from_url) = target_of(json!({"redis": {"url": "redis://u:pw@h:1/3"}}));
        assert_eq!(address, tcp("h", 1));
        assert_eq!(from_url, [vec!["AUTH", "u", "pw"], vec!["SELECT", "3"]]);
        let (_, overridden) = target_of(json!({
            "redis": {"url": "redis://u:pw@h:1/3", "password": "other"},
            "session": {"dbIndex": 5}
        }));
        assert_eq!(
            overridden,
            [vec!["AUTH", "u", "other"], vec!["SELECT", "5"]]
        );
    }
}
