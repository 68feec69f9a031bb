//! The log protocol from its public API: stable partitioning, idempotent
//! retries (also across a restart), reads by offset/time, live
//! subscriptions with bounded in-flight, and proptest models of the topic
//! (against a `Vec` per partition, through appends, reads, crashes and
//! reopens) and of group assignment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plexus_runtime::clock::{Clock, ManualClock, SystemClock};
use plexus_runtime::prelude::*;
use plexus_runtime::protocols::log::{
    ConsumerConfig, Delivery, GroupConfig, GroupCore, MemberId, ProduceError, ProducerId,
    ProducerRecord, RecordPosition, SequenceError, StartAt, Subscription, Topic, TopicConfig,
    partition_for_key,
};
use plexus_runtime::storage::{Durability, LogConfig, ReadLimits};
use proptest::prelude::*;

fn config(partitions: u32) -> TopicConfig {
    TopicConfig {
        partitions,
        log: LogConfig {
            durability: Durability::OsBuffer,
            segment_bytes: 2048,
            index_interval_bytes: 256,
            ..LogConfig::default()
        },
        ..TopicConfig::default()
    }
}

fn open(dir: &Path, partitions: u32) -> Topic {
    Topic::open(dir.join("t"), config(partitions), Arc::new(SystemClock)).unwrap()
}

fn values(topic: &Topic, p: u32) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let b = topic.read(p, 0, ReadLimits::records(usize::MAX)).unwrap();
    b.iter()
        .map(|r| (r.key.map(<[u8]>::to_vec), r.value.to_vec()))
        .collect()
}

#[tokio::test]
async fn keys_map_to_stable_partitions_and_keyless_round_robin() {
    let tmp = tempfile::tempdir().unwrap();
    let topic = open(tmp.path(), 8);
    let mut placed = BTreeMap::new();
    for i in 0..64 {
        let key = format!("customer-{i}");
        let at = topic
            .append(ProducerRecord::keyed(key.clone(), "x"))
            .await
            .unwrap();
        assert_eq!(at.partition, partition_for_key(key.as_bytes(), 8));
        placed.insert(key, at.partition);
    }
    // Pinned: the same on every run, platform and version (Kafka's murmur2).
    assert_eq!(partition_for_key(b"customer-1", 8), 1);
    assert_eq!(partition_for_key(b"order-42", 12), 0);
    drop(topic);
    let topic = open(tmp.path(), 0);
    assert_eq!(topic.partitions(), 8);
    for (key, p) in &placed {
        let at = topic
            .append(ProducerRecord::keyed(key.clone(), "y"))
            .await
            .unwrap();
        assert_eq!(at.partition, *p);
    }
    let mut batch = topic.batch();
    for _ in 0..16 {
        batch.push(ProducerRecord::new("keyless")).unwrap();
    }
    let positions = topic.send(batch).await.unwrap();
    let mut per: BTreeMap<u32, usize> = BTreeMap::new();
    for p in positions {
        *per.entry(p.partition).or_default() += 1;
    }
    assert_eq!(per.values().copied().collect::<Vec<_>>(), vec![2; 8]);
    assert!(matches!(
        Topic::open(tmp.path().join("t"), config(3), Arc::new(SystemClock)),
        Err(
            plexus_runtime::protocols::log::TopicError::PartitionMismatch {
                existing: 8,
                requested: 3
            }
        )
    ));
}

fn batch_of(
    topic: &Topic,
    pid: ProducerId,
    seq: u64,
    n: u32,
) -> plexus_runtime::protocols::log::TopicBatch {
    let mut b = topic.idempotent_batch(pid, seq);
    for i in 0..n {
        let key = (i % 2 == 0).then(|| format!("k{i}").into_bytes());
        b.push(ProducerRecord {
            key,
            value: format!("{seq}-{i}").into_bytes(),
            ..ProducerRecord::default()
        })
        .unwrap();
    }
    b
}

#[tokio::test]
async fn idempotent_retries_never_duplicate_even_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let topic = open(tmp.path(), 3);
    let pid = ProducerId(42);
    assert_eq!(topic.next_sequence(pid), 0);
    let first = topic.send(batch_of(&topic, pid, 0, 5)).await.unwrap();
    let second = topic.send(batch_of(&topic, pid, 1, 4)).await.unwrap();
    assert_eq!(
        topic.send(batch_of(&topic, pid, 1, 4)).await.unwrap(),
        second
    );
    assert_eq!(
        topic.send(batch_of(&topic, pid, 0, 5)).await.unwrap(),
        first
    );
    let err = topic.send(batch_of(&topic, pid, 3, 1)).await.unwrap_err();
    assert!(matches!(
        err,
        ProduceError::Sequence(SequenceError::OutOfOrder {
            expected: 2,
            got: 3,
            ..
        })
    ));
    let total = |t: &Topic| (0..3).map(|p| values(t, p).len()).sum::<usize>();
    assert_eq!(total(&topic), 9);
    // A crash with a batch in flight, then a retry after the restart.
    let pending = topic.enqueue(batch_of(&topic, pid, 2, 6)).await.unwrap();
    drop(pending);
    drop(topic);
    let topic = open(tmp.path(), 3);
    assert_eq!(topic.next_sequence(pid), 3);
    assert_eq!(
        topic.send(batch_of(&topic, pid, 1, 4)).await.unwrap(),
        second
    );
    let third = topic.send(batch_of(&topic, pid, 2, 6)).await.unwrap();
    assert_eq!(third.len(), 6);
    assert_eq!(
        total(&topic),
        15,
        "the retried batch was not appended twice"
    );
    // Another producer is independent.
    topic
        .send(batch_of(&topic, ProducerId(7), 0, 1))
        .await
        .unwrap();
    assert_eq!(total(&topic), 16);
}

#[tokio::test]
async fn read_from_offset_timestamp_earliest_latest() {
    let tmp = tempfile::tempdir().unwrap();
    let topic = open(tmp.path(), 1);
    for i in 0..100u64 {
        let r = ProducerRecord::new(format!("v{i}"))
            .at(1_000 + i * 10)
            .header("n", i.to_le_bytes());
        topic.append(r).await.unwrap();
    }
    assert_eq!(topic.resolve(0, StartAt::Earliest).unwrap(), 0);
    assert_eq!(topic.resolve(0, StartAt::Latest).unwrap(), 100);
    assert_eq!(topic.resolve(0, StartAt::Timestamp(1_255)).unwrap(), 26);
    assert_eq!(topic.resolve(0, StartAt::Timestamp(9_999)).unwrap(), 100);
    assert_eq!(topic.resolve(0, StartAt::Offset(500)).unwrap(), 100);
    let b = topic.read(0, 40, ReadLimits::records(7)).unwrap();
    assert_eq!(b.len(), 7);
    let r = b.iter().next().unwrap();
    assert_eq!((r.offset, r.value, r.timestamp), (40, &b"v40"[..], 1_400));
    assert_eq!(
        r.headers.iter().next(),
        Some(("n", &40u64.to_le_bytes()[..]))
    );
    assert!(topic.read(0, 101, ReadLimits::default()).is_err());
    assert!(topic.read(5, 0, ReadLimits::default()).is_err());
}

/// A subscriber that waits for permission before handling each delivery.
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    got: tokio::sync::mpsc::UnboundedSender<(u32, u64, usize)>,
}
impl Actor for Gated {}
impl Handler<Delivery> for Gated {
    async fn handle(&mut self, d: Delivery, cx: &mut Context<Self>) {
        self.gate.acquire().await.unwrap().forget();
        let depth = cx.myself().mailbox_len();
        for r in &d.records {
            let _ = self.got.send((d.partition, r.offset, depth));
        }
    }
}

#[tokio::test]
async fn slow_subscriber_gets_bounded_in_flight_and_everything_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::builder().build();
    let topic = Topic::open(tmp.path().join("t"), config(2), node.clock().clone()).unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = node.spawn(Gated {
        gate: gate.clone(),
        got: tx,
    });
    let cfg = ConsumerConfig {
        max_in_flight: 2,
        max_batch: 10,
        ..ConsumerConfig::default()
    };
    node.spawn(Subscription::all(
        &topic,
        StartAt::Earliest,
        sink.recipient(),
        cfg,
    ));
    let mut batch = topic.batch();
    for i in 0..1000 {
        batch.push(ProducerRecord::new(format!("{i}"))).unwrap();
    }
    topic.send(batch).await.unwrap();
    let mut next = [0u64; 2];
    let mut max_depth = 0;
    for _ in 0..1000 {
        gate.add_permits(1);
        let (p, offset, depth) = rx.recv().await.unwrap();
        // Within one delivery records come together; we release per record.
        assert_eq!(offset, next[p as usize], "in order per partition");
        next[p as usize] += 1;
        max_depth = max_depth.max(depth);
    }
    assert_eq!(next, [500, 500]);
    assert!(
        max_depth < 2,
        "at most 2 deliveries in flight, one being handled"
    );
    // New appends are pushed live.
    topic
        .append(ProducerRecord::new("late").to_partition(1))
        .await
        .unwrap();
    gate.add_permits(1);
    assert_eq!(rx.recv().await.unwrap().1, 500);
}

// ------------------------------------------------------------------ models

#[derive(Debug, Clone)]
enum Op {
    /// Keys 0..6 or keyless, one value byte each.
    Append(Vec<(Option<u8>, u8)>),
    /// Next idempotent batch of producer 1.
    Idempotent(Vec<(Option<u8>, u8)>),
    /// Send the last idempotent batch again.
    Retry,
    Read {
        partition: u32,
        from: u8,
        max: u8,
    },
    /// Queue a batch, drop everything without waiting, reopen.
    Crash(Vec<(Option<u8>, u8)>),
    Reopen,
}

fn records() -> impl Strategy<Value = Vec<(Option<u8>, u8)>> {
    proptest::collection::vec((proptest::option::of(0u8..6), any::<u8>()), 1..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => records().prop_map(Op::Append),
        2 => records().prop_map(Op::Idempotent),
        1 => Just(Op::Retry),
        3 => (0u32..3, any::<u8>(), 1u8..20).prop_map(|(partition, from, max)| Op::Read { partition, from, max }),
        1 => records().prop_map(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

type Model = Vec<Vec<(Option<Vec<u8>>, Vec<u8>)>>;

fn to_records(rs: &[(Option<u8>, u8)]) -> Vec<ProducerRecord> {
    rs.iter()
        .map(|(k, v)| ProducerRecord {
            key: k.map(|k| vec![b'k', k]),
            value: vec![*v],
            ..ProducerRecord::default()
        })
        .collect()
}

fn apply(
    model: &mut Model,
    records: &[ProducerRecord],
    positions: &[RecordPosition],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(records.len(), positions.len());
    for (r, pos) in records.iter().zip(positions) {
        let part = &mut model[pos.partition as usize];
        prop_assert_eq!(pos.offset, part.len() as u64);
        if let Some(k) = &r.key {
            prop_assert_eq!(pos.partition, partition_for_key(k, 3));
        }
        part.push((r.key.clone(), r.value.clone()));
    }
    Ok(())
}

async fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let mut topic = Some(open(tmp.path(), 3));
    let mut model: Model = vec![Vec::new(); 3];
    let pid = ProducerId(1);
    let mut seq = 0u64;
    let mut last: Option<(u64, Vec<ProducerRecord>, Vec<RecordPosition>)> = None;
    for op in ops {
        let t = topic.as_ref().unwrap();
        match op {
            Op::Append(rs) => {
                let rs = to_records(&rs);
                let mut b = t.batch();
                for r in &rs {
                    b.push(r.clone()).unwrap();
                }
                let pos = t.send(b).await.unwrap();
                apply(&mut model, &rs, &pos)?;
            }
            Op::Idempotent(rs) => {
                let rs = to_records(&rs);
                let mut b = t.idempotent_batch(pid, seq);
                for r in &rs {
                    b.push(r.clone()).unwrap();
                }
                let pos = t.send(b).await.unwrap();
                // The stored copy carries the producer header; compare values.
                apply(&mut model, &rs, &pos)?;
                last = Some((seq, rs, pos));
                seq += 1;
            }
            Op::Retry => {
                if let Some((s, rs, pos)) = &last {
                    let mut b = t.idempotent_batch(pid, *s);
                    for r in rs {
                        b.push(r.clone()).unwrap();
                    }
                    prop_assert_eq!(&t.send(b).await.unwrap(), pos);
                }
            }
            Op::Read {
                partition,
                from,
                max,
            } => {
                let part = &model[partition as usize];
                let from = u64::from(from) % (part.len() as u64 + 1);
                let got = t
                    .read(partition, from, ReadLimits::records(max as usize))
                    .unwrap();
                let want: Vec<_> = part
                    .iter()
                    .skip(from as usize)
                    .take(max as usize)
                    .cloned()
                    .collect();
                let got: Vec<_> = got
                    .iter()
                    .map(|r| (r.key.map(<[u8]>::to_vec), r.value.to_vec()))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Crash(rs) => {
                let rs = to_records(&rs);
                let before: Vec<usize> = model.iter().map(Vec::len).collect();
                let mut b = t.batch();
                let mut parts = Vec::new();
                for r in &rs {
                    parts.push(b.push(r.clone()).unwrap());
                }
                let pending = t.enqueue(b).await.unwrap();
                drop(pending);
                drop(topic.take());
                let t = open(tmp.path(), 3);
                // An unacknowledged batch may or may not be there, per
                // partition, never partly and never out of place.
                for p in 0..3u32 {
                    let have = t.bounds(p).unwrap().next as usize;
                    let mine: Vec<_> = rs
                        .iter()
                        .zip(&parts)
                        .filter(|(_, q)| **q == p)
                        .map(|(r, _)| (r.key.clone(), r.value.clone()))
                        .collect();
                    if have > before[p as usize] {
                        prop_assert_eq!(have, before[p as usize] + mine.len());
                        model[p as usize].extend(mine);
                    }
                }
                topic = Some(t);
            }
            Op::Reopen => {
                drop(topic.take());
                topic = Some(open(tmp.path(), 3));
            }
        }
        let t = topic.as_ref().unwrap();
        for p in 0..3u32 {
            prop_assert_eq!(t.bounds(p).unwrap().next, model[p as usize].len() as u64);
        }
    }
    let t = topic.as_ref().unwrap();
    for p in 0..3u32 {
        prop_assert_eq!(values(t, p), model[p as usize].clone());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum GroupOp {
    Join(u64),
    Leave(u64),
    Heartbeat(u64),
    Advance(u64),
}

fn group_op() -> impl Strategy<Value = GroupOp> {
    prop_oneof![
        3 => (0u64..6).prop_map(GroupOp::Join),
        2 => (0u64..6).prop_map(GroupOp::Leave),
        3 => (0u64..6).prop_map(GroupOp::Heartbeat),
        2 => (0u64..4_000).prop_map(GroupOp::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn topic_matches_vec_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_model(ops))?;
    }

    #[test]
    fn every_partition_has_exactly_one_live_owner(
        partitions in 1u32..10,
        range in any::<bool>(),
        ops in proptest::collection::vec(group_op(), 1..80),
    ) {
        let config = GroupConfig {
            session_timeout: Duration::from_secs(5),
            assignor: if range {
                plexus_runtime::protocols::log::Assignor::Range
            } else {
                plexus_runtime::protocols::log::Assignor::Sticky
            },
        };
        let mut g = GroupCore::new(partitions, config);
        let clock = ManualClock::new();
        let mut live: BTreeMap<MemberId, Instant> = BTreeMap::new();
        for op in ops {
            let now = clock.now();
            let before = g.assignment();
            match op {
                GroupOp::Join(m) => { g.join(MemberId(m), now); live.insert(MemberId(m), now); }
                GroupOp::Leave(m) => { g.leave(MemberId(m)); live.remove(&MemberId(m)); }
                GroupOp::Heartbeat(m) => {
                    let known = live.contains_key(&MemberId(m));
                    prop_assert_eq!(g.heartbeat(MemberId(m), now).is_ok(), known);
                    if known { live.insert(MemberId(m), now); }
                }
                GroupOp::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    let now = clock.now();
                    g.tick(now);
                    live.retain(|_, seen| now.duration_since(*seen) < Duration::from_secs(5));
                }
            }
            while g.poll_action().is_some() {}
            let after = g.assignment();
            prop_assert_eq!(after.keys().copied().collect::<BTreeSet<_>>(), live.keys().copied().collect::<BTreeSet<_>>());
            if live.is_empty() { continue; }
            let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
            for parts in after.values() {
                for p in parts { *owners.entry(*p).or_default() += 1; }
            }
            prop_assert_eq!(owners.len() as u32, partitions, "every partition owned");
            prop_assert!(owners.values().all(|n| *n == 1), "by exactly one member");
            let sizes: Vec<usize> = after.values().map(Vec::len).collect();
            let (lo, hi) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "balanced: {:?}", after);
            if !range {
                // Sticky: a member that stays keeps what balance allows.
                for (m, new) in &after {
                    if let Some(old) = before.get(m) {
                        let kept = new.iter().filter(|p| old.contains(p)).count();
                        prop_assert!(kept >= old.len().min(new.len()), "{m:?}: {old:?} -> {new:?}");
                    }
                }
            }
        }
    }
}
