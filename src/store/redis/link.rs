//! One connection to Redis, without I/O of its own ("sans I/O"). JavaScript
//! owns the socket, on Node's event loop (`socket.js`), and reports each event
//! here: a batch to send, bytes read, the socket connected or lost, a
//! deadline passed, news from the sentinels. The link decides what to write
//! and what every reply means.
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
//!
//! Two things may keep a call from going out at once. During a Sentinel
//! failover, writes are held back (see [`Link::hold_writes`]) until the
//! failover is over, so that none lands on a primary that is stepping down.
//! With `redis.waitReplicas`, a write is acknowledged only once a `WAIT`
//! behind it says enough replicas have it (see `config::Durability`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use napi_derive::napi;
use redis::{Cmd, Value};

use super::commands::{
    decode, encode, is_noscript, redirects, server_error, unconfirmed, wait_for,
};
use super::resp;
use super::scripts;
use crate::config::Durability;
use crate::error::{ErrorCode, Result, SessionError};
use crate::store::{not_replicated, Finished, Item, Limits, Op, Reply};

/// What JavaScript must do after a call into the link: the bits of
/// [`Link::take_flags`], the first number of every outcome. Exported to
/// JavaScript (`LinkFlag` of binding.js), which acts on them (lib/link.js).
#[napi]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFlag {
    /// There are bytes to write: `takeOutput()`.
    Output = 1,
    /// Work is waiting and there is no connection: open one.
    Connect = 2,
    /// The connection is unusable, or to be left: destroy the socket (its
    /// calls have failed or answered already).
    Reset = 4,
    /// Under Sentinel the primary moved (set by the engine, not the link):
    /// operators are told, with a `failover` event.
    Failover = 8,
    /// On a cluster: primaries' sockets have something to do (set by the
    /// engine): `nodeActions()` says which, and what.
    Nodes = 16,
    /// On a cluster: batches finish on tokio (set by the engine): `later()`
    /// is a Promise of their outcome.
    Later = 32,
}

const OUTPUT: u32 = LinkFlag::Output as u32;
const CONNECT: u32 = LinkFlag::Connect as u32;
const RESET: u32 = LinkFlag::Reset as u32;

/// How a link works, besides what each connection says first.
#[derive(Debug, Clone, Copy)]
pub struct LinkOptions {
    pub limits: Limits,
    pub command_timeout: Duration,
    /// Under Sentinel: each connection checks with `ROLE` that it reached
    /// the primary, and not a server the sentinels named a moment before it
    /// stepped down.
    pub check_role: bool,
    pub durability: Option<Durability>,
    /// On a cluster's primary: a reply that sends a call elsewhere (`MOVED`,
    /// `ASK`, `TRYAGAIN`, `CLUSTERDOWN`: it did not run) is not its result;
    /// the call is handed back ([`Link::take_redirected`]) to be run where
    /// the cluster says.
    pub redirects: bool,
}

impl LinkOptions {
    /// A plain link's: no `ROLE` check, redirects are errors.
    pub const fn new(
        limits: Limits,
        command_timeout: Duration,
        durability: Option<Durability>,
    ) -> LinkOptions {
        LinkOptions {
            limits,
            command_timeout,
            check_role: false,
            durability,
            redirects: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    Connecting,
    Up,
}

/// What is kept from the wire for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Nothing,
    /// A failover is under way: writes wait, and so does every later call
    /// on a session that has one waiting (its calls stay in order).
    Writes,
    /// The primary moved: nothing more goes to this connection. Once its
    /// calls have answered it is left, and what waits goes to a new one.
    Everything,
}

/// Who a reply on the wire belongs to.
#[derive(Clone)]
enum Expected {
    /// `AUTH` / `SELECT`, sent first on every connection: refused, the
    /// connection is unusable.
    Handshake,
    /// `ROLE`, under Sentinel: anything but a primary, the connection is unusable.
    Role,
    /// `SCRIPT LOAD`, after them: refused (an ACL without `SCRIPT`, say),
    /// scripts still work, through `NOSCRIPT` and `EVAL`.
    Preload,
    Operation {
        batch_id: u32,
        index: usize,
        /// Sent as `EVAL` with the script's body, after a `NOSCRIPT`.
        with_body: bool,
    },
    /// `WAIT`, behind these writes (batch, index): their results stand only
    /// if enough replicas confirm them.
    Confirm(Vec<(u32, usize)>),
}

enum Slot {
    Sent(String, Op),
    /// Not sent yet: a failover is under way (see [`Hold`]).
    Held(String, Op),
    Done(Result<Reply>),
}

struct Waiting {
    slots: Vec<Slot>,
    /// Answers still to come: one per slot `Sent` or `Held`, and one per
    /// write whose `WAIT` has not answered.
    left: usize,
}

pub struct Link {
    /// What every new connection sends first, and the replies it expects for it.
    handshake: Vec<u8>,
    handshake_replies: Vec<Expected>,
    limits: Limits,
    command_timeout: Duration,
    durability: Option<Durability>,
    state: State,
    flags: u32,
    /// Bytes for the socket; while connecting, they wait here for the handshake.
    output: Vec<u8>,
    /// The start of a reply whose end has not arrived yet.
    input: Vec<u8>,
    expected: VecDeque<Expected>,
    waiting: HashMap<u32, Waiting>,
    /// Batches in the order they were submitted, with the time they must be answered by.
    deadlines: VecDeque<(u32, Instant)>,
    finished: Vec<Finished>,
    /// `SCRIPT LOAD`s sent after a `NOSCRIPT`, not answered yet.
    reloading_scripts: bool,
    /// Calls that got `NOSCRIPT`, oldest first, waiting for the calls sent
    /// behind them to answer.
    deferred: Vec<Deferred>,
    hold: Hold,
    /// The calls held back, in the order they came, and the session keys they are on.
    held: VecDeque<(u32, usize)>,
    held_keys: HashSet<String>,
    /// The server reached is not (or no longer) the primary; see [`Link::take_wrong_primary`].
    wrong_primary: bool,
    redirects: bool,
    /// Calls a cluster sent elsewhere, until [`Link::take_redirected`].
    redirected: Vec<Redirected>,
}

/// A call that a cluster's node did not run, but sent elsewhere: its batch
/// finishes with a placeholder at `index`, to be replaced by its result
/// where it is run again.
pub struct Redirected {
    pub batch_id: u32,
    pub index: usize,
    pub key: String,
    pub op: Op,
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
    /// `SELECT`); then `ROLE` under Sentinel, then the scripts are loaded.
    pub fn new(handshake: &[Cmd], options: LinkOptions) -> Link {
        let mut bytes = Vec::new();
        let mut replies = Vec::new();
        for cmd in handshake {
            cmd.write_packed_command(&mut bytes);
            replies.push(Expected::Handshake);
        }
        if options.check_role {
            redis::cmd("ROLE").write_packed_command(&mut bytes);
            replies.push(Expected::Role);
        }
        for cmd in scripts::preload() {
            cmd.write_packed_command(&mut bytes);
            replies.push(Expected::Preload);
        }
        Link {
            handshake: bytes,
            handshake_replies: replies,
            limits: options.limits,
            command_timeout: options.command_timeout,
            durability: options.durability,
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
            hold: Hold::Nothing,
            held: VecDeque::new(),
            held_keys: HashSet::new(),
            wrong_primary: false,
            redirects: options.redirects,
            redirected: Vec::new(),
        }
    }

    /// Queues a batch: one command per operation, written as one pipeline
    /// (but for calls held back during a failover).
    pub fn submit(&mut self, batch_id: u32, items: Vec<Item>, now: Instant) {
        let mut slots = Vec::with_capacity(items.len());
        let mut left = 0;
        let mut writes = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let slot = match item {
                Item::Ready(result) => Slot::Done(result),
                Item::Run(key, op) if self.holds(&key, &op) => {
                    self.held_keys.extend(op.keys(&key).map(str::to_owned));
                    self.held.push_back((batch_id, index));
                    left += 1;
                    Slot::Held(key, op)
                }
                Item::Run(key, op) => {
                    if !self.send(batch_id, index, &key, &op, false) {
                        // An `mget` of no keys: nothing to ask Redis.
                        Slot::Done(decode(&key, &op, None, self.limits))
                    } else {
                        left += 1;
                        if self.confirms(&op) {
                            writes.push((batch_id, index));
                        }
                        Slot::Sent(key, op)
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
        self.confirm(writes);
        self.want_output();
    }

    /// Writes one operation's command to the output; `false` when there
    /// is nothing to ask.
    fn send(&mut self, batch_id: u32, index: usize, key: &str, op: &Op, with_body: bool) -> bool {
        if !encode(&mut self.output, key, op, self.limits, with_body) {
            return false;
        }
        self.expected.push_back(Expected::Operation {
            batch_id,
            index,
            with_body,
        });
        true
    }

    /// Whether a call is acknowledged only once replicas confirm it.
    fn confirms(&self, op: &Op) -> bool {
        self.durability.is_some() && op.confirmed_by_replicas()
    }

    /// `WAIT` behind `writes`, which were just sent: each waits for its answer.
    fn confirm(&mut self, writes: Vec<(u32, usize)>) {
        let Some(durability) = self.durability else {
            return;
        };
        if writes.is_empty() {
            return;
        }
        wait_for(durability).write_packed_command(&mut self.output);
        for (batch_id, _) in &writes {
            if let Some(waiting) = self.waiting.get_mut(batch_id) {
                waiting.left += 1;
            }
        }
        self.expected.push_back(Expected::Confirm(writes));
    }

    /// Asks JavaScript to write what the output holds, or to connect first.
    fn want_output(&mut self) {
        if self.output.is_empty() {
            return;
        }
        match self.state {
            State::Up => self.flags |= OUTPUT,
            State::Connecting => {}
            State::Down => {
                self.state = State::Connecting;
                self.flags |= CONNECT;
            }
        }
    }

    /// Whether a call waits instead of going out now.
    fn holds(&self, key: &str, op: &Op) -> bool {
        match self.hold {
            Hold::Nothing => false,
            Hold::Everything => true,
            Hold::Writes => op.writes() || op.keys(key).any(|key| self.held_keys.contains(key)),
        }
    }

    /// A Sentinel failover started: from now on, writes wait (within
    /// `commandTimeout`) until it is over, so that none lands on the primary
    /// that is stepping down. Reads and idle refreshes go on.
    pub fn hold_writes(&mut self) {
        if self.hold == Hold::Nothing {
            self.hold = Hold::Writes;
        }
    }

    /// The failover ended with the primary where it was: what waited goes out.
    pub fn release_writes(&mut self) {
        if self.hold == Hold::Writes {
            self.hold = Hold::Nothing;
            self.release();
        }
    }

    /// The primary moved: the connection is left once the calls on it have
    /// answered (at once when there are none), and every call from now on,
    /// with those that waited, goes to a new connection, to the new primary.
    pub fn primary_moved(&mut self) {
        self.hold = Hold::Everything;
        self.move_when_idle();
    }

    fn move_when_idle(&mut self) {
        if self.hold != Hold::Everything {
            return;
        }
        match self.state {
            State::Up if !self.expected.is_empty() => return,
            State::Up => {
                self.state = State::Down;
                self.input.clear();
                self.output.clear();
                self.flags |= RESET;
            }
            // Nothing went out yet: start again, toward the new primary.
            State::Connecting => {
                self.state = State::Down;
                self.flags |= RESET;
            }
            State::Down => {}
        }
        self.hold = Hold::Nothing;
        self.release();
    }

    /// Sends every call that was held back, in the order they came.
    fn release(&mut self) {
        self.held_keys.clear();
        let mut writes = Vec::new();
        for (batch_id, index) in std::mem::take(&mut self.held) {
            let Some((key, op)) = self.take_held(batch_id, index) else {
                continue;
            };
            if !self.send(batch_id, index, &key, &op, false) {
                let result = decode(&key, &op, None, self.limits);
                self.complete(batch_id, index, result);
                continue;
            }
            if self.confirms(&op) {
                writes.push((batch_id, index));
            }
            if let Some(slot) = self.slot_mut(batch_id, index) {
                *slot = Slot::Sent(key, op);
            }
        }
        self.confirm(writes);
        self.want_output();
    }

    /// A held call's key and operation, its slot left to be filled.
    fn take_held(&mut self, batch_id: u32, index: usize) -> Option<(String, Op)> {
        let slot = self.slot_mut(batch_id, index)?;
        match std::mem::replace(slot, Slot::Done(Ok(Reply::Done))) {
            Slot::Held(key, op) => Some((key, op)),
            other => {
                *slot = other;
                None
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
        for reply in self.handshake_replies.iter().rev() {
            self.expected.push_front(reply.clone());
        }
        if !self.output.is_empty() {
            self.flags |= OUTPUT;
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

    /// How long until the oldest unanswered batch is overdue (zero: it is;
    /// then [`Link::expire`]); `None` when nothing is waiting.
    pub fn overdue_in(&mut self, now: Instant) -> Option<Duration> {
        self.forget_answered_deadlines();
        let &(_, deadline) = self.deadlines.front()?;
        Some(deadline.saturating_duration_since(now))
    }

    /// Fails what is overdue at `now`. A call held back fails alone (it
    /// never went out); a call on the wire that has not answered means the
    /// connection cannot be trusted: it is dropped, with every call on it.
    pub fn expire(&mut self, now: Instant) {
        loop {
            self.forget_answered_deadlines();
            let Some(&(batch_id, deadline)) = self.deadlines.front() else {
                return;
            };
            if deadline > now {
                return;
            }
            if self.awaits_redis(batch_id) {
                // Its reply may still come, but after the ones that follow
                // it: nothing on this connection can be paired with its call.
                let ms = self.command_timeout.as_millis();
                self.fail(SessionError::new(
                    ErrorCode::Timeout,
                    format!("redis did not answer within {ms} ms"),
                ));
            } else {
                self.expire_held(batch_id);
            }
        }
    }

    /// Whether some answer of the batch is to come from Redis (not only held calls).
    fn awaits_redis(&self, batch_id: u32) -> bool {
        self.waiting.get(&batch_id).is_some_and(|waiting| {
            let held = waiting
                .slots
                .iter()
                .filter(|slot| matches!(slot, Slot::Held(..)))
                .count();
            waiting.left > held
        })
    }

    /// The held calls of an overdue batch fail: not sent, nothing written.
    fn expire_held(&mut self, batch_id: u32) {
        let ms = self.command_timeout.as_millis();
        let err = SessionError::new(
            ErrorCode::Timeout,
            format!("a failover of the redis primary was under way for longer than commandTimeout ({ms} ms): this call was not sent, and nothing was written"),
        );
        let mine: Vec<usize> = self
            .held
            .iter()
            .filter(|(batch, _)| *batch == batch_id)
            .map(|&(_, index)| index)
            .collect();
        self.held.retain(|(batch, _)| *batch != batch_id);
        for index in mine {
            self.complete(batch_id, index, Err(err.clone()));
        }
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

    /// Batches waiting for replies (or for a connection, or for a failover to end).
    pub fn busy(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Whether the server reached turned out not to be the primary (`ROLE`,
    /// or a `READONLY` reply) since the last call: the next connection must
    /// ask the sentinels anew.
    pub fn take_wrong_primary(&mut self) -> bool {
        std::mem::take(&mut self.wrong_primary)
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

    /// The calls sent elsewhere since the last call (see [`LinkOptions::redirects`]).
    pub fn take_redirected(&mut self) -> Vec<Redirected> {
        std::mem::take(&mut self.redirected)
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
            Some(Expected::Role) => {
                if !is_primary(&value) {
                    self.wrong_primary = true;
                    self.fail(SessionError::new(
                        ErrorCode::Sentinel,
                        "the server the sentinels named is not the primary (a failover under way?): the next call asks them again",
                    ));
                }
            }
            Some(Expected::Operation {
                batch_id,
                index,
                with_body,
            }) => self.on_operation_reply(batch_id, index, with_body, value),
            Some(Expected::Confirm(writes)) => self.on_confirm(writes, value),
        }
        self.settle_deferred();
        self.move_when_idle();
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
            self.wrong_primary = true;
            return self.fail(SessionError::new(
                ErrorCode::Connection,
                "redis answered as a read-only replica: the primary has moved; the next call reconnects",
            ));
        }
        if self.redirects && is_redirect(&value) {
            let (key, op) = (key.clone(), op.clone());
            self.redirected.push(Redirected {
                batch_id,
                index,
                key,
                op,
            });
            return self.complete(batch_id, index, Err(redirected()));
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

    /// The answer to a `WAIT`: the writes before it stand if enough replicas
    /// have them; otherwise they fail, as applied on the primary only.
    fn on_confirm(&mut self, writes: Vec<(u32, usize)>, value: Value) {
        let unconfirmed = self.durability.and_then(|d| unconfirmed(&value, d));
        for (batch_id, index) in writes {
            if let Some(err) = &unconfirmed {
                self.unconfirm(batch_id, index, err.clone());
            }
            self.answered(batch_id);
        }
    }

    /// A write that was applied but not confirmed fails with `err`.
    fn unconfirm(&mut self, batch_id: u32, index: usize, err: SessionError) {
        if let Some(slot) = self.slot_mut(batch_id, index) {
            // A call sent again after `NOSCRIPT` (still `Sent`) has a `WAIT` of its own.
            if matches!(slot, Slot::Done(Ok(reply)) if *reply != Reply::Gone) {
                *slot = Slot::Done(Err(err));
            }
        }
    }

    fn slot(&self, batch_id: u32, index: usize) -> Option<&Slot> {
        self.waiting.get(&batch_id)?.slots.get(index)
    }

    fn slot_mut(&mut self, batch_id: u32, index: usize) -> Option<&mut Slot> {
        self.waiting.get_mut(&batch_id)?.slots.get_mut(index)
    }

    fn complete(&mut self, batch_id: u32, index: usize, result: Result<Reply>) {
        if let Some(slot) = self.slot_mut(batch_id, index) {
            *slot = Slot::Done(result);
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
            let (key, op) = (key.clone(), op.clone());
            self.send(batch_id, index, &key, &op, true);
            if self.confirms(&op) {
                self.confirm(vec![(batch_id, index)]);
            }
            self.flags |= OUTPUT;
        }
    }

    /// One more answer of the batch has come; the batch finishes with its last.
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
        for cmd in scripts::preload() {
            cmd.write_packed_command(&mut self.output);
            self.expected.push_back(Expected::Preload);
        }
        self.flags |= OUTPUT;
    }

    /// Fails everything on the connection and asks JavaScript to destroy the socket.
    fn fail(&mut self, err: SessionError) {
        self.drop_connection(err);
        self.flags |= RESET;
    }

    /// Every call on the connection fails with `err`, in the order they were
    /// sent (a write whose `WAIT` had not answered: as not confirmed). Calls
    /// held back stay held, for the next connection.
    fn drop_connection(&mut self, err: SessionError) {
        self.state = State::Down;
        self.output.clear();
        self.input.clear();
        self.reloading_scripts = false;
        self.flags &= !(OUTPUT | CONNECT);
        self.deferred.clear();
        let expected = std::mem::take(&mut self.expected);
        // Every call sent (or told `NOSCRIPT`, to be sent again), batch by batch.
        let batches: Vec<u32> = self
            .deadlines
            .iter()
            .map(|&(batch_id, _)| batch_id)
            .collect();
        for batch_id in batches {
            let sent: Vec<usize> = self
                .waiting
                .get(&batch_id)
                .map_or_else(Vec::new, |waiting| {
                    let slots = waiting.slots.iter().enumerate();
                    slots
                        .filter(|(_, slot)| matches!(slot, Slot::Sent(..)))
                        .map(|(index, _)| index)
                        .collect()
                });
            for index in sent {
                self.complete(batch_id, index, Err(err.clone()));
            }
        }
        for expected in expected {
            if let Expected::Confirm(writes) = expected {
                let what = format!(
                    "the connection was lost ({}) before replicas confirmed it",
                    err.message
                );
                let timeout = self.durability.map_or(Duration::ZERO, |d| d.timeout);
                let lost = not_replicated(&what, timeout);
                for (batch_id, index) in writes {
                    self.unconfirm(batch_id, index, lost.clone());
                    self.answered(batch_id);
                }
            }
        }
        self.move_when_idle();
    }

    fn finish(&mut self, batch_id: u32, waiting: Waiting) {
        let results = waiting
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(result) => result,
                Slot::Sent(..) | Slot::Held(..) => Err(lost_track()),
            })
            .collect();
        self.finished.push(Finished { batch_id, results });
    }
}

/// Whether two calls touch a common session key.
fn same_session((a_key, a): (&str, &Op), (b_key, b): (&str, &Op)) -> bool {
    a.keys(a_key)
        .any(|key| b.keys(b_key).any(|other| other == key))
}

/// Whether a `ROLE` reply is a primary's.
fn is_primary(role: &Value) -> bool {
    match role {
        Value::Array(parts) => {
            matches!(
                parts.first(),
                Some(Value::BulkString(role)) if role == b"master"
            ) || matches!(parts.first(), Some(Value::SimpleString(role)) if role == "master")
        }
        _ => false,
    }
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

/// A reply with which a cluster sends a call elsewhere, or asks to try
/// again later: the call did not run.
fn is_redirect(value: &Value) -> bool {
    matches!(value, Value::ServerError(err) if redirects(err.code()))
}

/// The placeholder result of a call sent elsewhere, until it is run there.
fn redirected() -> SessionError {
    SessionError::new(
        ErrorCode::Store,
        "redis cluster: the call was sent to another node and not run again",
    )
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
pub(crate) mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        ttl_secs: 60,
        max_fields: 10,
        max_lifetime_secs: None,
        max_sessions_per_user: 100,
        persistent: false,
    };

    fn take_output(link: &mut Link) -> String {
        let sent = String::from_utf8(link.output().to_vec()).unwrap();
        link.clear_output();
        sent
    }

    pub(crate) const OPTIONS: LinkOptions =
        LinkOptions::new(LIMITS, Duration::from_millis(100), None);

    fn link(handshake: &[Cmd]) -> Link {
        Link::new(handshake, OPTIONS)
    }

    /// How many scripts each connection loads (`SCRIPT LOAD`).
    fn scripts() -> usize {
        crate::store::redis::scripts::preload().len()
    }

    /// The replies to the handshake's `SCRIPT LOAD`s.
    pub(crate) fn loaded() -> Vec<u8> {
        "+sha\r\n".repeat(scripts()).into_bytes()
    }

    /// A connected link, its handshake sent and answered.
    fn connected(handshake: &[Cmd]) -> Link {
        connected_with(link(handshake))
    }

    /// `link`, connected, its handshake sent and answered.
    fn connected_with(mut link: Link) -> Link {
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

    pub(crate) fn value(result: &Result<Reply>) -> Option<String> {
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
        assert_eq!(link.take_flags(), CONNECT);
        link.connected();
        assert_eq!(link.take_flags(), OUTPUT);
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
        assert_eq!(link.take_flags(), RESET);
        let finished = link.take_finished();
        let err = finished[0].results[0].as_ref().unwrap_err();
        assert_eq!(err.code, ErrorCode::Auth);
        assert!(err.message.contains("WRONGPASS"), "{}", err.message);
        // The next batch asks for a new connection.
        link.submit(8, vec![get("a")], Instant::now());
        assert_eq!(link.take_flags(), CONNECT);
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
        assert_eq!(link.take_flags(), OUTPUT);
        let again = take_output(&mut link);
        assert_eq!(
            again.matches("SCRIPT").count(),
            scripts(),
            "the scripts are loaded again"
        );
        assert!(again.find("\r\nEVAL\r\n").unwrap() > again.rfind("SCRIPT").unwrap());
        assert!(link.take_finished().is_empty());
        link.received(&loaded());
        link.received(b"*1\r\n:1\r\n");
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
                Item::Run("s:a".into(), incr(7)),
                Item::Run("s:a".into(), incr(300)),
            ],
            Instant::now(),
        );
        take_output(&mut link);
        link.received(b"-NOSCRIPT No matching script.\r\n-NOSCRIPT No matching script.\r\n");
        let again = take_output(&mut link);
        assert!(
            again.contains("\r\n$1\r\n7\r\n"),
            "the first incr again: {again}"
        );
        assert!(
            !again.contains("\r\n$3\r\n300\r\n"),
            "not the second yet: {again}"
        );
        // The second waits for what was on the wire behind it (the script loads), then goes.
        link.received(&loaded());
        let second = take_output(&mut link);
        assert!(
            second.contains("\r\n$3\r\n300\r\n"),
            "the second incr again: {second}"
        );
        link.received(b"*2\r\n:1\r\n:7\r\n*2\r\n:1\r\n:307\r\n");
        assert_eq!(
            link.take_finished()[0].results,
            [Ok(Reply::Int(7)), Ok(Reply::Int(307))]
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
        assert_eq!(link.take_flags(), RESET);
        let finished = link.take_finished();
        let codes: Vec<_> = finished[0]
            .results
            .iter()
            .map(|r| r.as_ref().unwrap_err().code)
            .collect();
        assert_eq!(codes, [ErrorCode::Connection, ErrorCode::Connection]);
        link.submit(2, vec![get("a")], Instant::now());
        assert_eq!(link.take_flags(), CONNECT, "the next call connects anew");
    }

    #[test]
    fn garbage_or_an_unasked_reply_resets() {
        let mut link = connected(&[]);
        link.submit(1, vec![get("a")], Instant::now());
        link.take_flags();
        link.received(b"?\r\n");
        assert_eq!(link.take_flags(), RESET);
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
        assert_eq!(link.take_flags() & RESET, RESET);
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
        assert_eq!(link.take_flags() & RESET, 0);
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

    fn write_on(key: &str, field: &str) -> Item {
        Item::Run(
            key.into(),
            Op::Write {
                set: vec![(field.into(), "1".into())],
                delete: vec![],
                create: false,
            },
        )
    }

    fn read_on(key: &str) -> Item {
        Item::Run(key.into(), Op::Get("k".into()))
    }

    fn codes(finished: &Finished) -> Vec<Option<ErrorCode>> {
        let code = |r: &Result<Reply>| r.as_ref().err().map(|e| e.code);
        finished.results.iter().map(code).collect()
    }

    #[test]
    fn a_failover_holds_writes_and_later_calls_of_their_session_but_not_reads() {
        let mut link = connected(&[]);
        link.hold_writes();
        let items = vec![write_on("s:a", "k"), read_on("s:b"), read_on("s:a")];
        link.submit(1, items, Instant::now());
        assert_eq!(link.take_flags(), OUTPUT);
        let sent = take_output(&mut link);
        assert_eq!(
            sent.matches("HGET").count(),
            1,
            "only the read of s:b: {sent}"
        );
        assert!(sent.contains("s:b") && !sent.contains("EVALSHA"), "{sent}");
        link.received(b"$-1\r\n");
        assert!(
            link.take_finished().is_empty(),
            "the held calls have not answered"
        );

        link.release_writes();
        assert_eq!(link.take_flags(), OUTPUT);
        let released = take_output(&mut link);
        let write = released.find("EVALSHA").expect("the write goes out");
        assert!(write < released.find("HGET").expect("then the read of s:a"));
        link.received(b"*1\r\n:1\r\n$1\r\nx\r\n");
        let finished = link.take_finished();
        assert_eq!(
            finished[0].results,
            [
                Ok(Reply::Done),
                Ok(Reply::Value(None)),
                Ok(Reply::Value(Some("x".into())))
            ]
        );
    }

    #[test]
    fn a_moved_primary_is_left_once_its_calls_answered_and_what_waited_goes_to_a_new_connection() {
        let mut link = connected(&[]);
        link.submit(1, vec![read_on("s:a")], Instant::now());
        take_output(&mut link);
        link.take_flags();
        link.primary_moved();
        link.submit(2, vec![read_on("s:b")], Instant::now());
        assert_eq!(link.take_flags(), 0, "nothing more goes to the old primary");
        assert!(link.output().is_empty());
        link.received(b"$1\r\nx\r\n");
        assert_eq!(link.take_flags(), RESET | CONNECT);
        assert_eq!(link.take_finished()[0].batch_id, 1);
        link.connected();
        let sent = take_output(&mut link);
        assert!(
            sent.find("SCRIPT").unwrap() < sent.find("s:b").unwrap(),
            "{sent}"
        );
        link.received(&loaded());
        link.received(b"$1\r\ny\r\n");
        assert_eq!(
            link.take_finished()[0].results,
            [Ok(Reply::Value(Some("y".into())))]
        );
    }

    #[test]
    fn held_calls_fail_alone_at_their_deadline_and_the_connection_stays() {
        let mut link = connected(&[]);
        let start = Instant::now();
        link.hold_writes();
        link.submit(1, vec![write_on("s:a", "k")], start);
        link.submit(2, vec![read_on("s:b")], start + Duration::from_millis(50));
        link.take_flags();
        take_output(&mut link);
        link.expire(start + Duration::from_millis(120));
        assert_eq!(link.take_flags(), 0, "the connection stays");
        let finished = link.take_finished();
        assert_eq!(codes(&finished[0]), [Some(ErrorCode::Timeout)]);
        let err = finished[0].results[0].as_ref().unwrap_err();
        assert!(err.message.contains("not sent"), "{}", err.message);
        link.received(b"$-1\r\n");
        assert_eq!(link.take_finished()[0].batch_id, 2);
        // A failover that ends sends nothing more: the held write failed already.
        link.release_writes();
        assert!(link.output().is_empty());
    }

    #[test]
    fn a_call_on_the_wire_past_its_deadline_drops_the_connection_and_keeps_held_ones() {
        let mut link = connected(&[]);
        let start = Instant::now();
        link.submit(1, vec![read_on("s:a")], start);
        link.hold_writes();
        link.submit(
            2,
            vec![write_on("s:b", "k")],
            start + Duration::from_millis(60),
        );
        link.take_flags();
        link.expire(start + Duration::from_millis(120));
        assert_eq!(link.take_flags(), RESET);
        let finished = link.take_finished();
        assert_eq!(finished.len(), 1);
        assert_eq!(codes(&finished[0]), [Some(ErrorCode::Timeout)]);
        // The held write waits for the failover to end, then a new connection.
        link.release_writes();
        assert_eq!(link.take_flags(), CONNECT);
    }

    #[test]
    fn wait_confirms_writes_and_fails_them_when_replicas_fall_short() {
        let durable = LinkOptions {
            durability: Some(Durability {
                replicas: 1,
                timeout: Duration::from_millis(50),
            }),
            ..OPTIONS
        };
        let mut link = connected_with(Link::new(&[], durable));
        for (batch_id, confirmed) in [(1, b":1\r\n"), (2, b":0\r\n")] {
            link.submit(
                batch_id,
                vec![write_on("s:a", "k"), read_on("s:a")],
                Instant::now(),
            );
            let sent = take_output(&mut link);
            assert!(
                sent.ends_with("*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$2\r\n50\r\n"),
                "{sent}"
            );
            link.received(b"*1\r\n:1\r\n$-1\r\n");
            assert!(
                link.take_finished().is_empty(),
                "the write waits for its WAIT"
            );
            link.received(confirmed);
            let finished = link.take_finished();
            match batch_id {
                1 => assert_eq!(finished[0].results[0], Ok(Reply::Done)),
                _ => {
                    assert_eq!(codes(&finished[0]), [Some(ErrorCode::NotReplicated), None]);
                    let err = finished[0].results[0].as_ref().unwrap_err();
                    assert!(err.message.contains("only 0 of 1"), "{}", err.message);
                }
            }
        }
        // Reads and idle refreshes are not confirmed: no WAIT.
        link.submit(
            3,
            vec![read_on("s:a"), Item::Run("s:a".into(), Op::Touch)],
            Instant::now(),
        );
        assert!(!take_output(&mut link).contains("WAIT"));
    }

    #[test]
    fn under_sentinel_a_connection_to_a_replica_fails_and_says_so() {
        let sentinel = LinkOptions {
            check_role: true,
            ..OPTIONS
        };
        let mut link = Link::new(&[], sentinel);
        link.submit(1, vec![read_on("s:a")], Instant::now());
        link.connected();
        assert!(take_output(&mut link).starts_with("*1\r\n$4\r\nROLE\r\n"));
        link.take_flags();
        link.received(
            b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n",
        );
        assert_eq!(link.take_flags(), RESET);
        assert!(link.take_wrong_primary());
        assert_eq!(codes(&link.take_finished()[0]), [Some(ErrorCode::Sentinel)]);
        // A primary's ROLE lets the calls through.
        link.submit(2, vec![read_on("s:a")], Instant::now());
        link.connected();
        link.received(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
        link.received(&loaded());
        link.received(b"$-1\r\n");
        assert_eq!(link.take_finished()[0].results, [Ok(Reply::Value(None))]);
        assert!(!link.take_wrong_primary());
    }
}
