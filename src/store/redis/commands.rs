//! The Redis data format: the original's (one hash per session, JSON values,
//! fields and idle TTL written together). Here: how each operation is
//! written as a command, and what its reply means; the scripts themselves are
//! in `scripts/` (see [`super::scripts`]).

use redis::{from_redis_value, Cmd, Value};

use super::moves::{moved_marker, moved_marker_ms};
use super::scripts::Lua;
use super::with;
use crate::config::Durability;
use crate::error::{ErrorCode, Result, SessionError};
use crate::store::{is_reserved, lease_until, too_many_fields, Limits, Op, Reply};
use crate::store::{
    CREATED_FIELD, INDEX_MARGIN_MS, LOGIN_FIELD, META_FIELD, PRUNE_BATCH, SEEN_FIELD, USER_FIELD,
};

fn hash_cmd(name: &str, key: &str) -> Cmd {
    with(redis::cmd(name), key)
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
    let eval = |lua: Lua, keys: &[&str]| lua.call(keys, script_bodies);
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
        Op::Rename { to } => with(
            eval(Lua::Rename, &[key, to, &moved_marker(key)]),
            (ttl, life, moved_marker_ms()),
        ),
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
            Ok(-2) => return Err(crate::store::being_moved()),
            done => done.map(done_or_gone),
        },
        Op::Write { .. } => match from_redis_value::<i64>(reply) {
            Ok(-1) => return Err(too_many_fields(limits.max_fields)),
            Ok(-2) => return Err(crate::store::being_moved()),
            done => done.map(done_or_gone),
        },
        Op::Rename { .. } => match from_redis_value::<i64>(reply) {
            Ok(-2) => return Err(crate::store::regenerated_elsewhere()),
            done => done.map(done_or_gone),
        },
        Op::Incr { .. } => match reply {
            Value::Nil => Ok(Reply::Gone),
            Value::Array(code) if code.first() == Some(&Value::Int(-2)) => {
                return Err(crate::store::being_moved())
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
    Some(crate::store::not_replicated(&what, durability.timeout))
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
