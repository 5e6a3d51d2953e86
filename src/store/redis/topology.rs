//! A cluster's slot map, and what operators see of it: its primaries,
//! whether each answers, and when slots change primary (a replica took over
//! from a failed primary, or slots were moved). redis-rs keeps its slot map
//! to itself, so while the store has a connection this asks `CLUSTER SLOTS`
//! every [`EVERY`] (as ioredis's `slotsRefreshInterval` does; sooner when a
//! node redirected a call) and `PING`s each primary, on the same connection.
//! The direct path routes by the map ([`SlotMap`], see [`super::nodes`]);
//! what changed waits as [`ClusterNews`] and JavaScript is woken to take it
//! (a threadsafe function, as for the sentinels' news).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

use super::target::Address;

/// How often the topology is read.
pub const EVERY: Duration = Duration::from_secs(2);
const SLOTS: usize = 16384;

#[derive(Default)]
pub struct Topology {
    state: Mutex<State>,
    /// A reading is under way: the next tick does not start another.
    reading: AtomicBool,
    /// How many readings finished: the slot map may have changed when it did.
    readings: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The primaries as last read, and whether each answered its `PING`.
    primaries: Vec<(Address, bool)>,
    /// Each slot's primary (an index into `primaries`), as last read.
    owners: Arc<Vec<Option<usize>>>,
    news: Vec<ClusterNews>,
    wake: Option<Box<dyn Fn() + Send + Sync>>,
}

/// The slot map of one reading.
pub struct SlotMap {
    /// Which reading it is (see [`Topology::readings`]).
    pub reading: u64,
    /// The primaries, and whether each answered its `PING`.
    pub primaries: Vec<(Address, bool)>,
    /// Each slot's primary, an index into `primaries` (empty before the first reading).
    pub owners: Arc<Vec<Option<usize>>>,
}

/// A change, for the middleware's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterNews {
    /// A primary answers (again, or for the first time).
    Up(Address),
    /// A primary stopped answering.
    Down(Address),
    /// `slots` slots moved from one primary to another.
    Moved {
        from: Address,
        to: Address,
        slots: u32,
    },
}

impl Topology {
    /// `wake` is called, from a tokio thread, whenever [`Topology::take_news`] has news.
    pub fn watch(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.state().wake = Some(wake);
    }

    pub fn stop(&self) {
        self.state().wake = None;
    }

    pub fn take_news(&self) -> Vec<ClusterNews> {
        std::mem::take(&mut self.state().news)
    }

    /// The primaries as last read, and whether each answered.
    pub fn primaries(&self) -> Vec<(Address, bool)> {
        self.state().primaries.clone()
    }

    /// How many readings finished so far: a cheap check for a new slot map.
    pub fn readings(&self) -> u64 {
        self.readings.load(Ordering::Acquire)
    }

    /// The slot map as last read.
    pub fn slot_map(&self) -> SlotMap {
        let state = self.state();
        SlotMap {
            reading: self.readings(),
            primaries: state.primaries.clone(),
            owners: Arc::clone(&state.owners),
        }
    }

    /// Reads the topology on `connection`, each command within `timeout`,
    /// unless a reading is under way already.
    pub async fn read(self: Arc<Self>, mut connection: ClusterConnection, timeout: Duration) {
        if self.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(slots) = ask(&mut connection, slots_command(), Target::Random, timeout).await {
            let (primaries, owners) = parse_slots(&slots);
            let mut answered = Vec::with_capacity(primaries.len());
            for address in primaries {
                let to = Target::ByAddress(address.clone());
                let up = ask(&mut connection, redis::cmd("PING"), to, timeout).await;
                answered.push((address, up.is_some()));
            }
            self.update(answered, owners);
        }
        self.reading.store(false, Ordering::Release);
    }

    fn update(&self, primaries: Vec<(Address, bool)>, owners: Vec<Option<usize>>) {
        let mut state = self.state();
        let mut news = Vec::new();
        for (address, up) in &primaries {
            let before = state.primaries.iter().find(|(a, _)| a == address);
            match (before.map(|(_, was)| *was), *up) {
                (Some(false) | None, true) => news.push(ClusterNews::Up(address.clone())),
                (Some(true), false) => news.push(ClusterNews::Down(address.clone())),
                _ => {}
            }
        }
        if !state.owners.is_empty() {
            news.extend(moves(&state, &primaries, &owners));
        }
        state.primaries = primaries;
        state.owners = Arc::new(owners);
        self.readings.fetch_add(1, Ordering::AcqRel);
        if !news.is_empty() {
            state.news.extend(news);
            if let Some(wake) = &state.wake {
                wake();
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The slots whose primary changed, counted per (old, new) pair, in the
/// order the primaries were read.
fn moves(
    before: &State,
    primaries: &[(Address, bool)],
    owners: &[Option<usize>],
) -> Vec<ClusterNews> {
    let mut counted: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for (old, new) in before.owners.iter().zip(owners) {
        if let (Some(old), Some(new)) = (old, new) {
            if before.primaries[*old].0 != primaries[*new].0 {
                *counted.entry((*old, *new)).or_default() += 1;
            }
        }
    }
    counted
        .into_iter()
        .map(|((old, new), slots)| ClusterNews::Moved {
            from: before.primaries[old].0.clone(),
            to: primaries[new].0.clone(),
            slots,
        })
        .collect()
}

fn slots_command() -> redis::Cmd {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    cmd
}

/// Where [`ask`] sends its command.
enum Target {
    Random,
    ByAddress(Address),
}

/// One command to one node, within `timeout`; `None` if it failed.
async fn ask(
    connection: &mut ClusterConnection,
    cmd: redis::Cmd,
    to: Target,
    timeout: Duration,
) -> Option<Value> {
    let node = match to {
        Target::Random => SingleNodeRoutingInfo::Random,
        Target::ByAddress(Address { host, port }) => {
            SingleNodeRoutingInfo::ByAddress { host, port }
        }
    };
    let asked = connection.route_command(cmd, RoutingInfo::SingleNode(node));
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(value)) => Some(value),
        _ => None,
    }
}

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id], replica...], ...]`, as
/// the primaries (in order of first appearance) and each slot's primary.
fn parse_slots(reply: &Value) -> (Vec<Address>, Vec<Option<usize>>) {
    let mut primaries: Vec<Address> = Vec::new();
    let mut owners = vec![None; SLOTS];
    let Value::Array(ranges) = reply else {
        return (primaries, owners);
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(start), Some(end), Some(primary)) = (
            fields.first().and_then(integer),
            fields.get(1).and_then(integer),
            fields.get(2).and_then(address),
        ) else {
            continue;
        };
        let index = match primaries.iter().position(|a| *a == primary) {
            Some(index) => index,
            None => {
                primaries.push(primary);
                primaries.len() - 1
            }
        };
        let end = (end as usize).min(SLOTS - 1);
        for owner in owners.iter_mut().take(end + 1).skip(start as usize) {
            *owner = Some(index);
        }
    }
    (primaries, owners)
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn address(value: &Value) -> Option<Address> {
    let Value::Array(node) = value else {
        return None;
    };
    let host = match node.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let port = u16::try_from(integer(node.get(1)?)?).ok()?;
    Some(Address { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port as i64),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn slots(ranges: &[(i64, i64, u16)]) -> Value {
        Value::Array(
            ranges
                .iter()
                .map(|&(start, end, port)| {
                    Value::Array(vec![Value::Int(start), Value::Int(end), node(port)])
                })
                .collect(),
        )
    }

    fn at(port: u16) -> Address {
        Address {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn read(topology: &Topology, reply: &Value, down: &[u16]) {
        let (primaries, owners) = parse_slots(reply);
        let answered = primaries
            .into_iter()
            .map(|a| {
                let up = !down.contains(&a.port);
                (a, up)
            })
            .collect();
        topology.update(answered, owners);
    }

    #[test]
    fn tells_primaries_up_and_down_and_slots_that_change_primary() {
        let topology = Topology::default();
        let three = slots(&[(0, 5460, 1), (5461, 10922, 2), (10923, 16383, 3)]);
        read(&topology, &three, &[]);
        assert_eq!(
            topology.take_news(),
            vec![
                ClusterNews::Up(at(1)),
                ClusterNews::Up(at(2)),
                ClusterNews::Up(at(3))
            ]
        );
        read(&topology, &three, &[2]);
        assert_eq!(topology.take_news(), vec![ClusterNews::Down(at(2))]);
        // Its replica (port 4) took over its slots.
        read(
            &topology,
            &slots(&[(0, 5460, 1), (5461, 10922, 4), (10923, 16383, 3)]),
            &[],
        );
        assert_eq!(
            topology.take_news(),
            vec![
                ClusterNews::Up(at(4)),
                ClusterNews::Moved {
                    from: at(2),
                    to: at(4),
                    slots: 5462
                }
            ]
        );
        assert!(topology.primaries().iter().all(|(_, up)| *up));
    }

    #[test]
    fn slots_moved_between_live_primaries_are_counted() {
        let topology = Topology::default();
        read(&topology, &slots(&[(0, 16383, 1)]), &[]);
        topology.take_news();
        read(&topology, &slots(&[(0, 100, 1), (101, 16383, 2)]), &[]);
        assert_eq!(
            topology.take_news(),
            vec![
                ClusterNews::Up(at(2)),
                ClusterNews::Moved {
                    from: at(1),
                    to: at(2),
                    slots: 16283
                }
            ]
        );
        read(&topology, &slots(&[(0, 16383, 2)]), &[]);
        assert_eq!(
            topology.take_news(),
            vec![ClusterNews::Moved {
                from: at(1),
                to: at(2),
                slots: 101
            }]
        );
        assert_eq!(topology.primaries(), vec![(at(2), true)]);
    }
}
