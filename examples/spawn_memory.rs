//! Memory and time per idle actor.
//!
//! ```text
//! cargo run --release --example spawn_memory -- 100000
//! ```
//!
//! Spawns N idle actors (first argument, default 100,000) on a
//! multi-thread node with the default 1024-message mailbox, waits until each
//! has run `started`, and prints one line:
//!
//! ```text
//! bytes_per_actor=<n> spawn_ns_per_actor=<n>
//! ```
//!
//! `bytes_per_actor` is the growth of the resident set (second field of
//! `/proc/self/statm`, in pages, times a page size of 4096 bytes, which is
//! assumed rather than queried) divided by N; `spawn_ns_per_actor` is the
//! time of the N `spawn` calls divided by N. Linux only (elsewhere the
//! bytes read 0). The node is shut down at the end.
//!
//! With `floor` as the second argument it measures the floor instead, in
//! its own process: N tokio tasks, each owning a bare flume receiver of the
//! same capacity and waiting on it (the `spawn` benchmark's
//! `tokio_flume_floor`), and prints
//! `bytes_per_task=<n> spawn_ns_per_task=<n>`:
//!
//! ```text
//! cargo run --release --example spawn_memory -- 100000 floor
//! ```
#![allow(clippy::expect_used)] // an example aborts on setup failure

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plexus::prelude::*;

/// Page size assumed for `/proc/self/statm`.
const PAGE: u64 = 4096;

/// Actors that have run `started`, or floor tasks that have begun waiting
/// (a static, so no per-actor bytes).
static STARTED: AtomicUsize = AtomicUsize::new(0);

struct Idle;
impl Actor for Idle {
    async fn started(&mut self, _: &mut Context<Self>) {
        STARTED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The floor: a tokio task per "actor", owning a flume bounded(1024)
/// receiver, measured like the actors.
async fn floor(n: usize) {
    let spawn_one = || {
        let (tx, rx) = flume::bounded::<u64>(1024);
        let task = tokio::spawn(async move {
            STARTED.fetch_add(1, Ordering::Relaxed);
            while rx.recv_async().await.is_ok() {}
        });
        (tx, task)
    };
    let warm: Vec<_> = (0..1000).map(|_| spawn_one()).collect();
    wait_started(1000).await;
    for (tx, task) in warm {
        drop(tx);
        task.await.expect("a floor task panicked");
    }
    let (tasks, per) = measure(n, spawn_one).await;
    println!("bytes_per_task={} spawn_ns_per_task={}", per.0, per.1);
    drop(tasks);
}

/// Spawn `n` with `spawn_one` after a warm-up of 1,000 (already started),
/// wait until all have started and parked, and return them with the
/// resident-set growth and the spawn time, each per spawned one.
async fn measure<T>(n: usize, spawn_one: impl FnMut() -> T) -> (Vec<T>, (u64, u64)) {
    let before = rss();
    let start = Instant::now();
    let spawned: Vec<T> = std::iter::repeat_with(spawn_one).take(n).collect();
    let spawn_time = start.elapsed();
    // Measure live ones parked on their mailboxes, not queued tasks.
    wait_started(1000 + n).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = rss();
    let per = |total: u64| total / (n.max(1) as u64);
    let ns = u64::try_from(spawn_time.as_nanos()).unwrap_or(u64::MAX);
    (spawned, (per(after.saturating_sub(before)), per(ns)))
}

/// Resident set size in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE)
}

async fn wait_started(n: usize) {
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .expect("the first argument is the number of actors"),
        None => 100_000,
    };
    if std::env::args().nth(2).as_deref() == Some("floor") {
        return floor(n).await;
    }
    let node = Node::builder().build();
    // Warm up the allocator and the runtime so that their one-off growth
    // is not charged to the actors.
    let warm: Vec<ActorRef<Idle>> = (0..1000).map(|_| node.spawn(Idle)).collect();
    wait_started(1000).await;
    for a in &warm {
        a.stop();
        a.terminated().await;
    }

    let (actors, per) = measure(n, || node.spawn(Idle)).await;
    println!("bytes_per_actor={} spawn_ns_per_actor={}", per.0, per.1);
    drop(actors);
    node.shutdown(Duration::from_secs(10)).await;
}
