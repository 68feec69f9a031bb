//! The queue through its actor: delivery, ack, nack, dead letters, redrive,
//! consumer death, lease expiry on a manual clock, compaction, reopen,
//! corrupt files, and a proptest of random operations with restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use plexus_runtime::clock::ManualClock;
use plexus_runtime::prelude::*;
use plexus_runtime::protocols::queue::{
    AckError, Delivery, MessageId, Nack, NewMessage, OpenError, Queue, QueueConfig,
};
use plexus_runtime::storage::{Batch, FileLog, LogConfig, OpenOptions};
use proptest::prelude::*;

/// A consumer that hands every delivery to the test.
struct Worker {
    tx: flume::Sender<Delivery>,
}
impl Actor for Worker {}
impl Handler<Delivery> for Worker {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        let _ = self.tx.send(d);
    }
}
/// Answered after every delivery queued before it was forwarded.
struct Ping;
impl Message for Ping {
    type Reply = ();
}
impl Handler<Ping> for Worker {
    async fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

fn worker(node: &Node) -> (ActorRef<Worker>, flume::Receiver<Delivery>) {
    let (tx, rx) = flume::unbounded();
    (node.spawn(Worker { tx }), rx)
}

async fn next(rx: &flume::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv_async())
        .await
        .expect("no delivery within 10 s")
        .expect("worker gone")
}

/// Everything the queue has sent so far has reached the workers' channels.
async fn settle(q: &Queue, workers: &[&ActorRef<Worker>]) {
    q.flush().await.unwrap();
    for w in workers {
        if w.is_alive() {
            let _ = w.ask(Ping).await;
        }
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_secs(1),
        max_attempts: 3,
        backoff_initial: Duration::from_millis(100),
        ..QueueConfig::default()
    }
}

fn manual_node() -> (Node, ManualClock) {
    let clock = ManualClock::new();
    (Node::builder().clock(clock.clone()).build(), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_deliver_ack_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::builder().build();
    let q = Queue::open(&node, tmp.path(), "orders", config())
        .await
        .unwrap();
    let a = q
        .enqueue(NewMessage::new(b"a".to_vec()).header("k", b"v".to_vec()))
        .await
        .unwrap();
    let ids = q
        .enqueue_batch(vec![
            NewMessage::new(b"b".to_vec()),
            NewMessage::new(b"c".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(ids[0].id.get(), a.id.get() + 1);
    let (w, rx) = worker(&node);
    q.subscribe_actor(&w, 10).await.unwrap();
    let d1 = next(&rx).await;
    assert_eq!(
        (d1.id(), d1.payload(), d1.header("k")),
        (a.id, &b"a"[..], Some(&b"v"[..]))
    );
    let d2 = next(&rx).await;
    let d3 = next(&rx).await;
    d1.ack_durable().await.unwrap();
    d2.ack_durable().await.unwrap();
    assert_eq!(
        d2.ack_durable().await,
        Err(AckError::UnknownMessage(d2.id()))
    );
    let m = q.metrics().await.unwrap();
    assert_eq!((m.acked, m.in_flight, m.consumers), (2, 1, 1));
    q.close().await;
    drop(d3);

    let q = Queue::open(&node, tmp.path(), "orders", config())
        .await
        .unwrap();
    let m = q.metrics().await.unwrap();
    assert_eq!((m.depth, m.ready, m.in_flight), (1, 1, 0));
    let (w2, rx2) = worker(&node);
    q.subscribe_actor(&w2, 10).await.unwrap();
    let again = next(&rx2).await;
    assert_eq!((again.payload(), again.attempt()), (&b"c"[..], 2));
    again.ack_durable().await.unwrap();
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_messages_go_to_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::builder().build();
    let q = Queue::open(&node, tmp.path(), "jobs", config())
        .await
        .unwrap();
    let (wa, rxa) = worker(&node);
    let (wb, rxb) = worker(&node);
    q.subscribe_actor(&wa, 2).await.unwrap();
    q.subscribe_actor(&wb, 2).await.unwrap();
    for i in 0..4u8 {
        q.enqueue(NewMessage::new(vec![i])).await.unwrap();
    }
    settle(&q, &[&wa, &wb]).await;
    let held_by_a: BTreeSet<MessageId> = rxa.drain().map(|d| d.id()).collect();
    assert_eq!(held_by_a.len(), 2);
    wa.kill();
    wa.terminated().await;
    // b finishes its own two, then gets a's.
    let mut got = BTreeSet::new();
    for _ in 0..4 {
        let d = next(&rxb).await;
        if held_by_a.contains(&d.id()) {
            assert_eq!(d.attempt(), 2);
        }
        got.insert(d.id());
        d.ack().await.unwrap();
    }
    assert_eq!(got.len(), 4);
    q.flush().await.unwrap();
    let m = q.metrics().await.unwrap();
    assert_eq!((m.acked, m.redeliveries, m.consumers), (4, 2, 1));
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_redelivered_and_the_late_ack_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, clock) = manual_node();
    let q = Queue::open(&node, tmp.path(), "slow", config())
        .await
        .unwrap();
    let (w, rx) = worker(&node);
    q.subscribe_actor(&w, 1).await.unwrap();
    q.enqueue(NewMessage::new(b"x".to_vec())).await.unwrap();
    let first = next(&rx).await;
    clock.advance(Duration::from_millis(500));
    first.extend(Duration::from_secs(1)).await.unwrap();
    clock.advance(Duration::from_millis(999));
    settle(&q, &[&w]).await;
    assert!(rx.is_empty(), "extended lease must hold");
    clock.advance(Duration::from_millis(1));
    let second = next(&rx).await;
    assert_eq!((second.id(), second.attempt()), (first.id(), 2));
    assert_eq!(
        first.ack_durable().await,
        Err(AckError::LeaseEnded(first.id()))
    );
    second.ack_durable().await.unwrap();
    assert_eq!(q.metrics().await.unwrap().expired_leases, 1);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_and_redrive_brings_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, clock) = manual_node();
    let q = Queue::open(&node, tmp.path(), "poison", config())
        .await
        .unwrap();
    let (w, rx) = worker(&node);
    q.subscribe_actor(&w, 1).await.unwrap();
    let id = q
        .enqueue(NewMessage::new(b"bad".to_vec()))
        .await
        .unwrap()
        .id;
    for attempt in 1..=3 {
        let d = next(&rx).await;
        assert_eq!((d.id(), d.attempt()), (id, attempt));
        d.nack(Nack::new("cannot parse")).await.unwrap();
        clock.advance(Duration::from_secs(1));
    }
    q.flush().await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert_eq!(&*dead[0].reason, "nacked: cannot parse");
    q.close().await;

    // Dead letters survive a restart; redrive puts them back.
    let q = Queue::open(&node, tmp.path(), "poison", config())
        .await
        .unwrap();
    assert_eq!(q.metrics().await.unwrap().dead_letters, 1);
    let (w, rx) = worker(&node);
    q.subscribe_actor(&w, 1).await.unwrap();
    assert_eq!(q.redrive(None, 10).await.unwrap(), 1);
    let d = next(&rx).await;
    assert_eq!((d.id(), d.attempt()), (id, 1));
    d.ack_durable().await.unwrap();
    q.close().await;
}

fn generations(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_live_state_and_drops_history() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::builder().build();
    let cfg = QueueConfig {
        compact_min_bytes: 16 << 10,
        ..config()
    };
    let q = Queue::open(&node, tmp.path(), "big", cfg.clone())
        .await
        .unwrap();
    let (w, rx) = worker(&node);
    q.subscribe_actor(&w, 64).await.unwrap();
    let mut keep = BTreeSet::new();
    for round in 0..20u32 {
        let batch = (0..50u32)
            .map(|i| NewMessage::new(vec![7; 100]).dedup_id(format!("{round}-{i}")))
            .collect();
        q.enqueue_batch(batch).await.unwrap();
        for _ in 0..50 {
            let d = next(&rx).await;
            // Keep one message per round unacked (held by the worker).
            if keep.len() <= round as usize && d.attempt() == 1 {
                keep.insert(d.id());
                continue;
            }
            d.ack().await.unwrap();
        }
    }
    q.close().await;
    let gens = generations(&tmp.path().join("big"));
    assert_eq!(gens.len(), 1, "{gens:?}");
    assert_ne!(gens[0], "gen-00000000000000000000", "compaction ran");
    let generation: u64 = gens[0][4..].parse().unwrap();
    assert!(generation < 20, "compacted {generation} times: thrashing");
    w.kill();
    let q = Queue::open(&node, tmp.path(), "big", cfg).await.unwrap();
    let m = q.metrics().await.unwrap();
    assert_eq!(m.depth, keep.len() as u64);
    // The dedup window survived compaction and restart.
    let dup = q
        .enqueue(NewMessage::new(vec![1]).dedup_id("19-49"))
        .await
        .unwrap();
    assert!(dup.duplicate);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_event_and_bad_input_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::builder().build();
    assert!(matches!(
        Queue::open(&node, tmp.path(), "../etc", config()).await,
        Err(OpenError::InvalidName(_))
    ));
    let bad = QueueConfig {
        max_attempts: 0,
        ..config()
    };
    assert!(matches!(
        Queue::open(&node, tmp.path(), "q", bad).await,
        Err(OpenError::InvalidConfig(_))
    ));
    // A record with a valid checksum but garbage inside.
    let gen_dir = tmp.path().join("q").join("gen-00000000000000000000");
    {
        let log = FileLog::open(&gen_dir, LogConfig::default(), OpenOptions::default()).unwrap();
        let mut b = Batch::new();
        b.push(0, None, &[0xEE, 1, 2, 3]).unwrap();
        log.append(b).await.unwrap();
    }
    match Queue::open(&node, tmp.path(), "q", config()).await {
        Err(OpenError::Corrupt { offset, .. }) => assert_eq!(offset, 0),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Too large: refused with nothing stored.
    let q = Queue::open(&node, tmp.path(), "r", config()).await.unwrap();
    let err = q.enqueue(NewMessage::new(vec![0; 2 << 20])).await;
    assert!(matches!(
        err,
        Err(plexus_runtime::protocols::queue::EnqueueError::TooLarge { .. })
    ));
    // Opening the same queue twice is refused (the log is locked).
    assert!(Queue::open(&node, tmp.path(), "r", config()).await.is_err());
    q.close().await;
}

// --------------------------------------------------------------- proptest

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Option<u8>),
    Ack(u8),
    Nack(u8),
    Advance(u16),
    Kill,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => proptest::option::weighted(0.3, 0u8..2).prop_map(Op::Enqueue),
        5 => any::<u8>().prop_map(Op::Ack),
        2 => any::<u8>().prop_map(Op::Nack),
        3 => (1u16..1500).prop_map(Op::Advance),
        1 => Just(Op::Kill),
        1 => Just(Op::Restart),
    ]
}

async fn actor_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let (node, clock) = manual_node();
    let mut q = Queue::open(&node, tmp.path(), "p", config()).await.unwrap();
    let mut workers: Vec<(ActorRef<Worker>, flume::Receiver<Delivery>)> = Vec::new();
    for _ in 0..2 {
        let (w, rx) = worker(&node);
        q.subscribe_actor(&w, 2).await.unwrap();
        workers.push((w, rx));
    }
    let mut all = BTreeSet::new();
    let mut acked = BTreeSet::new();
    // Deliveries held by the test, by message id.
    let mut held: BTreeMap<MessageId, Delivery> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Enqueue(group) => {
                let mut m = NewMessage::new(b"p".to_vec());
                if let Some(g) = group {
                    m = m.group(format!("g{g}"));
                }
                all.insert(q.enqueue(m).await.unwrap().id);
            }
            Op::Ack(i) | Op::Nack(i) if !held.is_empty() => {
                let key = *held.keys().nth(usize::from(i) % held.len()).unwrap();
                let d = held.remove(&key).unwrap();
                if matches!(op, Op::Ack(_)) {
                    d.ack_durable().await.unwrap();
                    acked.insert(key);
                } else {
                    d.nack(Nack::new("test")).await.unwrap();
                }
            }
            Op::Ack(_) | Op::Nack(_) => {}
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(u64::from(ms)));
                // Leases the clock ended are void: forget those deliveries.
                let now = node.now();
                held.retain(|_, d| d.lease_until() > now);
            }
            Op::Kill => {
                if let Some((w, _)) = workers.pop() {
                    w.kill();
                    w.terminated().await;
                    held.clear(); // its deliveries are void; the other's are still valid
                }
                let (w, rx) = worker(&node);
                q.subscribe_actor(&w, 2).await.unwrap();
                workers.insert(0, (w, rx));
            }
            Op::Restart => {
                q.close().await;
                held.clear();
                q = Queue::open(&node, tmp.path(), "p", config()).await.unwrap();
                for (w, rx) in &workers {
                    rx.drain().for_each(drop);
                    q.subscribe_actor(w, 2).await.unwrap();
                }
            }
        }
        let refs: Vec<&ActorRef<Worker>> = workers.iter().map(|(w, _)| w).collect();
        settle(&q, &refs).await;
        for (_, rx) in &workers {
            for d in rx.drain() {
                prop_assert!(
                    !acked.contains(&d.id()),
                    "acked {:?} delivered again",
                    d.id()
                );
                // Never two valid leases on one message.
                if let Some(old) = held.get(&d.id()) {
                    prop_assert!(old.lease_until() <= node.now(), "{:?} leased twice", d.id());
                }
                held.insert(d.id(), d);
            }
        }
    }
    // Drain: ack everything, move time past every backoff and lease.
    let mut dead = 0;
    for _ in 0..200 {
        for (_, d) in std::mem::take(&mut held) {
            if d.ack_durable().await.is_ok() {
                acked.insert(d.id());
            }
        }
        dead = q.metrics().await.unwrap().dead_letters;
        if acked.len() as u64 + dead == all.len() as u64 {
            break;
        }
        clock.advance(Duration::from_millis(1100));
        let refs: Vec<&ActorRef<Worker>> = workers.iter().map(|(w, _)| w).collect();
        settle(&q, &refs).await;
        for (_, rx) in &workers {
            for d in rx.drain() {
                held.insert(d.id(), d);
            }
        }
    }
    prop_assert_eq!(
        acked.len() as u64 + dead,
        all.len() as u64,
        "not all settled"
    );
    q.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn the_actor_settles_every_message(ops in proptest::collection::vec(op(), 0..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(actor_model(ops))?;
    }
}
