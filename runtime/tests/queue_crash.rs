//! A real crash: this test binary runs itself as a child process that
//! enqueues and acks under load with `Fsync`, printing every acknowledged
//! enqueue (`E id`), every ack it is about to send (`S id`) and every ack
//! confirmed durable (`A id`). The parent kills it with SIGKILL at seeded
//! random points, reopens the queue and checks: every acknowledged
//! enqueue is still there (ready, or acked if an ack was sent for it),
//! every confirmed ack stays acked, and the queue opens cleanly. The child
//! verifies every payload it is served, including redeliveries of earlier
//! rounds' messages, so a half-written message would fail it.
//!
//! A small compaction threshold makes the children compact often, so
//! kills also land in the middle of generation switches.
//!
//! The kill loop is `tests/support/crash_harness.rs`, shared with the
//! log's crash test: `PLEXUS_CRASH_ITERS` sets the number of rounds
//! (default 50), `PLEXUS_CRASH_SEED` the seed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use plexus_runtime::prelude::*;
use plexus_runtime::protocols::queue::{
    Delivery, MessageId, MessageState, NewMessage, Queue, QueueConfig,
};
use plexus_runtime::storage::Durability;

#[path = "support/crash_harness.rs"]
mod crash_harness;
use crash_harness::Rounds;

const CHILD_DIR: &str = "PLEXUS_QUEUE_CRASH_DIR";
const CHILD_ROUND: &str = "PLEXUS_QUEUE_CRASH_ROUND";
/// Each child stops by itself after enqueuing this many messages.
const CHILD_MESSAGES: u64 = 1500;

fn config() -> QueueConfig {
    QueueConfig {
        durability: Durability::Fsync,
        max_attempts: 1000,
        lease: Duration::from_secs(600),
        compact_min_bytes: 96 << 10,
        segment_bytes: 64 << 10,
        ..QueueConfig::default()
    }
}

/// Self-describing payload: a tag, then filler derived from it.
fn payload(tag: u64) -> Vec<u8> {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend((0..tag % 113).map(|i| (tag as u8) ^ (i as u8) ^ 0x5a));
    v
}

fn valid(p: &[u8]) -> bool {
    p.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .is_some_and(|tag| payload(tag) == p)
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Acker {
    done: flume::Sender<()>,
}
impl Actor for Acker {}
impl Handler<Delivery> for Acker {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        assert!(
            valid(d.payload()),
            "served a damaged payload for {}",
            d.id()
        );
        let id = d.id().get();
        say(format_args!("S {id}"));
        // Confirm asynchronously so many acks share one fsync.
        let done = self.done.clone();
        tokio::spawn(async move {
            if d.ack_durable().await.is_ok() {
                say(format_args!("A {id}"));
            }
            let _ = done.send(());
        });
    }
}

/// Child mode: does nothing unless started by the parent below.
#[test]
fn queue_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let node = Node::builder().ask_timeout(Duration::from_secs(60)).build();
        let q = Queue::open(&node, &dir, "crash", config()).await.unwrap();
        let (done, acks) = flume::unbounded();
        let acker = node.spawn(Acker { done });
        q.subscribe_actor(&acker, 256).await.unwrap();
        let mut tag = round << 32;
        let mut sent = 0;
        let mut pending = Vec::new();
        while sent < CHILD_MESSAGES {
            let n = 1 + (tag % 17);
            let batch: Vec<NewMessage> =
                (0..n).map(|i| NewMessage::new(payload(tag + i))).collect();
            tag += n;
            sent += n;
            let q = q.clone();
            pending.push(tokio::spawn(async move {
                for e in q.enqueue_batch(batch).await.unwrap() {
                    say(format_args!("E {}", e.id.get()));
                }
            }));
            if pending.len() >= 8 {
                pending.remove(0).await.unwrap();
            }
        }
        for p in pending {
            p.await.unwrap();
        }
        // Wait for every ack of this round's messages (bounded).
        for _ in 0..sent {
            if tokio::time::timeout(Duration::from_secs(30), acks.recv_async())
                .await
                .is_err()
            {
                break;
            }
        }
        q.close().await;
    });
}

#[derive(Default)]
struct Seen {
    enqueued: BTreeSet<u64>,
    ack_sent: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

/// Reopen the queue and check it against what the children confirmed.
fn verify(dir: &std::path::Path, seen: &Seen) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let node = Node::builder().build();
        let q = Queue::open(&node, dir, "crash", config())
            .await
            .unwrap_or_else(|e| panic!("reopen after kill failed: {e}"));
        for &id in &seen.enqueued {
            let st = q.state_of(MessageId::from_raw(id)).await.unwrap();
            if seen.acked.contains(&id) {
                assert_eq!(st, None, "acknowledged ack of {id} was lost");
            } else if !seen.ack_sent.contains(&id) {
                assert_eq!(
                    st,
                    Some(MessageState::Ready),
                    "acknowledged enqueue {id} was lost"
                );
            }
        }
        for &id in &seen.acked {
            assert!(seen.enqueued.contains(&id) || seen.ack_sent.contains(&id));
        }
        q.close().await;
    });
}

#[test]
fn killed_queue_keeps_every_acknowledged_enqueue_and_ack() {
    let rounds = Rounds {
        child_test: "queue_crash_child",
        dir_env: CHILD_DIR,
        round_env: CHILD_ROUND,
        default_seed: 0x0de0_c0de,
        max_acks_before_kill: 2500,
    };
    let (mut checked, mut generations) = (0u64, 0u64);
    let out = rounds.run(
        &mut Seen::default(),
        |seen, line| {
            // The last two words: libtest may print "test name ... " first.
            let mut parts = line.rsplit(' ');
            let (Some(Ok(id)), Some(kind)) = (parts.next().map(str::parse::<u64>), parts.next())
            else {
                return 0;
            };
            match kind {
                "E" => seen.enqueued.insert(id),
                "S" => seen.ack_sent.insert(id),
                "A" => seen.acked.insert(id),
                _ => return 0,
            };
            1
        },
        |seen, dir, _| {
            verify(dir, seen);
            checked += seen.enqueued.len() as u64;
            generations = generations.max(highest_generation(&dir.join("crash")));
        },
    );
    println!("{out:?}, {checked} enqueue checks, highest generation {generations}");
    assert!(
        out.kills * 10 >= out.rounds * 7,
        "most rounds should end in a kill ({out:?})"
    );
}

/// The newest compaction generation in a queue's directory.
fn highest_generation(queue_dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(queue_dir) else {
        return 0;
    };
    entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("gen-")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}
