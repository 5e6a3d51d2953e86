//! Redis Cluster: sessions sharded over primaries by hash slot. redis-rs's
//! cluster client (on napi's tokio runtime) does what a cluster needs: the
//! slot map, `MOVED` and `ASK` redirects, topology refresh, bounded retries.
//! Each operation is one command on its session's key, routed by that key;
//! the commands of a batch are issued together and in order, and redis-rs's
//! connection to each node writes what is queued for it as one pipeline.
//!
//! Batches cross from Node's thread over a channel to one dispatcher task,
//! which issues them in the order they came (a later batch's command never
//! reaches a node before an earlier batch's), and answers each through a
//! oneshot that the N-API side turns into a Promise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot,
    SlotAddr,
};
use redis::{Cmd, RedisError, Value};
use tokio::sync::{mpsc, oneshot};

use super::redis::{
    claim_move, command, decode, is_noscript, move_out, preload_scripts, release_move_claim,
    reply_error, restore,
};
use super::tls::certificates;
use super::{regenerated_elsewhere, Item, Limits, Op, Reply};
use crate::config::ClusterOptions;
use crate::error::{ErrorCode, Result, SessionError};
use redis::aio::ConnectionLike;

/// One batch: its items, and where its results go.
struct Job {
    items: Vec<Item>,
    done: oneshot::Sender<Vec<Result<Reply>>>,
}

/// The Node side's handle: batches go in, in order.
pub struct ClusterStore {
    jobs: mpsc::UnboundedSender<Job>,
}

impl ClusterStore {
    /// Checks the options and starts the dispatcher; nothing connects until
    /// the first batch. `spawn` starts a task on the shared tokio runtime.
    pub fn new(
        options: &ClusterOptions,
        limits: Limits,
        connect_timeout: Duration,
        command_timeout: Duration,
        spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    ) -> Result<ClusterStore> {
        let client = client(options, connect_timeout, command_timeout)?;
        let (jobs, queue) = mpsc::unbounded_channel();
        let timeouts = Timeouts {
            connect: connect_timeout,
            command: command_timeout,
        };
        spawn(Box::pin(dispatch(client, limits, timeouts, queue)));
        Ok(ClusterStore { jobs })
    }

    /// Queues a batch; its results arrive on the receiver, in its order.
    pub fn submit(&self, items: Vec<Item>) -> oneshot::Receiver<Vec<Result<Reply>>> {
        let (done, results) = oneshot::channel();
        // A closed queue (the dispatcher gone) drops `done`: the receiver reports it.
        let _ = self.jobs.send(Job { items, done });
        results
    }
}

fn client(
    options: &ClusterOptions,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> Result<ClusterClient> {
    let nodes = options
        .nodes
        .iter()
        .map(|(host, port)| redis::ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(connect_timeout)
        .response_timeout(command_timeout)
        .overall_response_timeout(Some(command_timeout))
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(200);
    if let Some(username) = &options.username {
        builder = builder.username(username);
    }
    if let Some(password) = &options.password {
        builder = builder.password(password);
    }
    if let Some(tls) = &options.tls {
        builder = builder.tls(redis::TlsMode::Secure).certs(certificates(tls));
    }
    builder
        .build()
        .map_err(|err| SessionError::caused_by(ErrorCode::Config, "redis.cluster", &err))
}

#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    /// No call waits past it, whatever redis-rs retries inside it.
    command: Duration,
}

/// The dispatcher: connects on the first batch (and again after a failed
/// attempt), then issues every batch in the order it came.
async fn dispatch(
    client: ClusterClient,
    limits: Limits,
    timeouts: Timeouts,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    let mut connection: Option<ClusterConnection> = None;
    let in_flight = Arc::new(InFlight::default());
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            job = queue.recv() => {
                let Some(job) = job else { break };
                if connection.is_none() {
                    match connect(&client, timeouts.connect).await {
                        Ok(opened) => connection = Some(opened),
                        Err(err) => {
                            let failed = job.items.into_iter().map(|item| match item {
                                Item::Ready(result) => result,
                                Item::Run(..) => Err(err.clone()),
                            });
                            let _ = job.done.send(failed.collect());
                            continue;
                        }
                    }
                }
                let Some(conn) = connection.clone() else { continue };
                let barrier = holds_rename(&job.items);
                let run = run_batch(conn, limits, timeouts.command, Arc::clone(&in_flight), job);
                if barrier {
                    // Calls made after a regenerate() go to the new id: they
                    // wait until its data is there (see `rename`).
                    running.push(run);
                    while running.next().await.is_some() {}
                } else {
                    running.push(run);
                }
            }
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}

async fn connect(client: &ClusterClient, timeout: Duration) -> Result<ClusterConnection> {
    let attempt = tokio::time::timeout(timeout, client.get_async_connection());
    let mut connection = match attempt.await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return Err(failure(&err, None)),
        Err(_) => {
            return Err(SessionError::new(
                ErrorCode::Connection,
                format!(
                    "redis cluster: no node answered within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    };
    // Every script on every primary, so that EVALSHA finds them (a node
    // that lost them, after a failover say, is answered with the body).
    let everywhere = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
    ));
    for load in preload_scripts() {
        let _ = connection.route_command(load, everywhere.clone()).await;
    }
    Ok(connection)
}

/// How many calls are in flight on each session key: a call whose script a
/// node no longer knows is sent again only when it is alone on its key, so
/// that no later call of its session has run before it.
#[derive(Default)]
struct InFlight(Mutex<HashMap<String, usize>>);

impl InFlight {
    fn enter(&self, key: &str) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *keys.entry(key.to_owned()).or_default() += 1;
    }

    fn leave(&self, key: &str) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
    }

    fn alone(&self, key: &str) -> bool {
        let keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(key).copied().unwrap_or(0) <= 1
    }
}

/// Runs one batch. Its operations are grouped by hash slot, each group
/// in the order it was issued: a group of one is one command, a larger one is
/// one pipeline to the slot's primary (the engine benchmark's 64 calls on one
/// session are one round trip). Every group is issued at once (the first
/// poll of `join_all` sends them, in order). A batch holding a regenerate()
/// runs its calls one after another instead.
async fn run_batch(
    conn: ClusterConnection,
    limits: Limits,
    timeout: Duration,
    in_flight: Arc<InFlight>,
    job: Job,
) {
    let Job { items, done } = job;
    let mut results: Vec<Option<Result<Reply>>> = Vec::with_capacity(items.len());
    let call = Call {
        conn,
        limits,
        timeout,
        in_flight,
    };
    if holds_rename(&items) {
        for item in items {
            results.push(Some(match item {
                Item::Ready(result) => result,
                Item::Run(key, op) => call.one(&key, &op).await,
            }));
        }
    } else {
        let mut groups: Vec<(Slot, Vec<Pending>)> = Vec::new();
        let mut group_of: HashMap<Slot, usize> = HashMap::new();
        for (index, item) in items.into_iter().enumerate() {
            results.push(None);
            match item {
                Item::Ready(result) => results[index] = Some(result),
                Item::Run(key, op) => {
                    let slot = Slot::for_key(key.as_bytes());
                    let at = *group_of.entry(slot).or_insert_with(|| {
                        groups.push((slot, Vec::new()));
                        groups.len() - 1
                    });
                    groups[at].1.push(Pending { index, key, op });
                }
            }
        }
        let answered = futures_util::future::join_all(
            groups.into_iter().map(|(slot, ops)| call.group(slot, ops)),
        )
        .await;
        for (index, result) in answered.into_iter().flatten() {
            results[index] = Some(result);
        }
    }
    let results = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(SessionError::new(
                    ErrorCode::Store,
                    "redis cluster: a call got no answer",
                ))
            })
        })
        .collect();
    let _ = done.send(results);
}

/// Whether a batch holds a regenerate(): its calls then run one after
/// another, and later batches wait for it.
fn holds_rename(items: &[Item]) -> bool {
    items
        .iter()
        .any(|item| matches!(item, Item::Run(_, Op::Rename { .. })))
}

/// An operation of a batch, at `index`, waiting to be run.
struct Pending {
    index: usize,
    key: String,
    op: Op,
}

/// What running a batch's calls needs.
struct Call {
    conn: ClusterConnection,
    limits: Limits,
    timeout: Duration,
    in_flight: Arc<InFlight>,
}

impl Call {
    /// One operation alone, within the timeout.
    async fn one(&self, key: &str, op: &Op) -> Result<Reply> {
        self.in_flight.enter(key);
        let run = async {
            match op {
                Op::Rename { to } => rename(self.conn.clone(), self.limits, key, to).await,
                op => run_op(self.conn.clone(), self.limits, &self.in_flight, key, op).await,
            }
        };
        let result = tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or_else(|_| Err(self.timed_out()));
        self.in_flight.leave(key);
        result
    }

    fn timed_out(&self) -> SessionError {
        SessionError::new(
            ErrorCode::Timeout,
            format!(
                "redis cluster: no answer within {} ms",
                self.timeout.as_millis()
            ),
        )
    }

    /// A slot's operations: one command, or one pipeline to the slot's
    /// primary. Calls the pipeline could not settle (a redirect: the slot is
    /// moving; a script the node lost) are run again alone, in their order,
    /// where redis-rs follows redirects for them.
    async fn group(&self, slot: Slot, mut ops: Vec<Pending>) -> Vec<(usize, Result<Reply>)> {
        if ops.len() == 1 {
            let Pending { index, key, op } = ops.remove(0);
            return vec![(index, self.one(&key, &op).await)];
        }
        let mut pipe = redis::pipe();
        let sent: Vec<bool> = ops
            .iter()
            .map(|p| match command(&p.key, &p.op, self.limits, false) {
                Some(cmd) => {
                    pipe.add_command(cmd);
                    true
                }
                None => false,
            })
            .collect();
        let count = sent.iter().filter(|s| **s).count();
        let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master));
        let mut conn = self.conn.clone();
        let replies =
            match tokio::time::timeout(self.timeout, conn.route_pipeline(pipe, 0, count, route))
                .await
            {
                Err(_) => {
                    return ops
                        .iter()
                        .map(|p| (p.index, Err(self.timed_out())))
                        .collect()
                }
                Ok(Err(err)) if !redirected(err.code()) => {
                    return ops
                        .iter()
                        .map(|p| (p.index, Err(failure(&err, Some(&p.key)))))
                        .collect()
                }
                Ok(Err(_)) => Vec::new(), // every call again, alone
                Ok(Ok(replies)) => replies,
            };
        let mut replies = replies.into_iter();
        let mut answered = Vec::with_capacity(ops.len());
        let mut again = Vec::new();
        let outcomes: Vec<Option<Value>> = sent
            .iter()
            .map(|&s| if s { replies.next() } else { Some(Value::Nil) })
            .collect();
        for (at, pending) in ops.iter().enumerate() {
            let reply = &outcomes[at];
            match reply {
                _ if !sent[at] => answered.push((
                    pending.index,
                    decode(&pending.key, &pending.op, None, self.limits),
                )),
                Some(Value::ServerError(err)) if redirected(Some(err.code())) => again.push(at),
                None => again.push(at),
                Some(value) if is_noscript(value) => {
                    // Run again only if no later call of its session ran in the pipeline.
                    let overtaken = ops[at + 1..].iter().zip(&outcomes[at + 1..]).any(
                        |(later, reply)| {
                            later.key == pending.key
                                && matches!(reply, Some(v) if !matches!(v, Value::ServerError(_)))
                        },
                    );
                    if overtaken {
                        answered.push((
                            pending.index,
                            Err(SessionError::new(
                                ErrorCode::Store,
                                "a redis node had lost the scripts, and a later call on this session ran first: this one was not applied",
                            )),
                        ));
                    } else {
                        again.push(at);
                    }
                }
                Some(value) => answered.push((
                    pending.index,
                    decode(&pending.key, &pending.op, Some(value.clone()), self.limits),
                )),
            }
        }
        for at in again {
            let pending = &ops[at];
            answered.push((pending.index, self.one(&pending.key, &pending.op).await));
        }
        answered
    }
}

/// A reply that sends the call elsewhere (the slot moved or is moving), or
/// asks to try again: redis-rs follows these for a call sent alone.
fn redirected(code: Option<&str>) -> bool {
    matches!(code, Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
}

/// One operation's command on its key's node, its reply decoded.
async fn run_op(
    mut conn: ClusterConnection,
    limits: Limits,
    in_flight: &InFlight,
    key: &str,
    op: &Op,
) -> Result<Reply> {
    let Some(cmd) = command(key, op, limits, false) else {
        return decode(key, op, None, limits); // nothing to ask
    };
    let reply = conn.req_packed_command(&cmd).await;
    if !lost_script(&reply) {
        return answer(key, op, limits, reply);
    }
    // Nothing ran. Sent again with its body only when no other call of its
    // session is under way, which could have run before it.
    if !in_flight.alone(key) {
        return Err(SessionError::new(
            ErrorCode::Store,
            "a redis node had lost the scripts, and other calls on this session were under way: this one was not applied",
        ));
    }
    let with_body = command(key, op, limits, true).unwrap_or(cmd);
    answer(key, op, limits, conn.req_packed_command(&with_body).await)
}

/// A script's `NOSCRIPT`, as an error or as a reply.
fn lost_script(reply: &redis::RedisResult<Value>) -> bool {
    match reply {
        Ok(value) => is_noscript(value),
        Err(err) => err.code() == Some("NOSCRIPT"),
    }
}

/// A reply (or redis-rs's error) as the operation's result.
fn answer(key: &str, op: &Op, limits: Limits, reply: redis::RedisResult<Value>) -> Result<Reply> {
    match reply {
        Ok(value) => decode(key, op, Some(value), limits),
        Err(err) => Err(failure(&err, Some(key))),
    }
}

/// redis-rs's error as a session error: a timeout, a connection that
/// failed, or an error reply (its text without the key).
fn failure(err: &RedisError, key: Option<&str>) -> SessionError {
    if err.is_timeout() {
        return SessionError::new(ErrorCode::Timeout, "redis cluster: no answer in time");
    }
    if let Some(code) = err.code().filter(|&code| !redirected(Some(code))) {
        return reply_error(code, err.detail(), key);
    }
    let mut text = err.to_string();
    if let Some(key) = key {
        text = text.replace(key, "<session key>");
    }
    SessionError::new(ErrorCode::Connection, format!("redis cluster: {text}"))
}

/// regenerate() across slots, where `RENAME` is refused. In turn: claim the
/// move (a marker beside the old key, set only if none is there, so that a
/// second regenerate() of the same session sees it and fails), take the
/// session out of the old key (`DUMP` then `DEL`, in one script: from then
/// on the old id is dead, and a racing write to it moves to a fresh
/// session), put it under the new key (`RESTORE`), and refresh its TTL.
/// With nothing to move (the session ended), the new key starts a session
/// of its own and the claim is released.
async fn rename(mut conn: ClusterConnection, limits: Limits, key: &str, to: &str) -> Result<Reply> {
    let fail = |err: RedisError| failure(&err, Some(key));
    let claimed: Value = conn
        .req_packed_command(&claim_move(key, to))
        .await
        .map_err(fail)?;
    if claimed == Value::Nil {
        return Err(regenerated_elsewhere());
    }
    let taken = conn
        .req_packed_command(&move_out(key))
        .await
        .map_err(fail)?;
    let Value::Array(parts) = taken else {
        // Nothing to move: a fresh session under the new id.
        let started = command(to, &Op::Start, limits, true).expect("a start is a command");
        conn.req_packed_command(&started).await.map_err(fail)?;
        let release: Cmd = release_move_claim(key, to);
        let _ = conn.req_packed_command(&release).await;
        return Ok(Reply::Gone);
    };
    let (Some(Value::BulkString(dump)), Some(Value::Int(pttl))) = (parts.first(), parts.get(1))
    else {
        return Err(SessionError::new(
            ErrorCode::Store,
            "redis cluster: a moved session came back in an unexpected shape",
        ));
    };
    conn.req_packed_command(&restore(to, dump, (*pttl).max(0)))
        .await
        .map_err(fail)?;
    let touch = command(to, &Op::Touch, limits, true).expect("a touch is a command");
    conn.req_packed_command(&touch).await.map_err(fail)?;
    Ok(Reply::Done)
}
