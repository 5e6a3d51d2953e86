//! What `mw.stats()` tells operators, counted where batches finish: per
//! operation kind, how many finished, their errors by code and their latency
//! (from when JavaScript submitted the batch to its answer, which every
//! operation of a batch shares); calls still waiting; connections opened.
//! A batch costs one lock, two clock reads and a histogram increment per
//! operation: nothing a request would notice next to its round trip.
//!
//! Counts are cumulative from the engine's start (as OpenTelemetry's
//! cumulative counters are, which lib/metrics.js fills from them).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;
use napi_derive::napi;

use crate::batch::OpKind;
use crate::error::{ErrorCode, Result};

/// Latencies are kept in microseconds, two significant digits (1% error),
/// up to a minute: longer ones count as a minute.
const LATENCY_MAX_US: u64 = 60_000_000;
const LATENCY_DIGITS: u8 = 2;

/// Shared by the engine and the tasks that finish a cluster's batches.
#[derive(Clone, Default)]
pub struct Stats(Arc<Mutex<Counts>>);

#[derive(Default)]
struct Counts {
    kinds: Vec<KindCounts>,
    pending: u64,
    connects: u64,
}

#[derive(Default)]
struct KindCounts {
    finished: u64,
    errors: Vec<(ErrorCode, u64)>,
    /// Made at the kind's first operation: most apps use a handful of kinds.
    latency: Option<Histogram<u64>>,
}

/// A batch on its way: when it was submitted and the kind of each operation.
pub struct Submitted {
    at: Instant,
    kinds: Vec<u8>,
}

impl Stats {
    /// A batch of operations of `kinds` (the `OpKind` numbers) was submitted.
    pub fn submitted(&self, kinds: Vec<u8>) -> Submitted {
        self.counts().pending += kinds.len() as u64;
        Submitted {
            at: Instant::now(),
            kinds,
        }
    }

    /// A submitted batch finished with `results`, one per operation in order.
    pub fn finished<T>(&self, batch: &Submitted, results: &[Result<T>]) {
        let micros = batch.at.elapsed().as_micros().min(LATENCY_MAX_US as u128) as u64;
        let mut counts = self.counts();
        counts.pending = counts.pending.saturating_sub(batch.kinds.len() as u64);
        for (&kind, result) in batch.kinds.iter().zip(results) {
            counts.record(kind, micros, result.as_ref().err().map(|err| err.code));
        }
    }

    /// A connection to the store was opened.
    pub fn connected(&self) {
        self.counts().connects += 1;
    }

    pub fn snapshot(&self) -> EngineStats {
        let counts = self.counts();
        let operations = counts
            .kinds
            .iter()
            .enumerate()
            .filter(|(_, kind)| kind.finished > 0)
            .map(|(kind, counts)| counts.snapshot(kind as u32))
            .collect();
        EngineStats {
            operations,
            pending: counts.pending as f64,
            connects: counts.connects as f64,
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Counts {
    fn record(&mut self, kind: u8, micros: u64, error: Option<ErrorCode>) {
        let kind = kind as usize;
        if kind >= OpKind::COUNT {
            return; // not an operation (a malformed batch): nothing to count it as
        }
        if self.kinds.len() <= kind {
            self.kinds.resize_with(kind + 1, KindCounts::default);
        }
        let counts = &mut self.kinds[kind];
        counts.finished += 1;
        if let Some(code) = error {
            match counts.errors.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => counts.errors.push((code, 1)),
            }
        }
        let latency = counts.latency.get_or_insert_with(|| {
            Histogram::new_with_max(LATENCY_MAX_US, LATENCY_DIGITS)
                .expect("the histogram's bounds are constants that hold")
        });
        latency.saturating_record(micros.max(1));
    }
}

impl KindCounts {
    fn snapshot(&self, kind: u32) -> OperationStats {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = self.latency.as_ref().map_or(
            LatencyStats {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
            },
            |h| LatencyStats {
                p50: ms(h.value_at_quantile(0.5)),
                p90: ms(h.value_at_quantile(0.9)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            },
        );
        OperationStats {
            kind,
            count: self.finished as f64,
            errors: self
                .errors
                .iter()
                .map(|(code, n)| ErrorCount {
                    code: code.as_str().to_owned(),
                    count: *n as f64,
                })
                .collect(),
            latency,
        }
    }
}

/// The engine's counts (lib/session.js's `stats()` names and shapes them).
#[napi(object)]
pub struct EngineStats {
    /// Every kind that ran at least once.
    pub operations: Vec<OperationStats>,
    /// Operations submitted and not finished yet.
    pub pending: f64,
    /// Connections to the store opened (the first, then each reconnection).
    pub connects: f64,
}

#[napi(object)]
pub struct OperationStats {
    /// Its `OpKind`.
    pub kind: u32,
    /// How many finished, errors included.
    pub count: f64,
    pub errors: Vec<ErrorCount>,
    pub latency: LatencyStats,
}

#[napi(object)]
pub struct ErrorCount {
    pub code: String,
    pub count: f64,
}

/// Milliseconds, to 1%.
#[napi(object)]
pub struct LatencyStats {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SessionError;

    #[test]
    fn counts_operations_errors_and_pending_by_kind() {
        let stats = Stats::default();
        let get = OpKind::Get as u8;
        let write = OpKind::Write as u8;
        let batch = stats.submitted(vec![get, write, get]);
        assert_eq!(stats.snapshot().pending, 3.0);
        let results: Vec<Result<()>> = vec![
            Ok(()),
            Err(SessionError::new(ErrorCode::Timeout, "late")),
            Ok(()),
        ];
        stats.finished(&batch, &results);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.pending, 0.0);
        let of = |kind: u8| {
            snapshot
                .operations
                .iter()
                .find(|o| o.kind == kind as u32)
                .unwrap()
        };
        assert_eq!(of(get).count, 2.0);
        assert!(of(get).errors.is_empty());
        assert_eq!(of(write).count, 1.0);
        assert_eq!(of(write).errors[0].code, "ERR_SESSION_TIMEOUT");
        assert_eq!(
            snapshot.operations.len(),
            2,
            "kinds that never ran are left out"
        );
        assert!(of(get).latency.max >= of(get).latency.p50);
    }

    #[test]
    fn a_kind_out_of_range_is_not_counted() {
        let stats = Stats::default();
        let batch = stats.submitted(vec![250]);
        stats.finished(&batch, &[Ok::<(), SessionError>(())]);
        let snapshot = stats.snapshot();
        assert!(snapshot.operations.is_empty());
        assert_eq!(snapshot.pending, 0.0);
    }
}
