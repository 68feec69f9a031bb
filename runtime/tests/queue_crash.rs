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
//! `PLEXUS_CRASH_ITERS` sets the number of rounds (default 50);
//! `PLEXUS_CRASH_SEED` the seed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use plexus_runtime::prelude::*;
use plexus_runtime::protocols::queue::{
    Delivery, MessageId, MessageState, NewMessage, Queue, QueueConfig,
};
use plexus_runtime::storage::Durability;

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

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
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
    let iters: u64 = std::env::var("PLEXUS_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("PLEXUS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0de0_c0de);
    let mut rng = Rng(seed);
    let mut dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen = Seen::default();
    let (mut kills, mut finished) = (0u64, 0u64);
    let (mut checked, mut generations) = (0u64, 0u64);
    for round in 0..iters {
        if round > 0 && round % 25 == 0 {
            dir = tempfile::tempdir().unwrap();
            seen = Seen::default();
        }
        // Lines to see before the kill; sometimes none at all.
        let target = if rng.below(8) == 0 {
            0
        } else {
            rng.below(2500)
        };
        let mut child = Command::new(&exe)
            .args([
                "queue_crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut killed = false;
        if target == 0 {
            child.kill().unwrap();
            killed = true;
        }
        let mut count = 0;
        // Bounded: the child prints a finite number of lines, then exits.
        for line in lines {
            let Ok(line) = line else { break };
            // The last two words: libtest may print "test name ... " first.
            let mut parts = line.rsplit(' ');
            let (Some(Ok(id)), Some(kind)) = (parts.next().map(str::parse::<u64>), parts.next())
            else {
                continue;
            };
            match kind {
                "E" => seen.enqueued.insert(id),
                "S" => seen.ack_sent.insert(id),
                "A" => seen.acked.insert(id),
                _ => continue,
            };
            count += 1;
            if !killed && count >= target {
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if killed {
            kills += 1;
        } else {
            assert!(status.success(), "child failed on its own: {status}");
            finished += 1;
        }
        verify(dir.path(), &seen);
        checked += seen.enqueued.len() as u64;
        generations = generations.max(
            std::fs::read_dir(dir.path().join("crash"))
                .map(|d| {
                    d.filter_map(|e| {
                        e.ok()?
                            .file_name()
                            .to_str()?
                            .strip_prefix("gen-")?
                            .parse()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
                })
                .unwrap_or(0),
        );
    }
    println!(
        "{kills} kills, {finished} clean exits, {checked} enqueue checks, highest generation {generations}"
    );
    assert_eq!(kills + finished, iters);
    assert!(
        kills * 10 >= iters * 7,
        "most rounds should end in a kill ({kills}/{iters})"
    );
}
