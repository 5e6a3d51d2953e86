//! The embedded in-memory store behind `mock()`: one hash per session, with
//! the same semantics as Redis (a session is recorded when its id is issued,
//! a write or touch sets the expiry, an expired session reads as empty, a
//! session with no keys left still lives until it expires).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{is_reserved, COOKIE_FIELD, LOGIN_FIELD, META_FIELD, SEEN_FIELD, USER_FIELD};
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
        state.sweep(&self.prefix, now);
        if state.sessions.get(key).is_some_and(|s| !s.is_live(now)) {
            state.sessions.remove(key);
        }
        let mut call = Call {
            state: &mut state,
            prefix: &self.prefix,
            limits,
            now,
        };
        match op {
            Op::Get(field) => Ok(call.get(key, &field)),
            Op::MGet(fields) => Ok(call.mget(key, &fields)),
            Op::GetAll => Ok(call.get_all(key)),
            Op::Write {
                set,
                delete,
                create,
            } => call.write(key, set, &delete, create),
            Op::Incr { field, by, create } => call.incr(key, field, by, create),
            Op::Rename { to } => call.rename(key, to),
            Op::Start => Ok(call.start(key)),
            Op::Touch => Ok(call.touch(key)),
            Op::Destroy => Ok(call.destroy(key)),
            Op::Bind {
                user,
                meta,
                persistent,
            } => Ok(call.bind(key, user, meta, persistent)),
            Op::Seen => Ok(call.seen(key)),
            Op::Load => Ok(call.load(key)),
            Op::Extend => Ok(call.extend(key)),
            Op::Describe => Ok(call.describe(key)),
            Op::IndexAdd { id, renew } => Ok(call.index_add(key, id, renew)),
            Op::IndexList => Ok(call.index_list(key)),
            Op::IndexOverflow => Ok(call.index_overflow(key)),
            Op::IndexRemove(ids) => Ok(call.index_remove(key, &ids)),
        }
    }
}

impl State {
    /// At most every [`SWEEP_INTERVAL`]: every expired session, marker and
    /// index entry goes.
    fn sweep(&mut self, prefix: &str, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        let State {
            sessions,
            moved,
            users,
            ..
        } = self;
        sessions.retain(|_, s| s.is_live(now));
        moved.retain(|_, until| *until > now);
        for ids in users.values_mut() {
            ids.retain(|id| sessions.contains_key(&session_key(prefix, id)));
        }
        users.retain(|_, ids| !ids.is_empty());
        self.next_sweep = now + SWEEP_INTERVAL;
    }
}

/// One operation's view of the store: one method per operation, each with
/// the semantics of its Redis script (src/store/redis/scripts/), which the
/// stores' parity test (`__test__/stores.test.js`) holds them to.
struct Call<'a> {
    state: &'a mut State,
    prefix: &'a str,
    limits: Limits,
    now: Instant,
}

impl Call<'_> {
    /// The idle deadline of a session created at `created_at`, capped by its
    /// absolute one (`maxLifetime`).
    fn expiry(&self, created_at: Instant) -> Instant {
        let idle = self.now + Duration::from_secs(self.limits.ttl_secs);
        match self.limits.max_lifetime_secs {
            Some(life) => idle.min(created_at + Duration::from_secs(life)),
            None => idle,
        }
    }

    /// Whether writing `fields` would take the session at `key` over `maxFields`.
    fn over_limit<'f>(&self, key: &str, fields: impl Iterator<Item = &'f String>) -> bool {
        let session = self.state.sessions.get(key);
        let held = session.map_or(0, |s| s.fields.len());
        let added = fields
            .filter(|f| session.is_none_or(|s| !s.fields.contains_key(*f)))
            .count();
        added > 0 && held + added > self.limits.max_fields
    }

    /// The session at `key`, created now if there is none.
    fn session_or_new(&mut self, key: &str) -> &mut Session {
        let now = self.now;
        self.state
            .sessions
            .entry(key.to_owned())
            .or_insert_with(|| Session::new(now))
    }

    /// Refreshes the idle deadline of the session at `key`, if it exists.
    fn refresh(&mut self, key: &str) -> bool {
        let Some(created_at) = self.state.sessions.get(key).map(|s| s.created_at) else {
            return false;
        };
        let expires_at = self.expiry(created_at);
        if let Some(session) = self.state.sessions.get_mut(key) {
            session.expires_at = Some(expires_at);
        }
        true
    }

    fn field(&self, key: &str, field: &str) -> Option<String> {
        self.state.sessions.get(key)?.fields.get(field).cloned()
    }

    fn get(&self, key: &str, field: &str) -> Reply {
        Reply::Value(self.field(key, field))
    }

    fn mget(&self, key: &str, fields: &[String]) -> Reply {
        Reply::Values(fields.iter().map(|f| self.field(key, f)).collect())
    }

    fn get_all(&self, key: &str) -> Reply {
        let Some(session) = self.state.sessions.get(key) else {
            return Reply::Pairs(Vec::new());
        };
        let pairs = session.fields.iter().filter(|(k, _)| !is_reserved(k));
        Reply::Pairs(pairs.map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn write(
        &mut self,
        key: &str,
        set: Vec<(String, String)>,
        delete: &[String],
        create: bool,
    ) -> Result<Reply> {
        if !create && !self.state.sessions.contains_key(key) {
            return Ok(Reply::Gone);
        }
        if self.over_limit(key, set.iter().map(|(f, _)| f)) {
            return Err(too_many_fields(self.limits.max_fields));
        }
        let session = self.session_or_new(key);
        session.fields.extend(set);
        for field in delete {
            session.fields.remove(field);
        }
        self.refresh(key);
        Ok(Reply::Done)
    }

    fn incr(&mut self, key: &str, field: String, by: i64, create: bool) -> Result<Reply> {
        if !create && !self.state.sessions.contains_key(key) {
            return Ok(Reply::Gone);
        }
        if self.over_limit(key, std::iter::once(&field)) {
            return Err(too_many_fields(self.limits.max_fields));
        }
        let current = match self.field(key, &field) {
            None => 0,
            Some(text) => text.parse::<i64>().map_err(|_| not_an_integer(&field))?,
        };
        let value = current
            .checked_add(by)
            .ok_or_else(|| not_an_integer(&field))?;
        self.session_or_new(key)
            .fields
            .insert(field, value.to_string());
        self.refresh(key);
        Ok(Reply::Int(value))
    }

    fn rename(&mut self, key: &str, to: String) -> Result<Reply> {
        let now = self.now;
        let Some(session) = self.state.sessions.remove(key) else {
            if self.state.moved.get(key).is_some_and(|until| *until > now) {
                return Err(super::regenerated_elsewhere());
            }
            // Nothing to move: the new id starts a session of its own.
            self.start(&to);
            return Ok(Reply::Gone);
        };
        self.state.sessions.insert(to.clone(), session);
        self.refresh(&to);
        self.state
            .moved
            .insert(key.to_owned(), now + super::MOVED_MARKER);
        Ok(Reply::Done)
    }

    fn start(&mut self, key: &str) -> Reply {
        self.session_or_new(key);
        self.refresh(key);
        if self.limits.persistent {
            self.record_cookie(key);
        }
        Reply::Done
    }

    fn touch(&mut self, key: &str) -> Reply {
        if !self.refresh(key) || !self.limits.persistent {
            return Reply::Done;
        }
        match self.cookie_renewal(key) {
            0 => Reply::Done,
            ms => Reply::Int(ms as i64),
        }
    }

    /// A persistent cookie sent now with the `Max-Age` of a new session's.
    fn record_cookie(&mut self, key: &str) {
        let until = unix_ms() + self.limits.cookie_max_age_secs() * 1000;
        if let Some(session) = self.state.sessions.get_mut(key) {
            session
                .fields
                .insert(COOKIE_FIELD.into(), until.to_string());
        }
    }

    /// A persistent session's cookie, once its expiry moved: the `Max-Age`
    /// (ms) to send it again with when it would expire first, recorded;
    /// else 0 (as session.lua's `cookie_renewal`).
    fn cookie_renewal(&mut self, key: &str) -> u64 {
        let (now, limits) = (self.now, self.limits);
        let Some(session) = self.state.sessions.get_mut(key) else {
            return 0;
        };
        let ms = |d: Duration| d.as_millis() as u64;
        let left = session
            .expires_at
            .map_or(0, |at| ms(at.saturating_duration_since(now)));
        let unix_now = unix_ms();
        let sent = session
            .fields
            .get(COOKIE_FIELD)
            .and_then(|v| v.parse::<u64>().ok());
        if sent.is_some_and(|sent| sent >= unix_now + left) {
            return 0;
        }
        let mut max_age = limits.ttl_secs * 2000;
        if let Some(life) = limits.max_lifetime_secs {
            let lived = ms(now.saturating_duration_since(session.created_at));
            max_age = left.max(max_age.min((life * 1000).saturating_sub(lived)));
        }
        session
            .fields
            .insert(COOKIE_FIELD.into(), (unix_now + max_age).to_string());
        max_age
    }

    fn destroy(&mut self, key: &str) -> Reply {
        Reply::Int(self.state.sessions.remove(key).is_some().into())
    }

    fn bind(&mut self, key: &str, user: String, meta: Option<String>, persistent: bool) -> Reply {
        let Some(session) = self.state.sessions.get_mut(key) else {
            return Reply::Gone;
        };
        let at = unix_ms().to_string();
        session.fields.insert(USER_FIELD.into(), user);
        // Without meta (a signed-in regenerate()), the bound one stays.
        if let Some(meta) = meta {
            session.fields.insert(META_FIELD.into(), meta);
        }
        session.fields.insert(LOGIN_FIELD.into(), at.clone());
        session.fields.insert(SEEN_FIELD.into(), at);
        self.refresh(key);
        if persistent || self.limits.persistent {
            self.record_cookie(key);
        } else if let Some(session) = self.state.sessions.get_mut(key) {
            session.fields.remove(COOKIE_FIELD);
        }
        Reply::Done
    }

    fn seen(&mut self, key: &str) -> Reply {
        let Some(session) = self.state.sessions.get_mut(key) else {
            return Reply::Gone;
        };
        session
            .fields
            .insert(SEEN_FIELD.into(), unix_ms().to_string());
        let user = session.fields.get(USER_FIELD).cloned();
        let remembered = session.fields.contains_key(COOKIE_FIELD) || self.limits.persistent;
        self.refresh(key);
        let cookie = remembered.then(|| self.cookie_renewal(key).to_string());
        // No lease to renew: entries here go only when their session has.
        Reply::Values(vec![user, None, cookie])
    }

    /// seen.lua's refresh and the app's fields, as load.lua.
    fn load(&mut self, key: &str) -> Reply {
        let Reply::Values(mut values) = self.seen(key) else {
            return Reply::Gone;
        };
        if let Reply::Pairs(pairs) = self.get_all(key) {
            values.extend(pairs.into_iter().flat_map(|(f, v)| [Some(f), Some(v)]));
        }
        Reply::Values(values)
    }

    fn extend(&mut self, key: &str) -> Reply {
        match self.refresh(key) {
            true => Reply::Done,
            false => Reply::Gone,
        }
    }

    fn describe(&self, key: &str) -> Reply {
        let session = self.state.sessions.get(key);
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

    /// Whether the session `id` lives.
    fn lives(&self, id: &str) -> bool {
        let session = self.state.sessions.get(&session_key(self.prefix, id));
        session.is_some_and(|s| s.is_live(self.now))
    }

    /// The live ids of the index at `key` (the others leave it), least
    /// recently active first; one signing in now (not seen yet) last.
    fn live_ids(&mut self, key: &str) -> Vec<String> {
        let Some(mut ids) = self.state.users.remove(key) else {
            return Vec::new();
        };
        ids.retain(|id| self.lives(id));
        let mut listed: Vec<String> = ids.iter().cloned().collect();
        self.state.users.insert(key.to_owned(), ids);
        let seen = |id: &String| {
            let at = self.field(&session_key(self.prefix, id), SEEN_FIELD);
            at.and_then(|at| at.parse::<u64>().ok()).unwrap_or(u64::MAX)
        };
        listed.sort_by_key(seen);
        listed
    }

    fn index_add(&mut self, key: &str, id: String, renew: bool) -> Reply {
        let held = self.live_ids(key).contains(&id);
        if renew {
            return Reply::Int(held.into());
        }
        self.state
            .users
            .entry(key.to_owned())
            .or_default()
            .insert(id);
        Reply::Int(1)
    }

    fn index_list(&mut self, key: &str) -> Reply {
        let ids = self.live_ids(key).into_iter().rev();
        Reply::Values(
            ids.take(self.limits.max_sessions_per_user)
                .map(Some)
                .collect(),
        )
    }

    fn index_overflow(&mut self, key: &str) -> Reply {
        let ids = self.live_ids(key);
        let over = ids
            .len()
            .saturating_sub(self.limits.max_sessions_per_user)
            .min(super::PRUNE_BATCH);
        Reply::Values(ids.into_iter().take(over).map(Some).collect())
    }

    fn index_remove(&mut self, key: &str, gone: &[String]) -> Reply {
        if let Some(ids) = self.state.users.get_mut(key) {
            for id in gone {
                ids.remove(id);
            }
        }
        Reply::Done
    }
}

/// A session's key: `prefix:id`.
fn session_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:{id}")
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
            persistent: false,
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
            persistent: false,
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
        assert_eq!(seen, [Some("ann".to_owned()), None, None]);
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
