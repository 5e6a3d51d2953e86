//! Everything that talks to Redis. One server (found directly, or through
//! Sentinel) is one [`link::Link`], a connection without I/O of its own whose
//! socket lives on Node's event loop; a Redis Cluster is redis-rs's cluster
//! client on tokio ([`cluster`]). Both write the same commands and read the
//! same replies ([`commands`], the Lua in `scripts/`).
//!
//! - [`target`]: where one server is, and what a connection says first;
//! - [`commands`]: each operation as a command, each reply as a result;
//! - [`scripts`]: the Lua scripts (`scripts/*.lua`), put together once;
//! - [`link`] and [`resp`]: one connection, and the RESP reader;
//! - [`sentinel`]: where the primary is, and when it moves;
//! - [`nodes`]: a cluster's hot path, a link per primary on Node's event loop;
//! - [`cluster`] and [`moves`]: the rest of Redis Cluster on redis-rs, and `regenerate()` across slots;
//! - [`topology`]: a cluster's primaries and failovers, for operators;
//! - [`tls`]: TLS where redis-rs makes the connections.

pub mod cluster;
pub mod commands;
pub mod link;
pub mod moves;
pub mod nodes;
pub mod resp;
pub mod scripts;
pub mod sentinel;
pub mod target;
pub mod tls;
pub mod topology;

use redis::{Cmd, ToRedisArgs};

/// `cmd` with `args` appended (`Cmd::arg` borrows; this keeps it by value,
/// without a copy).
fn with(mut cmd: Cmd, args: impl ToRedisArgs) -> Cmd {
    cmd.arg(args);
    cmd
}
