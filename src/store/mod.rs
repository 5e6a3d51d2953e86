//! Session storage. One operation type: every session method is an [`Op`] on
//! the hash of one session. Two backends run them: Redis, through a
//! [`link::Link`] whose socket lives on Node's event loop, and the embedded
//! [`memory::MemoryStore`], synchronously.

pub mod cluster;
pub mod link;
pub mod memory;
pub mod redis;
pub mod resp;
pub mod sentinel;
pub mod tls;

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
    /// when there is nothing to move (the session ended): `to` then starts a
    /// session of its own. `ERR_SESSION_CONFLICT`, and nothing done, when
    /// another request moved it away within [`MOVED_MARKER`].
    Rename { to: String },
    /// Records a session whose id was just issued: its creation time, expiring
    /// after the idle timeout. From then on "the hash exists" means "the
    /// session lives", so a later request's write to it lands under its id.
    Start,
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

/// One operation of a batch, as the engine hands it over: its result already
/// known (it failed validation), or a command to run on `key`.
pub enum Item {
    Ready(crate::error::Result<Reply>),
    Run(String, Op),
}

/// A batch whose every operation has its result, in the batch's order.
pub struct Finished {
    pub batch_id: u32,
    pub results: Vec<crate::error::Result<Reply>>,
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

/// The hash field where a session's creation time (unix milliseconds) is kept:
/// recorded when its id is issued ([`Op::Start`]), counted from by
/// `maxLifetime`, and what keeps a session with no keys of its own alive.
/// Session keys may not start with NUL, so no key of the application can
/// collide with it.
pub const CREATED_FIELD: &str = "\0created";

/// How long a moved session's old key remembers the move: a second
/// `regenerate()` of the same cookie within it (a double-submitted log-in
/// form) fails rather than starting an empty session under a new cookie.
pub const MOVED_MARKER: std::time::Duration = std::time::Duration::from_secs(10);

pub fn regenerated_elsewhere() -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::Conflict,
        "regenerate(): another request regenerated this session a moment ago; nothing was renamed",
    )
}

pub fn too_many_fields(max_fields: usize) -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::TooLarge,
        format!("the write would take the session over session.maxFields ({max_fields} keys)"),
    )
}
