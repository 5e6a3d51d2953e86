//! Session storage. One trait, one operation type: every session method is an
//! [`Op`] on the hash of one session, and a backend runs batches of them
//! (later topologies only add implementations, not methods).

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::error::Result;

/// One operation on the hash stored for a session. Fields and values are
/// strings: JSON encoding and decoding stay in JavaScript.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `HGET`.
    Get(String),
    /// `HMGET`.
    MGet(Vec<String>),
    /// `HGETALL`.
    GetAll,
    /// `HSET` these pairs and `HDEL` those fields, then refresh the idle TTL,
    /// atomically. Unless `create`, only a session that exists is written
    /// (a dead id is never revived): [`Reply::Gone`] otherwise.
    Write {
        set: Vec<(String, String)>,
        delete: Vec<String>,
        create: bool,
    },
    /// `HINCRBY` and refresh the idle TTL, atomically; `create` as for `Write`.
    Incr {
        field: String,
        by: i64,
        create: bool,
    },
    /// Moves the session to the key `to` (`RENAME` and `EXPIRE`, atomically):
    /// no moment where both keys or neither hold the data. [`Reply::Gone`]
    /// when there is nothing to move.
    Rename { to: String },
    /// `EXPIRE` (refresh the idle TTL); a missing session stays missing.
    Touch,
    /// `DEL` the whole session.
    Destroy,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The session does not exist (a strict write or a rename found nothing).
    Gone,
    Int(i64),
    Value(Option<String>),
    Values(Vec<Option<String>>),
    Pairs(Vec<(String, String)>),
    Done,
}

/// What every write obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The idle timeout that writes and touches set.
    pub ttl_secs: u64,
    /// The most fields a session may hold; a write over it writes nothing.
    pub max_fields: usize,
    /// Absolute lifetime of a session from its creation (`maxLifetime`):
    /// no idle refresh extends it past that.
    pub max_lifetime_secs: Option<u64>,
}

/// The hash field where the Redis store keeps a session's creation time (unix
/// milliseconds) when `maxLifetime` is on. Session keys may not start with NUL,
/// so no key of the application can collide with it.
pub const CREATED_FIELD: &str = "\0created";

pub fn too_many_fields(max_fields: usize) -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::TooLarge,
        format!("the write would take the session over session.maxFields ({max_fields} keys)"),
    )
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Store: Send + Sync {
    /// Runs each `(key, op)` on the session stored at `key`, one result per
    /// operation, in order. A backend runs the batch in as few round trips as it can.
    fn execute_batch(
        &self,
        ops: Vec<(String, Op)>,
        limits: Limits,
    ) -> BoxFuture<'_, Vec<Result<Reply>>>;

    /// Stops accepting work and releases connections once in-flight work is done.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Counts the calls in flight, so that `close` can wait for them to finish.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held while one call runs; owned, so it can move into a spawned task.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    /// Resolves once no call is in flight.
    pub async fn wait_idle(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it even unpolled.
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
