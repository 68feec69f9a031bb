//! Per-actor and per-node metrics: mailbox depth, handled count, handling
//! time histogram, restarts. Read them with
//! [`Node::metrics`](crate::Node::metrics) or
//! [`ActorRef::metrics`](crate::ActorRef::metrics); a later gateway exports
//! them over HTTP.
//!
//! Counters are written only by the actor's own task, so updates are plain
//! relaxed loads and stores: no read-modify-write on the hot path.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::actor::ActorId;

/// Number of histogram buckets: bucket `i` counts durations in
/// `[2^i, 2^(i+1))` nanoseconds; the last bucket is open-ended (≥ ~9 min).
pub const BUCKETS: usize = 40;

#[derive(Default)]
pub(crate) struct ActorMetrics {
    pub(crate) handled: Counter,
    /// Allocated on the first handled message (or failure): idle actors
    /// stay small.
    more: OnceLock<Box<More>>,
}

/// The counters an idle actor never touches, and the histogram.
pub(crate) struct More {
    pub(crate) panics: Counter,
    pub(crate) restarts: Counter,
    pub(crate) expired: Counter,
    pub(crate) rejected: Counter,
    pub(crate) dropped: Counter,
    handling: Histogram,
}

/// A counter with a single writer.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn incr(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_add(1), Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = (63 - (ns | 1).leading_zeros() as usize).min(BUCKETS - 1);
        let b = &self.buckets[i];
        b.store(b.load(Relaxed) + 1, Relaxed);
        self.sum_ns
            .store(self.sum_ns.load(Relaxed).saturating_add(ns), Relaxed);
        if ns > self.max_ns.load(Relaxed) {
            self.max_ns.store(ns, Relaxed);
        }
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum: Duration::from_nanos(self.sum_ns.load(Relaxed)),
            max: Duration::from_nanos(self.max_ns.load(Relaxed)),
        }
    }
}

impl ActorMetrics {
    /// The rarely written counters (allocated on first use).
    #[inline]
    pub(crate) fn more(&self) -> &More {
        self.more.get_or_init(|| {
            Box::new(More {
                panics: Counter::default(),
                restarts: Counter::default(),
                expired: Counter::default(),
                rejected: Counter::default(),
                dropped: Counter::default(),
                handling: Histogram::new(),
            })
        })
    }

    #[inline]
    pub(crate) fn record_handling(&self, d: Duration) {
        self.more().handling.record(d);
    }
}

/// A log₂-bucketed histogram of durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `buckets[i]` counts durations in `[2^i, 2^(i+1))` ns (the last is
    /// open-ended).
    pub buckets: [u64; BUCKETS],
    /// Sum of all recorded durations.
    pub sum: Duration,
    /// The largest recorded duration.
    pub max: Duration,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            sum: Duration::ZERO,
            max: Duration::ZERO,
        }
    }
}

impl HistogramSnapshot {
    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Mean duration, or zero when empty.
    pub fn mean(&self) -> Duration {
        let n = self.count();
        if n == 0 {
            Duration::ZERO
        } else {
            self.sum / u32::try_from(n).unwrap_or(u32::MAX)
        }
    }

    /// An upper bound of the `q` quantile (0.0..=1.0): the top of the bucket
    /// it falls in, capped at the maximum.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let top = if i + 1 >= 64 {
                    u64::MAX
                } else {
                    (1u64 << (i + 1)) - 1
                };
                return Duration::from_nanos(top).min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's counts into this one.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

/// One actor's metrics at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorMetricsSnapshot {
    /// The actor.
    pub id: ActorId,
    /// Its registered name.
    pub name: Option<Arc<str>>,
    /// Its Rust type.
    pub actor_type: &'static str,
    /// Messages waiting in the mailbox.
    pub mailbox_depth: usize,
    /// Mailbox capacity (`None` for an unbounded mailbox).
    pub mailbox_capacity: Option<usize>,
    /// Messages handled (including timer messages and death notices).
    pub handled: u64,
    /// Handlers or hooks that panicked.
    pub panics: u64,
    /// Restarts after failures.
    pub restarts: u64,
    /// Asks not handled because their deadline passed while queued.
    pub expired: u64,
    /// Asks rejected with `Stopped` because the actor stopped first.
    pub rejected: u64,
    /// Tells discarded because the actor was killed before handling them.
    pub dropped: u64,
    /// Time spent in handlers, on the node's clock, for one message in
    /// [`NodeBuilder::handling_time_sample`](crate::NodeBuilder::handling_time_sample)
    /// (default 8, the first one included).
    pub handling_time: HistogramSnapshot,
}

impl ActorMetricsSnapshot {
    pub(crate) fn read(
        id: ActorId,
        name: Option<Arc<str>>,
        actor_type: &'static str,
        depth: usize,
        capacity: Option<usize>,
        m: &ActorMetrics,
    ) -> Self {
        let more = m.more.get();
        let get = |c: fn(&More) -> &Counter| more.map_or(0, |m| c(m).get());
        Self {
            id,
            name,
            actor_type,
            mailbox_depth: depth,
            mailbox_capacity: capacity,
            handled: m.handled.get(),
            panics: get(|m| &m.panics),
            restarts: get(|m| &m.restarts),
            expired: get(|m| &m.expired),
            rejected: get(|m| &m.rejected),
            dropped: get(|m| &m.dropped),
            handling_time: more.map(|m| m.handling.snapshot()).unwrap_or_default(),
        }
    }
}

/// A node's metrics: every live actor, ordered by id, plus totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NodeMetrics {
    /// Live actors, ordered by id.
    pub actors: Vec<ActorMetricsSnapshot>,
    /// Actors spawned since the node started.
    pub spawned: u64,
    /// Actors that have stopped.
    pub stopped: u64,
    /// Sum of `handled` over live actors.
    pub handled: u64,
    /// Sum of `restarts` over live actors.
    pub restarts: u64,
    /// Sum of `panics` over live actors.
    pub panics: u64,
    /// Sum of `expired` over live actors.
    pub expired: u64,
    /// Sum of `rejected` over live actors.
    pub rejected: u64,
    /// Sum of `dropped` over live actors.
    pub dropped: u64,
    /// Sum of mailbox depths over live actors.
    pub mailbox_depth: usize,
    /// Handling-time histogram merged over live actors.
    pub handling_time: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::new();
        for _ in 0..99 {
            h.record(Duration::from_nanos(100));
        }
        h.record(Duration::from_micros(50));
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.buckets[6], 99); // 64..128 ns
        assert!(s.quantile(0.5) <= Duration::from_nanos(127));
        assert_eq!(s.quantile(1.0), Duration::from_micros(50));
        assert_eq!(s.max, Duration::from_micros(50));
    }
}
