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

use super::redis::{decode, encode, is_noscript, preload_scripts};
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

    /// The socket closed or failed (`timed_out`: it was dropped for not answering).
    pub fn lost(&mut self, reason: &str, timed_out: bool) {
        let err = if timed_out {
            SessionError::new(ErrorCode::Timeout, reason)
        } else {
            SessionError::new(ErrorCode::Connection, format!("redis: {reason}"))
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
        match self.expected.pop_front() {
            None => self.fail(SessionError::new(
                ErrorCode::Store,
                "redis sent a reply to no command",
            )),
            Some(Expected::Preload) => {}
            Some(Expected::Handshake) => {
                if let Value::ServerError(err) = value {
                    let err = redis::RedisError::from(err);
                    self.fail(SessionError::caused_by(
                        ErrorCode::Connection,
                        "redis refused the connection",
                        &err,
                    ));
                }
            }
            Some(Expected::Operation {
                batch_id,
                index,
                with_body,
            }) => self.on_operation_reply(batch_id, index, with_body, value),
        }
    }

    fn on_operation_reply(&mut self, batch_id: u32, index: usize, with_body: bool, value: Value) {
        let Some(waiting) = self.waiting.get_mut(&batch_id) else {
            return self.fail(lost_track());
        };
        let Some(Slot::Sent(key, op)) = waiting.slots.get(index) else {
            return self.fail(lost_track());
        };
        // A restarted (or flushed) Redis no longer knows the script: nothing
        // ran, so it is sent once more, with its body.
        if !with_body && is_noscript(&value) {
            encode(&mut self.output, key, op, self.limits, true);
            self.expected.push_back(Expected::Operation {
                batch_id,
                index,
                with_body: true,
            });
            self.flags |= flags::OUTPUT;
            return;
        }
        let result = decode(op, Some(value), self.limits);
        waiting.slots[index] = Slot::Done(result);
        waiting.left -= 1;
        if waiting.left == 0 {
            if let Some(waiting) = self.waiting.remove(&batch_id) {
                self.finish(batch_id, waiting);
            }
            self.forget_answered_deadlines();
        }
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
    const LOADED: &[u8] = b"+sha\r\n+sha\r\n+sha\r\n+sha\r\n+sha\r\n";

    /// A connected link, its handshake sent and answered.
    fn connected(handshake: &[Cmd]) -> Link {
        let mut link = link(handshake);
        link.submit(
            0,
            vec![Item::Run("s:warm".into(), Op::Touch)],
            Instant::now(),
        );
        link.connected();
        link.received(LOADED);
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
        assert_eq!(sent.matches("SCRIPT").count(), 5);
        assert!(sent.find("*3\r\n$4\r\nHGET\r\n").unwrap() > sent.rfind("SCRIPT").unwrap());
        // Replies split at awkward places still pair up.
        link.received(b"+OK\r\n");
        link.received(LOADED);
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
        assert_eq!(err.code, ErrorCode::Connection);
        assert!(err.message.contains("WRONGPASS"), "{}", err.message);
        // The next batch asks for a new connection.
        link.submit(8, vec![get("a")], Instant::now());
        assert_eq!(link.take_flags(), flags::CONNECT);
    }

    #[test]
    fn noscript_sends_the_script_again_with_its_body() {
        let mut link = connected(&[]);
        let write = Op::Write {
            set: vec![("k".into(), "1".into())],
            delete: vec![],
            create: true,
        };
        link.submit(1, vec![Item::Run("s:a".into(), write)], Instant::now());
        assert!(take_output(&mut link).contains("EVALSHA"));
        link.take_flags();
        link.received(b"-NOSCRIPT No matching script.\r\n");
        assert_eq!(link.take_flags(), flags::OUTPUT);
        assert!(take_output(&mut link).contains("\r\nEVAL\r\n"));
        assert!(link.take_finished().is_empty());
        link.received(b":1\r\n");
        assert_eq!(link.take_finished()[0].results[0], Ok(Reply::Done));
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
        link.lost("did not answer within 100 ms", true);
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
        link.received(LOADED);
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
        link.received(b"-NOPERM no SCRIPT for this user\r\n+sha\r\n+sha\r\n+sha\r\n+sha\r\n");
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
