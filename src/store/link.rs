//! One connection to Redis, without I/O of its own ("sans I/O"). JavaScript
//! owns the socket, on Node's event loop (`engine.js`), and reports each event
//! here: a batch to send, bytes read, the socket connected or lost. The link
//! decides what to write and what every reply means.
//!
//! Why the socket lives on Node's thread: a session call then costs what a JS
//! client's call costs (one write, one read, no thread in between), whereas an
//! I/O thread adds two cross-thread wake-ups to every batch, which made one
//! call in flight slower than ioredis on a 2-core machine.
//!
//! Replies come back in the order commands were sent, so the link keeps one
//! [`Expected`] entry per command on the wire and pairs each reply with the
//! front one. When that pairing can no longer be trusted (a command timed out,
//! the server sent garbage, the handshake failed), every call waiting on the
//! connection fails and the connection is dropped; the next batch opens a new one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use super::redis::{decode, encode, is_noscript, preload_scripts, server_error};
use super::resp;
use super::{Finished, Item, Limits, Op, Reply};
use crate::error::{ErrorCode, Result, SessionError};

/// What JavaScript must do after a call into the link (bits of [`Link::take_flags`]).
pub mod flags {
    /// There are bytes to write: `takeOutput()`.
    pub const OUTPUT: u32 = 1;
    /// Work is waiting and there is no connection: open one.
    pub const CONNECT: u32 = 2;
    /// The connection is unusable: destroy the socket (its calls have failed already).
    pub const RESET: u32 = 4;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    Connecting,
    Up,
}

/// Who a reply on the wire belongs to.
#[derive(Clone, Copy)]
enum Expected {
    /// `AUTH` / `SELECT`, sent first on every connection: refused, the
    /// connection is unusable.
    Handshake,
    /// `SCRIPT LOAD`, after them: refused (an ACL without `SCRIPT`, say),
    /// scripts still work, through `NOSCRIPT` and `EVAL`.
    Preload,
    Operation {
        batch_id: u32,
        index: usize,
        /// Sent as `EVAL` with the script's body, after a `NOSCRIPT`.
        with_body: bool,
    },
}

enum Slot {
    Sent(String, Op),
    Done(Result<Reply>),
}

struct Waiting {
    slots: Vec<Slot>,
    /// Slots still `Sent`.
    left: usize,
}

pub struct Link {
    /// What every new connection sends first, and the replies it expects for it.
    handshake: Vec<u8>,
    handshake_replies: Vec<Expected>,
    limits: Limits,
    command_timeout: Duration,
    state: State,
    flags: u32,
    /// Bytes for the socket; while connecting, they wait here for the handshake.
    output: Vec<u8>,
    /// The start of a reply whose end has not arrived yet.
    input: Vec<u8>,
    expected: VecDeque<Expected>,
    waiting: HashMap<u32, Waiting>,
    /// Batches in the order they were sent, with the time they must be answered by.
    deadlines: VecDeque<(u32, Instant)>,
    finished: Vec<Finished>,
    /// `SCRIPT LOAD`s sent after a `NOSCRIPT`, not answered yet.
    reloading_scripts: bool,
    /// Calls that got `NOSCRIPT`, oldest first, waiting for the calls sent
    /// behind them to answer.
    deferred: Vec<Deferred>,
}

/// A call that got `NOSCRIPT` (so did not run), to be sent again or failed
/// once every call that was on the wire behind it has answered.
struct Deferred {
    batch_id: u32,
    index: usize,
    /// Replies still to come from the calls that were on the wire behind it.
    behind: usize,
    /// A call of the same session among those ran.
    overtaken: bool,
}

impl Link {
    /// `handshake`: the commands every new connection starts with (`AUTH`,
    /// `SELECT`); the scripts are loaded after them.
    pub fn new(handshake: &[Cmd], limits: Limits, command_timeout: Duration) -> Link {
        let mut bytes = Vec::new();
        let mut replies = Vec::new();
        for cmd in handshake {
            cmd.write_packed_command(&mut bytes);
            replies.push(Expected::Handshake);
        }
        for cmd in preload_scripts() {
            cmd.write_packed_command(&mut bytes);
            replies.push(Expected::Preload);
        }
        Link {
            handshake: bytes,
            handshake_replies: replies,
            limits,
            command_timeout,
            state: State::Down,
            flags: 0,
            output: Vec::new(),
            input: Vec::new(),
            expected: VecDeque::new(),
            waiting: HashMap::new(),
            deadlines: VecDeque::new(),
            finished: Vec::new(),
            reloading_scripts: false,
            deferred: Vec::new(),
        }
    }

    /// Queues a batch: one command per operation, written as one pipeline.
    pub fn submit(&mut self, batch_id: u32, items: Vec<Item>, now: Instant) {
        let mut slots = Vec::with_capacity(items.len());
        let mut left = 0;
        for (index, item) in items.into_iter().enumerate() {
            let slot = match item {
                Item::Ready(result) => Slot::Done(result),
                Item::Run(key, op) => {
                    if encode(&mut self.output, &key, &op, self.limits, false) {
                        self.expected.push_back(Expected::Operation {
                            batch_id,
                            index,
                            with_body: false,
                        });
                        left += 1;
                        Slot::Sent(key, op)
                    } else {
                        // An `mget` of no keys: nothing to ask Redis.
                        Slot::Done(Ok(Reply::Values(Vec::new())))
                    }
                }
            };
            slots.push(slot);
        }
        let waiting = Waiting { slots, left };
        if left == 0 {
            self.finish(batch_id, waiting);
            return;
        }
        self.waiting.insert(batch_id, waiting);
        self.deadlines
            .push_back((batch_id, now + self.command_timeout));
        match self.state {
            State::Up => self.flags |= flags::OUTPUT,
            State::Connecting => {}
            State::Down => {
                self.state = State::Connecting;
                self.flags |= flags::CONNECT;
            }
        }
    }

    /// The socket connected: the handshake goes first, then what waited for it.
    pub fn connected(&mut self) {
        if self.state != State::Connecting {
            return;
        }
        self.state = State::Up;
        self.output.splice(0..0, self.handshake.iter().copied());
        for &reply in self.handshake_replies.iter().rev() {
            self.expected.push_front(reply);
        }
        if !self.output.is_empty() {
            self.flags |= flags::OUTPUT;
        }
    }

    /// Bytes read from the socket: every whole reply in them is paired with
    /// its call; the start of an unfinished one waits for the next read.
    pub fn received(&mut self, bytes: &[u8]) {
        if self.input.is_empty() {
            let used = self.consume(bytes);
            if self.state == State::Up {
                self.input.extend_from_slice(&bytes[used..]);
            }
        } else {
            let mut buffer = std::mem::take(&mut self.input);
            buffer.extend_from_slice(bytes);
            let used = self.consume(&buffer);
            if self.state == State::Up {
                buffer.drain(..used);
                self.input = buffer;
            }
        }
    }

    /// Handles every whole reply at the start of `data`; returns how many bytes they took.
    fn consume(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while self.state == State::Up {
            match resp::frame_len(&data[at..]) {
                Ok(Some(len)) => {
                    let frame = &data[at..at + len];
                    at += len;
                    match resp::value(frame) {
                        Ok(value) => self.on_reply(value),
                        Err(err) => self.fail(err),
                    }
                }
                Ok(None) => break,
                Err(err) => self.fail(err),
            }
        }
        at
    }

    /// The socket closed or failed; `code` says how: `Timeout` (dropped for
    /// not answering), `Tls` (the handshake or a certificate), `Connection`.
    pub fn lost(&mut self, reason: &str, code: ErrorCode) {
        let err = match code {
            ErrorCode::Timeout => SessionError::new(code, reason),
            _ => SessionError::new(code, format!("redis: {reason}")),
        };
        self.drop_connection(err);
    }

    /// How long until the oldest unanswered batch is overdue (zero: it is);
    /// `None` when nothing is waiting.
    pub fn overdue_in(&mut self, now: Instant) -> Option<Duration> {
        self.forget_answered_deadlines();
        let &(_, deadline) = self.deadlines.front()?;
        Some(deadline.saturating_duration_since(now))
    }

    /// Drops the deadlines of answered batches from the front. Replies come
    /// in order, so this keeps the queue as short as what is in flight.
    fn forget_answered_deadlines(&mut self) {
        while let Some(&(batch_id, _)) = self.deadlines.front() {
            if self.waiting.contains_key(&batch_id) {
                return;
            }
            self.deadlines.pop_front();
        }
    }

    /// Batches waiting for replies (or for a connection).
    pub fn busy(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The bytes to write; [`Link::clear_output`] once they are handed over
    /// (the buffer keeps its capacity for the next batch).
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// The first `written` bytes of the output are on their way.
    pub fn consume_output(&mut self, written: usize) {
        self.output.drain(..written.min(self.output.len()));
    }

    pub fn take_flags(&mut self) -> u32 {
        std::mem::take(&mut self.flags)
    }

    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    fn on_reply(&mut self, value: Value) {
        let expected = self.expected.pop_front();
        for deferred in &mut self.deferred {
            deferred.behind = deferred.behind.saturating_sub(1);
        }
        match expected {
            None => self.fail(SessionError::new(
                ErrorCode::Store,
                "redis sent a reply to no command",
            )),
            // A refused `SCRIPT LOAD` (an ACL without `SCRIPT`, say) is
            // harmless, but for the want of a password, which every call would
            // meet: say so from the first call.
            Some(Expected::Preload) => {
                self.reloading_scripts = false;
                if let Value::ServerError(err) = value {
                    if err.code() == "NOAUTH" {
                        self.fail(no_password(&err));
                    }
                }
            }
            Some(Expected::Handshake) => {
                if let Value::ServerError(err) = value {
                    let mut refused = server_error(&err, None);
                    if refused.code == ErrorCode::Store {
                        refused.code = ErrorCode::Connection;
                    }
                    refused.message = format!("redis refused the connection: {}", refused.message);
                    self.fail(refused);
                }
            }
            Some(Expected::Operation {
                batch_id,
                index,
                with_body,
            }) => self.on_operation_reply(batch_id, index, with_body, value),
        }
        self.settle_deferred();
    }

    fn on_operation_reply(&mut self, batch_id: u32, index: usize, with_body: bool, value: Value) {
        // The fields, not `self.slot()`: `self.deferred` is updated below while this is held.
        let slot = self.waiting.get(&batch_id).and_then(|w| w.slots.get(index));
        let Some(Slot::Sent(key, op)) = slot else {
            return self.fail(lost_track());
        };
        // Redis no longer knows the script (SCRIPT FLUSH, or another server
        // behind a proxy): nothing ran. It waits for the calls sent behind it
        // to answer (see `settle_deferred`).
        if !with_body && is_noscript(&value) {
            self.deferred.push(Deferred {
                batch_id,
                index,
                behind: self.expected.len(),
                overtaken: false,
            });
            return self.reload_scripts();
        }
        // A replica answered: the primary moved (a failover) while this
        // connection stayed up. Nothing here can be written any more.
        if matches!(&value, Value::ServerError(err) if err.code() == "READONLY") {
            return self.fail(SessionError::new(
                ErrorCode::Connection,
                "redis answered as a read-only replica: the primary has moved; the next call reconnects",
            ));
        }
        // This call ran: it overtook every call of its session still waiting to be sent again.
        for deferred in &mut self.deferred {
            if let Some(Slot::Sent(waiting_key, waiting_op)) = self
                .waiting
                .get(&deferred.batch_id)
                .and_then(|waiting| waiting.slots.get(deferred.index))
            {
                deferred.overtaken |= same_session((key, op), (waiting_key, waiting_op));
            }
        }
        let result = decode(key, op, Some(value), self.limits);
        self.complete(batch_id, index, result);
    }

    fn slot(&self, batch_id: u32, index: usize) -> Option<&Slot> {
        self.waiting.get(&batch_id)?.slots.get(index)
    }

    fn complete(&mut self, batch_id: u32, index: usize, result: Result<Reply>) {
        if let Some(waiting) = self.waiting.get_mut(&batch_id) {
            waiting.slots[index] = Slot::Done(result);
        }
        self.answered(batch_id);
    }

    /// Decides, in the order they came, the calls that got `NOSCRIPT` and
    /// whose followers on the wire have all answered. One that no later call
    /// of its session overtook is sent again, with the script's body: it then
    /// runs in its place among the calls of its session. One that was
    /// overtaken fails, not applied, rather than run after calls issued
    /// after it (a `get` would have read what was there before a `set`
    /// that succeeds, an `invalidate()` would see its session come back).
    fn settle_deferred(&mut self) {
        while self.deferred.first().is_some_and(|d| d.behind == 0) {
            let Deferred {
                batch_id,
                index,
                overtaken,
                ..
            } = self.deferred.remove(0);
            let Some(Slot::Sent(key, op)) = self.slot(batch_id, index) else {
                continue;
            };
            if overtaken {
                let err = SessionError::new(
                    ErrorCode::Store,
                    "redis had lost its scripts (SCRIPT FLUSH?), and a later call on this session ran first: this one was not applied",
                );
                self.complete(batch_id, index, Err(err));
                continue;
            }
            let mut again = Vec::new();
            encode(&mut again, key, op, self.limits, true);
            self.output.extend_from_slice(&again);
            self.expected.push_back(Expected::Operation {
                batch_id,
                index,
                with_body: true,
            });
            self.flags |= flags::OUTPUT;
        }
    }

    /// One more call of the batch has its result; the batch finishes with its last.
    fn answered(&mut self, batch_id: u32) {
        let Some(waiting) = self.waiting.get_mut(&batch_id) else {
            return;
        };
        waiting.left -= 1;
        if waiting.left == 0 {
            if let Some(waiting) = self.waiting.remove(&batch_id) {
                self.finish(batch_id, waiting);
            }
            self.forget_answered_deadlines();
        }
    }

    /// After a `NOSCRIPT`: loads every script again, once, so that later
    /// calls find them.
    fn reload_scripts(&mut self) {
        if self.reloading_scripts {
            return;
        }
        self.reloading_scripts = true;
        for cmd in preload_scripts() {
            cmd.write_packed_command(&mut self.output);
            self.expected.push_back(Expected::Preload);
        }
        self.flags |= flags::OUTPUT;
    }

    /// Fails everything and asks JavaScript to destroy the socket.
    fn fail(&mut self, err: SessionError) {
        self.drop_connection(err);
        self.flags |= flags::RESET;
    }

    /// Every call still waiting fails with `err`, in the order they were sent.
    fn drop_connection(&mut self, err: SessionError) {
        self.state = State::Down;
        self.output.clear();
        self.input.clear();
        self.expected.clear();
        self.reloading_scripts = false;
        self.deferred.clear();
        self.flags &= !(flags::OUTPUT | flags::CONNECT);
        for (batch_id, _) in std::mem::take(&mut self.deadlines) {
            if let Some(mut waiting) = self.waiting.remove(&batch_id) {
                for slot in &mut waiting.slots {
                    if matches!(slot, Slot::Sent(..)) {
                        *slot = Slot::Done(Err(err.clone()));
                    }
                }
                self.finish(batch_id, waiting);
            }
        }
    }

    fn finish(&mut self, batch_id: u32, waiting: Waiting) {
        let results = waiting
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(result) => result,
                Slot::Sent(..) => Err(lost_track()),
            })
            .collect();
        self.finished.push(Finished { batch_id, results });
    }
}

/// Whether two calls touch a common session key (a rename touches two).
fn same_session((a_key, a): (&str, &Op), (b_key, b): (&str, &Op)) -> bool {
    fn keys<'a>(key: &'a str, op: &'a Op) -> [Option<&'a str>; 2] {
        match op {
            Op::Rename { to } => [Some(key), Some(to)],
            _ => [Some(key), None],
        }
    }
    let (a_keys, b_keys) = (keys(a_key, a), keys(b_key, b));
    a_keys.iter().flatten().any(|k| b_keys.contains(&Some(*k)))
}

/// Redis wants a password that was not given.
fn no_password(err: &redis::ServerError) -> SessionError {
    let mut refused = server_error(err, None);
    refused.message = format!(
        "redis requires a password and none was given (redis.password, or the url's): {}",
        refused.message
    );
    refused
}

/// A reply for a batch or operation the link does not know: a bug, or a
/// stream out of step. Either way, the connection cannot be trusted.
fn lost_track() -> SessionError {
    SessionError::new(
        ErrorCode::Store,
        "a redis reply did not match the command it answers",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        ttl_secs: 60,
        max_fields: 10,
        max_lifetime_secs: None,
    };

    fn take_output(link: &mut Link) -> String {
        let sent = String::from_utf8(link.output().to_vec()).unwrap();
        link.clear_output();
        sent
    }

    fn link(handshake: &[Cmd]) -> Link {
        Link::new(handshake, LIMITS, Duration::from_millis(100))
    }

    /// What Redis answers to the five `SCRIPT LOAD`s of a new connection.
    /// How many scripts each connection loads.
    fn scripts() -> usize {
        crate::store::redis::preload_scripts().len()
    }

    /// The replies to the handshake's `SCRIPT LOAD`s.
    fn loaded() -> Vec<u8> {
        "+sha\r\n".repeat(scripts()).into_bytes()
    }

    /// A connected link, its handshake sent and answered.
    fn connected(handshake: &[Cmd]) -> Link {
        let mut link = link(handshake);
        link.submit(
            0,
            vec![Item::Run("s:warm".into(), Op::Touch)],
            Instant::now(),
        );
        link.connected();
        link.received(&loaded());
        link.received(b":1\r\n");
        link.take_flags();
        link.clear_output();
        assert_eq!(link.take_finished().len(), 1);
        link
    }

    fn get(field: &str) -> Item {
        Item::Run("s:a".into(), Op::Get(field.into()))
    }

    fn value(result: &Result<Reply>) -> Option<String> {
        match result {
            Ok(Reply::Value(value)) => value.clone(),
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn a_batch_waits_for_the_connection_then_goes_after_the_handshake() {
        let mut auth = redis::cmd("AUTH");
        auth.arg("pw");
        let mut link = link(&[auth]);
        link.submit(1, vec![get("a"), get("b")], Instant::now());
        assert_eq!(link.take_flags(), flags::CONNECT);
        link.connected();
        assert_eq!(link.take_flags(), flags::OUTPUT);
        let sent = take_output(&mut link);
        assert!(sent
            .starts_with("*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n"));
        assert_eq!(sent.matches("SCRIPT").count(), scripts());
        assert!(sent.find("*3\r\n$4\r\nHGET\r\n").unwrap() > sent.rfind("SCRIPT").unwrap());
        // Replies split at awkward places still pair up.
        link.received(b"+OK\r\n");
        link.received(&loaded());
        link.received(b"$1\r\nx");
        assert!(link.take_finished().is_empty());
        link.received(b"\r\n$-");
        link.received(b"1\r\n");
        let finished = link.take_finished();
        assert_eq!(finished.len(), 1);
        assert_eq!(value(&finished[0].results[0]), Some("x".into()));
        assert_eq!(value(&finished[0].results[1]), None);
        assert!(!link.busy());
    }

    #[test]
    fn a_refused_handshake_fails_the_waiting_calls_and_resets() {
        let mut auth = redis::cmd("AUTH");
        auth.arg("wrong");
        let mut link = link(&[auth]);
        link.submit(7, vec![get("a")], Instant::now());
        link.connected();
        link.take_flags();
        link.received(b"-WRONGPASS invalid username-password pair\r\n");
        assert_eq!(link.take_flags(), flags::RESET);
        let finished = link.take_finished();
        let err = finished[0].results[0].as_ref().unwrap_err();
        assert_eq!(err.code, ErrorCode::Auth);
        assert!(err.message.contains("WRONGPASS"), "{}", err.message);
        // The next batch asks for a new connection.
        link.submit(8, vec![get("a")], Instant::now());
        assert_eq!(link.take_flags(), flags::CONNECT);
    }

    #[test]
    fn noscript_sends_the_script_again_with_its_body() {
        let mut link = connected(&[]);
        let write = |field: &str| Op::Write {
            set: vec![(field.into(), "1".into())],
            delete: vec![],
            create: true,
        };
        let on = |key: &str, op: Op| Item::Run(key.into(), op);
        // A later call on another session does not keep it from being sent again.
        link.submit(
            1,
            vec![on("s:a", write("k")), on("s:b", Op::Get("k".into()))],
            Instant::now(),
        );
        assert!(take_output(&mut link).contains("EVALSHA"));
        link.take_flags();
        link.received(b"-NOSCRIPT No matching script.\r\n$-1\r\n");
        assert_eq!(link.take_flags(), flags::OUTPUT);
        let again = take_output(&mut link);
        assert_eq!(
            again.matches("SCRIPT").count(),
            scripts(),
            "the scripts are loaded again"
        );
        assert!(again.find("\r\nEVAL\r\n").unwrap() > again.rfind("SCRIPT").unwrap());
        assert!(link.take_finished().is_empty());
        link.received(&loaded());
        link.received(b":1\r\n");
        assert_eq!(
            link.take_finished()[0].results,
            [Ok(Reply::Done), Ok(Reply::Value(None))]
        );
    }

    #[test]
    fn noscript_sends_two_scripts_of_one_session_again_in_their_order() {
        let mut link = connected(&[]);
        let incr = |by| Op::Incr {
            field: "n".into(),
            by,
            create: false,
        };
        link.submit(
            1,
            vec![
                Item::Run("s:a".into(), incr(1)),
                Item::Run("s:a".into(), incr(10)),
            ],
            Instant::now(),
        );
        take_output(&mut link);
        link.received(b"-NOSCRIPT No matching script.\r\n-NOSCRIPT No matching script.\r\n");
        let again = take_output(&mut link);
        let first = again.find("\r\n$1\r\n1\r\n").expect("the first incr again");
        let second = again
            .find("\r\n$2\r\n10\r\n")
            .expect("the second incr again");
        assert!(first < second, "in their order: {again}");
        link.received(&loaded());
        link.received(b":1\r\n:11\r\n");
        assert_eq!(
            link.take_finished()[0].results,
            [Ok(Reply::Int(1)), Ok(Reply::Int(11))]
        );
    }

    #[test]
    fn noscript_fails_a_call_rather_than_run_it_after_a_later_one_on_its_session() {
        let mut link = connected(&[]);
        let write = Op::Write {
            set: vec![("k".into(), "1".into())],
            delete: vec![],
            create: false,
        };
        link.submit(
            1,
            vec![
                Item::Run("s:a".into(), write),
                Item::Run("s:a".into(), Op::Get("k".into())),
            ],
            Instant::now(),
        );
        take_output(&mut link);
        link.received(b"-NOSCRIPT No matching script.\r\n$1\r\n0\r\n");
        let reload = take_output(&mut link);
        assert_eq!(reload.matches("SCRIPT").count(), scripts());
        assert!(!reload.contains("EVAL\r\n"), "not sent again: {reload}");
        let finished = link.take_finished();
        let err = finished[0].results[0].as_ref().unwrap_err();
        assert_eq!(err.code, ErrorCode::Store);
        assert_eq!(
            value(&finished[0].results[1]),
            Some("0".into()),
            "the get ran as sent"
        );
        // Once the scripts are loaded again, the link goes on as before.
        link.submit(2, vec![Item::Run("s:c".into(), Op::Touch)], Instant::now());
        link.received(&loaded());
        link.received(b":1\r\n");
        assert_eq!(link.take_finished()[0].results, [Ok(Reply::Done)]);
    }

    #[test]
    fn losing_the_connection_fails_every_waiting_call_in_order() {
        let mut link = link(&[]);
        let start = Instant::now();
        link.submit(1, vec![get("a")], start);
        link.submit(2, vec![Item::Ready(Ok(Reply::Done)), get("b")], start);
        link.connected();
        assert_eq!(
            link.overdue_in(start + Duration::from_millis(40)),
            Some(Duration::from_millis(60))
        );
        link.lost("did not answer within 100 ms", ErrorCode::Timeout);
        let finished = link.take_finished();
        assert_eq!(
            finished.iter().map(|f| f.batch_id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            finished[0].results[0].as_ref().unwrap_err().code,
            ErrorCode::Timeout
        );
        assert_eq!(finished[1].results[0], Ok(Reply::Done));
        assert_eq!(link.overdue_in(start), None);
    }

    #[test]
    fn a_readonly_reply_drops_the_connection_and_fails_what_waits() {
        let mut link = connected(&[]);
        link.submit(
            1,
            vec![Item::Run("s:a".into(), Op::Destroy), get("a")],
            Instant::now(),
        );
        link.take_flags();
        link.received(b"-READONLY You can't write against a read only replica.\r\n");
        assert_eq!(link.take_flags(), flags::RESET);
        let finished = link.take_finished();
        let codes: Vec<_> = finished[0]
            .results
            .iter()
            .map(|r| r.as_ref().unwrap_err().code)
            .collect();
        assert_eq!(codes, [ErrorCode::Connection, ErrorCode::Connection]);
        link.submit(2, vec![get("a")], Instant::now());
        assert_eq!(
            link.take_flags(),
            flags::CONNECT,
            "the next call connects anew"
        );
    }

    #[test]
    fn garbage_or_an_unasked_reply_resets() {
        let mut link = connected(&[]);
        link.submit(1, vec![get("a")], Instant::now());
        link.take_flags();
        link.received(b"?\r\n");
        assert_eq!(link.take_flags(), flags::RESET);
        assert_eq!(
            link.take_finished()[0].results[0]
                .as_ref()
                .unwrap_err()
                .code,
            ErrorCode::Store
        );

        link.submit(2, vec![get("a")], Instant::now());
        link.connected();
        link.received(&loaded());
        link.received(b"$1\r\nx\r\n:5\r\n");
        assert_eq!(link.take_flags() & flags::RESET, flags::RESET);
        assert_eq!(value(&link.take_finished()[0].results[0]), Some("x".into()));
    }

    #[test]
    fn a_refused_script_load_leaves_the_connection_usable() {
        let mut link = link(&[]);
        link.submit(1, vec![get("a")], Instant::now());
        link.connected();
        link.take_flags();
        link.received(b"-NOPERM no SCRIPT for this user\r\n");
        link.received(&loaded()["+sha\r\n".len()..]);
        link.received(b"$1\r\nx\r\n");
        assert_eq!(link.take_flags() & flags::RESET, 0);
        assert_eq!(value(&link.take_finished()[0].results[0]), Some("x".into()));
    }

    #[test]
    fn answered_batches_leave_no_deadline_behind() {
        let mut link = connected(&[]);
        let start = Instant::now();
        for batch_id in 1..=1000 {
            link.submit(batch_id, vec![get("a")], start);
            link.received(b"$-1\r\n");
        }
        assert_eq!(link.take_finished().len(), 1000);
        assert!(
            link.deadlines.is_empty(),
            "{} deadlines kept",
            link.deadlines.len()
        );
    }

    #[test]
    fn a_batch_without_commands_finishes_at_once() {
        let mut link = link(&[]);
        link.submit(
            3,
            vec![
                Item::Ready(Ok(Reply::Done)),
                Item::Run("s:a".into(), Op::MGet(vec![])),
            ],
            Instant::now(),
        );
        assert_eq!(link.take_flags(), 0);
        let finished = link.take_finished();
        assert_eq!(finished[0].results[1], Ok(Reply::Values(vec![])));
    }
}
