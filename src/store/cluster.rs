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
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, RedisError, Value};
use tokio::sync::{mpsc, oneshot};

use super::redis::{
    claim_move, command, decode, is_noscript, move_out, preload_scripts, release_move_claim,
    reply_error, restore,
};
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
                let barrier = job.items.iter().any(|item| matches!(item, Item::Run(_, Op::Rename { .. })));
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

/// Runs one batch: every command issued at once, in order (the first poll
/// of `join_all` sends them), each answered on its own. A batch holding a
/// regenerate() runs its calls one after another instead.
async fn run_batch(
    conn: ClusterConnection,
    limits: Limits,
    timeout: Duration,
    in_flight: Arc<InFlight>,
    job: Job,
) {
    let sequential = job
        .items
        .iter()
        .any(|item| matches!(item, Item::Run(_, Op::Rename { .. })));
    let run = |item: Item| {
        let conn = conn.clone();
        let in_flight = Arc::clone(&in_flight);
        async move {
            let (key, op) = match item {
                Item::Ready(result) => return result,
                Item::Run(key, op) => (key, op),
            };
            in_flight.enter(&key);
            let call = async {
                match &op {
                    Op::Rename { to } => rename(conn, limits, &key, to).await,
                    op => run_op(conn, limits, &in_flight, &key, op).await,
                }
            };
            let result = tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| {
                    Err(SessionError::new(
                        ErrorCode::Timeout,
                        format!("redis cluster: no answer within {} ms", timeout.as_millis()),
                    ))
                });
            in_flight.leave(&key);
            result
        }
    };
    let results = if sequential {
        let mut results = Vec::with_capacity(job.items.len());
        for item in job.items {
            results.push(run(item).await);
        }
        results
    } else {
        futures_util::future::join_all(job.items.into_iter().map(run)).await
    };
    let _ = job.done.send(results);
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
        return Ok(Reply::Values(Vec::new())); // an mget of no keys
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
    if let Some(code) = err.code() {
        if !matches!(code, "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN") {
            return reply_error(code, err.detail(), key);
        }
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
