//! A real crash: this test binary runs itself as a child process that
//! appends under load with `Fsync` and prints every acknowledgement; the
//! parent kills it with SIGKILL at seeded random points, reopens the log
//! and checks that every acknowledged record is there, in order, intact.
//!
//! Every third round the parent also tears the tail the way an interrupted
//! write would (a kill alone never does), so recovery's truncation runs
//! between real kills.
//!
//! The kill loop is `runtime/tests/support/crash_harness.rs`, shared with
//! the queue's crash test: `PLEXUS_CRASH_ITERS` sets the number of rounds
//! (default 50), `PLEXUS_CRASH_SEED` the seed.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;

use super::super::record::{Decoded, decode};
use super::super::*;
use super::support::*;

#[path = "../../../tests/support/crash_harness.rs"]
mod crash_harness;
use crash_harness::{CrashRng, Rounds};

const CHILD_DIR: &str = "PLEXUS_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "PLEXUS_CRASH_CHILD_ROUND";
const PRODUCERS: u64 = 3;
/// Each child stops by itself after this many batches per producer.
const CHILD_BATCHES: u64 = 400;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Fsync,
        segment_bytes: 128 << 10,
        index_interval_bytes: 2048,
        ..LogConfig::default()
    }
}

/// Self-describing value: producer, sequence number, then filler derived
/// from both, so any record read back can be checked on its own.
fn value(p: u8, seq: u64) -> Vec<u8> {
    let mut v = vec![p];
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((0..seq % 97).map(|i| (seq as u8) ^ p ^ (i as u8)));
    v
}

fn parse_value(v: &[u8]) -> Option<(u8, u64)> {
    let p = *v.first()?;
    let seq = u64::from_le_bytes(v.get(1..9)?.try_into().ok()?);
    (value(p, seq) == v).then_some((p, seq))
}

/// Child mode: does nothing unless started by the parent below.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let log = FileLog::open(&dir, config(), OpenOptions::default()).unwrap();
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let log = log.clone();
            std::thread::spawn(move || {
                let p = p as u8;
                let mut in_flight: VecDeque<(u64, PendingAck)> = VecDeque::new();
                let mut seq = round << 32;
                let report = |first: u64, pending: PendingAck| {
                    let ack = pending.wait().unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "A {} {} {p} {first}", ack.base_offset, ack.count).unwrap();
                    out.flush().unwrap();
                };
                for b in 0..CHILD_BATCHES {
                    let n = 1 + (b * 7 + u64::from(p)) % 40;
                    let mut batch = Batch::with_capacity(n as usize * 160);
                    for i in 0..n {
                        batch.push(seq + i, Some(&[p]), &value(p, seq + i)).unwrap();
                    }
                    in_flight.push_back((seq, log.append_blocking(batch).unwrap()));
                    seq += n;
                    if in_flight.len() >= 16 {
                        let (first, pending) = in_flight.pop_front().unwrap();
                        report(first, pending);
                    }
                }
                for (first, pending) in in_flight {
                    report(first, pending);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// This test's own name, relative to the crate root, for the child's filter.
fn child_test_name() -> String {
    let path = module_path!();
    let rel = path.split_once("::").map_or(path, |(_, rest)| rest);
    format!("{rel}::crash_child")
}

/// A kill never tears a `write`, but a power cut can: now and then, cut
/// the last segment at a random byte after the last acknowledged record
/// and add garbage, as an interrupted write would leave it.
fn tear(dir: &Path, last_acked: Option<u64>, rng: &mut CrashRng) {
    let Some(path) = segment_files(dir).pop() else {
        return;
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let (mut at, mut keep) = (0, 0);
    while let Decoded::Frame(info) = decode(&bytes[at..], MAX_FRAME_BYTES) {
        at += info.len as usize;
        if last_acked.is_some_and(|m| info.offset <= m) {
            keep = at;
        }
    }
    let cut = keep + rng.below((bytes.len() - keep) as u64 + 1) as usize;
    bytes.truncate(cut);
    bytes.extend((0..rng.below(64)).map(|_| rng.next_u64() as u8));
    std::fs::write(&path, bytes).unwrap();
}

/// Reopen and check: all records valid and contiguous, every acknowledged
/// one present with its content.
fn verify(dir: &Path, acked: &BTreeMap<u64, (u8, u64)>) -> u64 {
    let log = SegmentLog::open(dir, config(), OpenOptions::default())
        .unwrap_or_else(|e| panic!("reopen after kill failed: {e}"));
    let mut at = 0;
    let mut acked_iter = acked.iter().peekable();
    for _ in 0..10_000_000 {
        let batch = log.read(at, ReadLimits::default()).unwrap();
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            assert_eq!(r.offset, at);
            let content =
                parse_value(r.value).unwrap_or_else(|| panic!("record {at} has an invalid value"));
            assert_eq!(r.key, Some(&[content.0][..]));
            assert_eq!(r.timestamp, content.1);
            if let Some(&(&off, &want)) = acked_iter.peek()
                && off == at
            {
                assert_eq!(content, want, "acknowledged record {off} changed");
                acked_iter.next();
            }
            at += 1;
        }
    }
    if let Some((off, _)) = acked_iter.next() {
        panic!("acknowledged record {off} missing; log ends at {at}");
    }
    at
}

#[test]
fn killed_writer_loses_no_acknowledged_record() {
    let rounds = Rounds {
        child_test: &child_test_name(),
        dir_env: CHILD_DIR,
        round_env: CHILD_ROUND,
        default_seed: 0x5eed_cafe,
        max_acks_before_kill: 4000,
    };
    // Acknowledged records: offset -> (producer, sequence number).
    let mut acked: BTreeMap<u64, (u8, u64)> = BTreeMap::new();
    let out = rounds.run(
        &mut acked,
        |acked, line| {
            let Some(rest) = line.strip_prefix("A ") else {
                return 0;
            };
            let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            let (base, count, p, first) = (f[0], f[1], f[2] as u8, f[3]);
            for i in 0..count {
                acked.insert(base + i, (p, first + i));
            }
            count
        },
        |acked, dir, rng| {
            if rng.below(3) == 0 {
                tear(dir, acked.keys().next_back().copied(), rng);
            }
            let end = verify(dir, acked);
            assert!(acked.keys().next_back().is_none_or(|&last| last < end));
        },
    );
    assert!(
        out.kills * 10 >= out.rounds * 8,
        "most rounds should end in a kill ({out:?})"
    );
}
