//! Where the primary is, when Redis runs under Sentinel. The sentinels are
//! asked with redis-rs's Sentinel client (its protocol: `SENTINEL
//! get-master-addr-by-name`, then `ROLE` on the answer to check it is the
//! primary), on napi's tokio runtime, once before every new connection. The
//! connection itself stays the event-loop link: a failover drops it (the
//! sentinels kill the old primary's clients) or makes its writes answer
//! `READONLY`, and the next connection asks again.

use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisConnectionInfo};

use super::redis::Address;
use crate::config::SentinelOptions;
use crate::error::{ErrorCode, Result, SessionError};

pub struct Sentinels {
    /// redis-rs keeps a connection to each sentinel between lookups.
    client: tokio::sync::Mutex<Sentinel>,
    name: String,
    /// How to reach the primary, to check its role.
    primary: SentinelNodeConnectionInfo,
    timeout: Duration,
}

impl Sentinels {
    /// `primary_username` / `primary_password`: the primary's credentials (the
    /// sentinels' own are in `options`). `timeout`: `redis.connectTimeout`.
    pub fn new(
        options: &SentinelOptions,
        primary_username: Option<&str>,
        primary_password: Option<&str>,
        timeout: Duration,
    ) -> Result<Arc<Sentinels>> {
        let nodes = options
            .nodes
            .iter()
            .map(|(host, port)| {
                node_info(
                    host,
                    *port,
                    options.username.as_deref(),
                    options.password.as_deref(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let client = Sentinel::build(nodes)
            .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis.sentinel", &err))?;
        let mut primary = RedisConnectionInfo::default();
        if let Some(username) = primary_username {
            primary = primary.set_username(username);
        }
        if let Some(password) = primary_password {
            primary = primary.set_password(password);
        }
        Ok(Arc::new(Sentinels {
            client: tokio::sync::Mutex::new(client),
            name: options.name.clone(),
            primary: SentinelNodeConnectionInfo::default().set_redis_connection_info(primary),
            timeout,
        }))
    }

    /// The primary's address, as the sentinels say and its `ROLE` confirms;
    /// an error with a code within the timeout otherwise.
    pub async fn primary(&self) -> Result<Address> {
        let lookup = async {
            let mut client = self.client.lock().await;
            client
                .async_master_for(&self.name, Some(&self.primary))
                .await
        };
        let found = tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| {
                SessionError::new(
                    ErrorCode::Sentinel,
                    format!(
                        "no sentinel named the primary '{}' within {} ms",
                        self.name,
                        self.timeout.as_millis()
                    ),
                )
            })?;
        let client = found.map_err(|err| self.lookup_error(err))?;
        match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) => Ok(Address {
                host: host.clone(),
                port: *port,
            }),
            _ => Err(SessionError::new(
                ErrorCode::Sentinel,
                "the sentinels named a primary this version cannot reach (not plain TCP)",
            )),
        }
    }

    fn lookup_error(&self, err: redis::RedisError) -> SessionError {
        let code = match err.kind() {
            ErrorKind::AuthenticationFailed => ErrorCode::Auth,
            ErrorKind::Io => ErrorCode::Connection,
            _ => ErrorCode::Sentinel,
        };
        // A sentinel leaves a primary it thinks is down out of its answer: during
        // a failover the name is "unknown" for a moment, as it is for a typo.
        let context = match err.kind() {
            ErrorKind::MasterNameNotFoundBySentinel => format!(
                "no sentinel names a usable primary '{}' (not a name they monitor, or a failover under way)",
                self.name
            ),
            ErrorKind::Io => format!(
                "could not reach the sentinels, or the primary '{}' they name (a failover under way?)",
                self.name
            ),
            _ => format!("the sentinels could not name the primary '{}'", self.name),
        };
        SessionError::caused_by(code, &context, &err)
    }
}

/// A sentinel's address and credentials, as redis-rs takes them.
fn node_info(
    host: &str,
    port: u16,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<ConnectionInfo> {
    let mut redis = RedisConnectionInfo::default();
    if let Some(username) = username {
        redis = redis.set_username(username);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    let info = ConnectionAddr::Tcp(host.to_owned(), port)
        .into_connection_info()
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis.sentinel.nodes", &err))?;
    Ok(info.set_redis_settings(redis))
}
