//! N-API surface of the engine: the `Engine` class that `index.js` drives.
//! Only conversion lives here; the logic is in the modules below. Values
//! cross as strings (JSON stays in JavaScript) and every method is one call.

#![deny(clippy::all)]

pub mod config;
pub mod cookie;
pub mod error;
pub mod sid;
pub mod store;

use std::sync::Arc;

use napi::bindgen_prelude::within_runtime_if_available;
use napi_derive::napi;

use config::{Config, SecureMode, SessionOptions};
use error::{ErrorCode, SessionError};
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::{InFlight, Op, Reply, Store};

/// One tokio worker: Node's own thread does the JavaScript, and on a small
/// box a second busy worker only steals the CPU Node needs.
#[napi_derive::module_init]
fn init() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("alt-session")
        .enable_all()
        .build()
        .expect("tokio runtime");
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
}

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
    /// A `Set-Cookie` value to send, when the visitor needs a (new or re-signed) cookie.
    pub set_cookie: Option<String>,
}

#[napi]
pub struct Engine {
    store: Arc<dyn Store>,
    session: SessionOptions,
    in_flight: InFlight,
}

fn parse_config(options_json: &str) -> Result<Config, SessionError> {
    let value = serde_json::from_str(options_json)
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "options", &err))?;
    Config::from_json(&value)
}

#[napi]
impl Engine {
    /// An engine on Redis. `options_json` is `JSON.stringify(options)`.
    #[napi(factory)]
    pub fn redis(options_json: String) -> napi::Result<Engine> {
        let config = parse_config(&options_json)?;
        let info = store::redis::connection_info(&config.redis, config.session.db_index)?;
        let store = within_runtime_if_available(|| {
            RedisStore::new(
                info,
                config.redis.connect_timeout,
                config.redis.command_timeout,
            )
        })?;
        Ok(Engine::with_store(Arc::new(store), config.session))
    }

    /// An engine on the embedded in-memory store (`mock()`); Redis options are ignored.
    #[napi(factory)]
    pub fn memory(options_json: String) -> napi::Result<Engine> {
        let config = parse_config(&options_json)?;
        Ok(Engine::with_store(
            Arc::new(MemoryStore::new()),
            config.session,
        ))
    }

    /// Whether `next()` waits for the per-request idle refresh.
    #[napi(getter)]
    pub fn await_touch(&self) -> bool {
        self.session.await_touch
    }

    /// The cookie's name, for reading `req.signedCookies[name]`.
    #[napi(getter)]
    pub fn cookie_name(&self) -> String {
        self.session.cookie.name.clone()
    }

    /// Whether the engine verifies cookies itself (`session.secret` given), or
    /// relies on cookie-parser's `req.signedCookies` and `req.secret`.
    #[napi(getter)]
    pub fn has_secret(&self) -> bool {
        !self.session.secrets.is_empty()
    }

    /// Resolves the session of a request. With `session.secret`, from the raw
    /// `Cookie` header; otherwise from the id cookie-parser verified
    /// (`parser_id`), signing new cookies with `parser_secret` (`req.secret`).
    #[napi]
    pub fn open(
        &self,
        cookie_header: Option<String>,
        parser_id: Option<String>,
        parser_secret: Option<String>,
        request_secure: bool,
    ) -> napi::Result<OpenedSession> {
        let (known, signing_secret) = cookie::identify(
            &self.session.secrets,
            &self.session.cookie.name,
            cookie_header.as_deref(),
            parser_id.as_deref(),
            parser_secret.as_deref(),
        )?;
        let secure = self.is_secure(request_secure);
        Ok(match known {
            // Signed by a retired secret: re-sign with the current one.
            Some((id, secret_index)) => OpenedSession {
                set_cookie: (secret_index > 0)
                    .then(|| cookie::set_cookie(&self.session.cookie, &id, signing_secret, secure)),
                id,
                is_new: false,
            },
            None => {
                let id = sid::generate()?;
                OpenedSession {
                    set_cookie: Some(cookie::set_cookie(
                        &self.session.cookie,
                        &id,
                        signing_secret,
                        secure,
                    )),
                    id,
                    is_new: true,
                }
            }
        })
    }

    /// The `Set-Cookie` value that removes the session cookie.
    #[napi]
    pub fn clear_cookie(&self, request_secure: bool) -> String {
        cookie::clear_cookie(&self.session.cookie, self.is_secure(request_secure))
    }

    #[napi]
    pub async fn get(&self, id: String, field: String) -> napi::Result<Option<String>> {
        match self.run(&id, Op::Get(field)).await? {
            Reply::Value(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    #[napi]
    pub async fn mget(&self, id: String, fields: Vec<String>) -> napi::Result<Vec<Option<String>>> {
        match self.run(&id, Op::MGet(fields)).await? {
            Reply::Values(values) => Ok(values),
            other => Err(unexpected(other)),
        }
    }

    /// Every field of the session as a flat `[field, value, ...]` list.
    #[napi]
    pub async fn get_all(&self, id: String) -> napi::Result<Vec<String>> {
        match self.run(&id, Op::GetAll).await? {
            Reply::Pairs(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Sets the `[field, value, ...]` pairs of `set` and deletes `delete`,
    /// refreshing the idle TTL, in one atomic step.
    #[napi]
    pub async fn write(
        &self,
        id: String,
        set: Vec<String>,
        delete: Vec<String>,
    ) -> napi::Result<()> {
        let set = self.pairs(set)?;
        self.run(&id, Op::Write { set, delete }).await?;
        Ok(())
    }

    /// Refreshes the idle TTL.
    #[napi]
    pub async fn touch(&self, id: String) -> napi::Result<()> {
        self.run(&id, Op::Touch).await?;
        Ok(())
    }

    /// Deletes the whole session.
    #[napi]
    pub async fn destroy(&self, id: String) -> napi::Result<()> {
        self.run(&id, Op::Destroy).await?;
        Ok(())
    }

    /// Refuses new work, waits for the calls in flight, then lets the connection close.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.store.close().await;
        self.in_flight.wait_idle().await;
        Ok(())
    }
}

impl Engine {
    fn with_store(store: Arc<dyn Store>, session: SessionOptions) -> Engine {
        Engine {
            store,
            session,
            in_flight: InFlight::default(),
        }
    }

    fn is_secure(&self, request_secure: bool) -> bool {
        match self.session.cookie.secure {
            SecureMode::Never => false,
            SecureMode::Always => true,
            SecureMode::Auto => request_secure,
        }
    }

    async fn run(&self, id: &str, op: Op) -> Result<Reply, SessionError> {
        let _in_flight = self.in_flight.enter();
        sid::ensure_valid(id)?;
        ensure_fields(&op)?;
        let key = format!("{}:{}", self.session.prefix, id);
        self.store.execute(key, op, self.session.tti_secs).await
    }

    /// Pairs up a flat `[field, value, ...]` list, enforcing `maxValueBytes`.
    fn pairs(&self, flat: Vec<String>) -> Result<Vec<(String, String)>, SessionError> {
        if !flat.len().is_multiple_of(2) {
            return Err(SessionError::argument(
                "fields and values must come in pairs",
            ));
        }
        let limit = self.session.max_value_bytes;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            if value.len() > limit {
                return Err(SessionError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the value of {field:?} is {} bytes, over session.maxValueBytes ({limit})",
                        value.len()
                    ),
                ));
            }
            pairs.push((field, value));
        }
        Ok(pairs)
    }
}

/// Field names must be non-empty: the original's API has no use for `""` and
/// it is always a caller's bug.
fn ensure_fields(op: &Op) -> Result<(), SessionError> {
    let empty = match op {
        Op::Get(field) => field.is_empty(),
        Op::MGet(fields) => fields.iter().any(String::is_empty),
        Op::Write { set, delete } => {
            set.iter().any(|(f, _)| f.is_empty()) || delete.iter().any(String::is_empty)
        }
        Op::GetAll | Op::Touch | Op::Destroy => false,
    };
    if empty {
        Err(SessionError::argument(
            "session keys must be non-empty strings",
        ))
    } else {
        Ok(())
    }
}

fn unexpected(reply: Reply) -> napi::Error {
    SessionError::new(
        ErrorCode::Store,
        format!("unexpected store reply {reply:?}"),
    )
    .into()
}
