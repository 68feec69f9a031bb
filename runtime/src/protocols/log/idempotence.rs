//! The idempotent-producer table: a sans-IO core that decides, for each
//! batch a producer sends, whether to append it, answer it from an earlier
//! append (a retry), or refuse it (out of order).
//!
//! A producer numbers its batches `0, 1, 2, …` (one sequence per topic, not
//! per partition). A batch splits into one sub-batch per partition; each
//! stored record carries the reserved header [`PRODUCER_HEADER`] with the
//! producer id, the sequence and its place in the sub-batch, so the table
//! is rebuilt from the log itself on open and survives a crash: a retry
//! after a restart still finds the original offsets.

use std::collections::{BTreeMap, VecDeque};

use crate::storage::AppendAck;

/// Name of the reserved record header that carries
/// `(producer id u64, sequence u64, index u32, count u32)`, little-endian.
pub const PRODUCER_HEADER: &str = "plexus.producer";

/// Batches remembered per producer for answering retries.
pub const DEFAULT_WINDOW: usize = 64;

/// Who sends an idempotent batch. Choose one per producing process (or per
/// logical stream of writes) and keep it across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub u64);

/// Where one partition's part of a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartStatus {
    /// Handed to the partition's log, not yet acknowledged.
    Pending,
    /// Appended at these offsets.
    Done(AppendAck),
}

#[derive(Debug, Clone, Default)]
struct ProducerState {
    /// Highest sequence accepted.
    last: u64,
    /// Recent batches, oldest first: sequence → per-partition status.
    window: VecDeque<(u64, BTreeMap<u32, PartStatus>)>,
}

/// What to do with one partition's part of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Append it, then call [`ProducerTable::complete`] or
    /// [`ProducerTable::abort`].
    Append,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(AppendAck),
}

/// Why a batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The same batch is being appended right now. Wait for the first
    /// attempt's answer (or retry a little later).
    #[error("batch {sequence} of producer {producer} is still being appended")]
    InFlight {
        /// The producer.
        producer: u64,
        /// The batch.
        sequence: u64,
    },
    /// A sequence was skipped. Send batches in order, each one after the
    /// previous was at least handed to the topic.
    #[error("producer {producer} sent batch {got}; expected {expected}")]
    OutOfOrder {
        /// The producer.
        producer: u64,
        /// The next sequence the topic accepts.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// The batch is older than the remembered window: it was appended long
    /// ago (its offsets are no longer known). Treat it as delivered.
    #[error("batch {sequence} of producer {producer} is older than the retry window")]
    TooOld {
        /// The producer.
        producer: u64,
        /// The batch.
        sequence: u64,
    },
}

/// The table of producers of one topic. Pure state: no I/O, no clock.
///
/// # Examples
///
/// ```
/// use plexus_runtime::protocols::log::{Decision, ProducerId, ProducerTable};
/// use plexus_runtime::storage::AppendAck;
/// let mut t = ProducerTable::new(8);
/// let p = ProducerId(7);
/// assert_eq!(t.begin(p, 0, &[1]), Ok(vec![Decision::Append]));
/// let ack = AppendAck { base_offset: 10, count: 2 };
/// t.complete(p, 0, 1, ack);
/// // A retry of batch 0 gets the same offsets and appends nothing.
/// assert_eq!(t.begin(p, 0, &[1]), Ok(vec![Decision::Duplicate(ack)]));
/// ```
#[derive(Debug, Clone)]
pub struct ProducerTable {
    producers: BTreeMap<ProducerId, ProducerState>,
    window: usize,
}

impl Default for ProducerTable {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl ProducerTable {
    /// An empty table remembering `window` batches per producer (at least 1).
    pub fn new(window: usize) -> Self {
        Self {
            producers: BTreeMap::new(),
            window: window.max(1),
        }
    }

    /// Decide for batch `sequence` of `producer`, which touches
    /// `partitions` (distinct). On `Ok`, one decision per partition, in
    /// order; every `Append` is reserved (a concurrent retry gets
    /// [`SequenceError::InFlight`]) until `complete` or `abort`.
    ///
    /// # Errors
    /// See [`SequenceError`]; nothing is reserved then.
    pub fn begin(
        &mut self,
        producer: ProducerId,
        sequence: u64,
        partitions: &[u32],
    ) -> Result<Vec<Decision>, SequenceError> {
        let window = self.window;
        let state = self.producers.entry(producer).or_default();
        if let Some((_, parts)) = state.window.iter_mut().find(|(s, _)| *s == sequence) {
            let mut out = Vec::with_capacity(partitions.len());
            for p in partitions {
                match parts.get(p) {
                    Some(PartStatus::Pending) => {
                        return Err(SequenceError::InFlight {
                            producer: producer.0,
                            sequence,
                        });
                    }
                    Some(PartStatus::Done(ack)) => out.push(Decision::Duplicate(*ack)),
                    None => out.push(Decision::Append),
                }
            }
            for (p, d) in partitions.iter().zip(&out) {
                if *d == Decision::Append {
                    parts.insert(*p, PartStatus::Pending);
                }
            }
            return Ok(out);
        }
        let known = !state.window.is_empty();
        if known && sequence != state.last + 1 {
            return Err(if sequence <= state.last {
                SequenceError::TooOld {
                    producer: producer.0,
                    sequence,
                }
            } else {
                SequenceError::OutOfOrder {
                    producer: producer.0,
                    expected: state.last + 1,
                    got: sequence,
                }
            });
        }
        state.last = sequence;
        let parts = partitions
            .iter()
            .map(|p| (*p, PartStatus::Pending))
            .collect();
        state.window.push_back((sequence, parts));
        evict(state, window);
        Ok(vec![Decision::Append; partitions.len()])
    }

    /// The append of `partition`'s part of the batch succeeded.
    pub fn complete(
        &mut self,
        producer: ProducerId,
        sequence: u64,
        partition: u32,
        ack: AppendAck,
    ) {
        if let Some(parts) = self.parts(producer, sequence) {
            parts.insert(partition, PartStatus::Done(ack));
        }
    }

    /// The append of `partition`'s part failed: a retry appends it again.
    pub fn abort(&mut self, producer: ProducerId, sequence: u64, partition: u32) {
        if let Some(parts) = self.parts(producer, sequence) {
            parts.remove(&partition);
        }
    }

    /// Note a batch found in the log while rebuilding the table on open.
    /// Batches may be fed in any order.
    pub fn restore(&mut self, producer: ProducerId, sequence: u64, partition: u32, ack: AppendAck) {
        let window = self.window;
        let state = self.producers.entry(producer).or_default();
        state.last = state.last.max(sequence);
        let at = state.window.partition_point(|(s, _)| *s < sequence);
        match state.window.get_mut(at) {
            Some((s, parts)) if *s == sequence => {
                parts.insert(partition, PartStatus::Done(ack));
            }
            _ => {
                let parts = BTreeMap::from([(partition, PartStatus::Done(ack))]);
                state.window.insert(at, (sequence, parts));
            }
        }
        evict(state, window);
    }

    /// The next sequence `producer` should use (0 for an unknown producer).
    pub fn next_sequence(&self, producer: ProducerId) -> u64 {
        self.producers
            .get(&producer)
            .filter(|s| !s.window.is_empty())
            .map_or(0, |s| s.last + 1)
    }

    fn parts(
        &mut self,
        producer: ProducerId,
        sequence: u64,
    ) -> Option<&mut BTreeMap<u32, PartStatus>> {
        self.producers
            .get_mut(&producer)?
            .window
            .iter_mut()
            .find(|(s, _)| *s == sequence)
            .map(|(_, p)| p)
    }
}

/// Drop the oldest batches beyond the window, never one still pending.
fn evict(state: &mut ProducerState, window: usize) {
    while state.window.len() > window {
        let pending = state
            .window
            .front()
            .is_some_and(|(_, parts)| parts.values().any(|s| *s == PartStatus::Pending));
        if pending {
            break;
        }
        state.window.pop_front();
    }
}

/// Encode the [`PRODUCER_HEADER`] value.
pub(crate) fn encode_stamp(
    producer: ProducerId,
    sequence: u64,
    index: u32,
    count: u32,
) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&producer.0.to_le_bytes());
    out[8..16].copy_from_slice(&sequence.to_le_bytes());
    out[16..20].copy_from_slice(&index.to_le_bytes());
    out[20..].copy_from_slice(&count.to_le_bytes());
    out
}

/// Decode a [`PRODUCER_HEADER`] value: `(producer, sequence, index, count)`.
pub(crate) fn decode_stamp(v: &[u8]) -> Option<(ProducerId, u64, u32, u32)> {
    let v: &[u8; 24] = v.try_into().ok()?;
    let (p, rest) = v.split_at(8);
    let (s, rest) = rest.split_at(8);
    let (i, c) = rest.split_at(4);
    Some((
        ProducerId(u64::from_le_bytes(p.try_into().ok()?)),
        u64::from_le_bytes(s.try_into().ok()?),
        u32::from_le_bytes(i.try_into().ok()?),
        u32::from_le_bytes(c.try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(base: u64, count: usize) -> AppendAck {
        AppendAck {
            base_offset: base,
            count,
        }
    }

    #[test]
    fn in_order_duplicate_in_flight_out_of_order() {
        let mut t = ProducerTable::new(2);
        let p = ProducerId(1);
        assert_eq!(t.begin(p, 5, &[0, 1]), Ok(vec![Decision::Append; 2]));
        assert!(matches!(
            t.begin(p, 5, &[0]),
            Err(SequenceError::InFlight { .. })
        ));
        t.complete(p, 5, 0, ack(0, 1));
        t.abort(p, 5, 1);
        // The retry appends only the failed part.
        assert_eq!(
            t.begin(p, 5, &[0, 1]),
            Ok(vec![Decision::Duplicate(ack(0, 1)), Decision::Append])
        );
        t.complete(p, 5, 1, ack(3, 1));
        assert!(matches!(
            t.begin(p, 7, &[0]),
            Err(SequenceError::OutOfOrder { expected: 6, .. })
        ));
        for s in 6..9 {
            assert_eq!(t.begin(p, s, &[0]), Ok(vec![Decision::Append]));
            t.complete(p, s, 0, ack(s, 1));
        }
        assert!(matches!(
            t.begin(p, 5, &[0]),
            Err(SequenceError::TooOld { .. })
        ));
        assert_eq!(t.next_sequence(p), 9);
        assert_eq!(t.next_sequence(ProducerId(2)), 0);
    }

    #[test]
    fn restore_out_of_order_and_stamp_round_trip() {
        let mut t = ProducerTable::new(4);
        let p = ProducerId(9);
        t.restore(p, 2, 1, ack(7, 2));
        t.restore(p, 1, 0, ack(3, 1));
        t.restore(p, 2, 0, ack(4, 1));
        assert_eq!(
            t.begin(p, 2, &[0, 1]),
            Ok(vec![
                Decision::Duplicate(ack(4, 1)),
                Decision::Duplicate(ack(7, 2))
            ])
        );
        assert_eq!(t.next_sequence(p), 3);
        let v = encode_stamp(p, 3, 1, 2);
        assert_eq!(decode_stamp(&v), Some((p, 3, 1, 2)));
        assert_eq!(decode_stamp(&v[1..]), None);
    }
}
