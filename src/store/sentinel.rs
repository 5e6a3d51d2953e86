//! Where the primary is, when Redis runs under Sentinel. The sentinels are
//! asked with redis-rs's Sentinel client (its protocol: `SENTINEL
//! get-master-addr-by-name`, then `ROLE` on the answer to check it is the
//! primary; TLS to both with rustls), on napi's tokio runtime, once before
//! every new connection. The connection itself stays the event-loop link
//! (with Node's TLS): a failover drops it (the sentinels kill the old
//! primary's clients) or makes its writes answer `READONLY`, and the next
//! connection asks again.

use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ErrorKind, TlsMode};

use super::tls::certificates;

use super::redis::Address;
use crate::config::{SentinelOptions, TlsOptions};
use crate::error::{ErrorCode, Result, SessionError};

pub struct Sentinels {
    /// redis-rs keeps a connection to each sentinel between lookups.
    client: tokio::sync::Mutex<SentinelClient>,
    name: String,
    timeout: Duration,
}

/// What reaching the primary takes, for redis-rs's check of its role: the
/// primary's credentials and TLS (`redis.username`, `redis.password`, `redis.tls`).
pub struct Primary<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub tls: Option<&'a TlsOptions>,
}

impl Sentinels {
    /// `timeout`: `redis.connectTimeout`.
    pub fn new(
        options: &SentinelOptions,
        primary: Primary<'_>,
        timeout: Duration,
    ) -> Result<Arc<Sentinels>> {
        let config = |err: redis::RedisError| {
            SessionError::caused_by(ErrorCode::Config, "redis.sentinel", &err)
        };
        let nodes = options.nodes.iter().map(|(host, port)| match options.tls {
            Some(_) => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host.clone(), *port),
        });
        let mut builder =
            SentinelClientBuilder::new(nodes, &options.name, SentinelServerType::Master)
                .map_err(config)?;
        if let Some(username) = &options.username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = &options.password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(tls) = &options.tls {
            builder = builder
                .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_certificates(certificates(tls));
        }
        if let Some(username) = primary.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = primary.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(tls) = primary.tls {
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_redis_certificates(certificates(tls));
        }
        Ok(Arc::new(Sentinels {
            client: tokio::sync::Mutex::new(builder.build().map_err(config)?),
            name: options.name.clone(),
            timeout,
        }))
    }

    /// The primary's address, as the sentinels say and its `ROLE` confirms;
    /// an error with a code within the timeout otherwise.
    pub async fn primary(&self) -> Result<Address> {
        let lookup = async { self.client.lock().await.async_get_client().await };
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
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Ok(Address {
                    host: host.clone(),
                    port: *port,
                })
            }
            _ => Err(SessionError::new(
                ErrorCode::Sentinel,
                "the sentinels named a primary that is not a TCP address",
            )),
        }
    }

    fn lookup_error(&self, err: redis::RedisError) -> SessionError {
        // rustls's failures come as I/O errors; their text names them.
        let text = err.to_string();
        let tls = ["certificate", "TLS", "tls handshake"]
            .iter()
            .any(|t| text.contains(t));
        let code = match err.kind() {
            ErrorKind::AuthenticationFailed => ErrorCode::Auth,
            ErrorKind::Io if tls => ErrorCode::Tls,
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
            ErrorKind::Io if tls => format!(
                "TLS to the sentinels, or to the primary '{}' they name, failed (redis.sentinel.tls, redis.tls)",
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
