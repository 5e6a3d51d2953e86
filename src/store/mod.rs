//! Session storage. One trait, one operation type: every session method is an
//! [`Op`] on the hash of one session, so a backend is a single `execute`
//! (and later topologies, or batching many ops into one round trip, only add
//! implementations, not methods).

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;

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
    /// `HSET` these pairs and `HDEL` those fields, then refresh the idle TTL, atomically.
    Write {
        set: Vec<(String, String)>,
        delete: Vec<String>,
    },
    /// `EXPIRE` (refresh the idle TTL); a missing session stays missing.
    Touch,
    /// `DEL` the whole session.
    Destroy,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Option<String>),
    Values(Vec<Option<String>>),
    Pairs(Vec<(String, String)>),
    Done,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Store: Send + Sync {
    /// Runs `op` on the session stored at `key`; `ttl_secs` is the idle timeout
    /// that writes and touches set.
    fn execute(&self, key: String, op: Op, ttl_secs: u64) -> BoxFuture<'_, Result<Reply>>;

    /// Stops accepting work and releases connections once in-flight work is done.
    fn close(&self) -> BoxFuture<'_, ()>;
}
