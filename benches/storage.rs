//! Storage benchmarks: the event log's append (group commit under Fsync
//! and OsBuffer, against a raw write + fdatasync floor) and sequential read
//! (against a raw file read floor), and the work queue's
//! enqueue → deliver → ack cycle (`storage/queue_cycle.rs`). 100-byte
//! records.
//!
//! Run with: `cargo bench --bench storage`
//!
//! Data lives under `target/bench-data` (the normal disk, not tmpfs).

// A benchmark that cannot set up or append must abort the run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "storage/queue_cycle.rs"]
mod queue_cycle;
use plexus::clock::SystemClock;
use plexus::protocols::log::{Topic, TopicConfig};
use plexus::storage::{Batch, Durability, LogConfig, ReadLimits};

const VALUE: [u8; 100] = [7; 100];
/// Records appended per measured iteration.
const APPEND_RECORDS: u64 = 262_144;
const PRODUCERS: u64 = 4;
/// Records per produce call.
const BATCH: u64 = 64;
/// Produce calls each producer keeps in flight (4 × 64 × 64 = 16,384 records).
const IN_FLIGHT: usize = 64;
/// Records per raw write + fdatasync: what one group commit holds when
/// 16,384 records are in flight (half queue while the other half syncs).
const RAW_GROUP: u64 = 8_192;
const READ_RECORDS: u64 = 1_000_000;

fn data_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

fn open_topic(dir: &Path, durability: Durability) -> Topic {
    let config = TopicConfig {
        partitions: 1,
        log: LogConfig {
            durability,
            queue_capacity: 8_192,
            ..LogConfig::default()
        },
        ..TopicConfig::default()
    };
    Topic::open(dir.join("bench"), config, Arc::new(SystemClock)).expect("open topic")
}

/// `records` appended by `PRODUCERS` tasks, each with `IN_FLIGHT` produce
/// calls pipelined.
async fn produce(topic: &Topic, records: u64) -> Duration {
    let start = Instant::now();
    let per = records / PRODUCERS;
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::with_capacity(IN_FLIGHT);
            let mut sent = 0;
            while sent < per {
                let mut batch = topic.batch();
                for _ in 0..BATCH.min(per - sent) {
                    batch.push_value(None, &VALUE).expect("push");
                }
                sent += batch.len() as u64;
                pending.push_back(topic.enqueue(batch).await.expect("enqueue"));
                if pending.len() >= IN_FLIGHT
                    && let Some(p) = pending.pop_front()
                {
                    p.wait().await.expect("ack");
                }
            }
            for p in pending {
                p.wait().await.expect("ack");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    start.elapsed()
}

/// The same bytes as plexus writes, straight to a file: write + fdatasync
/// per `RAW_GROUP` records.
fn raw_fsync(dir: &Path, records: u64) -> Duration {
    let mut batch = Batch::new();
    for _ in 0..RAW_GROUP {
        batch.push(1, None, &VALUE).expect("push");
    }
    let frame = vec![0x5a_u8; batch.encoded_len()];
    let mut file = File::create(dir.join("raw.log")).expect("raw file");
    let start = Instant::now();
    let mut done = 0;
    while done < records {
        file.write_all(&frame).expect("write");
        file.sync_data().expect("fdatasync");
        done += RAW_GROUP;
    }
    start.elapsed()
}

fn log_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("log_append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    for (id, durability) in [
        ("plexus_fsync", Durability::Fsync),
        ("plexus_osbuffer", Durability::OsBuffer),
    ] {
        g.bench_function(id, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let dir = data_dir(id);
                let topic = open_topic(&dir, durability);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += produce(&topic, APPEND_RECORDS).await;
                }
                drop(topic);
                let _ = fs::remove_dir_all(&dir);
                total
            });
        });
    }
    g.bench_function("raw_fsync_floor", |b| {
        b.iter_custom(|iters| {
            let dir = data_dir("raw_fsync_floor");
            let total = (0..iters).map(|_| raw_fsync(&dir, APPEND_RECORDS)).sum();
            let _ = fs::remove_dir_all(&dir);
            total
        });
    });
    g.finish();
}

fn log_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let dir = data_dir("log_read");
    let topic = open_topic(&dir, Durability::OsBuffer);
    rt.block_on(produce(&topic, READ_RECORDS));
    let segments: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = fs::read_dir(dir.join("bench").join("partition-0"))
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    };
    let mut g = c.benchmark_group("log_read");
    g.throughput(Throughput::Elements(READ_RECORDS));
    g.bench_function("plexus", |b| {
        b.iter(|| {
            let limits = ReadLimits {
                max_records: 16_384,
                max_bytes: 4 << 20,
            };
            let (mut from, mut n, mut bytes) = (0, 0u64, 0usize);
            loop {
                let batch = topic.read(0, from, limits).expect("read");
                if batch.is_empty() {
                    break;
                }
                for r in &batch {
                    bytes += r.value.len();
                    n += 1;
                }
                from = batch.next_offset();
            }
            assert_eq!(n, READ_RECORDS);
            std::hint::black_box(bytes)
        });
    });
    g.bench_function("raw_read_floor", |b| {
        let mut buf = vec![0u8; 4 << 20];
        b.iter(|| {
            // Read the same segment files and walk the length prefixes.
            let mut n = 0u64;
            for path in &segments {
                let mut f = File::open(path).expect("open");
                let mut carry = 0usize;
                loop {
                    let got = f.read(&mut buf[carry..]).expect("read");
                    if got == 0 {
                        break;
                    }
                    let end = carry + got;
                    let mut at = 0;
                    while at + 4 <= end {
                        let len =
                            u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
                                as usize
                                + 4;
                        if at + len > end {
                            break;
                        }
                        n += 1;
                        at += len;
                    }
                    buf.copy_within(at..end, 0);
                    carry = end - at;
                }
            }
            assert_eq!(n, READ_RECORDS);
            std::hint::black_box(n)
        });
    });
    g.finish();
    drop(topic);
    let _ = fs::remove_dir_all(&dir);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
}

criterion_group! {
    name = benches;
    config = config();
    targets = log_append, log_read, queue_cycle::queue_cycle
}
criterion_main!(benches);
