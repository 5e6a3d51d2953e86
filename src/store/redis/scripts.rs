//! The store's Lua scripts. Each lives in its own file under `scripts/`,
//! which says what it takes and what it answers; here they are put
//! together, once: the names the scripts share (the reserved hash fields,
//! the statuses, the flags: from Rust's constants, so that Rust and Lua name
//! them in one place), then the functions the scripts share
//! (`scripts/session.lua`, and for the user indexes `scripts/index.lua`),
//! then the script itself.
//!
//! One convention for every script:
//! - `KEYS`: what it touches, the session (or the user's index) first;
//! - `ARGV`: a head of three, `ttl` (seconds), `maxLifetime` (seconds, 0 for
//!   none) and [`Flags`], then the operation's own arguments from `ARGV[4]`
//!   ([`Lua::call`] writes the head);
//! - the reply: a table, `{status, value...}`, its first element a
//!   [`Status`] (read back by [`reply`]).

use std::sync::LazyLock;

use redis::{Cmd, Script, Value};

use super::with;
use crate::error::{ErrorCode, Result, SessionError};
use crate::store::{
    Limits, COOKIE_FIELD, CREATED_FIELD, LOGIN_FIELD, META_FIELD, MOVING_FIELD, SEEN_FIELD,
    UNTIL_FIELD, USER_FIELD,
};

/// What a script answers first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done; the value, if any, follows.
    Done = 1,
    /// The session (or the index entry, the marker) does not exist, or its
    /// lifetime or lease is over: nothing was written.
    Ended = 0,
    /// The write would take the session over `maxFields`: nothing written.
    Full = -1,
    /// A cluster move has claimed the session (`being_moved`): nothing written.
    Claimed = -2,
    /// Another request moved the session away moments ago (its marker).
    Taken = -3,
    /// A move's claim is no longer its own, or lapsed.
    Lapsed = -4,
}

impl Status {
    const ALL: [Status; 6] = [
        Status::Done,
        Status::Ended,
        Status::Full,
        Status::Claimed,
        Status::Taken,
        Status::Lapsed,
    ];

    fn lua_name(self) -> &'static str {
        match self {
            Status::Done => "DONE",
            Status::Ended => "ENDED",
            Status::Full => "FULL",
            Status::Claimed => "CLAIMED",
            Status::Taken => "TAKEN",
            Status::Lapsed => "LAPSED",
        }
    }
}

/// The bits of `ARGV[3]`; the Lua tests them with `flag(F)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// The write may create the session (its id was issued in this request).
    pub const CREATE: Flags = Flags(1);
    /// The session may be signed in (its id says so): its TTL stays within its lease.
    pub const LEASED: Flags = Flags(2);
    /// An index entry is renewed, not added.
    pub const RENEW: Flags = Flags(4);
    /// The session's cookie is persistent (`COOKIE` records it).
    pub const PERSISTENT: Flags = Flags(8);
    const ALL: [(&'static str, Flags); 4] = [
        ("CREATE", Flags::CREATE),
        ("LEASED", Flags::LEASED),
        ("RENEW", Flags::RENEW),
        ("PERSISTENT", Flags::PERSISTENT),
    ];

    /// `self`, and `other` when `on`.
    pub fn with(self, other: Flags, on: bool) -> Flags {
        if on {
            Flags(self.0 | other.0)
        } else {
            self
        }
    }
}

/// A script's reply: its [`Status`] and what follows it.
pub fn reply(value: Value) -> Result<(Status, Vec<Value>)> {
    let Value::Array(mut parts) = value else {
        return Err(odd_reply());
    };
    let status = match parts.first() {
        Some(Value::Int(code)) => Status::ALL.into_iter().find(|s| *s as i64 == *code),
        _ => None,
    };
    let status = status.ok_or_else(odd_reply)?;
    parts.remove(0);
    Ok((status, parts))
}

/// A reply of another shape than the script's contract.
pub fn odd_reply() -> SessionError {
    SessionError::new(
        ErrorCode::Store,
        "redis answered with a reply of another type than asked for",
    )
}

/// Every script: what it does is in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lua {
    Start,
    Write,
    Incr,
    Touch,
    Rename,
    Bind,
    Seen,
    Load,
    Extend,
    IndexAdd,
    IndexList,
    IndexOverflow,
    ClaimMove,
    FinishMove,
    ReleaseMove,
    UnmarkMove,
}

/// The functions a script is written against.
enum Shares {
    /// `session.lua`: TTLs, lifetime, lease, moves.
    Session,
    /// `session.lua` and `index.lua` (`index`, `prune()`).
    Index,
}

impl Lua {
    pub const ALL: [Lua; 16] = [
        Lua::Start,
        Lua::Write,
        Lua::Incr,
        Lua::Touch,
        Lua::Rename,
        Lua::Bind,
        Lua::Seen,
        Lua::Load,
        Lua::Extend,
        Lua::IndexAdd,
        Lua::IndexList,
        Lua::IndexOverflow,
        Lua::ClaimMove,
        Lua::FinishMove,
        Lua::ReleaseMove,
        Lua::UnmarkMove,
    ];

    fn source(self) -> (Shares, &'static str) {
        use Shares::{Index, Session};
        match self {
            Lua::Start => (Session, include_str!("scripts/start.lua")),
            Lua::Write => (Session, include_str!("scripts/write.lua")),
            Lua::Incr => (Session, include_str!("scripts/incr.lua")),
            Lua::Touch => (Session, include_str!("scripts/touch.lua")),
            Lua::Rename => (Session, include_str!("scripts/rename.lua")),
            Lua::Bind => (Session, include_str!("scripts/bind.lua")),
            Lua::Seen => (Session, include_str!("scripts/seen.lua")),
            Lua::Load => (Session, include_str!("scripts/load.lua")),
            Lua::Extend => (Session, include_str!("scripts/extend.lua")),
            Lua::IndexAdd => (Index, include_str!("scripts/index_add.lua")),
            Lua::IndexList => (Index, include_str!("scripts/index_list.lua")),
            Lua::IndexOverflow => (Index, include_str!("scripts/index_overflow.lua")),
            Lua::ClaimMove => (Session, include_str!("scripts/claim_move.lua")),
            Lua::FinishMove => (Session, include_str!("scripts/finish_move.lua")),
            Lua::ReleaseMove => (Session, include_str!("scripts/release_move.lua")),
            Lua::UnmarkMove => (Session, include_str!("scripts/unmark_move.lua")),
        }
    }

    /// The whole script, as Redis runs it.
    pub fn body(self) -> &'static str {
        &SCRIPTS[self as usize].0
    }

    /// `EVALSHA` of the script (Redis then neither receives nor hashes the
    /// body), or `EVAL` with its body for a Redis that does not know it yet;
    /// `keys`, then the head of `ARGV` (`ttl`, `maxLifetime`, `flags`); the
    /// operation's own arguments are the caller's to append.
    pub fn call(self, keys: &[&str], limits: Limits, flags: Flags, with_body: bool) -> Cmd {
        let (body, script) = &SCRIPTS[self as usize];
        let cmd = match with_body {
            true => with(redis::cmd("EVAL"), body.as_str()),
            false => with(redis::cmd("EVALSHA"), script.get_hash()),
        };
        let life = limits.max_lifetime_secs.unwrap_or(0);
        with(
            with(cmd, keys.len()),
            (keys, limits.ttl_secs, life, flags.0),
        )
    }
}

/// The names every script shares: the reserved hash fields, the statuses,
/// the flags, and `flag()` to test one.
fn shared_names() -> String {
    let fields = [
        ("CREATED", CREATED_FIELD),
        ("USER", USER_FIELD),
        ("META", META_FIELD),
        ("LOGIN", LOGIN_FIELD),
        ("SEEN", SEEN_FIELD),
        ("UNTIL", UNTIL_FIELD),
        ("MOVING", MOVING_FIELD),
        ("COOKIE", COOKIE_FIELD),
    ];
    let mut lua = String::from("-- The reserved hash fields (store/mod.rs).\n");
    for (name, field) in fields {
        // Every reserved field starts with NUL, which a Lua string writes `\0`.
        let literal = field.replace('\0', "\\0");
        lua.push_str(&format!("local {name} = '{literal}'\n"));
    }
    lua.push_str("-- The statuses, the first of every reply (scripts.rs, Status).\n");
    for status in Status::ALL {
        lua.push_str(&format!(
            "local {} = {}\n",
            status.lua_name(),
            status as i64
        ));
    }
    lua.push_str("-- The bits of ARGV[3] (scripts.rs, Flags).\n");
    for (name, Flags(bit)) in Flags::ALL {
        lua.push_str(&format!("local {name} = {bit}\n"));
    }
    lua.push_str("local function flag(f) return bit.band(tonumber(ARGV[3]), f) ~= 0 end\n");
    lua
}

/// Every script, put together, with its digest, indexed by [`Lua`].
static SCRIPTS: LazyLock<Vec<(String, Script)>> = LazyLock::new(|| {
    let shared = shared_names();
    Lua::ALL
        .iter()
        .map(|lua| {
            let (shares, own) = lua.source();
            let mut body = shared.clone();
            body.push_str(include_str!("scripts/session.lua"));
            if let Shares::Index = shares {
                body.push_str(include_str!("scripts/index.lua"));
            }
            body.push_str(own);
            let script = Script::new(&body);
            (body, script)
        })
        .collect()
});

/// `SCRIPT LOAD` of every script a session call runs by digest: sent as
/// each connection opens, so that `EVALSHA` finds them. Otherwise a
/// `NOSCRIPT` write would be sent again behind the commands that followed it
/// in its pipeline, and run after them. (The moves of a cluster's
/// `regenerate()` are sent whole: they are rare.)
pub fn preload() -> Vec<Cmd> {
    Lua::ALL
        .iter()
        .filter(|lua| !lua.is_move())
        .map(|lua| with(redis::cmd("SCRIPT"), ("LOAD", lua.body())))
        .collect()
}

impl Lua {
    fn is_move(self) -> bool {
        matches!(
            self,
            Lua::ClaimMove | Lua::FinishMove | Lua::ReleaseMove | Lua::UnmarkMove
        )
    }
}
