//! Session storage. One operation type: every session method is an [`Op`] on
//! the hash of one session. Three backends run them: one Redis server
//! (found directly or through Sentinel), through a [`redis::link::Link`]
//! whose socket lives on Node's event loop; a Redis Cluster
//! ([`redis::cluster`], on redis-rs and tokio); and the embedded
//! [`memory::MemoryStore`], synchronously.

pub mod memory;
pub mod redis;

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
    /// Under `session.persistent`: [`Reply::Int`], the `Max-Age` (ms) to
    /// send the cookie again with, when its expiry would come before the
    /// session's (see [`COOKIE_FIELD`]).
    Touch,
    /// `DEL` the whole session: [`Reply::Int`] 1 when it existed, else 0.
    Destroy,
    /// Binds a session to a user at sign-in (strictly: [`Reply::Gone`] when
    /// it ended): its user id, `meta` (JSON) when given, its sign-in and
    /// last-seen times, and its lease ([`lease_until`]): the session never
    /// outlives its entry in the user's index, so a `revoke()` that reads the
    /// index finds every session still alive.
    /// `persistent`: the session is remembered, its cookie persistent
    /// (recorded in [`COOKIE_FIELD`]).
    Bind {
        user: String,
        meta: Option<String>,
        persistent: bool,
    },
    /// The per-request refresh of a signed-in session: [`Op::Touch`] that
    /// also records when it was last seen. [`Reply::Values`] `[user id,
    /// renew, cookie]`, `renew` set when less than half of its lease is
    /// left, `cookie` `None` for a cookie that ends with the browser
    /// session, else the `Max-Age` (ms) to send it again with, `"0"` when
    /// it need not be; [`Reply::Gone`] when the session ended.
    Seen,
    /// The express-session entry point's per-request load: [`Op::Seen`]
    /// and `HGETALL`, in one command. [`Reply::Values`] `[user id, renew,
    /// cookie, field, value, ...]` (the first three as `Seen`'s, then the
    /// app's fields, not the store's own); [`Reply::Gone`] when it ended.
    Load,
    /// Moves a signed-in session's lease on (once its index entry was moved)
    /// and refreshes its idle TTL; [`Reply::Gone`] when it ended.
    Extend,
    /// What a listing shows of a session: [`Reply::Values`] `[user id, meta,
    /// signed in at, last seen at, created at]` (all `None` for a session that
    /// ended; only the creation time for one that is not bound yet).
    Describe,
    /// On a user's index (`prefix:user:<user id>`, a sorted set of session
    /// ids scored by lease): enters `id` for a lease, and drops at most
    /// [`PRUNE_BATCH`] entries whose lease is over. `renew`: only moves on an
    /// entry that is still there (a revoked session stays out).
    /// [`Reply::Int`] 1 when the entry holds the new lease.
    IndexAdd { id: String, renew: bool },
    /// The ids in a user's index whose lease is not over, most recently
    /// renewed first, at most `maxSessionsPerUser` of them, after a bounded
    /// prune: O(cap), however large the index grew before.
    IndexList,
    /// The ids in a user's index ranked beyond `maxSessionsPerUser` by how
    /// recently they were active (at most [`PRUNE_BATCH`]): the sessions that
    /// signing in once more ends. Their entries stay until they are ended
    /// (see users.js).
    IndexOverflow,
    /// Takes ids out of a user's index.
    IndexRemove(Vec<String>),
}

impl Op {
    /// Whether the operation changes what the store holds, beyond an idle
    /// refresh: what a failover holds back, and what `redis.waitReplicas`
    /// confirms.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Op::Get(_)
                | Op::MGet(_)
                | Op::GetAll
                | Op::Touch
                | Op::Seen
                | Op::Load
                | Op::Describe
                | Op::IndexList
                | Op::IndexOverflow
        )
    }

    /// Whether, under `redis.waitReplicas`, the operation is acknowledged
    /// only once replicas confirm it: every write but a new visitor's record
    /// ([`Op::Start`]), which holds no data (confirming it would delay every
    /// first visit; lost in a crash, the visitor's next write moves to a
    /// fresh id, with nothing lost).
    pub fn confirmed_by_replicas(&self) -> bool {
        self.writes() && !matches!(self, Op::Start)
    }

    /// The session keys a call of this operation on `key` touches (a
    /// rename touches two).
    pub fn keys<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        let to = match self {
            Op::Rename { to } => Some(to.as_str()),
            _ => None,
        };
        std::iter::once(key).chain(to)
    }

    /// Whether the operation is on a user's index rather than on a session.
    pub fn is_on_user_index(&self) -> bool {
        matches!(
            self,
            Op::IndexAdd { .. } | Op::IndexList | Op::IndexOverflow | Op::IndexRemove(_)
        )
    }
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
    /// The most sessions a user's index lists (`maxSessionsPerUser`).
    pub max_sessions_per_user: usize,
    /// `session.persistent`: every session's cookie carries `Max-Age` (see
    /// [`COOKIE_FIELD`]); otherwise only those signed in to be remembered.
    pub persistent: bool,
}

impl Limits {
    /// How long a signed-in session's index entry holds (see [`Op::Bind`]):
    /// twice the idle timeout and at least two hours, so that a session in
    /// use renews it at most about once an hour ([`Op::Seen`]).
    pub fn lease_ms(&self) -> u64 {
        self.ttl_secs.max(3600) * 2000
    }

    /// The `Max-Age` (seconds) of a persistent cookie sent now for a new
    /// session: twice the idle timeout, so that a session in use sends it
    /// again about once per idle timeout ([`COOKIE_FIELD`]), and never
    /// beyond `maxLifetime`. A renewal's is the same, capped by what is left
    /// of the session's lifetime.
    pub fn cookie_max_age_secs(&self) -> u64 {
        let twice = self.ttl_secs * 2;
        self.max_lifetime_secs.map_or(twice, |life| twice.min(life))
    }
}

/// Now, in unix milliseconds, on this machine's clock.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The end of a lease taken now (unix ms).
pub fn lease_until(limits: Limits) -> u64 {
    unix_ms() + limits.lease_ms()
}

/// The hash field where a session's creation time (unix milliseconds) is kept:
/// recorded when its id is issued ([`Op::Start`]), counted from by
/// `maxLifetime`, and what keeps a session with no keys of its own alive.
/// Session keys may not start with NUL, so no key of the application can
/// collide with it.
pub const CREATED_FIELD: &str = "\0created";

/// The hash fields of a signed-in session (see [`Op::Bind`]); like
/// [`CREATED_FIELD`], out of the application's reach.
pub const USER_FIELD: &str = "\0user";
pub const META_FIELD: &str = "\0meta";
pub const LOGIN_FIELD: &str = "\0login";
pub const SEEN_FIELD: &str = "\0seen";
pub const UNTIL_FIELD: &str = "\0until";
/// The claim of a move under way on a cluster (`regenerate()`, see
/// `cluster::Call::rename`), in the hash being moved.
pub const MOVING_FIELD: &str = "\0moving";
/// A persistent session's record of the cookie last sent: when it expires
/// in the browser (unix ms). A refresh that moves the session's expiry past
/// it sends the cookie again ([`Op::Touch`], [`Op::Seen`]); a session
/// without it has a cookie that ends with the browser session.
pub const COOKIE_FIELD: &str = "\0cookie";

/// Whether a hash field is the store's own (never handed to the application).
pub fn is_reserved(field: &str) -> bool {
    field.starts_with('\0')
}

/// How many entries of a user's index whose lease is over one call drops,
/// at most: a user with a million stale entries costs each call a bounded
/// amount, and the entries go over later calls.
pub const PRUNE_BATCH: usize = 100;

/// What an index entry's score adds to its session's lease: the entry must
/// outlast the session even when the clocks of the nodes holding the two
/// keys (a cluster) differ by this much.
pub const INDEX_MARGIN_MS: u64 = 60_000;

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

/// A write to a session that a `regenerate()` in another request is moving
/// to a new id (on a cluster, where the move takes several steps).
pub fn being_moved() -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::Conflict,
        "another request is moving this session to a new id (regenerate()) at this moment; nothing was written",
    )
}

/// A write applied on the primary that fewer replicas than
/// `redis.waitReplicas` confirmed (`what` says how many, or what happened)
/// within `timeout`.
pub fn not_replicated(what: &str, timeout: std::time::Duration) -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::NotReplicated,
        format!(
            "the write was applied on the primary, but {what} within waitTimeout ({} ms): it may be lost if the primary fails now",
            timeout.as_millis()
        ),
    )
}

pub fn too_many_fields(max_fields: usize) -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::TooLarge,
        format!("the write would take the session over session.maxFields ({max_fields} keys)"),
    )
}
