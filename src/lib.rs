//! N-API surface of the engine: the `Engine` class that `engine.js` drives.
//! Only conversion lives here; the logic is in the modules below.
//!
//! Session operations cross the boundary in batches (see [`batch`]): one
//! `submit` call carries every operation JavaScript issued in one turn of the
//! event loop. On Redis they become one pipeline on a connection whose socket
//! JavaScript owns ([`store::redis::link`]): everything runs on Node's thread, with
//! no thread hand-off and no wake-up between a call and its reply. Every call
//! answers with an [`Outcome`]: what the socket must do, and the batches that
//! finished.

#![deny(clippy::all)]

pub mod batch;
pub mod config;
pub mod cookie;
pub mod error;
pub mod sessions;
pub mod sid;
pub mod stats;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt};

use napi::bindgen_prelude::{
    BufferSlice, Either, Function, PromiseRaw, ToNapiValue, Uint32ArraySlice, Utf16String,
};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{sys, Env, JsError};
use napi_derive::napi;

/// The engine allocates a few small buffers per operation (strings, commands,
/// replies): with mimalloc they cost about 14k instructions per `/write`
/// request instead of 21k with glibc's malloc (callgrind, main thread).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use config::Config;
use error::{internal, ErrorCode, Result, SessionError, Thrown};
use sessions::Sessions;
use stats::{EngineStats, Stats, Submitted};
use store::memory::MemoryStore;
use store::redis::cluster::{ClusterSettings, ClusterStore};
use store::redis::link::{Link, LinkFlag, LinkOptions};
use store::redis::nodes::Nodes;
use store::redis::sentinel::{News, Primary, Sentinels};
use store::redis::target::Address;
use store::redis::topology::{ClusterNews, Topology};
use store::Reply;
use store::{Finished, Item};

/// `cookie-signature`'s `sign`, exposed for the binding tests and for tools
/// that mint cookies (e.g. load tests).
#[napi]
pub fn sign_cookie(value: String, secret: String) -> String {
    cookie::sign(&value, &secret)
}

/// `cookie-signature`'s `unsign` over several secrets: the value, or `null`.
#[napi]
pub fn unsign_cookie(signed: String, secrets: Vec<String>) -> Option<String> {
    cookie::unsign(&signed, &secrets).map(|(value, _)| value.to_owned())
}

/// How a request's session was resolved from its cookie.
#[napi(object)]
pub struct OpenedSession {
    pub id: String,
    pub is_new: bool,
    /// Whether writes may create the session's hash (see `sessions::Opened`).
    pub may_create: bool,
    /// A `Set-Cookie` value to send, when the visitor needs a (new or re-signed) cookie.
    pub set_cookie: Option<String>,
    /// Whether the session is a signed-in one's (see `sessions::Opened`).
    pub bound: bool,
}

impl From<sessions::Opened> for OpenedSession {
    fn from(opened: sessions::Opened) -> Self {
        OpenedSession {
            id: opened.id,
            is_new: opened.is_new,
            may_create: opened.may_create,
            set_cookie: opened.set_cookie,
            bound: opened.bound,
        }
    }
}

/// Where and how the JavaScript side opens the Redis socket.
#[napi(object)]
#[derive(Clone)]
pub struct SocketOptions {
    pub host: String,
    pub port: u16,
    /// Milliseconds to wait for the connection (and the TLS handshake).
    pub connect_timeout: u32,
    /// Milliseconds to wait for the reply to a batch.
    pub command_timeout: u32,
    /// `tls.connect` options, when the connection is TLS.
    pub tls: Option<TlsSocketOptions>,
    /// Whether the address is the sentinels' to say: ask `discoverPrimary()`
    /// before every connection (`host` and `port` are then unused).
    pub sentinel: bool,
}

/// A change in a cluster: `event` is `connect` (a primary answers),
/// `disconnect` (it stopped) or `failover` (`slots` slots moved from `node`
/// to `to`).
#[napi(object)]
pub struct ClusterEvent {
    pub event: String,
    pub node: PrimaryAddress,
    pub to: Option<PrimaryAddress>,
    pub slots: Option<u32>,
}

impl From<ClusterNews> for ClusterEvent {
    fn from(news: ClusterNews) -> Self {
        let event = |event: &str, Address { host, port }: Address| ClusterEvent {
            event: event.to_owned(),
            node: PrimaryAddress { host, port },
            to: None,
            slots: None,
        };
        match news {
            ClusterNews::Up(node) => event("connect", node),
            ClusterNews::Down(node) => event("disconnect", node),
            ClusterNews::Moved { from, to, slots } => ClusterEvent {
                to: Some(PrimaryAddress {
                    host: to.host,
                    port: to.port,
                }),
                slots: Some(slots),
                ..event("failover", from)
            },
        }
    }
}

/// A cluster's primary, and whether it answered when last asked.
#[napi(object)]
pub struct ClusterNode {
    pub host: String,
    pub port: u16,
    pub up: bool,
}

/// An address the sentinels named (or a cluster's primary).
#[napi(object)]
pub struct PrimaryAddress {
    pub host: String,
    pub port: u16,
}

/// The options of Node's `tls.connect`, as checked by `config::TlsOptions`.
#[napi(object)]
#[derive(Clone)]
pub struct TlsSocketOptions {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub servername: Option<String>,
    pub reject_unauthorized: bool,
}

impl From<config::TlsOptions> for TlsSocketOptions {
    fn from(tls: config::TlsOptions) -> Self {
        TlsSocketOptions {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            servername: tls.servername,
            reject_unauthorized: tls.reject_unauthorized,
        }
    }
}

/// What a call into the engine produced, delivered to JavaScript as one flat
/// array, whose layout `src/binding-header.d.ts` declares (`Outcome`, in
/// binding.d.ts): the [`store::redis::link::LinkFlag`] bits, then each
/// finished batch's id, count and results ([`set_result`]).
pub struct Outcome {
    flags: u32,
    finished: Vec<Finished>,
}

impl ToNapiValue for Outcome {
    unsafe fn to_napi_value(
        raw_env: sys::napi_env,
        outcome: Self,
    ) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(raw_env);
        let length: usize = outcome.finished.iter().map(|f| 2 + f.results.len()).sum();
        let mut array = env.create_array(1 + length as u32)?;
        array.set(0, outcome.flags)?;
        let mut index = 1;
        for finished in outcome.finished {
            array.set(index, finished.batch_id)?;
            array.set(index + 1, finished.results.len() as u32)?;
            index += 2;
            for result in finished.results {
                // The batch was taken from the link already: a result that
                // cannot become a JS value (a string over V8's limit, say)
                // fails alone rather than losing its whole batch.
                if let Err(err) = set_result(&mut array, index, result) {
                    let failed = SessionError::new(
                        ErrorCode::Store,
                        format!("the reply cannot be handed to JavaScript: {}", err.reason),
                    );
                    array.set(index, Failure(failed))?;
                }
                index += 1;
            }
        }
        unsafe { ToNapiValue::to_napi_value(raw_env, array) }
    }
}

fn set_result(
    array: &mut napi::bindgen_prelude::Array,
    index: u32,
    result: Result<Reply>,
) -> napi::Result<()> {
    match result {
        Ok(Reply::Value(value)) => array.set(index, value),
        Ok(Reply::Values(values)) => array.set(index, values),
        Ok(Reply::Pairs(pairs)) => {
            let flat: Vec<String> = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            array.set(index, flat)
        }
        Ok(Reply::Done) => array.set(index, true),
        Ok(Reply::Gone) => array.set(index, false),
        Ok(Reply::Int(value)) => array.set(index, value as f64),
        Err(err) => array.set(index, Failure(err)),
    }
}

/// An `Error` whose `code` is the stable session error code, as a value
/// (a batch's result, what a Promise resolves with) rather than thrown.
pub struct Failure(SessionError);

impl ToNapiValue for Failure {
    unsafe fn to_napi_value(env: sys::napi_env, failure: Self) -> napi::Result<sys::napi_value> {
        let error = napi::Error::new(failure.0.code, failure.0.message);
        unsafe {
            ToNapiValue::to_napi_value(env, JsError::from(error).into_unknown(Env::from_raw(env)))
        }
    }
}

enum Backend {
    /// `mock()`: every batch finishes within `submit`.
    Memory(MemoryStore),
    Redis {
        /// Boxed: far larger than the memory store, and reached once per call anyway.
        link: Box<Link>,
        socket: SocketOptions,
        /// Under Sentinel: who to ask where the primary is.
        sentinels: Option<Arc<Sentinels>>,
    },
    /// Redis Cluster: batches go to each primary on a socket of Node's
    /// (see `store::redis::nodes`), or run on tokio (redis-rs's cluster
    /// client) and finish through a Promise.
    Cluster(Box<Cluster>),
}

/// A cluster's two paths, and what finishes on tokio for the next `later()`.
struct Cluster {
    /// `None` once closed.
    store: Option<ClusterStore>,
    topology: Arc<Topology>,
    nodes: Nodes,
    /// Where and how the primaries' sockets connect (`host` and `port` are each node's).
    socket: SocketOptions,
    /// Batches finishing on tokio after some of their calls were sent
    /// elsewhere: the outcome of the next `later()`.
    later: Vec<BoxFuture<'static, Finished>>,
}

#[napi]
pub struct Engine {
    sessions: Sessions,
    backend: Backend,
    /// The express-session entry point's own options, for an engine made for it.
    express: Option<config::ExpressOptions>,
    stats: Stats,
    /// On one server: the batches on the link, until their outcome is counted.
    in_flight: HashMap<u32, Submitted>,
}

/// What the express-session entry point (lib/express-session.js) does
/// beyond the engine's options: express-session's, read by `config::express`.
#[napi(object)]
pub struct ExpressSettings {
    pub rolling: bool,
    pub resave: bool,
    pub save_uninitialized: bool,
    /// `unset: 'destroy'`.
    pub unset_destroy: bool,
    /// `proxy`; `null` to follow Express's `trust proxy`.
    pub proxy: Option<bool>,
    /// `cookie.maxAge` (ms); `null` for a cookie that ends with the browser.
    pub max_age: Option<f64>,
    /// `cookie.expires` (unix ms): every new session's cookie expires then.
    pub expires: Option<f64>,
    pub user_of: bool,
    /// Whether `cookie` is a function of the request.
    pub cookie_per_request: bool,
    /// Whether `genid` makes the ids.
    pub genid: bool,
}

/// The length of a signed-in session's id: the engine takes any id of this
/// length as one (`sid::is_bound`), and so does `open()`'s caller.
#[napi]
pub const BOUND_ID_LENGTH: u32 = sid::BOUND_ID_LEN as u32;

/// What an option that is a function (`userOf`) crosses as in the options'
/// JSON, which cannot hold a function.
#[napi]
pub const OPTION_FUNCTION: &str = config::EXPRESS_FUNCTION_MARKER;

/// The options as JSON, read as alt-session's (`express` false) or as the
/// express-session entry point's.
fn parse_config(
    options_json: &str,
    express: bool,
) -> Result<(Config, Option<config::ExpressOptions>)> {
    let value = serde_json::from_str(options_json)
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "options", &err))?;
    if express {
        let (config, express) = Config::from_express_json(&value)?;
        return Ok((config, Some(express)));
    }
    Ok((Config::from_json(&value)?, None))
}

#[napi]
impl Engine {
    /// An engine on Redis. `options_json` is `JSON.stringify(options)`;
    /// `express`: the express-session entry point's options.
    /// Nothing connects until the first batch.
    #[napi(factory)]
    pub fn redis(options_json: String, express: Option<bool>) -> Result<Engine, Thrown> {
        let (config, express) = parse_config(&options_json, express.unwrap_or(false))?;
        if let Some(cluster) = &config.redis.cluster {
            let sessions = Sessions::new(config.session);
            let settings = ClusterSettings {
                limits: sessions.limits,
                connect_timeout: config.redis.connect_timeout,
                command_timeout: config.redis.command_timeout,
                durability: config.redis.durability,
            };
            let stats = Stats::default();
            let store = ClusterStore::new(cluster, settings, stats.clone(), |dispatcher| {
                napi::bindgen_prelude::spawn(dispatcher);
            })?;
            let nodes = Nodes::new(
                LinkOptions::new(
                    sessions.limits,
                    config.redis.command_timeout,
                    config.redis.durability,
                ),
                cluster.username.as_deref(),
                cluster.password.as_deref(),
            );
            let socket = SocketOptions {
                host: String::new(),
                port: 0,
                connect_timeout: millis(config.redis.connect_timeout),
                command_timeout: millis(config.redis.command_timeout),
                tls: cluster.tls.clone().map(TlsSocketOptions::from),
                sentinel: false,
            };
            let cluster = Cluster {
                topology: Arc::clone(&store.topology),
                store: Some(store),
                nodes,
                socket,
                later: Vec::new(),
            };
            return Ok(Engine::with(
                sessions,
                Backend::Cluster(Box::new(cluster)),
                express,
                stats,
            ));
        }
        let target = store::redis::target::target(&config.redis, config.session.db_index)?;
        let sentinels = match &config.redis.sentinel {
            Some(sentinel) => Some(Sentinels::new(
                sentinel,
                Primary {
                    username: target.username.as_deref(),
                    password: target.password.as_deref(),
                    tls: target.tls.as_ref(),
                },
                config.redis.connect_timeout,
            )?),
            None => None,
        };
        let sessions = Sessions::new(config.session);
        let link = Link::new(
            &target.handshake,
            LinkOptions {
                check_role: sentinels.is_some(),
                ..LinkOptions::new(
                    sessions.limits,
                    config.redis.command_timeout,
                    config.redis.durability,
                )
            },
        );
        let socket = SocketOptions {
            host: target.address.host,
            port: target.address.port,
            connect_timeout: millis(config.redis.connect_timeout),
            command_timeout: millis(config.redis.command_timeout),
            tls: target.tls.map(TlsSocketOptions::from),
            sentinel: sentinels.is_some(),
        };
        let backend = Backend::Redis {
            link: Box::new(link),
            socket,
            sentinels,
        };
        Ok(Engine::with(sessions, backend, express, Stats::default()))
    }

    /// An engine on the embedded in-memory store (`mock()`); Redis options are ignored.
    #[napi(factory)]
    pub fn memory(options_json: String, express: Option<bool>) -> Result<Engine, Thrown> {
        let (config, express) = parse_config(&options_json, express.unwrap_or(false))?;
        let backend = Backend::Memory(MemoryStore::new(&config.session.prefix));
        let sessions = Sessions::new(config.session);
        Ok(Engine::with(sessions, backend, express, Stats::default()))
    }

    /// What it counted so far (see `stats`).
    #[napi]
    pub fn stats(&self) -> EngineStats {
        self.stats.snapshot()
    }

    /// The express-session entry point's own options; `null` for alt-session's.
    #[napi(getter)]
    pub fn express(&self) -> Option<ExpressSettings> {
        let express = self.express.as_ref()?;
        Some(ExpressSettings {
            rolling: express.rolling,
            resave: express.resave,
            save_uninitialized: express.save_uninitialized,
            unset_destroy: express.unset_destroy,
            proxy: express.proxy,
            max_age: express.max_age_ms,
            expires: express.expires,
            user_of: express.user_of,
            cookie_per_request: express.cookie_per_request,
            genid: express.genid,
        })
    }

    /// The express-session entry point's `Set-Cookie` for `id`, expiring at
    /// `expires_at` (unix ms), or with the browser session (`null`);
    /// `attributes_json`: the cookie's own attributes (`{ path, domain,
    /// httpOnly, secure, sameSite, partitioned, priority }`) where they
    /// differ from the options' (`ERR_SESSION_ARGUMENT` when one is wrong).
    #[napi]
    pub fn cookie_until(
        &self,
        id: String,
        expires_at: Option<f64>,
        parser_secret: Option<String>,
        request_secure: bool,
        attributes_json: Option<String>,
    ) -> Result<String, Thrown> {
        let attributes = match attributes_json {
            Some(json) => {
                let value = serde_json::from_str(&json).map_err(|err| {
                    SessionError::caused_by(ErrorCode::Argument, "req.session.cookie", &err)
                })?;
                let own = self.sessions.session.cookie.with_attributes(&value);
                Some(own.map_err(|err| SessionError {
                    message: config::in_express_names(&err.message),
                    ..err
                })?)
            }
            None => None,
        };
        // 0, the epoch, is an expiry too: a cookie gone at once.
        let expires_at = expires_at
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| ms as u64);
        Ok(self.sessions.cookie_until(
            &id,
            expires_at,
            attributes.as_ref(),
            parser_secret.as_deref(),
            request_secure,
        )?)
    }

    /// Where to open the Redis socket; `null` for the in-memory store and a
    /// cluster (see `nodeSocketOptions`).
    #[napi(getter)]
    pub fn socket_options(&self) -> Option<SocketOptions> {
        match &self.backend {
            Backend::Memory(_) | Backend::Cluster(_) => None,
            Backend::Redis { socket, .. } => Some(socket.clone()),
        }
    }

    /// On a cluster: where to open the socket of primary `node` (a number an
    /// outcome's `nodeActions()` named); `null` elsewhere.
    #[napi]
    pub fn node_socket_options(&self, node: u32) -> Option<SocketOptions> {
        let Backend::Cluster(cluster) = &self.backend else {
            return None;
        };
        let Address { host, port } = cluster.nodes.address(node as usize)?.clone();
        Some(SocketOptions {
            host,
            port,
            ..cluster.socket.clone()
        })
    }

    /// On a cluster, after an outcome with the `Nodes` flag: the primaries
    /// whose sockets have something to do, as `[node, flags, node, flags, ...]`.
    #[napi]
    pub fn node_actions(&mut self) -> Vec<u32> {
        match &mut self.backend {
            Backend::Cluster(cluster) => cluster.nodes.take_actions(),
            _ => Vec::new(),
        }
    }

    /// On a cluster, after an outcome with the `Later` flag: the outcome of
    /// the batches finishing on tokio (never rejected).
    #[napi(catch_unwind, ts_return_type = "Promise<Outcome>")]
    pub fn later<'env>(&mut self, env: &'env Env) -> Result<PromiseRaw<'env, Outcome>, Thrown> {
        let later = match &mut self.backend {
            Backend::Cluster(cluster) => std::mem::take(&mut cluster.later),
            _ => Vec::new(),
        };
        env.spawn_future(async move {
            Ok(Outcome {
                flags: 0,
                finished: futures_util::future::join_all(later).await,
            })
        })
        .map_err(internal)
    }

    /// Whether `next()` waits for the per-request idle refresh.
    #[napi(getter)]
    pub fn await_touch(&self) -> bool {
        self.sessions.session.await_touch
    }

    /// `session.refreshErrors`: `'next'` or `'ignore'`.
    #[napi(getter)]
    pub fn refresh_errors(&self) -> &'static str {
        if self.sessions.session.refresh_errors_to_next {
            "next"
        } else {
            "ignore"
        }
    }

    /// Whether a new visitor's session waits for its first write (`session.lazy`).
    #[napi(getter)]
    pub fn lazy(&self) -> bool {
        self.sessions.session.lazy
    }

    /// `session.maxSessionsPerUser`: how many ids a user's index lists at most.
    #[napi(getter)]
    pub fn max_sessions_per_user(&self) -> u32 {
        self.sessions.limits.max_sessions_per_user as u32
    }

    /// The cookie's name, for reading `req.signedCookies[name]`.
    #[napi(getter)]
    pub fn cookie_name(&self) -> String {
        self.sessions.session.cookie.name.clone()
    }

    /// Whether a cookie's `Secure` flag follows the request (`secure: 'auto'`):
    /// only then does the middleware work out whether the request is secure.
    #[napi(getter)]
    pub fn secure_follows_request(&self) -> bool {
        self.sessions.session.cookie.secure == config::SecureMode::Auto
    }

    /// Whether the engine verifies cookies itself (`session.secret` given), or
    /// relies on cookie-parser's `req.signedCookies` and `req.secret`.
    #[napi(getter)]
    pub fn has_secret(&self) -> bool {
        !self.sessions.session.secrets.is_empty()
    }

    /// Resolves the session of a request. With `session.secret`, from the raw
    /// `Cookie` header; otherwise from the id cookie-parser verified
    /// (`parser_id`), signing new cookies with `parser_secret` (`req.secret`).
    #[napi(catch_unwind)]
    pub fn open(
        &self,
        cookie_header: Option<String>,
        parser_id: Option<String>,
        parser_secret: Option<String>,
        request_secure: bool,
    ) -> Result<Either<String, OpenedSession>, Thrown> {
        let opened = self.sessions.open(
            cookie_header.as_deref(),
            parser_id.as_deref(),
            parser_secret.as_deref(),
            request_secure,
        )?;
        // A returning visitor whose cookie stands, the usual request, is just
        // its id: an object built through N-API costs a property store each
        // (1.2 µs). A signed-in session's id says so by its length (BOUND_ID_LENGTH).
        if !opened.is_new && !opened.may_create && opened.set_cookie.is_none() {
            return Ok(Either::A(opened.id));
        }
        Ok(Either::B(opened.into()))
    }

    /// A fresh session for a request that moves to one; `bound` for one
    /// that signs in (`login()`), `remember` for one whose cookie is
    /// persistent (`login(user, { remember: true })`).
    #[napi]
    pub fn open_fresh(
        &self,
        bound: bool,
        remember: bool,
        parser_secret: Option<String>,
        request_secure: bool,
    ) -> Result<OpenedSession, Thrown> {
        let opened =
            self.sessions
                .open_fresh(bound, remember, parser_secret.as_deref(), request_secure)?;
        Ok(opened.into())
    }

    /// The `Set-Cookie` of a persistent session's renewal, `max_age_ms` from
    /// now (what its refresh answered).
    #[napi]
    pub fn renewed_cookie(
        &self,
        id: String,
        max_age_ms: f64,
        parser_secret: Option<String>,
        request_secure: bool,
    ) -> Result<String, Thrown> {
        let max_age = if max_age_ms.is_finite() && max_age_ms > 0.0 {
            max_age_ms as u64
        } else {
            0
        };
        Ok(self
            .sessions
            .renewed_cookie(&id, max_age, parser_secret.as_deref(), request_secure)?)
    }

    /// A new persistent cookie's `Max-Age`, in ms (see `Limits::cookie_max_age_secs`).
    #[napi(getter)]
    pub fn cookie_max_age_ms(&self) -> f64 {
        (self.sessions.limits.cookie_max_age_secs() * 1000) as f64
    }

    /// Whether every session's cookie is persistent (`session.persistent`).
    #[napi(getter)]
    pub fn persistent(&self) -> bool {
        self.sessions.limits.persistent
    }

    /// Throws `ERR_SESSION_ARGUMENT` for an id the engine would not take
    /// (from the express-session entry point's `genid`).
    #[napi]
    pub fn check_id(&self, id: String) -> Result<(), Thrown> {
        Ok(sid::ensure_valid(&id)?)
    }

    /// Throws what `login(user, { meta })` would fail with, before it moves anything.
    #[napi]
    pub fn check_login(&self, user: String, meta: Option<String>) -> Result<(), Thrown> {
        Ok(self.sessions.check_login(&user, meta.as_deref())?)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    #[napi]
    pub fn clear_cookie(&self, request_secure: bool) -> String {
        self.sessions.clear_cookie(request_secure)
    }

    /// Runs a batch of operations (see [`batch`]). In memory it finishes
    /// here; on Redis its commands wait in the output (or for a connection);
    /// on a cluster the outcome is a Promise.
    #[napi(catch_unwind, ts_return_type = "Outcome | Promise<Outcome>")]
    pub fn submit<'env>(
        &mut self,
        env: &'env Env,
        batch_id: u32,
        words: Uint32ArraySlice,
        text: Utf16String,
    ) -> Result<Either<Outcome, PromiseRaw<'env, Outcome>>, Thrown> {
        let parsed = batch::parse(&words, &text)?;
        let submitted = self.stats.submitted(parsed.kinds);
        let items = self.sessions.prepare(parsed.ops);
        let limits = self.sessions.limits;
        Ok(Either::A(match &mut self.backend {
            Backend::Cluster(cluster) => {
                let Some(store) = &cluster.store else {
                    self.stats.finished::<Reply>(&submitted, &[]); // not pending: refused
                    return Err(sessions::closed().into());
                };
                if cluster.topology.readings() > cluster.nodes.reading() {
                    cluster.nodes.update(&cluster.topology.slot_map());
                }
                if let Some(routes) = cluster.nodes.route(&items) {
                    cluster
                        .nodes
                        .submit(batch_id, items, routes, Instant::now());
                    self.in_flight.insert(batch_id, submitted);
                    return Ok(Either::A(self.on_socket(None, |_| {})));
                }
                let (counted, after) = cluster.nodes.elsewhere(&items);
                let count = items.len();
                let results = store.submit(items, after);
                let stats = self.stats.clone();
                // Never rejected: a batch that cannot run fails call by call.
                let outcome = env.spawn_future(async move {
                    let results = answers(results, count).await;
                    drop(counted); // answered: the slots may go direct again
                    stats.finished(&submitted, &results);
                    Ok(Outcome {
                        flags: 0,
                        finished: vec![Finished { batch_id, results }],
                    })
                });
                return Ok(Either::B(outcome.map_err(internal)?));
            }
            Backend::Memory(store) => {
                let results = items
                    .into_iter()
                    .map(|item| match item {
                        Item::Ready(result) => result,
                        Item::Run(key, op) => store.execute(&key, op, limits),
                    })
                    .collect::<Vec<_>>();
                self.stats.finished(&submitted, &results);
                Outcome {
                    flags: 0,
                    finished: vec![Finished { batch_id, results }],
                }
            }
            Backend::Redis { link, .. } => {
                link.submit(batch_id, items, Instant::now());
                self.in_flight.insert(batch_id, submitted);
                return Ok(Either::A(self.on_socket(None, |_| {})));
            }
        }))
    }

    // The socket's events. Each takes, last, the cluster's primary whose
    // socket it is (`node`, as `nodeActions()` named it); none on one server.

    /// The socket connected.
    #[napi(catch_unwind)]
    pub fn connected(&mut self, node: Option<u32>) -> Outcome {
        self.stats.connected();
        self.on_socket(node, Link::connected)
    }

    /// The first `length` bytes of `buffer` were read from the socket (the
    /// buffer is the socket's reusable read buffer).
    #[napi(catch_unwind)]
    pub fn received(&mut self, buffer: BufferSlice<'_>, length: u32, node: Option<u32>) -> Outcome {
        let bytes = &buffer[..(length as usize).min(buffer.len())];
        self.on_socket(node, |link| link.received(bytes))
    }

    /// The socket failed or closed, or no connection could be made: `code`
    /// says how (`ERR_SESSION_TIMEOUT` for one dropped for not answering,
    /// `ERR_SESSION_TLS`, a code `discoverPrimary()` rejected with...;
    /// `ERR_SESSION_CONNECTION` for anything else).
    #[napi(catch_unwind)]
    pub fn lost(&mut self, reason: String, code: String, node: Option<u32>) -> Outcome {
        let code = ErrorCode::from_code(&code).unwrap_or(ErrorCode::Connection);
        match &mut self.backend {
            // Under Sentinel the next connection asks where the primary is: this one may have moved.
            Backend::Redis {
                sentinels: Some(sentinels),
                ..
            } => sentinels.forget_primary(),
            // A primary lost: its calls go to redis-rs until the topology says it answers.
            Backend::Cluster(cluster) => cluster.nodes.lost(node.unwrap_or(u32::MAX) as usize),
            _ => {}
        }
        self.on_socket(node, |link| link.lost(&reason, code))
    }

    /// Fails what is overdue (after `overdueIn()` said so): see `Link::expire`.
    #[napi(catch_unwind)]
    pub fn expire(&mut self, node: Option<u32>) -> Outcome {
        self.on_socket(node, |link| link.expire(Instant::now()))
    }

    /// Under Sentinel: follows the sentinels' announcements from now on (see
    /// `store::sentinel`). `wake` is called, on Node's thread, whenever
    /// `sentinelNews()` has something; it never keeps the process alive.
    #[napi(catch_unwind)]
    pub fn watch_sentinels(&self, wake: Function<(), ()>) -> Result<(), Thrown> {
        let Backend::Redis {
            sentinels: Some(sentinels),
            ..
        } = &self.backend
        else {
            return Ok(());
        };
        sentinels.watch(waker(wake)?);
        Ok(())
    }

    /// Acts on what the sentinels said since the last call.
    #[napi(catch_unwind)]
    pub fn sentinel_news(&mut self) -> Outcome {
        let news = match &self.backend {
            Backend::Redis {
                sentinels: Some(sentinels),
                ..
            } => sentinels.take_news(),
            _ => Vec::new(),
        };
        let switched = news.contains(&News::Switched);
        let mut outcome = self.on_socket(None, |link| {
            for news in news {
                match news {
                    News::FailoverStarted => link.hold_writes(),
                    News::FailoverOver => link.release_writes(),
                    News::Switched => link.primary_moved(),
                }
            }
        });
        if switched {
            outcome.flags |= LinkFlag::Failover as u32;
        }
        outcome
    }

    /// On a cluster: follows its topology from now on (see
    /// `store::redis::topology`). `wake` is called, on Node's thread,
    /// whenever `clusterNews()` has something; it never keeps the process alive.
    #[napi(catch_unwind)]
    pub fn watch_cluster(&self, wake: Function<(), ()>) -> Result<(), Thrown> {
        let Some(topology) = self.topology() else {
            return Ok(());
        };
        topology.watch(waker(wake)?);
        Ok(())
    }

    /// On a cluster: what changed since the last call (for the middleware's events).
    #[napi]
    pub fn cluster_news(&self) -> Vec<ClusterEvent> {
        let Some(topology) = self.topology() else {
            return Vec::new();
        };
        topology
            .take_news()
            .into_iter()
            .map(ClusterEvent::from)
            .collect()
    }

    /// On a cluster: its primaries as last read, and whether each answered.
    #[napi]
    pub fn cluster_nodes(&self) -> Vec<ClusterNode> {
        let Some(topology) = self.topology() else {
            return Vec::new();
        };
        let nodes = topology.primaries().into_iter();
        nodes
            .map(|(Address { host, port }, up)| ClusterNode { host, port, up })
            .collect()
    }

    /// Under Sentinel: the primary as named last (by a lookup or by
    /// `+switch-master`); `null` before the first, or elsewhere.
    #[napi(getter)]
    pub fn sentinel_primary(&self) -> Option<PrimaryAddress> {
        let Backend::Redis {
            sentinels: Some(sentinels),
            ..
        } = &self.backend
        else {
            return None;
        };
        let Address { host, port } = sentinels.known_primary()?;
        Some(PrimaryAddress { host, port })
    }

    /// Under Sentinel: a Promise of the primary's address, as the sentinels
    /// name it (asked on napi's tokio runtime), or of an `Error` with a code
    /// when they cannot, within `connectTimeout` (never rejected).
    #[napi(catch_unwind, ts_return_type = "Promise<PrimaryAddress | Error>")]
    pub fn discover_primary<'env>(
        &self,
        env: &'env Env,
    ) -> Result<PromiseRaw<'env, Either<PrimaryAddress, Failure>>, Thrown> {
        let Backend::Redis {
            sentinels: Some(sentinels),
            ..
        } = &self.backend
        else {
            return Err(
                SessionError::config("discoverPrimary: this engine has no sentinels").into(),
            );
        };
        let sentinels = Arc::clone(sentinels);
        env.spawn_future(async move {
            Ok(match sentinels.primary().await {
                Ok(Address { host, port }) => Either::A(PrimaryAddress { host, port }),
                Err(err) => Either::B(Failure(err)),
            })
        })
        .map_err(internal)
    }

    /// The bytes to write now (after an outcome with the OUTPUT flag).
    #[napi]
    pub fn take_output<'env>(
        &mut self,
        env: &'env Env,
        node: Option<u32>,
    ) -> Result<BufferSlice<'env>, Thrown> {
        let Some(link) = self.link(node) else {
            return BufferSlice::copy_from(env, []).map_err(internal);
        };
        let bytes = BufferSlice::copy_from(env, link.output());
        link.clear_output();
        bytes.map_err(internal)
    }

    /// Writes the output straight to the socket's descriptor `fd`, as far as
    /// the kernel takes it without blocking; returns whether some is left
    /// (then `takeOutput()` and `socket.write` it). JavaScript calls this only
    /// when nothing of its own waits to be written, so the order holds. It
    /// spares each batch a Buffer and Node's stream machinery.
    #[napi(catch_unwind)]
    pub fn write_output(&mut self, fd: i32, node: Option<u32>) -> bool {
        let Some(link) = self.link(node) else {
            return false;
        };
        let written = write_some(fd, link.output());
        link.consume_output(written);
        !link.output().is_empty()
    }

    /// Milliseconds until the oldest unanswered batch is overdue (0: it
    /// is, drop the connection), or -1 when nothing waits.
    #[napi]
    pub fn overdue_in(&mut self, node: Option<u32>) -> i64 {
        self.link(node)
            .and_then(|link| link.overdue_in(Instant::now()))
            .map_or(-1, |left| left.as_millis().min(i64::MAX as u128) as i64)
    }

    /// Refuses new work from now on (`ERR_SESSION_CLOSED`); batches already
    /// submitted still finish. JavaScript closes the socket once they have.
    #[napi]
    pub fn close(&mut self) {
        self.sessions.close();
        match &mut self.backend {
            Backend::Memory(store) => store.close(),
            // The dispatcher finishes the batches it has, then ends with its connections.
            Backend::Cluster(cluster) => {
                cluster.store = None;
                cluster.topology.stop();
            }
            Backend::Redis { sentinels, .. } => {
                if let Some(sentinels) = sentinels {
                    sentinels.stop();
                }
            }
        }
    }
}

impl Engine {
    fn with(
        sessions: Sessions,
        backend: Backend,
        express: Option<config::ExpressOptions>,
        stats: Stats,
    ) -> Engine {
        Engine {
            sessions,
            backend,
            express,
            stats,
            in_flight: HashMap::new(),
        }
    }

    /// A cluster's topology, until it is closed.
    fn topology(&self) -> Option<&Topology> {
        match &self.backend {
            Backend::Cluster(cluster) if cluster.store.is_some() => Some(&cluster.topology),
            _ => None,
        }
    }

    /// The link of a socket: one server's, or a cluster's primary `node`'s.
    fn link(&mut self, node: Option<u32>) -> Option<&mut Link> {
        match (&mut self.backend, node) {
            (Backend::Redis { link, .. }, None) => Some(link),
            (Backend::Cluster(cluster), Some(node)) => cluster.nodes.link_mut(node as usize),
            _ => None,
        }
    }

    /// Hands a socket event to its link (`node`: a cluster's primary's, or
    /// none: the batch just submitted there), and counts the batches that
    /// finished; nothing happens in memory.
    fn on_socket(&mut self, node: Option<u32>, event: impl FnOnce(&mut Link)) -> Outcome {
        let outcome = match &mut self.backend {
            Backend::Memory(_) => Outcome {
                flags: 0,
                finished: Vec::new(),
            },
            Backend::Redis {
                link, sentinels, ..
            } => {
                event(link);
                if link.take_wrong_primary() {
                    if let Some(sentinels) = sentinels {
                        sentinels.forget_primary();
                    }
                }
                Outcome {
                    flags: link.take_flags(),
                    finished: link.take_finished(),
                }
            }
            Backend::Cluster(cluster) => {
                if let Some(node) = node {
                    cluster.nodes.on_node(node as usize, event);
                }
                return cluster.outcome(&mut self.in_flight, &self.stats);
            }
        };
        count_finished(&mut self.in_flight, &self.stats, &outcome.finished);
        outcome
    }
}

/// Counts the batches that finished (see `Engine::in_flight`).
fn count_finished(in_flight: &mut HashMap<u32, Submitted>, stats: &Stats, finished: &[Finished]) {
    for finished in finished {
        if let Some(submitted) = in_flight.remove(&finished.batch_id) {
            stats.finished(&submitted, &finished.results);
        }
    }
}

impl Cluster {
    /// What the cluster's direct path did: batches finished, calls to run
    /// again on redis-rs (before the batches released behind them), and what
    /// the primaries' sockets must do.
    fn outcome(&mut self, in_flight: &mut HashMap<u32, Submitted>, stats: &Stats) -> Outcome {
        let happened = self.nodes.take_happened();
        for mut rerun in happened.reruns {
            let submitted = in_flight.remove(&rerun.batch_id);
            let items = std::mem::take(&mut rerun.items);
            let count = items.len();
            let answered = match &self.store {
                Some(store) => store.rerun(items),
                None => closed_receiver(),
            };
            let stats = stats.clone();
            self.later.push(
                async move {
                    let finished = rerun.finish(answers(answered, count).await);
                    if let Some(submitted) = submitted {
                        stats.finished(&submitted, &finished.results);
                    }
                    finished
                }
                .boxed(),
            );
        }
        if let Some(store) = &self.store {
            for release in happened.released {
                store.release(release);
            }
            if happened.moved {
                store.refresh();
            }
        }
        let mut flags = 0;
        if self.nodes.has_actions() {
            flags |= LinkFlag::Nodes as u32;
        }
        if !self.later.is_empty() {
            flags |= LinkFlag::Later as u32;
        }
        count_finished(in_flight, stats, &happened.finished);
        Outcome {
            flags,
            finished: happened.finished,
        }
    }
}

/// The `count` results redis-rs's dispatcher sends on `answered`; if it is
/// gone (the store closed under them), each call fails.
async fn answers(
    answered: tokio::sync::oneshot::Receiver<Vec<Result<Reply>>>,
    count: usize,
) -> Vec<Result<Reply>> {
    answered.await.unwrap_or_else(|_| {
        let ended = SessionError::new(
            ErrorCode::Connection,
            "redis cluster: the connection task ended",
        );
        vec![Err(ended); count]
    })
}

/// A receiver that reports its sender gone at once.
fn closed_receiver() -> tokio::sync::oneshot::Receiver<Vec<Result<Reply>>> {
    tokio::sync::oneshot::channel().1
}

/// `wake` as a function any thread may call: it runs on Node's thread,
/// and never keeps the process alive (a weak threadsafe function).
fn waker(wake: Function<(), ()>) -> Result<Box<dyn Fn() + Send + Sync>, Thrown> {
    let wake = wake
        .build_threadsafe_function()
        .weak::<true>()
        .build()
        .map_err(internal)?;
    Ok(Box::new(move || {
        wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }))
}

/// A peer that reset the connection makes `send` fail with EPIPE instead of
/// raising SIGPIPE (Node ignores it, but an embedder might not).
#[cfg(target_os = "linux")]
const NO_SIGPIPE: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(all(unix, not(target_os = "linux")))]
const NO_SIGPIPE: libc::c_int = 0;

/// Writes as much of `bytes` to `fd` as it takes now; how much that was.
#[cfg(unix)]
fn write_some(fd: i32, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        let rest = &bytes[written..];
        // SAFETY: `rest` is a valid slice for its whole length; `fd` is the
        // socket's open descriptor (a bad one only makes send fail).
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), NO_SIGPIPE) };
        match n {
            n if n > 0 => written += n as usize,
            // EINTR: try again; EAGAIN or an error: the rest goes through
            // `socket.write`, which reports a broken connection the usual way.
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    written
}

#[cfg(not(unix))]
fn write_some(_fd: i32, _bytes: &[u8]) -> usize {
    0
}

fn millis(duration: Duration) -> u32 {
    duration.as_millis().min(u32::MAX as u128) as u32
}
