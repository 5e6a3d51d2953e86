//! A cluster's hot path on Node's event loop: one connection per primary,
//! each a [`Link`] whose socket JavaScript owns (lib/nodes.js), as on one
//! server, so that a call costs a cluster what it costs one server (no
//! thread hand-off, no wake-up). redis-rs ([`super::cluster`]) keeps what it
//! is good at: [`super::topology`] reads the slot map on its connections, and
//! it runs every call this path does not take: a move (`regenerate()`), a call
//! on a slot whose primary is unknown or did not answer, a call a node sent
//! elsewhere (`MOVED`, `ASK`: the slot is moving; it runs again there), and
//! the calls on that slot until the slot map is read again.
//!
//! Calls on a session still run in the order they were issued, whichever
//! path each takes: a slot's calls go direct only while none of them is on
//! redis-rs's path, and a batch that must go there while calls on its slots
//! are on a direct connection waits (in the dispatcher, in its order) until
//! they have answered. Calls sent elsewhere are run again before it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use redis::Cmd;
use tokio::sync::oneshot;

use super::link::{Link, LinkOptions, Redirected};
use super::target::{auth, Address};
use super::topology::SlotMap;
use crate::error::Result;
use crate::store::{Finished, Item, Op, Reply};

/// A cluster's hash slots.
pub const SLOTS: usize = 16384;

/// No primary known for the slot: its calls go to redis-rs.
const UNKNOWN: u16 = u16::MAX;

/// The hash slot of a key: CRC16 of the key, or of its `{hash tag}`.
pub fn slot_of(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS as u16
}

/// Calls in flight on redis-rs's path, per slot: counted up on Node's
/// thread when a batch goes there, down on tokio's when it has its answers
/// (when its [`Counted`] is dropped).
struct Elsewhere(Vec<AtomicU32>);

impl Elsewhere {
    fn new() -> Elsewhere {
        Elsewhere((0..SLOTS).map(|_| AtomicU32::new(0)).collect())
    }

    fn busy(&self, slot: u16) -> bool {
        self.0[slot as usize].load(Ordering::Acquire) > 0
    }

    /// Counts a batch's `slots` until what this returns is dropped.
    fn enter(self: &Arc<Self>, slots: Vec<u16>) -> Counted {
        for &slot in &slots {
            self.0[slot as usize].fetch_add(1, Ordering::AcqRel);
        }
        Counted {
            slots,
            counts: Arc::clone(self),
        }
    }
}

/// A batch on redis-rs's path, counted on its slots until it is dropped
/// (once it has its answers): until then the slots' calls go there too.
pub struct Counted {
    slots: Vec<u16>,
    counts: Arc<Elsewhere>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        for &slot in &self.slots {
            self.counts.0[slot as usize].fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A primary's connection.
struct Node {
    address: Address,
    link: Link,
    /// Whether calls may go to it: it answered when the topology was last
    /// read, and its connection was not lost since.
    up: bool,
    /// What JavaScript must do with its socket (`LinkFlag` bits).
    flags: u32,
}

/// A batch on direct connections: its results as they come, and where each
/// node's part of it came from.
struct Gather {
    results: Vec<Option<Result<Reply>>>,
    /// Per node it went to, the batch's indices of its part.
    parts: Vec<(usize, Vec<usize>)>,
    /// Parts not finished yet.
    left: usize,
    /// The slot of each of its calls (counted in `Nodes::direct`).
    slots: Vec<u16>,
    /// Calls a node sent elsewhere: (index in the batch, key, operation).
    redirected: Vec<(usize, String, Op)>,
}

/// A batch that finished on direct connections but for calls a node sent
/// elsewhere: they run again on redis-rs, then the batch finishes.
pub struct Rerun {
    pub batch_id: u32,
    /// The redirected calls, to run on redis-rs (taken from here).
    pub items: Vec<Item>,
    /// Every call's result but the redirected ones'.
    results: Vec<Option<Result<Reply>>>,
    /// The index in the batch of each redirected call.
    at: Vec<usize>,
    _counted: Counted,
}

impl Rerun {
    /// The batch, with the redirected calls' `answers` (in their order).
    pub fn finish(self, answers: Vec<Result<Reply>>) -> Finished {
        let Rerun {
            batch_id,
            mut results,
            at,
            ..
        } = self;
        for (at, answer) in at.into_iter().zip(answers) {
            results[at] = Some(answer);
        }
        Finished {
            batch_id,
            results: results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(unanswered())))
                .collect(),
        }
    }
}

/// A batch gone to redis-rs that waits for the direct calls on its slots.
struct Drain {
    slots: Vec<u16>,
    release: oneshot::Sender<()>,
}

/// What happened on the direct connections since the last look.
#[derive(Default)]
pub struct Happened {
    pub finished: Vec<Finished>,
    /// To run on redis-rs first (in this order)...
    pub reruns: Vec<Rerun>,
    /// ...then to release (see [`Nodes::elsewhere`]).
    pub released: Vec<oneshot::Sender<()>>,
    /// A node sent calls elsewhere: the slot map is out of date.
    pub moved: bool,
}

pub struct Nodes {
    options: LinkOptions,
    handshake: Vec<Cmd>,
    /// The topology's reading the slot map is from (0: none yet).
    reading: u64,
    /// Each slot's primary, an index into `nodes`, or [`UNKNOWN`].
    owners: Vec<u16>,
    /// Every primary seen so far (an index stays its node's).
    nodes: Vec<Node>,
    /// Calls in flight on direct connections, per slot.
    direct: Vec<u32>,
    elsewhere: Arc<Elsewhere>,
    batches: HashMap<u32, Gather>,
    drains: Vec<Drain>,
    happened: Happened,
}

impl Nodes {
    /// `options` as for one server's link (each node's also hands back the
    /// calls a node redirects); `username` and `password`: what every
    /// connection authenticates with.
    pub fn new(options: LinkOptions, username: Option<&str>, password: Option<&str>) -> Nodes {
        Nodes {
            options: LinkOptions {
                redirects: true,
                ..options
            },
            handshake: auth(username, password).into_iter().collect(),
            reading: 0,
            owners: vec![UNKNOWN; SLOTS],
            nodes: Vec::new(),
            direct: vec![0; SLOTS],
            elsewhere: Arc::new(Elsewhere::new()),
            batches: HashMap::new(),
            drains: Vec::new(),
            happened: Happened::default(),
        }
    }

    /// Takes a slot map newer than the last taken: primaries not seen
    /// before get a connection, opened when first used. A slot that changed
    /// primary while calls on it are on a direct connection goes to redis-rs
    /// until the next map: a later call must not reach the new primary before
    /// one of those, sent elsewhere, runs again.
    pub fn update(&mut self, map: &SlotMap) {
        self.reading = map.reading;
        let index: Vec<usize> = map
            .primaries
            .iter()
            .map(|(address, up)| {
                let at = match self.nodes.iter().position(|n| n.address == *address) {
                    Some(at) => at,
                    None => {
                        self.nodes.push(Node {
                            address: address.clone(),
                            link: Link::new(&self.handshake, self.options),
                            up: true,
                            flags: 0,
                        });
                        self.nodes.len() - 1
                    }
                };
                self.nodes[at].up = *up;
                at
            })
            .collect();
        let slots = self
            .owners
            .iter_mut()
            .zip(map.owners.iter())
            .zip(&self.direct);
        for ((slot, owner), &direct) in slots {
            let owner = owner.map_or(UNKNOWN, |o| index[o] as u16);
            *slot = if direct > 0 && owner != *slot {
                UNKNOWN
            } else {
                owner
            };
        }
    }

    /// The topology reading the slot map is from.
    pub fn reading(&self) -> u64 {
        self.reading
    }

    pub fn address(&self, node: usize) -> Option<&Address> {
        self.nodes.get(node).map(|n| &n.address)
    }

    /// The node each of `items`' calls would go to directly; `None` when
    /// one of them cannot (the batch then goes to redis-rs, whole).
    pub fn route(&self, items: &[Item]) -> Option<Vec<(u16, usize)>> {
        let mut routes = Vec::with_capacity(items.len());
        for item in items {
            let Item::Run(key, op) = item else { continue };
            if matches!(op, Op::Rename { .. }) {
                return None;
            }
            let slot = slot_of(key);
            let owner = self.owners[slot as usize];
            if owner == UNKNOWN || !self.nodes[owner as usize].up || self.elsewhere.busy(slot) {
                return None;
            }
            routes.push((slot, owner as usize));
        }
        Some(routes)
    }

    /// Sends a batch on the direct connections `routes` (from [`Nodes::route`]) names.
    pub fn submit(
        &mut self,
        batch_id: u32,
        items: Vec<Item>,
        routes: Vec<(u16, usize)>,
        now: Instant,
    ) {
        let mut gather = Gather {
            results: Vec::with_capacity(items.len()),
            parts: Vec::new(),
            left: 0,
            slots: Vec::with_capacity(routes.len()),
            redirected: Vec::new(),
        };
        // Per node: the batch's indices of its part, and the part.
        let mut parts: Vec<(usize, Vec<usize>, Vec<Item>)> = Vec::new();
        let mut routes = routes.into_iter();
        for (index, item) in items.into_iter().enumerate() {
            if let Item::Ready(result) = item {
                gather.results.push(Some(result));
                continue;
            }
            gather.results.push(None);
            let Some((slot, node)) = routes.next() else {
                continue;
            };
            self.direct[slot as usize] += 1;
            gather.slots.push(slot);
            let at = match parts.iter().position(|(n, ..)| *n == node) {
                Some(at) => at,
                None => {
                    parts.push((node, Vec::new(), Vec::new()));
                    parts.len() - 1
                }
            };
            parts[at].1.push(index);
            parts[at].2.push(item);
        }
        gather.left = parts.len();
        if gather.left == 0 {
            return self.finish(batch_id, gather);
        }
        let mut sends = Vec::with_capacity(parts.len());
        for (node, indices, part) in parts {
            gather.parts.push((node, indices));
            sends.push((node, part));
        }
        self.batches.insert(batch_id, gather);
        for (node, part) in sends {
            self.nodes[node].link.submit(batch_id, part, now);
            self.collect(node);
        }
    }

    /// A batch that goes to redis-rs: its slots are counted there until it
    /// has its answers (until [`Counted`] is dropped); if calls on them are on
    /// a direct connection, it starts once they have answered (the receiver).
    pub fn elsewhere(&mut self, items: &[Item]) -> (Counted, Option<oneshot::Receiver<()>>) {
        let slots: Vec<u16> = items
            .iter()
            .filter_map(|item| match item {
                Item::Run(key, op) => Some(op.keys(key)),
                Item::Ready(_) => None,
            })
            .flatten()
            .map(slot_of)
            .collect();
        if slots.iter().all(|&slot| self.direct[slot as usize] == 0) {
            return (self.elsewhere.enter(slots), None);
        }
        let (release, wait) = oneshot::channel();
        self.drains.push(Drain {
            slots: slots.clone(),
            release,
        });
        (self.elsewhere.enter(slots), Some(wait))
    }

    /// Hands an event of `node`'s socket to its link, and gathers what it finished.
    pub fn on_node(&mut self, node: usize, event: impl FnOnce(&mut Link)) {
        let Some(target) = self.nodes.get_mut(node) else {
            return;
        };
        event(&mut target.link);
        self.collect(node);
    }

    /// The connection to `node` was lost: no call goes to it directly until
    /// the topology says it answers.
    pub fn lost(&mut self, node: usize) {
        if let Some(target) = self.nodes.get_mut(node) {
            target.up = false;
        }
    }

    /// What happened since the last call: finished batches, reruns, releases.
    pub fn take_happened(&mut self) -> Happened {
        std::mem::take(&mut self.happened)
    }

    /// The nodes whose sockets have something to do, and what (`LinkFlag`
    /// bits), as `[node, flags, node, flags, ...]`.
    pub fn take_actions(&mut self) -> Vec<u32> {
        let mut actions = Vec::new();
        for (index, node) in self.nodes.iter_mut().enumerate() {
            if node.flags != 0 {
                actions.extend([index as u32, std::mem::take(&mut node.flags)]);
            }
        }
        actions
    }

    /// Whether any node has something for its socket to do.
    pub fn has_actions(&self) -> bool {
        self.nodes.iter().any(|node| node.flags != 0)
    }

    pub fn link_mut(&mut self, node: usize) -> Option<&mut Link> {
        self.nodes.get_mut(node).map(|n| &mut n.link)
    }

    /// Takes what `node`'s link finished and asks of its socket.
    fn collect(&mut self, node: usize) {
        let target = &mut self.nodes[node];
        target.flags |= target.link.take_flags();
        let finished = target.link.take_finished();
        let redirected = target.link.take_redirected();
        for Redirected {
            batch_id,
            index,
            key,
            op,
        } in redirected
        {
            self.happened.moved = true;
            self.owners[slot_of(&key) as usize] = UNKNOWN;
            if let Some(gather) = self.batches.get_mut(&batch_id) {
                if let Some(&at) = indices(&gather.parts, node).get(index) {
                    gather.redirected.push((at, key, op));
                }
            }
        }
        for Finished { batch_id, results } in finished {
            let Some(gather) = self.batches.get_mut(&batch_id) else {
                continue;
            };
            for (&at, result) in indices(&gather.parts, node).iter().zip(results) {
                gather.results[at] = Some(result);
            }
            gather.left -= 1;
            if gather.left == 0 {
                if let Some(gather) = self.batches.remove(&batch_id) {
                    self.finish(batch_id, gather);
                }
            }
        }
    }

    /// A batch has every answer of its direct connections: it finishes, or
    /// its redirected calls run again on redis-rs. Then the batches waiting
    /// for the direct calls on its slots may start (behind the reruns).
    fn finish(&mut self, batch_id: u32, gather: Gather) {
        let Gather {
            mut results,
            slots,
            redirected,
            ..
        } = gather;
        for &slot in &slots {
            self.direct[slot as usize] -= 1;
        }
        if redirected.is_empty() {
            let results = results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(unanswered())))
                .collect();
            self.happened.finished.push(Finished { batch_id, results });
        } else {
            let slots = redirected.iter().map(|(_, key, _)| slot_of(key));
            let counted = self.elsewhere.enter(slots.collect());
            let mut at = Vec::with_capacity(redirected.len());
            let mut items = Vec::with_capacity(redirected.len());
            for (index, key, op) in redirected {
                results[index] = None;
                at.push(index);
                items.push(Item::Run(key, op));
            }
            self.happened.reruns.push(Rerun {
                batch_id,
                results,
                items,
                at,
                _counted: counted,
            });
        }
        self.release_drained();
    }

    /// Releases the batches no direct call holds back any more.
    fn release_drained(&mut self) {
        let direct = &self.direct;
        let (ready, waiting): (Vec<Drain>, Vec<Drain>) = std::mem::take(&mut self.drains)
            .into_iter()
            .partition(|drain| drain.slots.iter().all(|&slot| direct[slot as usize] == 0));
        self.drains = waiting;
        self.happened
            .released
            .extend(ready.into_iter().map(|drain| drain.release));
    }
}

/// The batch's indices of the calls of its part that went to `node`, in that part's order.
fn indices(parts: &[(usize, Vec<usize>)], node: usize) -> &[usize] {
    let part = parts.iter().find(|(n, _)| *n == node);
    part.map_or(&[], |(_, indices)| indices)
}

fn unanswered() -> crate::error::SessionError {
    crate::error::SessionError::new(
        crate::error::ErrorCode::Store,
        "redis cluster: a call got no answer",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::link::tests::{loaded, value, OPTIONS};

    /// Two primaries: the lower half of the slots on node 0, the upper on node 1.
    fn two_primaries() -> Nodes {
        let mut nodes = Nodes::new(OPTIONS, None, None);
        let at = |port| Address {
            host: "127.0.0.1".into(),
            port,
        };
        let owners = (0..SLOTS).map(|slot| Some(slot * 2 / SLOTS)).collect();
        nodes.update(&SlotMap {
            reading: 1,
            primaries: vec![(at(7000), true), (at(7001), true)],
            owners: Arc::new(owners),
        });
        nodes
    }

    /// A key whose slot is on `node` of [`two_primaries`], the `n`th such.
    fn key_on(node: usize, n: usize) -> String {
        (0..)
            .map(|i| format!("s:{i}"))
            .filter(|key| slot_of(key) as usize * 2 / SLOTS == node)
            .nth(n)
            .unwrap()
    }

    fn get(key: &str) -> Item {
        Item::Run(key.into(), Op::Get("f".into()))
    }

    fn submit(nodes: &mut Nodes, batch_id: u32, items: Vec<Item>) {
        let routes = nodes.route(&items).expect("direct");
        nodes.submit(batch_id, items, routes, Instant::now());
    }

    /// `node`'s socket connected and its scripts loaded.
    fn connect(nodes: &mut Nodes, node: usize) {
        nodes.on_node(node, Link::connected);
        nodes.on_node(node, |link| link.received(&loaded()));
    }

    #[test]
    fn slots_follow_the_cluster_spec() {
        // The examples of the Redis Cluster specification.
        assert_eq!(slot_of("123456789"), 0x31C3);
        assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
        assert_eq!(slot_of("foo{}{bar}"), slot_of("foo{}{bar}"));
        assert_ne!(slot_of("foo{}{bar}"), slot_of("bar"));
        assert_eq!(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    }

    #[test]
    fn a_batch_goes_to_its_slots_primaries_and_finishes_in_its_order() {
        let mut nodes = two_primaries();
        let (a, b) = (key_on(0, 0), key_on(1, 0));
        submit(
            &mut nodes,
            7,
            vec![get(&a), get(&b), Item::Ready(Ok(Reply::Done))],
        );
        // Both sockets are asked to connect.
        let connect_flag = super::super::link::LinkFlag::Connect as u32;
        assert_eq!(nodes.take_actions(), vec![0, connect_flag, 1, connect_flag]);
        connect(&mut nodes, 0);
        connect(&mut nodes, 1);
        nodes.on_node(1, |link| link.received(b"$1\r\nb\r\n"));
        assert!(
            nodes.take_happened().finished.is_empty(),
            "node 0 has not answered"
        );
        nodes.on_node(0, |link| link.received(b"$1\r\na\r\n"));
        let finished = nodes.take_happened().finished;
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].batch_id, 7);
        let results = &finished[0].results;
        assert_eq!(value(&results[0]).as_deref(), Some("a"));
        assert_eq!(value(&results[1]).as_deref(), Some("b"));
        assert_eq!(results[2], Ok(Reply::Done));
    }

    #[test]
    fn moves_unknown_slots_and_lost_primaries_go_to_redis_rs() {
        let unread = Nodes::new(OPTIONS, None, None);
        assert!(unread.route(&[get("s:1")]).is_none(), "no slot map yet");
        let mut nodes = two_primaries();
        let (a, b) = (key_on(0, 0), key_on(1, 0));
        let rename = Item::Run(a.clone(), Op::Rename { to: b.clone() });
        assert!(nodes.route(&[get(&b), rename]).is_none());
        nodes.lost(0);
        assert!(nodes.route(&[get(&a)]).is_none());
        assert!(nodes.route(&[get(&b)]).is_some());
    }

    #[test]
    fn a_batch_for_redis_rs_waits_for_the_direct_calls_on_its_slots() {
        let mut nodes = two_primaries();
        let (a, b) = (key_on(0, 0), key_on(1, 0));
        submit(&mut nodes, 1, vec![get(&a)]);
        connect(&mut nodes, 0);
        let rename = Item::Run(a.clone(), Op::Rename { to: b.clone() });
        let (counted, wait) = nodes.elsewhere(&[rename]);
        assert_eq!(counted.slots, vec![slot_of(&a), slot_of(&b)]);
        let mut wait = wait.expect("a call on its slot is in flight");
        // From now on, the slots' calls go to redis-rs behind it.
        assert!(nodes.route(&[get(&a)]).is_none());
        assert!(nodes.route(&[get(&b)]).is_none());
        assert!(nodes.take_happened().released.is_empty());
        nodes.on_node(0, |link| link.received(b"$-1\r\n"));
        let happened = nodes.take_happened();
        assert_eq!(happened.finished.len(), 1);
        let released = happened.released;
        assert_eq!(released.len(), 1);
        assert!(
            wait.try_recv().is_err(),
            "released by the dispatcher, in its order"
        );
        // Once redis-rs answered it, the slots' calls go direct again.
        drop(counted);
        assert!(nodes.route(&[get(&a)]).is_some());
        // Nothing in flight on its slots: a batch for redis-rs waits for nothing.
        let (_counted, wait) = nodes.elsewhere(&[get(&b)]);
        assert!(wait.is_none());
    }

    #[test]
    fn a_call_sent_elsewhere_runs_again_on_redis_rs_with_its_batch() {
        let mut nodes = two_primaries();
        let (a, a2) = (key_on(0, 0), key_on(0, 1));
        submit(&mut nodes, 3, vec![get(&a), get(&a2)]);
        connect(&mut nodes, 0);
        nodes.on_node(0, |link| {
            link.received(b"-ASK 12 127.0.0.1:7001\r\n$1\r\nv\r\n")
        });
        let happened = nodes.take_happened();
        assert!(happened.finished.is_empty());
        assert!(happened.moved, "the slot map is read again");
        let [rerun] = happened.reruns.as_slice() else {
            panic!("one batch to finish on redis-rs");
        };
        assert_eq!((rerun.batch_id, rerun.at.as_slice()), (3, &[0][..]));
        assert!(matches!(&rerun.items[..], [Item::Run(key, Op::Get(_))] if *key == a));
        assert!(rerun.results[0].is_none());
        assert_eq!(
            value(rerun.results[1].as_ref().unwrap()).as_deref(),
            Some("v")
        );
        // Its slot's calls go to redis-rs, behind the rerun, until the slot map is read again.
        assert!(nodes.route(&[get(&a)]).is_none());
        assert_ne!(slot_of(&a), slot_of(&a2));
        assert!(nodes.route(&[get(&a2)]).is_some(), "other slots go direct");
    }
}
