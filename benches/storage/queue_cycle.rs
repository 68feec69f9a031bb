//! `queue_cycle/plexus`: enqueue → deliver → ack on a durable queue with
//! `Fsync`, many messages in flight. Producers enqueue in batches (each
//! batch acknowledged once on disk); two consumer actors with prefetch
//! 2048 each ack every message individually; the clock stops when the last
//! ack is durable (a final `flush`). 100-byte payloads; the data directory
//! is under `target/` (the normal disk, not tmpfs).

// `queue_cycle` is called from the harness file that includes this module.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use plexus::prelude::*;
use plexus::protocols::queue::{Delivery, NewMessage, Queue, QueueConfig};
use plexus::storage::Durability;

/// Messages per measured iteration.
const CYCLE: u64 = 20_000;
const BATCH: usize = 256;
const PRODUCERS_IN_FLIGHT: usize = 16;

/// Acks counted across all consumers; whoever acks the last one signals.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    target: AtomicU64,
    done: Mutex<Option<flume::Sender<()>>>,
}

struct Consumer {
    tally: Arc<Tally>,
}
impl Actor for Consumer {}

impl Handler<Delivery> for Consumer {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        if d.ack().await.is_ok() {
            let n = self.tally.acked.fetch_add(1, Ordering::AcqRel) + 1;
            if n == self.tally.target.load(Ordering::Acquire)
                && let Some(done) = self.tally.done.lock().unwrap().take()
            {
                let _ = done.send(());
            }
        }
    }
}

async fn cycle(q: &Queue, tally: &Tally, n: u64) -> Duration {
    let (tx, rx) = flume::bounded(1);
    tally.acked.store(0, Ordering::Release);
    tally.target.store(n, Ordering::Release);
    *tally.done.lock().unwrap() = Some(tx);
    let payload = vec![0x42u8; 100];
    let start = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    while sent < n {
        let k = (BATCH as u64).min(n - sent);
        let batch: Vec<NewMessage> = (0..k).map(|_| NewMessage::new(payload.clone())).collect();
        sent += k;
        let q = q.clone();
        pending.spawn(async move { q.enqueue_batch(batch).await.unwrap() });
        if pending.len() >= PRODUCERS_IN_FLIGHT {
            pending.join_next().await;
        }
    }
    while pending.join_next().await.is_some() {}
    rx.recv_async().await.unwrap();
    // Every ack durable before the clock stops.
    q.flush().await.unwrap();
    start.elapsed()
}

/// The `queue_cycle` group.
pub fn queue_cycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("bench-queue-cycle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = rt.block_on(async { Node::builder().name("bench").build() });
    let tally = Arc::new(Tally::default());
    let (q, _consumers) = rt.block_on(async {
        let config = QueueConfig {
            durability: Durability::Fsync,
            ..QueueConfig::default()
        };
        let q = Queue::open(&node, &dir, "cycle", config).await.unwrap();
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let c = node
                .spawn_with(
                    SpawnOptions::new().capacity(4096),
                    Consumer {
                        tally: Arc::clone(&tally),
                    },
                )
                .unwrap();
            q.subscribe_actor(&c, 2048).await.unwrap();
            consumers.push(c);
        }
        (q, consumers)
    });
    let mut group = c.benchmark_group("queue_cycle");
    group.throughput(Throughput::Elements(CYCLE));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("plexus", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += cycle(&q, &tally, CYCLE).await;
                }
                total
            })
        });
    });
    group.finish();
    rt.block_on(async {
        q.close().await;
        node.shutdown(Duration::from_secs(5)).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
