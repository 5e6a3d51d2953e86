//! The store's Lua scripts. Each lives in its own file under `scripts/`,
//! which says what it takes (`KEYS`, `ARGV`) and what it answers; here they
//! are put together, once: the names of the reserved hash fields (from the
//! constants of `store`, so that Rust and Lua name them in one place), then
//! the functions the scripts share (`scripts/session.lua`, and for the user
//! indexes `scripts/index.lua`), then the script itself.

use std::sync::LazyLock;

use redis::{Cmd, Script};

use super::with;
use crate::store::{
    CREATED_FIELD, LOGIN_FIELD, META_FIELD, MOVING_FIELD, SEEN_FIELD, UNTIL_FIELD, USER_FIELD,
};

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
    pub const ALL: [Lua; 15] = [
        Lua::Start,
        Lua::Write,
        Lua::Incr,
        Lua::Touch,
        Lua::Rename,
        Lua::Bind,
        Lua::Seen,
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
    /// `keys` first, the arguments are the caller's to append.
    pub fn call(self, keys: &[&str], with_body: bool) -> Cmd {
        let (body, script) = &SCRIPTS[self as usize];
        let cmd = match with_body {
            true => with(redis::cmd("EVAL"), body.as_str()),
            false => with(redis::cmd("EVALSHA"), script.get_hash()),
        };
        with(with(cmd, keys.len()), keys)
    }
}

/// The reserved hash fields, as the Lua names them.
fn field_names() -> String {
    let fields = [
        ("CREATED", CREATED_FIELD),
        ("USER", USER_FIELD),
        ("META", META_FIELD),
        ("LOGIN", LOGIN_FIELD),
        ("SEEN", SEEN_FIELD),
        ("UNTIL", UNTIL_FIELD),
        ("MOVING", MOVING_FIELD),
    ];
    let mut lua = String::from("-- The reserved hash fields (store/mod.rs).\n");
    for (name, field) in fields {
        // Every reserved field starts with NUL, which a Lua string writes `\0`.
        let literal = field.replace('\0', "\\0");
        lua.push_str(&format!("local {name} = '{literal}'\n"));
    }
    lua
}

/// Every script, put together, with its digest, indexed by [`Lua`].
static SCRIPTS: LazyLock<Vec<(String, Script)>> = LazyLock::new(|| {
    let fields = field_names();
    Lua::ALL
        .iter()
        .map(|lua| {
            let (shares, own) = lua.source();
            let mut body = fields.clone();
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
