//! The Redis data format: the original's (one hash per session, JSON values,
//! fields and idle TTL written together). Here: how each operation is
//! written as a command, and what its reply means; the scripts themselves are
//! in `scripts/` (see [`super::scripts`]).

use redis::{from_redis_value, Cmd, Value};

use super::moves::{moved_marker, moved_marker_ms};
use super::scripts::{self, odd_reply, Flags, Lua, Status};
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
/// when there is nothing to ask. The scripts' arguments follow their
/// convention (see [`super::scripts`]): [`Lua::call`] writes the head, here
/// is each operation's own.
pub fn command(key: &str, op: &Op, limits: Limits, script_bodies: bool) -> Option<Cmd> {
    let eval = |lua: Lua, keys: &[&str], flags: Flags| lua.call(keys, limits, flags, script_bodies);
    let session = |lua: Lua| eval(lua, &[key], Flags::default());
    // Only for the commands that refresh a TTL: the check costs a scan of the key.
    let leased = || Flags::default().with(Flags::LEASED, may_be_leased(key));
    let creating = |create: bool| leased().with(Flags::CREATE, create);
    let persistent = persistent_flag(limits.persistent);
    let cookie_ms = limits.cookie_max_age_secs() * 1000;
    Some(match op {
        Op::Get(field) => with(hash_cmd("HGET", key), field),
        Op::MGet(fields) if fields.is_empty() => return None,
        Op::MGet(fields) => with(hash_cmd("HMGET", key), fields),
        Op::GetAll => hash_cmd("HGETALL", key),
        Op::Start => with(eval(Lua::Start, &[key], persistent), cookie_ms),
        Op::Touch => {
            let flags = leased().with(Flags::PERSISTENT, limits.persistent);
            // No lifetime, lease or cookie to mind: a plain `EXPIRE` does it all.
            if flags == Flags::default() && limits.max_lifetime_secs.is_none() {
                with(hash_cmd("EXPIRE", key), limits.ttl_secs)
            } else {
                eval(Lua::Touch, &[key], flags)
            }
        }
        Op::Destroy => hash_cmd("DEL", key),
        Op::Write {
            set,
            delete,
            create,
        } => {
            let flat: Vec<&String> = set.iter().flat_map(|(f, v)| [f, v]).collect();
            let own = (limits.max_fields, flat.len(), flat, delete);
            with(eval(Lua::Write, &[key], creating(*create)), own)
        }
        Op::Incr { field, by, create } => with(
            eval(Lua::Incr, &[key], creating(*create)),
            (limits.max_fields, field, by),
        ),
        // A rename always keeps the session within its lease: the old id may be signed in.
        Op::Rename { to } => with(
            eval(Lua::Rename, &[key, to, &moved_marker(key)], Flags::LEASED),
            moved_marker_ms(),
        ),
        Op::Bind {
            user,
            meta,
            persistent,
        } => with(
            eval(
                Lua::Bind,
                &[key],
                persistent_flag(*persistent || limits.persistent),
            ),
            (
                lease_until(limits),
                user,
                meta.as_deref().unwrap_or(""),
                cookie_ms,
            ),
        ),
        Op::Seen => with(eval(Lua::Seen, &[key], persistent), limits.lease_ms()),
        Op::Load => with(eval(Lua::Load, &[key], persistent), limits.lease_ms()),
        Op::Extend => with(eval(Lua::Extend, &[key], leased()), lease_until(limits)),
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
            eval(
                Lua::IndexAdd,
                &[key],
                Flags::default().with(Flags::RENEW, *renew),
            ),
            (PRUNE_BATCH, id, lease_until(limits) + INDEX_MARGIN_MS),
        ),
        Op::IndexList => with(
            session(Lua::IndexList),
            (PRUNE_BATCH, limits.max_sessions_per_user),
        ),
        Op::IndexOverflow => with(
            session(Lua::IndexOverflow),
            (PRUNE_BATCH, limits.max_sessions_per_user),
        ),
        Op::IndexRemove(ids) if ids.is_empty() => return None,
        Op::IndexRemove(ids) => with(hash_cmd("ZREM", key), ids),
    })
}

fn persistent_flag(on: bool) -> Flags {
    Flags::default().with(Flags::PERSISTENT, on)
}

/// Whether the session at `key` (`prefix:id`) may be signed in, so that its
/// expiry is capped by a lease: its id has a signed-in session's shape.
fn may_be_leased(key: &str) -> bool {
    key.rsplit_once(':')
        .is_some_and(|(_, id)| crate::sid::is_bound(id))
}

/// An error code with which a cluster sends a call elsewhere (the slot
/// moved, or is moving) or asks to try again later: the call did not run.
pub fn redirects(code: &str) -> bool {
    matches!(code, "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN")
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
    match op {
        Op::Get(_) => typed(from_redis_value(reply).map(Reply::Value)),
        Op::MGet(_) | Op::Describe => typed(from_redis_value(reply).map(Reply::Values)),
        Op::GetAll => typed(
            from_redis_value::<Vec<(String, String)>>(reply).map(|pairs| {
                // The store's own fields (maxLifetime's creation time) are not the app's.
                Reply::Pairs(pairs.into_iter().filter(|(f, _)| !is_reserved(f)).collect())
            }),
        ),
        Op::Destroy => typed(from_redis_value(reply).map(Reply::Int)),
        // A plain `EXPIRE`: nothing to learn.
        Op::Touch if !matches!(reply, Value::Array(_)) => Ok(Reply::Done),
        Op::IndexRemove(_) => Ok(Reply::Done),
        _ => scripted(op, reply, limits),
    }
}

/// The result of an operation its script ran, from the script's status and
/// value (see [`super::scripts`]).
fn scripted(op: &Op, reply: Value, limits: Limits) -> Result<Reply> {
    let (status, value) = scripts::reply(reply)?;
    match (status, op) {
        (Status::Done, Op::Incr { .. }) => {
            typed(from_redis_value(Value::Array(value)).map(|(n,): (i64,)| Reply::Int(n)))
        }
        (Status::Done, Op::Seen | Op::Load) => seen(value),
        // The cookie's renewal, when it needs one.
        (Status::Done, Op::Touch) => match from_redis_value(Value::Array(value)) {
            Ok((0,)) => Ok(Reply::Done),
            Ok((ms,)) => Ok(Reply::Int(ms)),
            Err(_) => Err(odd_reply()),
        },
        // A missing session stays missing.
        (Status::Ended, Op::Touch) => Ok(Reply::Done),
        (Status::Done, Op::IndexList | Op::IndexOverflow) => {
            typed(from_redis_value(Value::Array(value)).map(Reply::Values))
        }
        (Status::Done | Status::Ended, Op::IndexAdd { .. }) => {
            Ok(Reply::Int(i64::from(status == Status::Done)))
        }
        (Status::Done, _) => Ok(Reply::Done),
        (Status::Ended, _) => Ok(Reply::Gone),
        (Status::Full, _) => Err(too_many_fields(limits.max_fields)),
        (Status::Claimed, _) => Err(crate::store::being_moved()),
        (Status::Taken, _) => Err(crate::store::regenerated_elsewhere()),
        (Status::Lapsed, _) => Err(odd_reply()),
    }
}

/// [`Op::Seen`]'s reply, `[user id, renew, cookie]` (see there), and for
/// [`Op::Load`] the fields after it, the store's own left out.
fn seen(mut value: Vec<Value>) -> Result<Reply> {
    if value.len() < 3 {
        return Err(odd_reply());
    }
    let fields = value.split_off(3);
    let (user, renew, cookie): (Option<String>, i64, i64) =
        from_redis_value(Value::Array(value)).map_err(|_| odd_reply())?;
    let pairs: Vec<(String, String)> =
        from_redis_value(Value::Array(fields)).map_err(|_| odd_reply())?;
    let mut values = vec![
        user,
        (renew == 1).then(|| "renew".to_owned()),
        (cookie >= 0).then(|| cookie.to_string()),
    ];
    for (field, value) in pairs.into_iter().filter(|(f, _)| !is_reserved(f)) {
        values.extend([Some(field), Some(value)]);
    }
    Ok(Reply::Values(values))
}

/// A parsed reply, or [`odd_reply`]: not redis-rs's own text, which quotes
/// the reply, and that may be a session value.
fn typed<E>(parsed: std::result::Result<Reply, E>) -> Result<Reply> {
    parsed.map_err(|_| odd_reply())
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
