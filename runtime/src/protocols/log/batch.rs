//! [`TopicBatch`] (records on their way to partitions) and
//! [`PendingProduce`] (the acknowledgement of a batch in flight).

use std::sync::atomic::Ordering;

use crate::storage::{AppendAck, Batch, PendingAck};

use super::error::ProduceError;
use super::idempotence::{Decision, ProducerId, encode_stamp};
use super::partition::partition_for_key;
use super::record::{ProducerRecord, RecordPosition};
use super::topic::{Topic, encode_into};

/// Records to append to a [`Topic`], already split by partition. Built by
/// [`Topic::batch`] or [`Topic::idempotent_batch`]; sent with
/// [`Topic::send`] or [`Topic::enqueue`].
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # use plexus_runtime::clock::SystemClock;
/// use plexus_runtime::protocols::log::{ProducerRecord, Topic, TopicConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let config = TopicConfig { partitions: 3, ..TopicConfig::default() };
/// let topic = Topic::open(tmp.path().join("clicks"), config, Arc::new(SystemClock))?;
/// let mut batch = topic.batch();
/// for i in 0..6 {
///     batch.push(ProducerRecord::new(format!("click {i}")))?;
/// }
/// let positions = topic.send(batch).await?;
/// // keyless records went round-robin over the 3 partitions
/// assert_eq!(positions.iter().filter(|p| p.partition == 0).count(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TopicBatch {
    topic: Option<Topic>,
    partitions: u32,
    /// Next keyless slot of an idempotent batch.
    next_slot: u64,
    stamp: Option<(ProducerId, u64)>,
    default_ts: u64,
    /// Partition of each record, in push order.
    order: Vec<u32>,
    /// Plain batches: encoded per partition.
    plain: Vec<Batch>,
    /// Idempotent batches: kept until sent (the stamp needs the count).
    stamped: Vec<Vec<ProducerRecord>>,
}

impl TopicBatch {
    pub(super) fn new(
        topic: &Topic,
        next_slot: u64,
        stamp: Option<(ProducerId, u64)>,
        default_ts: u64,
    ) -> Self {
        let n = topic.partitions() as usize;
        Self {
            topic: stamp.is_none().then(|| topic.clone()),
            partitions: topic.partitions(),
            next_slot,
            stamp,
            default_ts,
            order: Vec::new(),
            plain: if stamp.is_none() {
                vec![Batch::new(); n]
            } else {
                Vec::new()
            },
            stamped: if stamp.is_some() {
                vec![Vec::new(); n]
            } else {
                Vec::new()
            },
        }
    }

    fn choose(&mut self, key: Option<&[u8]>, forced: Option<u32>) -> Result<u32, ProduceError> {
        let p = match (forced, key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, self.partitions),
            (None, None) => {
                let slot = match &self.topic {
                    Some(t) => t.inner.round_robin.fetch_add(1, Ordering::Relaxed),
                    None => {
                        self.next_slot += 1;
                        self.next_slot - 1
                    }
                };
                (slot % u64::from(self.partitions.max(1))) as u32
            }
        };
        if p >= self.partitions {
            return Err(ProduceError::UnknownPartition {
                partition: p,
                partitions: self.partitions,
            });
        }
        Ok(p)
    }

    /// Add a record; returns the partition it goes to.
    ///
    /// # Errors
    /// [`ProduceError::Record`] if it cannot be encoded,
    /// [`ProduceError::UnknownPartition`] for a forced partition out of
    /// range. The batch is unchanged on error.
    pub fn push(&mut self, record: ProducerRecord) -> Result<u32, ProduceError> {
        let p = self.choose(record.key.as_deref(), record.partition)?;
        if self.stamp.is_some() {
            if let Some(v) = self.stamped.get_mut(p as usize) {
                v.push(record);
            }
        } else if let Some(b) = self.plain.get_mut(p as usize) {
            encode_into(b, &record, self.default_ts, None)?;
        }
        self.order.push(p);
        Ok(p)
    }

    /// Add a record from borrowed parts, without allocating per record
    /// (for plain batches); timestamp = the batch's creation time.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_value(&mut self, key: Option<&[u8]>, value: &[u8]) -> Result<u32, ProduceError> {
        if self.stamp.is_some() {
            let record = ProducerRecord {
                key: key.map(<[u8]>::to_vec),
                value: value.to_vec(),
                ..ProducerRecord::default()
            };
            return self.push(record);
        }
        let p = self.choose(key, None)?;
        if let Some(b) = self.plain.get_mut(p as usize) {
            b.push(self.default_ts, key, value)?;
        }
        self.order.push(p);
        Ok(p)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The idempotence stamp `(producer, sequence)`, if any.
    pub fn stamp(&self) -> Option<(ProducerId, u64)> {
        self.stamp
    }
}

#[derive(Debug)]
enum Part {
    Waiting(PendingAck),
    Done(AppendAck),
}

/// A batch handed to the partition logs; [`wait`](Self::wait) for the
/// positions. Dropping it does not cancel the append.
#[derive(Debug)]
#[must_use = "a produce is acknowledged only through wait()"]
pub struct PendingProduce {
    topic: Topic,
    stamp: Option<(ProducerId, u64)>,
    /// Parts handed to a log (or answered as duplicates), not yet settled.
    parts: Vec<(u32, Part)>,
    /// Partitions reserved in the producer table but not handed to a log.
    reserved: Vec<u32>,
    order: Vec<u32>,
}

impl PendingProduce {
    /// Wait until every partition's part is durable; positions in push order.
    ///
    /// # Errors
    /// [`ProduceError::Append`] for the first failed partition.
    ///
    /// # Cancel safety
    /// Dropping the future may or may not append the batch; the outcome of
    /// an idempotent batch is still recorded for retries.
    pub async fn wait(mut self) -> Result<Vec<RecordPosition>, ProduceError> {
        let mut acks: Vec<Option<AppendAck>> = vec![None; self.topic.partitions() as usize];
        let mut first_err = None;
        // Parts stay in `self.parts` while awaited, so a drop settles them.
        while let Some((p, part)) = self.parts.last_mut() {
            let p = *p;
            let res = match part {
                Part::Done(ack) => Ok(*ack),
                Part::Waiting(pending) => pending.await,
            };
            self.parts.pop();
            match res {
                Ok(ack) => {
                    if let Some((pid, seq)) = self.stamp {
                        self.topic.table().complete(pid, seq, p, ack);
                    }
                    if let Some(slot) = acks.get_mut(p as usize) {
                        *slot = Some(ack);
                    }
                }
                Err(source) => {
                    if let Some((pid, seq)) = self.stamp {
                        self.topic.table().abort(pid, seq, p);
                    }
                    first_err = Some(ProduceError::Append {
                        partition: p,
                        source,
                    });
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut used = vec![0u64; acks.len()];
        let mut out = Vec::with_capacity(self.order.len());
        for p in &self.order {
            let i = *p as usize;
            let (Some(Some(ack)), Some(k)) = (acks.get(i), used.get_mut(i)) else {
                continue;
            };
            out.push(RecordPosition {
                partition: *p,
                offset: ack.base_offset + *k,
            });
            *k += 1;
        }
        Ok(out)
    }
}

impl Drop for PendingProduce {
    fn drop(&mut self) {
        let Some((pid, seq)) = self.stamp else { return };
        {
            let mut table = self.topic.table();
            for p in self.reserved.drain(..) {
                table.abort(pid, seq, p);
            }
        }
        let parts = std::mem::take(&mut self.parts);
        if parts.is_empty() {
            return;
        }
        // Dropped before settling: learn the outcome off-thread, so a retry
        // is answered from the log's real state. Holds only the table, so
        // the logs can close (and be reopened) meanwhile.
        let table = std::sync::Arc::clone(&self.topic.inner.producers);
        let settle = move || {
            for (p, part) in parts {
                let res = match part {
                    Part::Done(ack) => Ok(ack),
                    Part::Waiting(pending) => pending.wait(),
                };
                let mut table = table
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match res {
                    Ok(ack) => table.complete(pid, seq, p, ack),
                    Err(_) => table.abort(pid, seq, p),
                }
            }
        };
        if std::thread::Builder::new()
            .name("plexus-produce-settle".into())
            .spawn(settle)
            .is_err()
        {
            tracing::warn!("could not settle a dropped idempotent produce");
        }
    }
}

pub(super) async fn enqueue(
    topic: &Topic,
    batch: TopicBatch,
) -> Result<PendingProduce, ProduceError> {
    let TopicBatch {
        stamp,
        default_ts,
        order,
        plain,
        stamped,
        ..
    } = batch;
    let mut out = PendingProduce {
        topic: topic.clone(),
        stamp,
        parts: Vec::new(),
        reserved: Vec::new(),
        order,
    };
    match stamp {
        None => {
            for (p, b) in (0u32..).zip(plain) {
                if b.is_empty() {
                    continue;
                }
                let log = topic.log(p).map_err(|_| unknown(topic, p))?;
                let pending = log
                    .enqueue(b)
                    .await
                    .map_err(|source| ProduceError::Append {
                        partition: p,
                        source,
                    })?;
                out.parts.push((p, Part::Waiting(pending)));
            }
        }
        Some((pid, seq)) => {
            let touched: Vec<u32> = (0u32..)
                .zip(&stamped)
                .filter(|(_, v)| !v.is_empty())
                .map(|(p, _)| p)
                .collect();
            // Encode first, so an encoding error reserves nothing.
            let mut encoded = Vec::with_capacity(touched.len());
            for &p in &touched {
                let records = stamped.get(p as usize).map_or(&[][..], Vec::as_slice);
                let count = records.len() as u32;
                let mut b = Batch::new();
                for (i, r) in (0u32..).zip(records) {
                    let stamp = encode_stamp(pid, seq, i, count);
                    encode_into(&mut b, r, default_ts, Some(stamp))?;
                }
                encoded.push(b);
            }
            let decisions = topic.table().begin(pid, seq, &touched)?;
            let mut to_append = Vec::new();
            for ((&p, decision), b) in touched.iter().zip(decisions).zip(encoded) {
                match decision {
                    Decision::Duplicate(ack) => out.parts.push((p, Part::Done(ack))),
                    Decision::Append => {
                        out.reserved.push(p);
                        to_append.push((p, b));
                    }
                }
            }
            // On error or cancellation, `out`'s drop releases what is
            // still reserved and settles what was queued.
            for (p, b) in to_append {
                let log = topic.log(p).map_err(|_| unknown(topic, p))?;
                let pending = log
                    .enqueue(b)
                    .await
                    .map_err(|source| ProduceError::Append {
                        partition: p,
                        source,
                    })?;
                out.reserved.retain(|q| *q != p);
                out.parts.push((p, Part::Waiting(pending)));
            }
        }
    }
    Ok(out)
}

fn unknown(topic: &Topic, p: u32) -> ProduceError {
    ProduceError::UnknownPartition {
        partition: p,
        partitions: topic.partitions(),
    }
}
