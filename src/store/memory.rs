//! The embedded in-memory store behind `mock()`: one hash per session, with
//! the same semantics as Redis (a session is recorded when its id is issued,
//! a write or touch sets the expiry, an expired session reads as empty, a
//! session with no keys left still lives until it expires).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{is_reserved, LOGIN_FIELD, META_FIELD, SEEN_FIELD, USER_FIELD};
use super::{too_many_fields, unix_ms, Limits, Op, Reply};
use crate::error::{Result, SessionError};

/// How often, at most, a call also sweeps every expired session out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub struct MemoryStore {
    state: Mutex<State>,
    /// The sessions' key prefix: a user's index holds ids, and the key of
    /// each says whether its session lives.
    prefix: String,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new("session")
    }
}

struct State {
    sessions: HashMap<String, Session>,
    /// Keys whose session `regenerate()` moved away, until when they say so
    /// (see [`super::MOVED_MARKER`]).
    moved: HashMap<String, Instant>,
    /// The users' indexes: index key -> ids of the sessions signed in. An
    /// entry goes when its session is found ended (no lease is needed here:
    /// every look at an index sees the sessions too).
    users: HashMap<String, HashSet<String>>,
    next_sweep: Instant,
}

impl Default for State {
    fn default() -> Self {
        State {
            sessions: HashMap::new(),
            moved: HashMap::new(),
            users: HashMap::new(),
            next_sweep: Instant::now() + SWEEP_INTERVAL,
        }
    }
}

struct Session {
    fields: HashMap<String, String>,
    expires_at: Option<Instant>,
    /// For `maxLifetime`: the session ends at `created_at + max_lifetime`.
    created_at: Instant,
}

impl Session {
    fn new(created_at: Instant) -> Session {
        Session {
            fields: HashMap::new(),
            expires_at: None,
            created_at,
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl MemoryStore {
    /// An empty store for sessions keyed `prefix:id`.
    pub fn new(prefix: &str) -> Self {
        MemoryStore {
            state: Mutex::default(),
            prefix: prefix.to_owned(),
        }
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}:{id}", self.prefix)
    }

    /// Number of live sessions (for tests and diagnostics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sessions.values().filter(|s| s.is_live(now)).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`MemoryStore::execute`] at a given instant, so expiry is testable without sleeping.
    pub fn execute_at(&self, key: &str, op: Op, limits: Limits, now: Instant) -> Result<Reply> {
        // A panic elsewhere while holding the lock leaves the map consistent
        // (every mutation below is a single step), so a poisoned lock is usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now >= state.next_sweep {
            let State {
                sessions,
                moved,
                users,
                ..
            } = &mut *state;
            sessions.retain(|_, s| s.is_live(now));
            moved.retain(|_, until| *until > now);
            for ids in users.values_mut() {
                ids.retain(|id| sessions.contains_key(&self.session_key(id)));
            }
            users.retain(|_, ids| !ids.is_empty());
            state.next_sweep = now + SWEEP_INTERVAL;
        }
        if state.sessions.get(key).is_some_and(|s| !s.is_live(now)) {
            state.sessions.remove(key);
        }
        // The idle deadline, capped by the absolute one (maxLifetime).
        let expiry = |created_at: Instant| {
            let idle = now + Duration::from_secs(limits.ttl_secs);
            match limits.max_lifetime_secs {
                Some(life) => idle.min(created_at + Duration::from_secs(life)),
                None => idle,
            }
        };
        let over_limit = |session: Option<&Session>, fields: &mut dyn Iterator<Item = &String>| {
            let held = session.map_or(0, |s| s.fields.len());
            let added = fields
                .filter(|f| session.is_none_or(|s| !s.fields.contains_key(*f)))
                .count();
            added > 0 && held + added > limits.max_fields
        };
        let State {
            sessions,
            moved,
            users,
            ..
        } = &mut *state;
        let lives = |sessions: &HashMap<String, Session>, id: &String| {
            sessions
                .get(&self.session_key(id))
                .is_some_and(|s| s.is_live(now))
        };
        Ok(match op {
            Op::Get(field) => Reply::Value(
                sessions
                    .get(key)
                    .and_then(|s| s.fields.get(&field).cloned()),
            ),
            Op::MGet(fields) => {
                let session = sessions.get(key);
                Reply::Values(
                    fields
                        .iter()
                        .map(|f| session.and_then(|s| s.fields.get(f).cloned()))
                        .collect(),
                )
            }
            Op::GetAll => Reply::Pairs(
                sessions
                    .get(key)
                    .map(|s| {
                        s.fields
                            .iter()
                            .filter(|(k, _)| !is_reserved(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Op::Describe => {
                let session = sessions.get(key);
                let field = |name: &str| session.and_then(|s| s.fields.get(name).cloned());
                Reply::Values(vec![
                    field(USER_FIELD),
                    field(META_FIELD),
                    field(LOGIN_FIELD),
                    field(SEEN_FIELD),
                    // Whether it exists: what Redis's creation time field says.
                    session.map(|s| format!("{:?}", s.created_at)),
                ])
            }
            Op::Bind { .. } | Op::Seen | Op::Extend if !sessions.contains_key(key) => Reply::Gone,
            Op::Bind { user, meta } => {
                let session = sessions.get_mut(key).expect("checked above");
                let at = unix_ms().to_string();
                session.fields.insert(USER_FIELD.into(), user);
                // Without meta (a signed-in regenerate()), the bound one stays.
                if let Some(meta) = meta {
                    session.fields.insert(META_FIELD.into(), meta);
                }
                session.fields.insert(LOGIN_FIELD.into(), at.clone());
                session.fields.insert(SEEN_FIELD.into(), at);
                session.expires_at = Some(expiry(session.created_at));
                Reply::Done
            }
            Op::Seen => {
                let session = sessions.get_mut(key).expect("checked above");
                session
                    .fields
                    .insert(SEEN_FIELD.into(), unix_ms().to_string());
                session.expires_at = Some(expiry(session.created_at));
                // No lease to renew: entries here go only when their session has.
                Reply::Values(vec![session.fields.get(USER_FIELD).cloned(), None])
            }
            Op::Extend => {
                let session = sessions.get_mut(key).expect("checked above");
                session.expires_at = Some(expiry(session.created_at));
                Reply::Done
            }
            Op::IndexAdd { id, renew } => {
                let ids = users.entry(key.to_owned()).or_default();
                ids.retain(|id| lives(sessions, id));
                if renew {
                    return Ok(Reply::Int(ids.contains(&id).into()));
                }
                ids.insert(id);
                Reply::Int(1)
            }
            Op::IndexList | Op::IndexOverflow => {
                let mut ids: Vec<String> = match users.get_mut(key) {
                    Some(ids) => {
                        ids.retain(|id| lives(sessions, id));
                        ids.iter().cloned().collect()
                    }
                    None => Vec::new(),
                };
                // Least recently active first; one signing in now (not seen yet) last.
                let seen = |id: &String| {
                    let session = sessions.get(&self.session_key(id));
                    let at = session.and_then(|s| s.fields.get(SEEN_FIELD));
                    at.and_then(|at| at.parse::<u64>().ok()).unwrap_or(u64::MAX)
                };
                ids.sort_by_key(seen);
                let cap = limits.max_sessions_per_user;
                let listed: Vec<String> = match op {
                    Op::IndexList => ids.into_iter().rev().take(cap).collect(),
                    _ => {
                        let over = ids.len().saturating_sub(cap).min(super::PRUNE_BATCH);
                        ids.into_iter().take(over).collect()
                    }
                };
                Reply::Values(listed.into_iter().map(Some).collect())
            }
            Op::IndexRemove(gone) => {
                if let Some(ids) = users.get_mut(key) {
                    for id in &gone {
                        ids.remove(id);
                    }
                }
                Reply::Done
            }
            Op::Write { create: false, .. } | Op::Incr { create: false, .. }
                if !sessions.contains_key(key) =>
            {
                Reply::Gone
            }
            Op::Incr { ref field, .. }
                if over_limit(sessions.get(key), &mut std::iter::once(field)) =>
            {
                return Err(too_many_fields(limits.max_fields));
            }
            Op::Write { ref set, .. }
                if over_limit(sessions.get(key), &mut set.iter().map(|(f, _)| f)) =>
            {
                return Err(too_many_fields(limits.max_fields));
            }
            Op::Incr { field, by, .. } => {
                let session = sessions
                    .entry(key.to_owned())
                    .or_insert_with(|| Session::new(now));
                let current = match session.fields.get(&field) {
                    None => 0,
                    Some(text) => text.parse::<i64>().map_err(|_| not_an_integer(&field))?,
                };
                let value = current
                    .checked_add(by)
                    .ok_or_else(|| not_an_integer(&field))?;
                session.fields.insert(field, value.to_string());
                session.expires_at = Some(expiry(session.created_at));
                Reply::Int(value)
            }
            Op::Rename { to } => match sessions.remove(key) {
                Some(mut session) => {
                    session.expires_at = Some(expiry(session.created_at));
                    sessions.insert(to, session);
                    moved.insert(key.to_owned(), now + super::MOVED_MARKER);
                    Reply::Done
                }
                None if moved.get(key).is_some_and(|until| *until > now) => {
                    return Err(super::regenerated_elsewhere());
                }
                None => {
                    // Nothing to move: the new id starts a session of its own.
                    let mut session = Session::new(now);
                    session.expires_at = Some(expiry(now));
                    sessions.insert(to, session);
                    Reply::Gone
                }
            },
            Op::Write { set, delete, .. } => {
                let session = sessions
                    .entry(key.to_owned())
                    .or_insert_with(|| Session::new(now));
                session.fields.extend(set);
                for field in &delete {
                    session.fields.remove(field);
                }
                session.expires_at = Some(expiry(session.created_at));
                Reply::Done
            }
            Op::Start => {
                let session = sessions
                    .entry(key.to_owned())
                    .or_insert_with(|| Session::new(now));
                session.expires_at = Some(expiry(session.created_at));
                Reply::Done
            }
            Op::Touch => {
                if let Some(session) = sessions.get_mut(key) {
                    session.expires_at = Some(expiry(session.created_at));
                }
                Reply::Done
            }
            Op::Destroy => Reply::Int(sessions.remove(key).is_some().into()),
        })
    }
}

/// The error Redis gives for `HINCRBY` on a field that is not an integer.
fn not_an_integer(field: &str) -> SessionError {
    SessionError::argument(format!(
        "the value of {field:?} is not an integer (or would overflow)"
    ))
}

impl MemoryStore {
    /// Runs one operation now.
    pub fn execute(&self, key: &str, op: Op, limits: Limits) -> Result<Reply> {
        self.execute_at(key, op, limits, Instant::now())
    }

    /// Drops every session. (Refusing work after `close()` is the engine's
    /// job, for both backends: see `Sessions::prepare`.)
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sessions.clear();
        state.users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn ttl(ttl_secs: u64) -> Limits {
        Limits {
            ttl_secs,
            max_fields: 3,
            max_lifetime_secs: None,
            max_sessions_per_user: 100,
        }
    }

    fn write(set: &[(&str, &str)], delete: &[&str]) -> Op {
        Op::Write {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delete: delete.iter().map(|d| d.to_string()).collect(),
            create: true,
        }
    }

    fn get(store: &MemoryStore, key: &str, field: &str, now: Instant) -> Option<String> {
        match store
            .execute_at(key, Op::Get(field.into()), ttl(10), now)
            .unwrap()
        {
            Reply::Value(v) => v,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sessions_are_isolated() {
        let store = MemoryStore::default();
        let now = Instant::now();
        store
            .execute_at("s:a", write(&[("k", "1")], &[]), ttl(10), now)
            .unwrap();
        store
            .execute_at("s:b", write(&[("k", "2")], &[]), ttl(10), now)
            .unwrap();
        assert_eq!(get(&store, "s:a", "k", now).as_deref(), Some("1"));
        assert_eq!(get(&store, "s:b", "k", now).as_deref(), Some("2"));
        assert_eq!(get(&store, "s:c", "k", now), None);
    }

    #[test]
    fn idle_sessions_expire_and_touch_extends_them() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        store
            .execute_at("s:a", write(&[("k", "1")], &[]), ttl(10), t0)
            .unwrap();
        let t9 = t0 + Duration::from_secs(9);
        assert_eq!(get(&store, "s:a", "k", t9).as_deref(), Some("1"));
        store.execute_at("s:a", Op::Touch, ttl(10), t9).unwrap();
        let t18 = t0 + Duration::from_secs(18);
        assert_eq!(get(&store, "s:a", "k", t18).as_deref(), Some("1"));
        let t20 = t0 + Duration::from_secs(20);
        assert_eq!(get(&store, "s:a", "k", t20), None);
        // Touching an expired session does not bring it back.
        store.execute_at("s:a", Op::Touch, ttl(10), t20).unwrap();
        assert_eq!(get(&store, "s:a", "k", t20), None);
    }

    #[test]
    fn expired_sessions_are_swept_from_memory() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        for i in 0..100 {
            store
                .execute_at(&format!("s:{i}"), write(&[("k", "v")], &[]), ttl(1), t0)
                .unwrap();
        }
        let later = t0 + Duration::from_secs(5);
        store
            .execute_at("s:other", Op::Touch, ttl(1), later)
            .unwrap();
        assert_eq!(store.state.lock().unwrap().sessions.len(), 0);
    }

    #[test]
    fn strict_writes_never_revive_a_missing_session() {
        let store = MemoryStore::default();
        let now = Instant::now();
        let strict = Op::Write {
            set: vec![("k".into(), "1".into())],
            delete: vec![],
            create: false,
        };
        assert_eq!(
            store.execute_at("s:a", strict.clone(), ttl(10), now),
            Ok(Reply::Gone)
        );
        assert!(store.is_empty());
        store
            .execute_at("s:a", write(&[("k", "0")], &[]), ttl(10), now)
            .unwrap();
        assert_eq!(
            store.execute_at("s:a", strict, ttl(10), now),
            Ok(Reply::Done)
        );
        assert_eq!(get(&store, "s:a", "k", now).as_deref(), Some("1"));
    }

    #[test]
    fn incr_counts_on_json_integers_and_refuses_other_values() {
        let store = MemoryStore::default();
        let now = Instant::now();
        let incr = |by| Op::Incr {
            field: "n".into(),
            by,
            create: true,
        };
        assert_eq!(
            store.execute_at("s:a", incr(1), ttl(10), now),
            Ok(Reply::Int(1))
        );
        assert_eq!(
            store.execute_at("s:a", incr(41), ttl(10), now),
            Ok(Reply::Int(42))
        );
        store
            .execute_at("s:a", write(&[("n", "\"x\"")], &[]), ttl(10), now)
            .unwrap();
        let err = store.execute_at("s:a", incr(1), ttl(10), now).unwrap_err();
        assert_eq!(err.code, ErrorCode::Argument);
        let strict = Op::Incr {
            field: "n".into(),
            by: 1,
            create: false,
        };
        assert_eq!(
            store.execute_at("s:gone", strict, ttl(10), now),
            Ok(Reply::Gone)
        );
    }

    #[test]
    fn rename_moves_the_data_at_once() {
        let store = MemoryStore::default();
        let now = Instant::now();
        store
            .execute_at("s:old", write(&[("k", "v")], &[]), ttl(10), now)
            .unwrap();
        let rename = |to: &str| Op::Rename { to: to.into() };
        assert_eq!(
            store.execute_at("s:old", rename("s:new"), ttl(10), now),
            Ok(Reply::Done)
        );
        assert_eq!(get(&store, "s:old", "k", now), None);
        assert_eq!(get(&store, "s:new", "k", now).as_deref(), Some("v"));
        // Moved moments ago: a second move of the same key is a conflict.
        let err = store
            .execute_at("s:old", rename("s:other"), ttl(10), now)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(store.len(), 1, "nothing started");
        // Long after, it is a session that ended: the new key starts empty.
        let later = now + super::super::MOVED_MARKER + Duration::from_secs(1);
        assert_eq!(
            store.execute_at("s:old", rename("s:other"), ttl(100), later),
            Ok(Reply::Gone)
        );
        assert_eq!(get(&store, "s:other", "k", later), None);
        assert_eq!(store.len(), 1, "s:other lives, empty; s:new expired");
    }

    #[test]
    fn writes_over_max_fields_write_nothing() {
        let store = MemoryStore::default();
        let now = Instant::now();
        store
            .execute_at("s:a", write(&[("a", "1"), ("b", "2")], &[]), ttl(10), now)
            .unwrap();
        let over = store.execute_at(
            "s:a",
            write(&[("b", "3"), ("c", "3"), ("d", "4")], &[]),
            ttl(10),
            now,
        );
        assert_eq!(over.unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(
            get(&store, "s:a", "b", now).as_deref(),
            Some("2"),
            "nothing written"
        );
        // Overwriting held fields and adding up to the cap is fine.
        store
            .execute_at("s:a", write(&[("b", "3"), ("c", "3")], &[]), ttl(10), now)
            .unwrap();
        let incr = Op::Incr {
            field: "d".into(),
            by: 1,
            create: false,
        };
        assert_eq!(
            store
                .execute_at("s:a", incr, ttl(10), now)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn a_started_session_lives_without_keys_until_it_expires() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        store.execute_at("s:a", Op::Start, ttl(10), t0).unwrap();
        assert_eq!(store.len(), 1, "recorded as its id is issued");
        let strict = |field: &str| Op::Write {
            set: vec![(field.into(), "1".into())],
            delete: vec![],
            create: false,
        };
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(
            store.execute_at("s:a", strict("k"), ttl(10), t5),
            Ok(Reply::Done)
        );
        // Removing its last key leaves the session alive: a later write still lands.
        store
            .execute_at("s:a", write(&[], &["k"]), ttl(10), t5)
            .unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.execute_at("s:a", strict("j"), ttl(10), t5),
            Ok(Reply::Done)
        );
        // Idle past its TTL it is gone, and stays gone.
        let t20 = t0 + Duration::from_secs(20);
        assert_eq!(
            store.execute_at("s:a", strict("k"), ttl(10), t20),
            Ok(Reply::Gone)
        );
        assert!(store.is_empty());
    }

    #[test]
    fn close_drops_every_session() {
        let store = MemoryStore::default();
        store
            .execute_at("s:a", write(&[("k", "1")], &[]), ttl(10), Instant::now())
            .unwrap();
        assert_eq!(store.len(), 1);
        store.close();
        assert!(store.is_empty());
    }

    #[test]
    fn a_signed_in_session_is_listed_until_it_ends() {
        let store = MemoryStore::new("s");
        let t0 = Instant::now();
        let run = |key: &str, op: Op, now: Instant| store.execute_at(key, op, ttl(10), now);
        let index = "s:user:ann";
        let add = |id: &str, renew: bool| Op::IndexAdd {
            id: id.into(),
            renew,
        };
        let bind = Op::Bind {
            user: "ann".into(),
            meta: Some("{}".into()),
        };
        assert_eq!(run("s:a", bind.clone(), t0), Ok(Reply::Gone), "strict");
        for id in ["a", "b"] {
            run(&format!("s:{id}"), Op::Start, t0).unwrap();
            assert_eq!(run(index, add(id, false), t0), Ok(Reply::Int(1)));
            assert_eq!(run(&format!("s:{id}"), bind.clone(), t0), Ok(Reply::Done));
        }
        let Ok(Reply::Values(seen)) = run("s:a", Op::Seen, t0) else {
            panic!("a live session is seen")
        };
        assert_eq!(seen, [Some("ann".to_owned()), None]);
        let Ok(Reply::Values(described)) = run("s:a", Op::Describe, t0) else {
            panic!("a live session is described")
        };
        assert_eq!(
            described[..2],
            [Some("ann".to_owned()), Some("{}".to_owned())]
        );
        assert!(described[4].is_some(), "it exists");
        assert_eq!(
            run("s:a", Op::GetAll, t0),
            Ok(Reply::Pairs(vec![])),
            "the store's own fields stay out of getAll()"
        );
        // b expires; the index drops it as it looks, and a renewal does not bring it back.
        let t5 = t0 + Duration::from_secs(5);
        run("s:a", Op::Seen, t5).unwrap();
        let t12 = t0 + Duration::from_secs(12);
        assert_eq!(
            run(index, Op::IndexList, t12),
            Ok(Reply::Values(vec![Some("a".to_owned())]))
        );
        assert_eq!(run(index, add("b", true), t12), Ok(Reply::Int(0)));
        assert_eq!(run("s:a", Op::Destroy, t12), Ok(Reply::Int(1)));
        assert_eq!(run("s:a", Op::Destroy, t12), Ok(Reply::Int(0)));
        assert_eq!(run("s:a", Op::Seen, t12), Ok(Reply::Gone));
        assert_eq!(run(index, Op::IndexList, t12), Ok(Reply::Values(vec![])));
    }
}
