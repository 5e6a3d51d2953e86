//! The commands of a `regenerate()` on Redis Cluster, where the old and new
//! keys usually live in different slots and `RENAME` is refused: the steps
//! `cluster::Call::rename` takes, in its order (the scripts are in
//! `scripts/*_move.lua`). On one server a move is one script (`rename.lua`).

use redis::Cmd;

use super::scripts::{Flags, Lua};
use super::with;
use crate::store::{Limits, MOVED_MARKER};

/// A move script on `key`, the new key its first own argument.
fn move_script(lua: Lua, key: &str, to: &str, limits: Limits) -> Cmd {
    with(lua.call(&[key], limits, Flags::default(), true), to)
}

/// Step 1, on the old key's node: marks the move beside the session (`SET
/// NX`, as the one-server rename leaves its marker), so that a second
/// `regenerate()` of the same session sees it and fails; `nil` when another
/// one marked it first. The marker is a key of its own, under the session
/// prefix an ACL user is given, so it lives in another slot than the session.
pub fn mark_move(key: &str, to: &str, ms: u64) -> Cmd {
    with(redis::cmd("SET"), (moved_marker(key), to, "NX", "PX", ms))
}

/// Step 2, on the old key's node: claims the move and copies the session
/// (`claim_move.lua`).
pub fn claim_move(key: &str, to: &str, claim_ms: u64, limits: Limits) -> Cmd {
    with(move_script(Lua::ClaimMove, key, to, limits), claim_ms)
}

/// Step 3, on the new key's node: the copy, under the new key, for no
/// longer than the claim (`ttl_ms`), so that a copy whose move does not
/// complete (the process dies, the node stalls and the command lands late)
/// goes by itself; the move gives it the session's TTL once it is in place.
pub fn place_move(to: &str, dump: &[u8], ttl_ms: u64) -> Cmd {
    with(redis::cmd("RESTORE"), (to, ttl_ms, dump, "REPLACE"))
}

/// Step 4, on the old key's node, once the copy is in place: the old key
/// goes (`finish_move.lua`).
pub fn finish_move(key: &str, to: &str, claim: &str, limits: Limits) -> Cmd {
    with(move_script(Lua::FinishMove, key, to, limits), claim)
}

/// A move to `to` that failed gives up its claim, if it is still its own
/// (`release_move.lua`): the old key, left in place, is the session's again.
pub fn release_move_claim(key: &str, to: &str, limits: Limits) -> Cmd {
    move_script(Lua::ReleaseMove, key, to, limits)
}

/// A move to `to` that failed, or found nothing to move, takes its marker
/// back, if it is still its own (`unmark_move.lua`).
pub fn unmark_move(key: &str, to: &str, limits: Limits) -> Cmd {
    move_script(Lua::UnmarkMove, &moved_marker(key), to, limits)
}

/// The key of the marker a `regenerate()` leaves for [`MOVED_MARKER`] where
/// a session was: `prefix:id:moved`. Ids hold no `:`, so no session key is
/// ever shaped like it.
pub fn moved_marker(key: &str) -> String {
    let mut marker = String::with_capacity(key.len() + 6);
    marker.push_str(key);
    marker.push_str(":moved");
    marker
}

/// The marker's life, in milliseconds.
pub fn moved_marker_ms() -> u64 {
    MOVED_MARKER.as_millis() as u64
}
