//! The Redis store: the original's data format (one hash per session,
//! `MULTI HSET/HDEL EXPIRE EXEC` for writes) over one multiplexed connection
//! that reconnects by itself. A batch of operations is one pipeline, bounded
//! as a whole by `commandTimeout`.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{from_redis_value, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, Value};

use super::{BoxFuture, Op, Reply, Store};
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
    async fn run_batch(&self, ops: &[(String, Op)], ttl_secs: u64) -> Vec<Result<Reply>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let replies_per_op: Vec<usize> = ops
            .iter()
            .map(|(key, op)| add_commands(&mut pipe, key, op, ttl_secs))
            .collect();
        let values = if pipe.is_empty() {
            Ok(Vec::new())
        } else {
            self.query(&pipe).await
        };
        let mut values = match values {
            Ok(values) => values.into_iter(),
            Err(err) => return vec![Err(err); ops.len()],
        };
        ops.iter()
            .zip(replies_per_op)
            .map(|((_, op), count)| decode(op, values.by_ref().take(count).collect()))
            .collect()
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

/// A write that applies only to a session that exists: a dead id is never
/// revived, even by a write racing the `invalidate` that killed it.
/// ARGV: ttl, number of set arguments, field, value, ..., fields to delete.
const STRICT_WRITE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local sets = tonumber(ARGV[2])
if sets > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + sets)) end
if #ARGV > 2 + sets then redis.call('HDEL', KEYS[1], unpack(ARGV, 3 + sets)) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// `HINCRBY` on a session that exists. ARGV: ttl, field, increment.
const STRICT_INCR: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local value = redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return value
"#;

/// Moves a session to a new key in one step. ARGV: ttl.
const RENAME: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"#;

/// `EVAL` (not `EVALSHA`): Redis caches the compiled script by its digest
/// anyway, and a restarted Redis needs no reloading.
fn eval(script: &str, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

fn hash_cmd(name: &str, key: &str) -> Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

/// Adds the commands of one operation to the batch's pipeline; returns how
/// many replies they produce. Writes are `MULTI HSET.. HDEL.. EXPIRE EXEC`,
/// as the original wrote them: fields and idle TTL change together.
fn add_commands(pipe: &mut Pipeline, key: &str, op: &Op, ttl_secs: u64) -> usize {
    let mut add = |cmd: Cmd| {
        pipe.add_command(cmd);
    };
    match op {
        Op::Get(field) => add(hash_cmd("HGET", key).arg(field).clone()),
        Op::MGet(fields) if fields.is_empty() => return 0,
        Op::MGet(fields) => add(hash_cmd("HMGET", key).arg(fields).clone()),
        Op::GetAll => add(hash_cmd("HGETALL", key)),
        Op::Touch => add(hash_cmd("EXPIRE", key).arg(ttl_secs).clone()),
        Op::Destroy => add(hash_cmd("DEL", key)),
        Op::Write {
            set,
            delete,
            create: false,
        } => {
            let flat = set.iter().flat_map(|(f, v)| [f, v]);
            add(eval(STRICT_WRITE, &[key])
                .arg(ttl_secs)
                .arg(set.len() * 2)
                .arg(flat.collect::<Vec<_>>())
                .arg(delete)
                .clone())
        }
        Op::Incr {
            field,
            by,
            create: false,
        } => add(eval(STRICT_INCR, &[key])
            .arg(ttl_secs)
            .arg(field)
            .arg(by)
            .clone()),
        Op::Incr { field, by, .. } => {
            add(redis::cmd("MULTI"));
            add(hash_cmd("HINCRBY", key).arg(field).arg(by).clone());
            add(hash_cmd("EXPIRE", key).arg(ttl_secs).clone());
            add(redis::cmd("EXEC"));
            return 4;
        }
        Op::Rename { to } => add(eval(RENAME, &[key, to]).arg(ttl_secs).clone()),
        Op::Write { set, delete, .. } => {
            let mut count = 3;
            add(redis::cmd("MULTI"));
            if !set.is_empty() {
                add(hash_cmd("HSET", key).arg(set).clone());
                count += 1;
            }
            if !delete.is_empty() {
                add(hash_cmd("HDEL", key).arg(delete).clone());
                count += 1;
            }
            add(hash_cmd("EXPIRE", key).arg(ttl_secs).clone());
            add(redis::cmd("EXEC"));
            return count;
        }
    }
    1
}

/// Turns the replies of one operation's commands into its result.
fn decode(op: &Op, replies: Vec<Value>) -> Result<Reply> {
    // Any error among the replies (or inside EXEC's array) fails the operation.
    let transaction = matches!(
        op,
        Op::Write { create: true, .. } | Op::Incr { create: true, .. }
    );
    let nested = replies.last().and_then(|last| match last {
        Value::Array(items) if transaction => Some(items.iter()),
        _ => None,
    });
    if let Some(Value::ServerError(err)) = replies
        .iter()
        .chain(nested.into_iter().flatten())
        .find(|v| matches!(v, Value::ServerError(_)))
    {
        return Err(server_error(err.clone()));
    }
    let last = replies.into_iter().last().unwrap_or(Value::Nil);
    let parsed =
        match op {
            Op::Get(_) => from_redis_value(last).map(Reply::Value),
            Op::MGet(fields) if fields.is_empty() => Ok(Reply::Values(Vec::new())),
            Op::MGet(_) => from_redis_value(last).map(Reply::Values),
            Op::GetAll => from_redis_value(last).map(Reply::Pairs),
            Op::Write { create: true, .. } | Op::Touch | Op::Destroy => Ok(Reply::Done),
            Op::Write { create: false, .. } | Op::Rename { .. } => from_redis_value::<i64>(last)
                .map(|done| match done {
                    0 => Reply::Gone,
                    _ => Reply::Done,
                }),
            Op::Incr { create: true, .. } => from_redis_value::<Vec<i64>>(last)
                .map(|results| Reply::Int(results.first().copied().unwrap_or_default())),
            Op::Incr { create: false, .. } => from_redis_value::<Option<i64>>(last)
                .map(|value| value.map_or(Reply::Gone, Reply::Int)),
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
        ttl_secs: u64,
    ) -> BoxFuture<'_, Vec<Result<Reply>>> {
        Box::pin(async move { self.run_batch(&ops, ttl_secs).await })
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
