//! The Redis store: the original's data format (one hash per session,
//! `MULTI HSET/HDEL EXPIRE EXEC` for writes) over one multiplexed connection
//! that reconnects by itself, with every call bounded by `commandTimeout`.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline};

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
    Ok(info.set_redis_settings(settings))
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

    async fn run(&self, key: String, op: Op, ttl_secs: u64) -> Result<Reply> {
        let mut conn = self.connection()?;
        let reply = match op {
            Op::Get(field) => Reply::Value(
                hash_cmd("HGET", &key)
                    .arg(field)
                    .query_async(&mut conn)
                    .await?,
            ),
            Op::MGet(fields) if fields.is_empty() => Reply::Values(Vec::new()),
            Op::MGet(fields) => Reply::Values(
                hash_cmd("HMGET", &key)
                    .arg(fields)
                    .query_async(&mut conn)
                    .await?,
            ),
            Op::GetAll => Reply::Pairs(hash_cmd("HGETALL", &key).query_async(&mut conn).await?),
            Op::Write { set, delete } => {
                write_pipeline(&key, &set, &delete, ttl_secs)
                    .query_async::<()>(&mut conn)
                    .await?;
                Reply::Done
            }
            Op::Touch => {
                hash_cmd("EXPIRE", &key)
                    .arg(ttl_secs)
                    .query_async::<()>(&mut conn)
                    .await?;
                Reply::Done
            }
            Op::Destroy => {
                hash_cmd("DEL", &key).query_async::<()>(&mut conn).await?;
                Reply::Done
            }
        };
        Ok(reply)
    }
}

fn hash_cmd(name: &str, key: &str) -> Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

/// `MULTI HSET.. HDEL.. EXPIRE EXEC`: the fields and the idle TTL change together.
fn write_pipeline(
    key: &str,
    set: &[(String, String)],
    delete: &[String],
    ttl_secs: u64,
) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    if !set.is_empty() {
        pipe.add_command(hash_cmd("HSET", key).arg(set).clone())
            .ignore();
    }
    if !delete.is_empty() {
        pipe.add_command(hash_cmd("HDEL", key).arg(delete).clone())
            .ignore();
    }
    pipe.add_command(hash_cmd("EXPIRE", key).arg(ttl_secs).clone())
        .ignore();
    pipe
}

impl Store for RedisStore {
    fn execute(&self, key: String, op: Op, ttl_secs: u64) -> BoxFuture<'_, Result<Reply>> {
        Box::pin(async move {
            match tokio::time::timeout(self.command_timeout, self.run(key, op, ttl_secs)).await {
                Ok(reply) => reply,
                Err(_) => Err(SessionError::new(
                    ErrorCode::Timeout,
                    format!(
                        "redis did not answer within {} ms",
                        self.command_timeout.as_millis()
                    ),
                )),
            }
        })
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
