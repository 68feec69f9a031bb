//! The delivery pump shared by both consumers: per-partition read cursors,
//! a bound on deliveries in flight, the contiguous-prefix rule that decides
//! what may be committed, and wake-ups when a partition grows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::storage::{ReadError, ReadLimits, Record};
use crate::{Message, Recipient};

use super::super::error::FetchError;
use super::super::topic::Topic;

/// Records of one partition, pushed to a subscriber. Handling it (replying)
/// acknowledges it: the consumer then commits past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic's name.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// Records in offset order (offsets may have gaps in compacted topics).
    pub records: Vec<Record>,
}

impl Message for Delivery {
    type Reply = ();
}

/// Settings of a consumer: plain struct with `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Most deliveries awaiting the subscriber's reply at once, over all
    /// partitions: memory stays bounded by this times `max_batch`. Default 4.
    pub max_in_flight: usize,
    /// Most records per delivery. Default 500.
    pub max_batch: usize,
    /// Most bytes per delivery (at least one record). Default 1 MiB.
    pub max_batch_bytes: usize,
    /// A delivery not answered within this (node clock) is sent again.
    /// Default 30 s.
    pub delivery_timeout: Duration,
    /// Group members: heartbeat period (node clock). Default 3 s.
    pub heartbeat_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 4,
            max_batch: 500,
            max_batch_bytes: 1 << 20,
            delivery_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// A delivery finished (internal to the consumers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivered {
    pub epoch: u64,
    pub partition: u32,
    pub id: u64,
    pub ok: bool,
}

impl Message for Delivered {
    type Reply = ();
}

/// A partition has new records (internal to the consumers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Wake {
    pub epoch: u64,
    pub partition: u32,
}

impl Message for Wake {
    type Reply = ();
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: u64,
    start: u64,
    end: u64,
    done: bool,
}

#[derive(Debug)]
struct Cursor {
    epoch: u64,
    next_read: u64,
    /// Deliveries in flight, in offset order.
    inflight: VecDeque<InFlight>,
    /// Everything before this is acknowledged.
    acked: u64,
    watching: bool,
    failed: bool,
}

#[derive(Debug)]
pub(super) struct Feeder {
    pub topic: Topic,
    pub config: ConsumerConfig,
    pub target: Recipient<Delivery>,
    pub back: Option<(Recipient<Delivered>, Recipient<Wake>)>,
    cursors: BTreeMap<u32, Cursor>,
    next_epoch: u64,
    rotate: usize,
}

impl Feeder {
    pub(super) fn new(topic: Topic, config: ConsumerConfig, target: Recipient<Delivery>) -> Self {
        Self {
            topic,
            config,
            target,
            back: None,
            cursors: BTreeMap::new(),
            next_epoch: 1,
            rotate: 0,
        }
    }

    /// Start (or restart) `partition` at `offset`.
    pub(super) fn add(&mut self, partition: u32, offset: u64) {
        self.next_epoch += 1;
        self.cursors.insert(
            partition,
            Cursor {
                epoch: self.next_epoch,
                next_read: offset,
                inflight: VecDeque::new(),
                acked: offset,
                watching: false,
                failed: false,
            },
        );
    }

    pub(super) fn remove(&mut self, partition: u32) {
        self.cursors.remove(&partition);
    }

    pub(super) fn has(&self, partition: u32) -> bool {
        self.cursors.contains_key(&partition)
    }

    pub(super) fn clear(&mut self) {
        self.cursors.clear();
    }

    /// Acknowledged positions (next offset to process) by partition.
    pub(super) fn positions(&self) -> BTreeMap<u32, u64> {
        self.cursors.iter().map(|(p, c)| (*p, c.acked)).collect()
    }

    fn in_flight(&self) -> usize {
        self.cursors.values().map(|c| c.inflight.len()).sum()
    }

    /// Send as many deliveries as credit allows, one per partition per round.
    pub(super) fn fill(&mut self) {
        let Some((back, wake)) = self.back.clone() else {
            return;
        };
        let parts: Vec<u32> = self.cursors.keys().copied().collect();
        if parts.is_empty() {
            return;
        }
        let limits = ReadLimits {
            max_records: self.config.max_batch.max(1),
            max_bytes: self.config.max_batch_bytes,
        };
        loop {
            let mut progressed = false;
            for i in 0..parts.len() {
                if self.in_flight() >= self.config.max_in_flight.max(1) {
                    return;
                }
                let p = parts[(i + self.rotate) % parts.len()];
                if self.send_one(p, limits, &back, &wake) {
                    progressed = true;
                }
            }
            self.rotate = self.rotate.wrapping_add(1);
            if !progressed {
                return;
            }
        }
    }

    fn send_one(
        &mut self,
        p: u32,
        limits: ReadLimits,
        back: &Recipient<Delivered>,
        wake: &Recipient<Wake>,
    ) -> bool {
        let topic = self.topic.clone();
        let Some(c) = self.cursors.get_mut(&p) else {
            return false;
        };
        if c.failed {
            return false;
        }
        let batch = match topic.read(p, c.next_read, limits) {
            Ok(b) => b,
            Err(FetchError::Read(ReadError::OutOfRange { earliest, next, .. }))
                if c.next_read < earliest =>
            {
                tracing::warn!(
                    partition = p,
                    from = c.next_read,
                    earliest,
                    "records deleted by retention before they were consumed"
                );
                c.next_read = earliest.min(next);
                if c.inflight.is_empty() {
                    c.acked = c.next_read;
                }
                return true;
            }
            Err(e) => {
                tracing::error!(partition = p, error = %e, "consumer read failed; partition paused");
                c.failed = true;
                return false;
            }
        };
        if batch.is_empty() {
            if !c.watching {
                c.watching = true;
                watch_partition(&topic, p, c.epoch, c.next_read, wake.clone());
            }
            return false;
        }
        let start = c.next_read;
        let end = batch.next_offset();
        c.next_read = end;
        self.next_epoch += 1;
        let id = self.next_epoch;
        c.inflight.push_back(InFlight {
            id,
            start,
            end,
            done: false,
        });
        let delivery = Delivery {
            topic: Arc::from(topic.name()),
            partition: p,
            records: batch.iter().map(|r| r.to_record()).collect(),
        };
        let (epoch, target, back, timeout) = (
            c.epoch,
            self.target.clone(),
            back.clone(),
            self.config.delivery_timeout,
        );
        tokio::spawn(async move {
            let ok = target.ask(delivery).timeout(timeout).await.is_ok();
            let _ = back
                .tell(Delivered {
                    epoch,
                    partition: p,
                    id,
                    ok,
                })
                .await;
        });
        true
    }

    /// A delivery finished. Returns the partition's new acknowledged
    /// position when it moved (what a group member commits).
    pub(super) fn delivered(&mut self, d: Delivered) -> Option<u64> {
        let c = self.cursors.get_mut(&d.partition)?;
        if c.epoch != d.epoch {
            return None;
        }
        let i = c.inflight.iter().position(|f| f.id == d.id)?;
        let entry = c.inflight.get_mut(i)?;
        if !d.ok {
            // Redeliver from the failed batch on (at-least-once): later
            // deliveries' answers no longer count.
            c.next_read = entry.start;
            c.inflight.truncate(i);
            return None;
        }
        entry.done = true;
        let before = c.acked;
        while let Some(f) = c.inflight.front().copied().filter(|f| f.done) {
            c.acked = f.end;
            c.inflight.pop_front();
        }
        (c.acked != before).then_some(c.acked)
    }

    pub(super) fn woke(&mut self, w: Wake) {
        if let Some(c) = self.cursors.get_mut(&w.partition)
            && c.epoch == w.epoch
        {
            c.watching = false;
        }
    }
}

/// Wait (off the actor) until `partition` holds a record at `from`.
fn watch_partition(topic: &Topic, partition: u32, epoch: u64, from: u64, wake: Recipient<Wake>) {
    let Ok(mut rx) = topic.watch(partition) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            if *rx.borrow_and_update() > from {
                break;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
        let _ = wake.tell(Wake { epoch, partition }).await;
    });
}
