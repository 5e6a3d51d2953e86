//! N-API surface of the engine: the `Engine` class that `engine.js` drives.
//! Only conversion lives here; the logic is in the modules below.
//!
//! Session operations cross the boundary in batches (see [`batch`]): one
//! `submit` call carries every operation JavaScript issued in a tick, the
//! store runs them as one pipeline, and one call back into JavaScript (a
//! threadsafe function made once per engine) delivers all the results. A
//! promise, a threadsafe function and two thread wake-ups per operation is
//! what makes a naive `async fn` per command slower than a JS Redis client.

#![deny(clippy::all)]

pub mod batch;
pub mod config;
pub mod cookie;
pub mod engine;
pub mod error;
pub mod sid;
pub mod store;

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{spawn, within_runtime_if_available, Function, ToNapiValue, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsError, Status};
use napi_derive::napi;

use config::Config;
use engine::Core;
use error::{ErrorCode, Result, SessionError};
use store::memory::MemoryStore;
use store::redis::RedisStore;
use store::{Reply, Store};

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

/// The results of one batch, delivered to JavaScript as
/// `[batchId, result0, result1, ...]`: a string or `null` (get), an array
/// (mget, getAll as flat pairs), a number (incr), `true` (done) or `false`
/// (the session does not exist), or an `Error` with `code`.
pub struct Completed {
    batch_id: u32,
    results: Vec<Result<Reply>>,
}

impl ToNapiValue for Completed {
    unsafe fn to_napi_value(
        raw_env: sys::napi_env,
        completed: Self,
    ) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(raw_env);
        let mut array = env.create_array(completed.results.len() as u32 + 1)?;
        array.set(0, completed.batch_id)?;
        for (index, result) in (1..).zip(completed.results) {
            match result {
                Ok(Reply::Value(value)) => array.set(index, value)?,
                Ok(Reply::Values(values)) => array.set(index, values)?,
                Ok(Reply::Pairs(pairs)) => {
                    let flat: Vec<String> = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
                    array.set(index, flat)?
                }
                Ok(Reply::Done) => array.set(index, true)?,
                Ok(Reply::Gone) => array.set(index, false)?,
                Ok(Reply::Int(value)) => array.set(index, value as f64)?,
                Err(err) => array.set(index, js_error(&env, err))?,
            }
        }
        unsafe { ToNapiValue::to_napi_value(raw_env, array) }
    }
}

/// An `Error` whose `code` is the stable session error code.
fn js_error(env: &Env, err: SessionError) -> Unknown<'_> {
    JsError::from(napi::Error::new(err.code.as_str(), err.message)).into_unknown(*env)
}

/// Weak: an idle engine never keeps Node alive; `submit` references it
/// while batches are in flight, so a pending call does.
type Completion = ThreadsafeFunction<Completed, (), Completed, Status, false, true>;

#[napi]
pub struct Engine {
    core: Arc<Core>,
    completion: Arc<Completion>,
    /// Batches in flight; only touched on the JS thread (submit, completion).
    busy: Arc<AtomicUsize>,
}

fn parse_config(options_json: &str) -> Result<Config> {
    let value = serde_json::from_str(options_json)
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "options", &err))?;
    Config::from_json(&value)
}

#[napi]
impl Engine {
    /// An engine on Redis. `options_json` is `JSON.stringify(options)`;
    /// `on_complete` receives every finished batch.
    #[napi(factory)]
    pub fn redis(
        options_json: String,
        on_complete: Function<'_, Completed, ()>,
    ) -> napi::Result<Engine> {
        let config = parse_config(&options_json)?;
        let info = store::redis::connection_info(&config.redis, config.session.db_index)?;
        let store = within_runtime_if_available(|| {
            RedisStore::new(
                info,
                config.redis.connect_timeout,
                config.redis.command_timeout,
            )
        })?;
        Engine::new(Arc::new(store), config, on_complete)
    }

    /// An engine on the embedded in-memory store (`mock()`); Redis options are ignored.
    #[napi(factory)]
    pub fn memory(
        options_json: String,
        on_complete: Function<'_, Completed, ()>,
    ) -> napi::Result<Engine> {
        let config = parse_config(&options_json)?;
        Engine::new(Arc::new(MemoryStore::new()), config, on_complete)
    }

    /// Whether `next()` waits for the per-request idle refresh.
    #[napi(getter)]
    pub fn await_touch(&self) -> bool {
        self.core.session.await_touch
    }

    /// The cookie's name, for reading `req.signedCookies[name]`.
    #[napi(getter)]
    pub fn cookie_name(&self) -> String {
        self.core.session.cookie.name.clone()
    }

    /// Whether the engine verifies cookies itself (`session.secret` given), or
    /// relies on cookie-parser's `req.signedCookies` and `req.secret`.
    #[napi(getter)]
    pub fn has_secret(&self) -> bool {
        !self.core.session.secrets.is_empty()
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
        let opened = self.core.open(
            cookie_header.as_deref(),
            parser_id.as_deref(),
            parser_secret.as_deref(),
            request_secure,
        )?;
        Ok(OpenedSession {
            id: opened.id,
            is_new: opened.is_new,
            set_cookie: opened.set_cookie,
        })
    }

    /// The `Set-Cookie` value that removes the session cookie.
    #[napi]
    pub fn clear_cookie(&self, request_secure: bool) -> String {
        self.core.clear_cookie(request_secure)
    }

    /// Starts a batch of operations (see [`batch`]); its results arrive
    /// through `on_complete` as `[batch_id, ...results]`.
    #[napi]
    pub fn submit(
        &self,
        env: Env,
        batch_id: u32,
        header: Vec<u32>,
        strings: Vec<String>,
    ) -> napi::Result<()> {
        let ops = batch::parse(&header, strings)?;
        if self.busy.fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: on the JS thread, with a live threadsafe function.
            check(unsafe { sys::napi_ref_threadsafe_function(env.raw(), self.completion.raw()) })?;
        }
        let core = Arc::clone(&self.core);
        let completion = Arc::clone(&self.completion);
        spawn(async move {
            let results = core.run_batch(ops).await;
            completion.call(
                Completed { batch_id, results },
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        });
        Ok(())
    }

    /// Refuses new work, waits for the calls in flight, then lets the connection close.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.core.close().await;
        Ok(())
    }
}

impl Engine {
    fn new(
        store: Arc<dyn Store>,
        config: Config,
        on_complete: Function<'_, Completed, ()>,
    ) -> napi::Result<Engine> {
        let busy = Arc::new(AtomicUsize::new(0));
        // The completion callback needs its own handle to unreference itself;
        // the handle only exists once it is built, hence the cell.
        let raw_completion = Arc::new(AtomicPtr::new(std::ptr::null_mut()));
        let completion: Completion = {
            let busy = Arc::clone(&busy);
            let raw_completion = Arc::clone(&raw_completion);
            on_complete
                .build_threadsafe_function::<Completed>()
                .callee_handled::<false>()
                .weak::<true>()
                .build_callback(move |ctx| {
                    if busy.fetch_sub(1, Ordering::Relaxed) == 1 {
                        let raw = raw_completion.load(Ordering::Relaxed);
                        // SAFETY: on the JS thread, with the live threadsafe function.
                        check(unsafe { sys::napi_unref_threadsafe_function(ctx.env.raw(), raw) })?;
                    }
                    Ok(ctx.value)
                })?
        };
        raw_completion.store(completion.raw(), Ordering::Relaxed);
        Ok(Engine {
            core: Arc::new(Core::new(store, config.session)),
            completion: Arc::new(completion),
            busy,
        })
    }
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Status::GenericFailure,
            format!("N-API call failed with status {status}"),
        ))
    }
}
