//! Helpers shared by the storage tests.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::super::{Batch, Durability, LogConfig, ReadBatch, ReadError, ReadLimits, Record};

/// Small segments and a dense index, so a few hundred records exercise
/// rolls and index lookups.
pub(super) fn small_config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        segment_bytes: 2048,
        index_interval_bytes: 128,
        max_record_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Deterministic record content: `(ts, key, value)` derived from `i`.
pub(super) fn record(i: u64) -> Record {
    let len = (i * 7 % 90) as usize;
    Record {
        offset: 0,
        timestamp: 1_000 + (i * 37 % 500),
        key: (!i.is_multiple_of(3)).then(|| format!("k{}", i % 11).into_bytes()),
        headers: if i.is_multiple_of(4) {
            vec![super::super::Header {
                name: "h".into(),
                value: i.to_le_bytes().to_vec(),
            }]
        } else {
            Vec::new()
        },
        value: (0..len).map(|j| (i as u8).wrapping_add(j as u8)).collect(),
    }
}

pub(super) fn batch_of(records: &[Record]) -> Batch {
    let mut b = Batch::new();
    for r in records {
        b.push_record(r).unwrap();
    }
    b
}

/// Everything from `from` to the end, via many bounded reads.
pub(super) fn read_all(
    read: impl Fn(u64, ReadLimits) -> Result<ReadBatch, ReadError>,
    from: u64,
    limits: ReadLimits,
) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = from;
    for _ in 0..1_000_000 {
        let batch = read(at, limits).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.iter().map(|r| r.to_record()));
        at = batch.next_offset();
    }
    panic!("read_all did not reach the end");
}

/// Equal ignoring the offset field, which the log assigns.
pub(super) fn same_content(a: &Record, b: &Record) -> bool {
    a.timestamp == b.timestamp && a.key == b.key && a.headers == b.headers && a.value == b.value
}

/// `.log` files of a directory, sorted.
pub(super) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// xorshift64*: a tiny seeded generator for the crash test.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Run a future to completion on this thread.
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
