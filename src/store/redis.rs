//! The Redis store: the original's data format (one hash per session, JSON
//! values, fields and idle TTL written together) over one multiplexed connection
//! that reconnects by itself. A batch of operations is one pipeline, bounded
//! as a whole by `commandTimeout`.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    from_redis_value, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, Script, Value,
};

use super::{too_many_fields, BoxFuture, Limits, Op, Reply, Store, CREATED_FIELD};
use crate::config::RedisOptions;
use crate::error::{ErrorCode, Result, SessionError};

/// Where and how to connect: the URL (or host and port), with explicit
/// credentials and database (`session.dbIndex`) taking precedence over the URL's.
pub fn connection_info(redis: &RedisOptions, db_index: Option<i64>) -> Result<ConnectionInfo> {
    let url = match &redis.url {
        Some(url) => url.clone(),
        None => {
            let scheme = if redis.tls { "rediss" } else { "redis" };
            match redis.host.contains(':') {
                true => format!("{scheme}://[{}]:{}", redis.host, redis.port),
                false => format!("{scheme}://{}:{}", redis.host, redis.port),
            }
        }
    };
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis options", &err))?;
    let mut settings = info.redis_settings().clone();
    if let Some(db) = db_index {
        settings = settings.set_db(db);
    }
    if let Some(username) = &redis.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &redis.password {
        settings = settings.set_password(password);
    }
    // Nagle's algorithm would hold a pipeline's tail waiting for an ACK; the
    // JS clients (ioredis, node-redis) disable it too.
    let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    Ok(info.set_redis_settings(settings).set_tcp_settings(tcp))
}

pub struct RedisStore {
    /// `None` once closed; each call clones the (shared) connection out of it.
    connection: Mutex<Option<ConnectionManager>>,
    command_timeout: Duration,
}

impl RedisStore {
    /// Creates the store without connecting: the connection is made on first
    /// use, so a middleware can be built before Redis is up. Must run inside a
    /// tokio runtime.
    pub fn new(
        info: ConnectionInfo,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let client = Client::open(info)
            .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis options", &err))?;
        // The defaults retry 6 times with backoff (about 9.5 s per command while
        // Redis is down); a session call must fail fast instead, and the
        // manager reconnects on the next call anyway.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis options", &err))?;
        Ok(RedisStore {
            connection: Mutex::new(Some(manager)),
            command_timeout,
        })
    }

    fn connection(&self) -> Result<ConnectionManager> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| SessionError::new(ErrorCode::Closed, "the session store is closed"))
    }

    /// Sends the whole batch as one pipeline: one write, one read, however
    /// many sessions it touches. Each operation keeps its own outcome.
    /// Scripts go by digest (`EVALSHA`); the few a restarted Redis no longer
    /// knows (`NOSCRIPT`, nothing ran) are sent once more with their body.
    async fn run_batch(&self, ops: &[(String, Op)], limits: Limits) -> Vec<Result<Reply>> {
        let mut replies = self.send(ops.iter(), limits, false).await;
        let unknown: Vec<usize> = (0..ops.len())
            .filter(|&i| matches!(&replies[i], Ok(Some(Value::ServerError(e))) if e.code() == "NOSCRIPT"))
            .collect();
        if !unknown.is_empty() {
            let again = self
                .send(unknown.iter().map(|&i| &ops[i]), limits, true)
                .await;
            for (i, reply) in unknown.into_iter().zip(again) {
                replies[i] = reply;
            }
        }
        ops.iter()
            .zip(replies)
            .map(|((_, op), reply)| decode(op, reply?, limits))
            .collect()
    }

    /// One pipeline for `ops`: per operation its reply (`None` for an empty
    /// `mget`, which sends nothing), or the error that failed the whole pipeline.
    async fn send<'a>(
        &self,
        ops: impl Iterator<Item = &'a (String, Op)> + Clone,
        limits: Limits,
        script_bodies: bool,
    ) -> Vec<Result<Option<Value>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let replies_per_op: Vec<usize> = ops
            .clone()
            .map(|(key, op)| add_command(&mut pipe, key, op, limits, script_bodies))
            .collect();
        let values = if pipe.is_empty() {
            Ok(Vec::new())
        } else {
            self.query(&pipe).await
        };
        match values {
            Ok(values) => {
                let mut values = values.into_iter();
                replies_per_op
                    .into_iter()
                    .map(|count| Ok(values.by_ref().take(count).next()))
                    .collect()
            }
            Err(err) => vec![Err(err); replies_per_op.len()],
        }
    }

    async fn query(&self, pipe: &Pipeline) -> Result<Vec<Value>> {
        let mut conn = self.connection()?;
        match tokio::time::timeout(self.command_timeout, pipe.query_async(&mut conn)).await {
            Ok(values) => Ok(values?),
            Err(_) => Err(SessionError::new(
                ErrorCode::Timeout,
                format!(
                    "redis did not answer within {} ms",
                    self.command_timeout.as_millis()
                ),
            )),
        }
    }
}

/// Shared by the scripts: the TTL (in ms, for `PEXPIRE`) to set on a session
/// that exists, its idle timeout capped by what is left of its absolute
/// lifetime (`maxLifetime`, counted from the creation time in unix ms kept in the hash; a session written before
/// the option was on, or by alt-session 0.0.1, starts counting now). `false`
/// when the lifetime is over: the session is deleted.
macro_rules! lua_with_lifetime {
    ($body:literal) => {
        concat!(
            r#"
local function lifetime_ttl(key, ttl, life)
  if life == 0 then return ttl * 1000 end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local created = tonumber(redis.call('HGET', key, '\0created'))
  if not created then
    created = now
    redis.call('HSET', key, '\0created', now)
  end
  local left = created + life * 1000 - now
  if left <= 0 then
    redis.call('DEL', key)
    return false
  end
  return math.min(ttl * 1000, left)
end
"#,
            $body
        )
    };
}

/// Every write: `HSET` pairs and `HDEL` fields, then `EXPIRE`, atomically.
/// Unless it may create the session (an id issued in this request), it writes
/// only to a session that exists: a dead id is never revived, even by a write
/// racing the `invalidate` that killed it (returns 0). A write that would take
/// the session over `maxFields` fields writes nothing (returns -1).
/// ARGV: create (0/1), ttl, maxFields, maxLifetime (0: none), number of set
/// arguments, field, value, ..., fields to delete.
const WRITE: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local exists = redis.call('EXISTS', key) == 1
if not exists and ARGV[1] == '0' then return 0 end
if exists and life > 0 and not lifetime_ttl(key, ttl, life) then return 0 end
local sets = tonumber(ARGV[5])
if sets > 0 then
  local max = tonumber(ARGV[3])
  -- Count the fields this write adds only when the cap could be reached.
  if exists and redis.call('HLEN', key) + sets / 2 > max then
    local added = 0
    for i = 6, 5 + sets, 2 do
      if redis.call('HEXISTS', key, ARGV[i]) == 0 then added = added + 1 end
    end
    local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, '\0created')
    if added > 0 and held + added > max then return -1 end
  end
  redis.call('HSET', key, unpack(ARGV, 6, 5 + sets))
end
if #ARGV > 5 + sets then redis.call('HDEL', key, unpack(ARGV, 6 + sets)) end
if life == 0 then
  redis.call('EXPIRE', key, ttl)
elseif redis.call('EXISTS', key) == 1 then
  redis.call('PEXPIRE', key, lifetime_ttl(key, ttl, life))
end
return 1
"#
);

/// `HINCRBY` and `EXPIRE`, atomically; as `WRITE` for dead ids (returns
/// false) and the field cap (returns a table `{-1}`).
/// ARGV: create (0/1), ttl, maxFields, maxLifetime, field, increment.
const INCR: &str = lua_with_lifetime!(
    r#"
local key, ttl, life = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local exists = redis.call('EXISTS', key) == 1
if not exists and ARGV[1] == '0' then return false end
if exists and not lifetime_ttl(key, ttl, life) then return false end
local held = redis.call('HLEN', key) - redis.call('HEXISTS', key, '\0created')
if redis.call('HEXISTS', key, ARGV[5]) == 0 and held + 1 > tonumber(ARGV[3]) then return {-1} end
local value = redis.call('HINCRBY', key, ARGV[5], ARGV[6])
redis.call('PEXPIRE', key, lifetime_ttl(key, ttl, life))
return value
"#
);

/// `EXPIRE` with an absolute lifetime (without one, a plain `EXPIRE` is sent).
/// ARGV: ttl, maxLifetime.
const TOUCH: &str = lua_with_lifetime!(
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = lifetime_ttl(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not ttl then return 0 end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"#
);

/// Moves a session to a new key in one step; its lifetime goes with it.
/// ARGV: ttl, maxLifetime.
const RENAME: &str = lua_with_lifetime!(
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
local ttl = lifetime_ttl(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not ttl then return 0 end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"#
);

/// The store's Lua scripts.
#[derive(Clone, Copy)]
enum Lua {
    Write,
    Incr,
    Touch,
    Rename,
}

/// Each script with its digest, computed once, indexed by [`Lua`].
static SCRIPTS: LazyLock<[Script; 4]> =
    LazyLock::new(|| [WRITE, INCR, TOUCH, RENAME].map(Script::new));

/// `EVALSHA` (Redis then neither receives nor hashes the body), or `EVAL`
/// with the body for a Redis that does not know the script yet.
fn script_cmd(lua: Lua, keys: &[&str], with_body: bool) -> Cmd {
    let mut cmd = if with_body {
        let body = [WRITE, INCR, TOUCH, RENAME][lua as usize];
        let mut eval = redis::cmd("EVAL");
        eval.arg(body);
        eval
    } else {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(SCRIPTS[lua as usize].get_hash());
        evalsha
    };
    cmd.arg(keys.len()).arg(keys);
    cmd
}

fn hash_cmd(name: &str, key: &str) -> Cmd {
    with(redis::cmd(name), key)
}

/// `cmd` with `args` appended (`Cmd::arg` borrows; this keeps it by value, without a copy).
fn with(mut cmd: Cmd, args: impl redis::ToRedisArgs) -> Cmd {
    cmd.arg(args);
    cmd
}

/// Adds the command of one operation to the batch's pipeline; returns how
/// many replies it produces (one, or none for an empty `mget`).
fn add_command(
    pipe: &mut Pipeline,
    key: &str,
    op: &Op,
    limits: Limits,
    script_bodies: bool,
) -> usize {
    let eval = |lua: Lua, keys: &[&str]| script_cmd(lua, keys, script_bodies);
    let ttl = limits.ttl_secs;
    let life = limits.max_lifetime_secs.unwrap_or(0);
    let cmd = match op {
        Op::Get(field) => with(hash_cmd("HGET", key), field),
        Op::MGet(fields) if fields.is_empty() => return 0,
        Op::MGet(fields) => with(hash_cmd("HMGET", key), fields),
        Op::GetAll => hash_cmd("HGETALL", key),
        Op::Touch => match limits.max_lifetime_secs {
            None => with(hash_cmd("EXPIRE", key), ttl),
            Some(life) => with(eval(Lua::Touch, &[key]), (ttl, life)),
        },
        Op::Destroy => hash_cmd("DEL", key),
        Op::Write {
            set,
            delete,
            create,
        } => {
            let flat: Vec<&String> = set.iter().flat_map(|(f, v)| [f, v]).collect();
            let head = (u8::from(*create), ttl, limits.max_fields, life, flat.len());
            with(eval(Lua::Write, &[key]), (head, flat, delete))
        }
        Op::Incr { field, by, create } => with(
            eval(Lua::Incr, &[key]),
            (u8::from(*create), ttl, limits.max_fields, life, field, by),
        ),
        Op::Rename { to } => with(eval(Lua::Rename, &[key, to]), (ttl, life)),
    };
    pipe.add_command(cmd);
    1
}

/// Turns the reply of one operation's command into its result.
fn decode(op: &Op, reply: Option<Value>, limits: Limits) -> Result<Reply> {
    let reply = match reply {
        Some(Value::ServerError(err)) => return Err(server_error(err)),
        Some(value) => value,
        None => return Ok(Reply::Values(Vec::new())), // an empty mget sent nothing
    };
    let parsed = match op {
        Op::Get(_) => from_redis_value(reply).map(Reply::Value),
        Op::MGet(_) => from_redis_value(reply).map(Reply::Values),
        Op::GetAll => from_redis_value::<Vec<(String, String)>>(reply).map(|pairs| {
            // The store's own fields (maxLifetime's creation time) are not the app's.
            Reply::Pairs(
                pairs
                    .into_iter()
                    .filter(|(f, _)| f != CREATED_FIELD)
                    .collect(),
            )
        }),
        Op::Touch | Op::Destroy => Ok(Reply::Done),
        Op::Write { .. } | Op::Rename { .. } => match from_redis_value::<i64>(reply) {
            Ok(-1) => return Err(too_many_fields(limits.max_fields)),
            done => done.map(|done| if done == 0 { Reply::Gone } else { Reply::Done }),
        },
        Op::Incr { .. } => match reply {
            Value::Nil => Ok(Reply::Gone),
            Value::Array(_) => return Err(too_many_fields(limits.max_fields)),
            value => from_redis_value(value).map(Reply::Int),
        },
    };
    parsed.map_err(|err| redis::RedisError::from(err).into())
}

/// HINCRBY on a field that is not an integer is the caller's mistake.
fn server_error(err: redis::ServerError) -> SessionError {
    let err = redis::RedisError::from(err);
    let text = err.to_string();
    if text.contains("not an integer") || text.contains("overflow") {
        return SessionError::argument(format!("incr: {}", err.detail().unwrap_or(&text)));
    }
    err.into()
}

impl Store for RedisStore {
    fn execute_batch(
        &self,
        ops: Vec<(String, Op)>,
        limits: Limits,
    ) -> BoxFuture<'_, Vec<Result<Reply>>> {
        Box::pin(async move { self.run_batch(&ops, limits).await })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // Calls already running hold their own handle and finish; the
        // connection closes when the last of them drops it.
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn info(options: serde_json::Value) -> ConnectionInfo {
        let config = Config::from_json(&options).unwrap();
        connection_info(&config.redis, config.session.db_index).unwrap()
    }

    #[test]
    fn host_port_password_and_db_index() {
        let info = info(json!({
            "redis": {"host": "localhost", "port": 6390, "auth_pass": "p@ss:/"},
            "session": {"dbIndex": 2}
        }));
        assert_eq!(info.addr().to_string(), "localhost:6390");
        assert_eq!(info.redis_settings().password(), Some("p@ss:/"));
        assert_eq!(info.redis_settings().db(), 2);
    }

    #[test]
    fn explicit_options_override_the_url() {
        let from_url = info(json!({"redis": {"url": "redis://u:pw@h:1/3"}}));
        assert_eq!(from_url.redis_settings().db(), 3);
        assert_eq!(from_url.redis_settings().password(), Some("pw"));
        let overridden = info(json!({
            "redis": {"url": "redis://u:pw@h:1/3", "password": "other"},
            "session": {"dbIndex": 5}
        }));
        assert_eq!(overridden.redis_settings().db(), 5);
        assert_eq!(overridden.redis_settings().password(), Some("other"));
        assert_eq!(overridden.redis_settings().username(), Some("u"));
    }
}
