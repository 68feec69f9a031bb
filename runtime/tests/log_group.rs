//! Consumer-group stories on a manual clock: a member stops mid-stream and
//! the other takes over from the committed offsets; a silent member is
//! expired by heartbeat; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_runtime::clock::ManualClock;
use plexus_runtime::prelude::*;
use plexus_runtime::protocols::log::{
    ConsumerConfig, Delivery, FetchOffsets, GroupConfig, GroupConsumer, GroupCoordinator, MemberId,
    Positions, ProducerRecord, Snapshot, Topic, TopicConfig,
};
use plexus_runtime::storage::{Durability, LogConfig};
use tokio::sync::watch;

type Seen = Arc<Mutex<Vec<(&'static str, u32, u64)>>>;

/// Records every delivered (member, partition, offset) and counts them.
struct Sink {
    tag: &'static str,
    seen: Seen,
    count: watch::Sender<usize>,
}
impl Actor for Sink {}
impl Handler<Delivery> for Sink {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        let mut seen = self.seen.lock().unwrap();
        for r in &d.records {
            seen.push((self.tag, d.partition, r.offset));
        }
        self.count.send_modify(|c| *c += d.records.len());
    }
}

fn topic_config() -> TopicConfig {
    TopicConfig {
        partitions: 4,
        log: LogConfig {
            durability: Durability::OsBuffer,
            ..LogConfig::default()
        },
        ..TopicConfig::default()
    }
}

fn consumer_config(heartbeat: Duration) -> ConsumerConfig {
    ConsumerConfig {
        max_in_flight: 2,
        max_batch: 5,
        heartbeat_interval: heartbeat,
        ..ConsumerConfig::default()
    }
}

async fn produce(topic: &Topic, from: u32, to: u32) {
    let mut batch = topic.batch();
    for i in from..to {
        batch
            .push(ProducerRecord::keyed(
                format!("customer-{}", i % 50),
                format!("v{i}"),
            ))
            .unwrap();
    }
    topic.send(batch).await.unwrap();
}

/// Wait until `count` reaches `n` (deliveries are pushed, not polled).
async fn wait_count(rx: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| *c >= n))
        .await
        .expect("deliveries stalled")
        .unwrap();
}

fn spawn_sink(
    node: &Node,
    tag: &'static str,
    seen: &Seen,
) -> (ActorRef<Sink>, watch::Receiver<usize>) {
    let (tx, rx) = watch::channel(0);
    let sink = node.spawn(Sink {
        tag,
        seen: seen.clone(),
        count: tx,
    });
    (sink, rx)
}

/// Every offset of every partition was delivered at least once.
fn assert_nothing_skipped(topic: &Topic, seen: &Seen) {
    let seen = seen.lock().unwrap();
    for p in 0..topic.partitions() {
        let got: BTreeSet<u64> = seen
            .iter()
            .filter(|(_, q, _)| *q == p)
            .map(|(_, _, o)| *o)
            .collect();
        let want: BTreeSet<u64> = (0..topic.bounds(p).unwrap().next).collect();
        assert_eq!(got, want, "partition {p}");
    }
}

/// Ask for the committed offsets until `done` holds. A commit's write runs
/// on the blocking pool while the coordinator waits for it, so each ask is
/// answered after the commits already queued; the loop only waits for the
/// members to send theirs.
async fn wait_committed(
    coordinator: &ActorRef<GroupCoordinator>,
    done: impl Fn(&BTreeMap<u32, u64>) -> bool,
) -> BTreeMap<u32, u64> {
    for _ in 0..10_000 {
        let committed = coordinator.ask(FetchOffsets).await.unwrap();
        if done(&committed) {
            return committed;
        }
        tokio::task::yield_now().await;
    }
    panic!("the commits never arrived");
}

async fn wait_positions(consumer: &ActorRef<GroupConsumer>, topic: &Topic) {
    let want: BTreeMap<u32, u64> = (0..topic.partitions())
        .map(|p| (p, topic.bounds(p).unwrap().next))
        .collect();
    for _ in 0..10_000 {
        if consumer.ask(Positions).await.unwrap() == want {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("positions never reached the end");
}

#[tokio::test(flavor = "current_thread")]
async fn member_stops_mid_stream_and_the_other_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let node = Node::builder().seed(5).clock(clock.clone()).build();
    let topic = Topic::open(
        tmp.path().join("orders"),
        topic_config(),
        node.clock().clone(),
    )
    .unwrap();
    produce(&topic, 0, 120).await;
    let coordinator =
        node.spawn(GroupCoordinator::open(&topic, "analytics", GroupConfig::default()).unwrap());
    let seen: Seen = Arc::default();
    let (sink_a, mut count_a) = spawn_sink(&node, "a", &seen);
    let (sink_b, mut count_b) = spawn_sink(&node, "b", &seen);
    let hb = Duration::from_secs(1);
    let a = node.spawn(GroupConsumer::new(
        &topic,
        coordinator.clone(),
        sink_a.recipient(),
        consumer_config(hb),
    ));
    let b = node.spawn(GroupConsumer::new(
        &topic,
        coordinator.clone(),
        sink_b.recipient(),
        consumer_config(hb),
    ));

    // Both members deliver, each from its own two partitions.
    wait_count(&mut count_a, 10).await;
    wait_count(&mut count_b, 10).await;
    let snap = coordinator.ask(Snapshot).await.unwrap();
    assert_eq!(snap.assignment.len(), 2);
    let owned_by_a = snap.assignment[&MemberId(a.id().get())].clone();
    assert_eq!(owned_by_a.len(), 2);

    // Stop member a mid-stream.
    let committed_before = wait_committed(&coordinator, |c| {
        owned_by_a.iter().all(|p| c.get(p).is_some_and(|o| *o > 0))
    })
    .await;
    a.stop();
    a.terminated().await;
    let snap = coordinator.ask(Snapshot).await.unwrap();
    assert_eq!(snap.assignment.len(), 1, "a left the group");
    assert_eq!(snap.assignment[&MemberId(b.id().get())], vec![0, 1, 2, 3]);

    // More records arrive; b now consumes all four partitions.
    produce(&topic, 120, 240).await;
    wait_positions(&b, &topic).await;
    assert_nothing_skipped(&topic, &seen);

    // b resumed a's partitions from a committed offset: not from the start
    // (a had committed), and not past what a handled (nothing skipped).
    let seen_now = seen.lock().unwrap().clone();
    for p in owned_by_a {
        let first_b = seen_now
            .iter()
            .filter(|(t, q, _)| *t == "b" && *q == p)
            .map(|(_, _, o)| *o)
            .min()
            .unwrap();
        let a_max = seen_now
            .iter()
            .filter(|(t, q, _)| *t == "a" && *q == p)
            .map(|(_, _, o)| *o)
            .max()
            .unwrap();
        let committed = committed_before.get(&p).copied().unwrap_or(0);
        assert!(committed > 0, "a had committed on p{p}");
        assert!(
            (committed..=a_max + 1).contains(&first_b),
            "p{p}: b started at {first_b}; a committed {committed}, handled up to {a_max}"
        );
    }
    // Committed offsets reached the end and survive a coordinator restart.
    let at_end = |c: &BTreeMap<u32, u64>| {
        (0..4).all(|p| c.get(&p).copied().unwrap_or(0) == topic.bounds(p).unwrap().next)
    };
    let committed = wait_committed(&coordinator, at_end).await;
    for p in 0..4 {
        let bounds = topic.bounds(p).unwrap();
        assert_eq!(
            committed.get(&p).copied().unwrap_or(0),
            bounds.next,
            "{committed:?}"
        );
    }
    b.stop();
    b.terminated().await;
    coordinator.stop();
    coordinator.terminated().await;
    let again =
        node.spawn(GroupCoordinator::open(&topic, "analytics", GroupConfig::default()).unwrap());
    assert_eq!(again.ask(FetchOffsets).await.unwrap(), committed);
    let _ = count_b.borrow_and_update();
    let _ = clock;
}

#[tokio::test(flavor = "current_thread")]
async fn silent_member_expires_and_its_partitions_move() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let node = Node::builder().seed(6).clock(clock.clone()).build();
    let topic = Topic::open(
        tmp.path().join("events"),
        topic_config(),
        node.clock().clone(),
    )
    .unwrap();
    produce(&topic, 0, 80).await;
    let config = GroupConfig {
        session_timeout: Duration::from_secs(5),
        ..GroupConfig::default()
    };
    let coordinator = node.spawn(GroupCoordinator::open(&topic, "g", config).unwrap());
    let seen: Seen = Arc::default();
    let (sink_x, _count_x) = spawn_sink(&node, "x", &seen);
    let (sink_y, _count_y) = spawn_sink(&node, "y", &seen);
    // x never heartbeats within the test (a stalled process).
    let x = node.spawn(GroupConsumer::new(
        &topic,
        coordinator.clone(),
        sink_x.recipient(),
        consumer_config(Duration::from_secs(3600)),
    ));
    let y = node.spawn(GroupConsumer::new(
        &topic,
        coordinator.clone(),
        sink_y.recipient(),
        consumer_config(Duration::from_millis(500)),
    ));
    let _ = x.ask(Positions).await.unwrap();
    let _ = y.ask(Positions).await.unwrap();
    assert_eq!(coordinator.ask(Snapshot).await.unwrap().assignment.len(), 2);
    let y_id = MemberId(y.id().get());
    for _ in 0..30 {
        clock.advance(Duration::from_millis(250));
        // A due timer runs before the next message: y heartbeats, then
        // the coordinator ticks.
        let _ = y.ask(Positions).await.unwrap();
        let _ = coordinator.ask(Snapshot).await.unwrap();
    }
    let snap = coordinator.ask(Snapshot).await.unwrap();
    assert_eq!(snap.assignment.len(), 1, "x expired: {snap:?}");
    assert_eq!(snap.assignment[&y_id], vec![0, 1, 2, 3]);
    wait_positions(&y, &topic).await;
    assert_nothing_skipped(&topic, &seen);
}
