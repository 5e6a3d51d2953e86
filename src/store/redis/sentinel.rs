//! Where the primary is, when Redis runs under Sentinel, and when it is
//! about to move. The sentinels are asked with redis-rs's Sentinel client
//! (its protocol: `SENTINEL get-master-addr-by-name`, then `ROLE` on the
//! answer; TLS to both with rustls), on napi's tokio runtime, before a new
//! connection. The connection itself stays the event-loop link (with Node's
//! TLS).
//!
//! A failover must not lose writes the app was told succeeded. The sentinels
//! promote the replica and only later (after `+switch-master`, up to seconds)
//! turn the old primary into a replica, which drops whatever it accepted in
//! between. So [`Sentinels::watch`] follows every sentinel's announcements
//! on redis-rs's pub/sub, as Jedis's pool and ioredis's failover detector do,
//! and goes further: from the `+try-failover` of any sentinel until the
//! failover is over, writes wait (the link holds them, see
//! `Link::hold_writes`); on `+switch-master` the link leaves the old primary
//! and takes what waited to the new one. Sentinels are polled while a failover
//! is under way, so a missed announcement (an aborted failover says nothing
//! on these channels) cannot hold writes for longer than it lasts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo,
    TlsMode,
};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::tls::certificates;

use super::target::Address;
use crate::config::{SentinelOptions, TlsOptions};
use crate::error::{ErrorCode, Result, SessionError};

pub struct Sentinels {
    /// redis-rs keeps a connection to each sentinel between lookups.
    client: tokio::sync::Mutex<SentinelClient>,
    name: String,
    timeout: Duration,
    /// One client per sentinel, for its announcements and for polling it.
    nodes: Vec<Client>,
    watch: Mutex<Watch>,
    /// Wakes the poller when a failover starts.
    failover_started: Notify,
}

/// What the sentinels said, for the link to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// A failover of the primary started: writes wait.
    FailoverStarted,
    /// It ended with the primary where it was (aborted): writes go on there.
    FailoverOver,
    /// The primary moved: the connection leaves the old one, what waits goes
    /// to the new one (which [`Sentinels::primary`] names from now on).
    Switched,
}

#[derive(Default)]
struct Watch {
    /// The primary as last named: by a lookup, or by `+switch-master`, which
    /// says it before every sentinel does.
    primary: Option<Address>,
    failover: bool,
    news: Vec<News>,
    /// Tells JavaScript that news waits (a threadsafe function).
    wake: Option<Box<dyn Fn() + Send + Sync>>,
    tasks: Vec<AbortHandle>,
}

/// The announcements followed: a failover starting, the primary moving.
const TRY_FAILOVER: &str = "+try-failover";
const SWITCH_MASTER: &str = "+switch-master";
/// While a failover is under way, how often the sentinels are asked whether it still is.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The longest pause between attempts to subscribe to a sentinel again.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

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
        let nodes = options
            .nodes
            .iter()
            .map(|(host, port)| sentinel_address(options, host, *port));
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
        let nodes = options
            .nodes
            .iter()
            .map(|(host, port)| sentinel_client(options, host, *port))
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(config)?;
        Ok(Arc::new(Sentinels {
            client: tokio::sync::Mutex::new(builder.build().map_err(config)?),
            name: options.name.clone(),
            timeout,
            nodes,
            watch: Mutex::new(Watch::default()),
            failover_started: Notify::new(),
        }))
    }

    /// The primary's address: the one `+switch-master` named last, or as the
    /// sentinels say and its `ROLE` confirms; an error with a code within the
    /// timeout otherwise.
    pub async fn primary(&self) -> Result<Address> {
        if let Some(known) = self.known_primary() {
            return Ok(known);
        }
        let found = self.lookup().await?;
        self.state().primary.get_or_insert(found.clone());
        Ok(found)
    }

    /// The primary named last, without asking anyone.
    pub fn known_primary(&self) -> Option<Address> {
        self.state().primary.clone()
    }

    /// Forgets the primary named last (its connection failed, or it is not
    /// the primary any more): the next connection asks the sentinels.
    pub fn forget_primary(&self) {
        self.state().primary = None;
    }

    /// What the sentinels said since the last call.
    pub fn take_news(&self) -> Vec<News> {
        std::mem::take(&mut self.state().news)
    }

    fn state(&self) -> MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows every sentinel's announcements from now on (see the module
    /// documentation), on the tokio runtime; `wake` is called, from one of
    /// its threads, whenever [`Sentinels::take_news`] has news.
    pub fn watch(self: &Arc<Self>, wake: Box<dyn Fn() + Send + Sync>) {
        let mut tasks: Vec<AbortHandle> = (0..self.nodes.len())
            .map(|node| napi::bindgen_prelude::spawn(Arc::clone(self).follow(node)).abort_handle())
            .collect();
        tasks.push(napi::bindgen_prelude::spawn(Arc::clone(self).poll()).abort_handle());
        let mut state = self.state();
        state.wake = Some(wake);
        state.tasks.extend(tasks);
    }

    /// Stops following the sentinels (the engine closes).
    pub fn stop(&self) {
        let mut state = self.state();
        state.wake = None;
        for task in state.tasks.drain(..) {
            task.abort();
        }
    }

    /// Subscribes to one sentinel's announcements, again whenever the
    /// subscription is lost.
    async fn follow(self: Arc<Self>, node: usize) {
        let mut pause = POLL_EVERY;
        loop {
            let subscribe = async {
                let mut pubsub = self.nodes[node].get_async_pubsub().await?;
                pubsub.subscribe(&[TRY_FAILOVER, SWITCH_MASTER]).await?;
                redis::RedisResult::Ok(pubsub)
            };
            if let Ok(Ok(mut pubsub)) = tokio::time::timeout(self.timeout, subscribe).await {
                pause = POLL_EVERY;
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(payload) = message.get_payload::<String>() {
                        self.announced(message.get_channel_name(), &payload);
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESUBSCRIBE_MAX);
        }
    }

    /// One announcement: `+try-failover master <name> <ip> <port>`, or
    /// `+switch-master <name> <old ip> <old port> <new ip> <new port>`.
    fn announced(&self, channel: &str, payload: &str) {
        let words: Vec<&str> = payload.split(' ').collect();
        match (channel, words.as_slice()) {
            (TRY_FAILOVER, ["master", name, ..]) if *name == self.name => self.failover_began(),
            (SWITCH_MASTER, [name, _, _, host, port]) if *name == self.name => {
                if let Ok(port) = port.parse() {
                    let host = (*host).to_owned();
                    self.failover_ended(Address { host, port });
                }
            }
            _ => {}
        }
    }

    fn failover_began(&self) {
        let mut state = self.state();
        if state.failover {
            return;
        }
        state.failover = true;
        self.tell(state, News::FailoverStarted);
        self.failover_started.notify_one();
    }

    /// The failover is over, with the primary at `primary`.
    fn failover_ended(&self, primary: Address) {
        let mut state = self.state();
        let was_under_way = std::mem::replace(&mut state.failover, false);
        if state.primary.as_ref() != Some(&primary) {
            state.primary = Some(primary);
            self.tell(state, News::Switched);
        } else if was_under_way {
            self.tell(state, News::FailoverOver);
        }
    }

    fn tell(&self, mut state: MutexGuard<'_, Watch>, news: News) {
        state.news.push(news);
        if let Some(wake) = &state.wake {
            wake();
        }
    }

    /// While a failover is under way, asks every sentinel how it stands: it
    /// is over when none that answers is still failing over; the primary is
    /// then where the sentinel with the newest configuration says.
    async fn poll(self: Arc<Self>) {
        let mut connections: Vec<Option<MultiplexedConnection>> = vec![None; self.nodes.len()];
        loop {
            self.failover_started.notified().await;
            while self.state().failover {
                tokio::time::sleep(POLL_EVERY).await;
                let asked = connections
                    .iter_mut()
                    .enumerate()
                    .map(|(node, connection)| self.ask(node, connection));
                let answers: Vec<MasterState> = futures_util::future::join_all(asked)
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                if answers.is_empty() || answers.iter().any(|a| a.failing_over) {
                    continue;
                }
                if let Some(newest) = answers.into_iter().max_by_key(|a| a.epoch) {
                    self.failover_ended(newest.primary);
                }
            }
        }
    }

    /// `SENTINEL MASTER <name>` on one sentinel, within [`POLL_EVERY`].
    async fn ask(
        &self,
        node: usize,
        connection: &mut Option<MultiplexedConnection>,
    ) -> Option<MasterState> {
        let asked = async {
            if connection.is_none() {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(POLL_EVERY))
                    .set_response_timeout(Some(POLL_EVERY));
                *connection = Some(
                    self.nodes[node]
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                );
            }
            let Some(open) = connection.as_mut() else {
                return Err(redis::RedisError::from((ErrorKind::Io, "not connected")));
            };
            let mut master = redis::cmd("SENTINEL");
            master.arg("MASTER").arg(&self.name);
            master.query_async::<HashMap<String, String>>(open).await
        };
        match tokio::time::timeout(POLL_EVERY, asked).await {
            Ok(Ok(fields)) => MasterState::from_fields(&fields),
            _ => {
                *connection = None;
                None
            }
        }
    }

    /// The primary's address, as the sentinels say and its `ROLE` confirms.
    async fn lookup(&self) -> Result<Address> {
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

/// How one sentinel sees the primary (`SENTINEL MASTER <name>`).
struct MasterState {
    primary: Address,
    epoch: u64,
    failing_over: bool,
}

impl MasterState {
    fn from_fields(fields: &HashMap<String, String>) -> Option<MasterState> {
        Some(MasterState {
            primary: Address {
                host: fields.get("ip")?.clone(),
                port: fields.get("port")?.parse().ok()?,
            },
            epoch: fields.get("config-epoch")?.parse().ok()?,
            failing_over: fields
                .get("flags")?
                .split(',')
                .any(|flag| flag == "failover_in_progress"),
        })
    }
}

/// Where one sentinel is, over TLS when `redis.sentinel.tls` says so.
fn sentinel_address(options: &SentinelOptions, host: &str, port: u16) -> ConnectionAddr {
    match options.tls {
        Some(_) => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(host.to_owned(), port),
    }
}

/// A client of one sentinel (its credentials and TLS).
fn sentinel_client(options: &SentinelOptions, host: &str, port: u16) -> redis::RedisResult<Client> {
    let address = sentinel_address(options, host, port);
    let mut settings = RedisConnectionInfo::default();
    if let Some(username) = &options.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password);
    }
    let info: ConnectionInfo =
        redis::IntoConnectionInfo::into_connection_info(address)?.set_redis_settings(settings);
    match &options.tls {
        Some(tls) => Client::build_with_tls(info, certificates(tls)),
        None => Client::open(info),
    }
}
