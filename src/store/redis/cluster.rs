//! Redis Cluster: sessions sharded over primaries by hash slot. Most calls
//! go straight to their slot's primary on a socket of Node's event loop
//! ([`super::nodes`]); the rest run here, on redis-rs's cluster client (on
//! napi's tokio runtime), which does what a cluster needs beyond that: the
//! slot map, `MOVED` and `ASK` redirects, bounded retries, `regenerate()`.
//! Each operation is one command on its session's key, routed by that key;
//! the commands of a batch are issued together and in order, and redis-rs's
//! connection to each node writes what is queued for it as one pipeline.
//!
//! Batches cross from Node's thread over a channel to one dispatcher task,
//! which issues them in the order they came (a later batch's command never
//! reaches a node before an earlier batch's), and answers each through a
//! oneshot that the N-API side turns into a Promise. No call waits past
//! `commandTimeout` from when JavaScript issued it, whatever it waits behind.
//!
//! `regenerate()` moves a session to a key in another slot, which takes
//! several steps on two nodes (see [`Call::rename`]). Only calls on the keys
//! of a move wait for it; every other session's go on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot,
    SlotAddr,
};
use redis::{Cmd, RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::commands::{
    command, decode, is_noscript, redirects, reply_error, unconfirmed, wait_for,
};
use super::moves::{
    claim_move, finish_move, mark_move, place_move, release_move_claim, unmark_move,
};
use super::scripts::{self, odd_reply, Status};
use super::tls::certificates;
use super::topology::{self, Topology};
use crate::config::{ClusterOptions, Durability};
use crate::error::{ErrorCode, Result, SessionError};
use crate::stats::Stats;
use crate::store::{not_replicated, regenerated_elsewhere, Item, Limits, Op, Reply};
use redis::aio::ConnectionLike;

/// One batch: its items, when JavaScript issued it, and where its results go.
struct Job {
    items: Vec<Item>,
    issued: Instant,
    done: oneshot::Sender<Vec<Result<Reply>>>,
    /// Its calls start only once this fires: calls on their slots were on
    /// a direct connection (see [`super::nodes`]) and must answer first.
    after: Option<oneshot::Receiver<()>>,
    /// Calls a node sent elsewhere, run again here: they were issued before
    /// whatever this dispatcher holds back on their keys, so they wait for
    /// nothing (see [`ClusterStore::rerun`]).
    rerun: bool,
}

/// What the dispatcher is asked, in order.
enum Work {
    Batch(Job),
    /// Releases the batches waiting on this (their `after`): sent behind
    /// the reruns that must start before them.
    Release(oneshot::Sender<()>),
    /// Reads the topology now (a node redirected a call: the slot map moved).
    Refresh,
}

/// The Node side's handle: batches go in, in order.
pub struct ClusterStore {
    jobs: mpsc::UnboundedSender<Work>,
    /// The primaries and their changes, for operators.
    pub topology: Arc<Topology>,
}

/// How the store works.
#[derive(Clone, Copy)]
pub struct ClusterSettings {
    pub limits: Limits,
    pub connect_timeout: Duration,
    /// No call waits past it from when it was issued, whatever redis-rs
    /// retries inside it and whatever it waits behind.
    pub command_timeout: Duration,
    pub durability: Option<Durability>,
}

impl ClusterStore {
    /// Checks the options and starts the dispatcher; nothing connects until
    /// the first batch. `spawn` starts a task on the shared tokio runtime.
    pub fn new(
        options: &ClusterOptions,
        settings: ClusterSettings,
        stats: Stats,
        spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    ) -> Result<ClusterStore> {
        let client = client(options, settings)?;
        let (jobs, queue) = mpsc::unbounded_channel();
        let topology = Arc::new(Topology::default());
        let watched = Watched {
            stats,
            topology: Arc::clone(&topology),
        };
        spawn(Box::pin(dispatch(client, settings, watched, queue)));
        Ok(ClusterStore { jobs, topology })
    }

    /// Queues a batch, to start once `after` fires (if given); its results
    /// arrive on the receiver, in its order.
    pub fn submit(
        &self,
        items: Vec<Item>,
        after: Option<oneshot::Receiver<()>>,
    ) -> oneshot::Receiver<Vec<Result<Reply>>> {
        self.queue(items, after, false)
    }

    /// Runs again calls that a node sent elsewhere (`MOVED`, `ASK`), at once:
    /// redis-rs follows the redirects.
    pub fn rerun(&self, items: Vec<Item>) -> oneshot::Receiver<Vec<Result<Reply>>> {
        self.queue(items, None, true)
    }

    /// Starts the batches waiting on `release`'s receiver, behind every batch queued before.
    pub fn release(&self, release: oneshot::Sender<()>) {
        let _ = self.jobs.send(Work::Release(release));
    }

    /// Reads the topology again now.
    pub fn refresh(&self) {
        let _ = self.jobs.send(Work::Refresh);
    }

    fn queue(
        &self,
        items: Vec<Item>,
        after: Option<oneshot::Receiver<()>>,
        rerun: bool,
    ) -> oneshot::Receiver<Vec<Result<Reply>>> {
        let (done, results) = oneshot::channel();
        let issued = Instant::now();
        // A closed queue (the dispatcher gone) drops `done`: the receiver reports it.
        let _ = self.jobs.send(Work::Batch(Job {
            items,
            issued,
            done,
            after,
            rerun,
        }));
        results
    }
}

fn client(options: &ClusterOptions, settings: ClusterSettings) -> Result<ClusterClient> {
    let nodes = options
        .nodes
        .iter()
        .map(|(host, port)| redis::ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.command_timeout)
        .overall_response_timeout(Some(settings.command_timeout))
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

/// The completion of the last call on a key that later calls on that key
/// must wait for: a move, or a call queued behind one.
type Barrier = Shared<BoxFuture<'static, ()>>;

/// Where a call chained behind a [`Barrier`] leaves its result.
type Answer = Arc<Mutex<Option<Result<Reply>>>>;

/// What operators are told of: connections opened, the topology.
struct Watched {
    stats: Stats,
    topology: Arc<Topology>,
}

/// The dispatcher: connects on the first batch (and again after a failed
/// attempt), then starts every batch in the order it came; while it has a
/// connection, reads the topology every `topology::EVERY`.
async fn dispatch(
    client: ClusterClient,
    settings: ClusterSettings,
    watched: Watched,
    mut queue: mpsc::UnboundedReceiver<Work>,
) {
    let mut connection: Option<ClusterConnection> = None;
    let mut ticks = tokio::time::interval(topology::EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(InFlight::default());
    let health = Arc::new(Health::default());
    let mut barriers: HashMap<String, Barrier> = HashMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            work = queue.recv() => {
                let job = match work {
                    None => break,
                    Some(Work::Batch(job)) => job,
                    Some(Work::Release(release)) => {
                        let _ = release.send(());
                        continue;
                    }
                    Some(Work::Refresh) => {
                        if let Some(conn) = connection.clone() {
                            let topology = Arc::clone(&watched.topology);
                            tokio::spawn(topology.read(conn, settings.connect_timeout));
                        }
                        continue;
                    }
                };
                if health.stalled(settings.command_timeout) {
                    connection = None; // a new client connection, new node connections
                }
                if connection.is_none() {
                    match connect(&client, settings.connect_timeout).await {
                        Ok(opened) => {
                            watched.stats.connected();
                            connection = Some(opened);
                        }
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
                let call = Arc::new(Call {
                    conn,
                    settings,
                    deadline: job.issued + settings.command_timeout,
                    in_flight: Arc::clone(&in_flight),
                    health: Arc::clone(&health),
                });
                running.push(start_batch(call, &mut barriers, job));
            }
            Some(()) = running.next(), if !running.is_empty() => {}
            _ = ticks.tick(), if connection.is_some() => {
                if let Some(conn) = connection.clone() {
                    let topology = Arc::clone(&watched.topology);
                    tokio::spawn(topology.read(conn, settings.connect_timeout));
                }
            }
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
    // Bounded: a primary that is down must not hold the first batch back.
    let preload = async {
        for load in scripts::preload() {
            let _ = connection.route_command(load, everywhere.clone()).await;
        }
    };
    let _ = tokio::time::timeout(timeout, preload).await;
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

/// An operation of a batch, at `index`, waiting to be run.
struct Pending {
    index: usize,
    key: String,
    op: Op,
}

/// Starts one batch (its first commands go out at the first poll) and
/// returns what finishes it. Calls on keys that a move (`regenerate()`)
/// holds, in this batch or an earlier one, are chained behind it, key by key,
/// and become what later calls on those keys wait for; every other call is
/// issued at once, in the order it came, as a command of its own (redis-rs
/// writes what is queued for a node together). Never as a redis-rs pipeline:
/// a pipeline one of whose replies is a redirect is sent again whole where
/// it points, and the calls that had run before the redirect (a slot that
/// moves key by key) would run twice.
fn start_batch(
    call: Arc<Call>,
    barriers: &mut HashMap<String, Barrier>,
    job: Job,
) -> BoxFuture<'static, ()> {
    barriers.retain(|_, barrier| barrier.peek().is_none());
    let Job {
        items,
        done,
        after,
        rerun,
        ..
    } = job;
    let after = after.map(|fired| fired.map(drop).boxed().shared());
    let plan = if rerun {
        // Issued before anything held back on their keys: they wait for none of it.
        Plan::of(&call, &mut HashMap::new(), items, None)
    } else {
        Plan::of(&call, barriers, items, after)
    };
    async move {
        let results = plan.run(&call).await;
        call.health.record(&results);
        let _ = done.send(results);
    }
    .boxed()
}

/// How a batch runs: results known already, calls grouped by slot, and
/// calls chained behind a move of their session.
struct Plan {
    results: Vec<Option<Result<Reply>>>,
    free: Vec<Pending>,
    chained: Vec<(usize, Barrier, Answer)>,
}

impl Plan {
    /// Sorts a batch's items; the chained calls (behind a move of their
    /// session, and every call when the batch waits `after` something) become,
    /// key by key, what later calls on those keys wait for (`barriers`).
    fn of(
        call: &Arc<Call>,
        barriers: &mut HashMap<String, Barrier>,
        items: Vec<Item>,
        after: Option<Barrier>,
    ) -> Plan {
        let moving: HashSet<String> = items
            .iter()
            .filter_map(|item| match item {
                Item::Run(key, Op::Rename { to }) => Some([key.clone(), to.clone()]),
                _ => None,
            })
            .flatten()
            .collect();
        let mut plan = Plan {
            results: Vec::with_capacity(items.len()),
            free: Vec::new(),
            chained: Vec::new(),
        };
        for (index, item) in items.into_iter().enumerate() {
            plan.results.push(None);
            let (key, op) = match item {
                Item::Ready(result) => {
                    plan.results[index] = Some(result);
                    continue;
                }
                Item::Run(key, op) => (key, op),
            };
            let keys: Vec<String> = op.keys(&key).map(str::to_owned).collect();
            let behind: Vec<Barrier> = keys
                .iter()
                .filter_map(|key| barriers.get(key).cloned())
                .chain(after.clone())
                .collect();
            if behind.is_empty() && !keys.iter().any(|key| moving.contains(key)) {
                plan.free.push(Pending { index, key, op });
                continue;
            }
            let (run, answer) = chain(Arc::clone(call), behind, key, op);
            for key in keys {
                barriers.insert(key, run.clone());
            }
            plan.chained.push((index, run, answer));
        }
        plan
    }

    /// Runs the free calls and waits for the chained ones; every result, in the batch's order.
    async fn run(self, call: &Call) -> Vec<Result<Reply>> {
        let Plan {
            mut results,
            free,
            chained,
        } = self;
        let free = free
            .iter()
            .map(|p| async move { (p.index, call.one(&p.key, &p.op).await) });
        let waits = chained.iter().map(|(_, run, _)| run.clone());
        let both = futures_util::future::join(
            futures_util::future::join_all(free),
            futures_util::future::join_all(waits),
        );
        let (answered, _) = both.await;
        for (index, result) in answered {
            results[index] = Some(result);
        }
        for (index, _, answer) in chained {
            results[index] = answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        let unanswered = || {
            Err(SessionError::new(
                ErrorCode::Store,
                "redis cluster: a call got no answer",
            ))
        };
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(unanswered))
            .collect()
    }
}

/// A call that runs once the calls before it on its keys (`behind`) are
/// done: what later calls wait for, and where its result lands.
fn chain(call: Arc<Call>, behind: Vec<Barrier>, key: String, op: Op) -> (Barrier, Answer) {
    let answer: Answer = Arc::default();
    let into = Arc::clone(&answer);
    let run = async move {
        let result = call.after(behind, &key, &op).await;
        *into.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };
    (run.boxed().shared(), answer)
}

/// Whether the cluster connection still answers. Seen here, rarely: after
/// a node was killed while calls were under way, redis-rs's cluster client
/// answered nothing more (every call timing out, the cluster itself healthy
/// again). A connection on which calls have only timed out for a while is
/// replaced by a new one.
#[derive(Default)]
struct Health(Mutex<HealthState>);

#[derive(Default)]
struct HealthState {
    /// Calls that timed out since the last one that got any answer.
    timeouts: u32,
    /// When the first of them was answered with its timeout.
    since: Option<Instant>,
}

/// How long a call still redirected after redis-rs's retries waits before it is sent again.
const REDIRECTED_PAUSE: Duration = Duration::from_millis(20);

/// How many calls in a row must time out before the connection is replaced
/// (over at least `commandTimeout`).
const STALLED_AFTER: u32 = 3;

impl Health {
    /// Counts a batch's results: an answer (even an error Redis sent)
    /// proves the connection alive; a timeout does not.
    fn record(&self, results: &[Result<Reply>]) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for result in results {
            match result {
                Err(err) if err.code == ErrorCode::Timeout => {
                    state.timeouts += 1;
                    state.since.get_or_insert_with(Instant::now);
                }
                Err(err) if err.code == ErrorCode::Closed => {}
                _ => *state = HealthState::default(),
            }
        }
    }

    /// Whether the connection should be replaced now (which resets the count).
    fn stalled(&self, command_timeout: Duration) -> bool {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let long = state
            .since
            .is_some_and(|since| since.elapsed() >= command_timeout);
        if state.timeouts < STALLED_AFTER || !long {
            return false;
        }
        *state = HealthState::default();
        true
    }
}

/// What running a batch's calls needs.
struct Call {
    conn: ClusterConnection,
    settings: ClusterSettings,
    /// When the batch was issued, plus `commandTimeout`.
    deadline: Instant,
    in_flight: Arc<InFlight>,
    health: Arc<Health>,
}

impl Call {
    /// A call that must wait for others on its keys (a move, or calls
    /// queued behind one): it waits, then runs, both within its deadline.
    async fn after(&self, behind: Vec<Barrier>, key: &str, op: &Op) -> Result<Reply> {
        let waited = futures_util::future::join_all(behind);
        if tokio::time::timeout_at(self.deadline, waited)
            .await
            .is_err()
        {
            return Err(SessionError::new(
                ErrorCode::Timeout,
                format!(
                    "redis cluster: this call waited behind a regenerate() of its session for longer than commandTimeout ({} ms); it was not sent, and nothing was written",
                    self.settings.command_timeout.as_millis()
                ),
            ));
        }
        self.one(key, op).await
    }

    /// One operation alone, within the deadline.
    async fn one(&self, key: &str, op: &Op) -> Result<Reply> {
        self.in_flight.enter(key);
        let result = match op {
            // A move keeps to the deadline step by step: it must not be cut off between steps.
            Op::Rename { to } => self.rename(key, to).await,
            op => tokio::time::timeout_at(self.deadline, self.run_op(key, op))
                .await
                .unwrap_or_else(|_| Err(self.timed_out())),
        };
        self.in_flight.leave(key);
        result
    }

    fn timed_out(&self) -> SessionError {
        SessionError::new(
            ErrorCode::Timeout,
            format!(
                "redis cluster: no answer within {} ms",
                self.settings.command_timeout.as_millis()
            ),
        )
    }

    /// One operation's command on its key's node, its reply decoded, and
    /// confirmed by replicas under `redis.waitReplicas`.
    async fn run_op(&self, key: &str, op: &Op) -> Result<Reply> {
        let limits = self.settings.limits;
        let Some(cmd) = command(key, op, limits, false) else {
            return decode(key, op, None, limits); // nothing to ask
        };
        let mut reply = self.request(&cmd).await;
        if lost_script(&reply) {
            // Nothing ran. Sent again with its body only when no other call
            // of its session is under way, which could have run before it.
            if !self.in_flight.alone(key) {
                return Err(SessionError::new(
                    ErrorCode::Store,
                    "a redis node had lost the scripts, and other calls on this session were under way: this one was not applied",
                ));
            }
            let with_body = command(key, op, limits, true).unwrap_or(cmd);
            reply = self.request(&with_body).await;
        }
        let result = answer(key, op, limits, reply)?;
        match self.settings.durability {
            Some(durability) if confirms(op, &result) => {
                match self.confirm(key, durability).await {
                    Some(err) => Err(err),
                    None => Ok(result),
                }
            }
            _ => Ok(result),
        }
    }

    /// `WAIT` on the node of `key`'s slot, behind what was written there:
    /// the error the writes fail with when too few replicas confirmed them.
    async fn confirm(&self, key: &str, durability: Durability) -> Option<SessionError> {
        let slot = Slot::for_key(key.as_bytes());
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
            slot,
            SlotAddr::Master,
        )));
        match self
            .conn
            .clone()
            .route_command(wait_for(durability), route)
            .await
        {
            Ok(value) => unconfirmed(&value, durability),
            Err(err) => Some(not_replicated(
                &format!(
                    "the wait for replicas failed ({})",
                    failure(&err, Some(key)).message
                ),
                durability.timeout,
            )),
        }
    }

    /// `regenerate()` across slots, where `RENAME` is refused. The steps are
    /// ordered so that a failure at any of them, or the process dying between
    /// them, leaves the data under an id a cookie holds (at worst also a copy
    /// under an id none holds, which expires within the claim):
    /// 1. mark the move beside the session (`prefix:id:moved`, `SET NX`): a
    ///    second `regenerate()` of the session (a double-submitted log-in
    ///    form) fails with `ERR_SESSION_CONFLICT`;
    /// 2. on the old key's node, claim the move in the session's hash and copy
    ///    it out (`DUMP`), atomically; from now on, writes to the old key fail
    ///    (`ERR_SESSION_CONFLICT`) instead of being lost with it;
    /// 3. on the new key's node, `RESTORE` the copy with a TTL that ends with
    ///    the claim, then give it the session's TTL (and have replicas confirm
    ///    it under `redis.waitReplicas`);
    /// 4. on the old key's node, delete the old key, if the claim is still
    ///    this move's.
    ///
    /// A failure before step 4 gives the claim and the marker up and deletes
    /// the copy (or it expires with the claim, where the delete cannot reach
    /// its node): the request keeps its old id, with its data. With nothing
    /// to move (the session ended), the new key starts a session of its own.
    async fn rename(&self, key: &str, to: &str) -> Result<Reply> {
        let claim_ms = crate::store::MOVED_MARKER
            .max(self.settings.command_timeout * 2)
            .as_millis() as u64;
        match self.step(&mark_move(key, to, claim_ms), key).await {
            Ok(Value::Nil) => return Err(regenerated_elsewhere()),
            Ok(_) => {}
            Err(err) => {
                self.give_up(key, to, false); // the marker may have been set
                return Err(err);
            }
        }
        let limits = self.settings.limits;
        let claimed = self.step(&claim_move(key, to, claim_ms, limits), key).await;
        let (dump, claim) = match claimed.and_then(scripts::reply) {
            Ok((Status::Ended, _)) => {
                self.give_up(key, to, false);
                return self.start_fresh(to).await;
            }
            Ok((Status::Done, parts)) => match parts.as_slice() {
                [Value::BulkString(dump), Value::BulkString(claim)] => {
                    (dump.clone(), String::from_utf8_lossy(claim).into_owned())
                }
                _ => {
                    self.give_up(key, to, false);
                    return Err(odd_reply());
                }
            },
            failed => {
                self.give_up(key, to, false); // the claim may have been taken
                return Err(failed.err().unwrap_or_else(odd_reply));
            }
        };
        let touch = command(to, &Op::Touch, limits, true).expect("a touch is a command");
        let placed = match self.step(&place_move(to, &dump, claim_ms), to).await {
            Ok(_) => self.step(&touch, to).await.map(drop),
            Err(err) => Err(err),
        };
        let confirmed = match (placed, self.settings.durability) {
            (Ok(()), Some(durability)) => self.confirm(to, durability).await.map_or(Ok(()), Err),
            (placed, _) => placed,
        };
        if let Err(err) = confirmed {
            self.give_up(key, to, true);
            return Err(err);
        }
        let finished = self.step(&finish_move(key, to, &claim, limits), key).await;
        match finished.map(scripts::reply) {
            Ok(Ok((Status::Done, _))) => Ok(Reply::Done),
            // An invalidate() raced the move and deleted the old key: the
            // session ended, and the new id starts empty, as on one server.
            Ok(Ok((Status::Ended, _))) => {
                self.step(&with_key("DEL", to), to).await?;
                self.start_fresh(to).await
            }
            // The claim lapsed: the old key may have been written since the copy.
            Ok(_) => {
                self.give_up(key, to, true);
                Err(regenerated_elsewhere())
            }
            // Unknown whether the old key went. The copy is whole and no
            // write reached the old key since (the claim): the request takes
            // the new id, and the old key is deleted in the background.
            Err(_) => {
                self.finish_later(key, to, &claim);
                Ok(Reply::Done)
            }
        }
    }

    /// One command on its key's node. redis-rs follows a redirect a few
    /// times; one still redirected after that (while a slot moves, nodes
    /// disagree for a moment on who holds it: `MOVED` back and forth) did not
    /// run, and is sent again after a pause, until the caller's deadline.
    async fn request(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        loop {
            let reply = self.conn.clone().req_packed_command(cmd).await;
            match &reply {
                Err(err) if redirected(err.code()) => {
                    tokio::time::sleep_until(Instant::now() + REDIRECTED_PAUSE).await
                }
                _ => return reply,
            }
        }
    }

    /// One command of a move, within the deadline; not sent at all past it.
    async fn step(&self, cmd: &Cmd, key: &str) -> Result<Value> {
        if Instant::now() >= self.deadline {
            return Err(self.timed_out());
        }
        match tokio::time::timeout_at(self.deadline, self.request(cmd)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(err)) => Err(failure(&err, Some(key))),
            Ok(Ok(Value::ServerError(err))) => {
                Err(reply_error(err.code(), err.details(), Some(key)))
            }
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// The new key starts a session of its own (there was nothing to move).
    async fn start_fresh(&self, to: &str) -> Result<Reply> {
        let start =
            command(to, &Op::Start, self.settings.limits, true).expect("a start is a command");
        self.step(&start, to).await?;
        Ok(Reply::Gone)
    }

    /// A failed move, undone in the background (not bound by the call's
    /// deadline): the copy goes (`placed`: it may have been), then the claim
    /// and the marker, so that the old key is the session's again.
    fn give_up(&self, key: &str, to: &str, placed: bool) {
        let mut conn = self.conn.clone();
        let undo = [
            placed.then(|| with_key("DEL", to)),
            Some(release_move_claim(key, to, self.settings.limits)),
            Some(unmark_move(key, to, self.settings.limits)),
        ];
        tokio::spawn(async move {
            for cmd in undo.iter().flatten() {
                let _ = conn.req_packed_command(cmd).await;
            }
        });
    }

    /// Step 4 again, in the background, until it gets an answer.
    fn finish_later(&self, key: &str, to: &str, claim: &str) {
        let mut conn = self.conn.clone();
        let finish = finish_move(key, to, claim, self.settings.limits);
        tokio::spawn(async move {
            for pause in [100, 500, 2000, 5000] {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if conn.req_packed_command(&finish).await.is_ok() {
                    return;
                }
            }
        });
    }
}

/// Whether `result`, of `op`, waits for replicas under `redis.waitReplicas`:
/// a write that wrote something.
fn confirms(op: &Op, result: &Reply) -> bool {
    op.confirmed_by_replicas() && *result != Reply::Gone
}

fn with_key(name: &str, key: &str) -> Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

/// An error that sends the call elsewhere, or asks to try again: redis-rs
/// follows these for a call sent alone.
fn redirected(code: Option<&str>) -> bool {
    code.is_some_and(redirects)
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
