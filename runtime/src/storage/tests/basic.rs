//! Appends, reads, rolls, indexes, retention, the writer thread and the
//! `LogStore` implementations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::*;
use super::support::*;

fn fill(log: &mut SegmentLog, n: u64) -> Vec<Record> {
    let mut all = Vec::new();
    let mut i = 0;
    while i < n {
        let size = (i % 7 + 1).min(n - i);
        let recs: Vec<Record> = (i..i + size).map(record).collect();
        let ack = log.append(&batch_of(&recs)).unwrap();
        assert_eq!(ack.base_offset, i);
        assert_eq!(ack.count as u64, size);
        all.extend(recs);
        i += size;
    }
    all
}

fn check_all(reader: &LogReader, expected: &[Record], limits: ReadLimits) {
    let got = read_all(|f, l| reader.read(f, l), 0, limits);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.offset, i as u64);
        assert!(same_content(g, e), "record {i} differs");
    }
}

#[test]
fn round_trip_across_rolls_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(Durability::OsBuffer);
    let expected = {
        let mut log = SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
        let expected = fill(&mut log, 600);
        for limits in [
            ReadLimits::records(1),
            ReadLimits::records(13),
            ReadLimits {
                max_records: 1000,
                max_bytes: 1,
            },
            ReadLimits::default(),
        ] {
            check_all(&log.reader(), &expected, limits);
        }
        expected
    };
    assert!(segment_files(dir.path()).len() > 10, "segments rolled");
    let index = std::fs::read(dir.path().join("00000000000000000000.index")).unwrap();
    assert!(!index.is_empty(), "sealed segment has a sparse index");
    let log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    assert_eq!(
        log.bounds(),
        OffsetBounds {
            earliest: 0,
            next: 600
        }
    );
    check_all(&log.reader(), &expected, ReadLimits::default());
    // every single offset is reachable on its own, through the index
    for from in (0..600).step_by(17) {
        let b = log.read(from, ReadLimits::records(1)).unwrap();
        assert_eq!(b.get(0).unwrap().offset, from);
        assert!(same_content(
            &b.get(0).unwrap().to_record(),
            &expected[from as usize]
        ));
    }
}

#[test]
fn read_limits_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(
        dir.path(),
        small_config(Durability::OsBuffer),
        OpenOptions::default(),
    )
    .unwrap();
    assert!(log.read(0, ReadLimits::default()).unwrap().is_empty());
    fill(&mut log, 50);
    let b = log
        .read(
            3,
            ReadLimits {
                max_records: 10,
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(
        (b.len(), b.next_offset()),
        (1, 4),
        "first record always returned"
    );
    let b = log.read(10, ReadLimits::records(5)).unwrap();
    assert_eq!(
        b.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert!(log.read(50, ReadLimits::default()).unwrap().is_empty());
    assert!(matches!(
        log.read(51, ReadLimits::default()),
        Err(ReadError::OutOfRange {
            requested: 51,
            earliest: 0,
            next: 50
        })
    ));
}

#[test]
fn staged_but_uncommitted_is_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        durability: Durability::OsBuffer,
        ..LogConfig::default()
    };
    let mut log = SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
    log.append(&batch_of(&[record(0)])).unwrap();
    log.stage(&batch_of(&[record(1), record(2)])).unwrap();
    let reader = log.reader();
    assert_eq!(reader.bounds().next, 1);
    assert_eq!(reader.read(0, ReadLimits::default()).unwrap().len(), 1);
    assert_eq!(log.commit().unwrap(), 3);
    assert_eq!(reader.read(0, ReadLimits::default()).unwrap().len(), 3);
    log.stage(&batch_of(&[record(3)])).unwrap();
    drop(log);
    drop(reader);
    let log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    assert_eq!(log.bounds().next, 3, "staged record never written");
}

#[test]
fn offset_for_timestamp_matches_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(Durability::OsBuffer);
    let expected = {
        let mut log = SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
        fill(&mut log, 400)
    };
    let log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    for ts in (900..1600).step_by(7) {
        let want = expected
            .iter()
            .position(|r| r.timestamp >= ts)
            .map(|i| i as u64);
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
}

#[test]
fn rolls_by_age_of_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        durability: Durability::OsBuffer,
        segment_age_ms: Some(100),
        ..LogConfig::default()
    };
    let mut log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    for ts in [0, 50, 99, 100, 150, 199, 250] {
        let mut b = Batch::new();
        b.push(ts, None, b"x").unwrap();
        log.append(&b).unwrap();
    }
    // segments start at ts 0, 100 and 250
    let names: Vec<String> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.log",
            "00000000000000000003.log",
            "00000000000000000006.log"
        ]
    );
}

#[test]
fn retention_by_size_and_age_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(6000),
        retention_ms: Some(10_000),
        ..small_config(Durability::OsBuffer)
    };
    let mut log = SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
    let expected = fill(&mut log, 300);
    let before = segment_files(dir.path()).len();
    // by size: now is early enough that nothing is old
    let r = log.enforce_retention(0).unwrap();
    assert!(r.segments_deleted > 0);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), before - r.segments_deleted);
    let total: u64 = files.iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(total >= 6000, "kept at least retention_bytes");
    let earliest = log.bounds().earliest;
    assert_eq!(earliest, r.records_deleted);
    assert!(matches!(
        log.read(earliest - 1, ReadLimits::default()),
        Err(ReadError::OutOfRange { .. })
    ));
    let rest = read_all(|f, l| log.read(f, l), earliest, ReadLimits::default());
    assert!(same_content(&rest[0], &expected[earliest as usize]));
    // by age: everything is old, but the active segment stays
    let r = log.enforce_retention(1_000_000).unwrap();
    assert!(r.segments_deleted > 0);
    assert_eq!(segment_files(dir.path()).len(), 1);
    drop(log);
    let log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    let b = log.bounds();
    assert!(b.earliest > 0 && b.next == 300);
}

#[test]
fn oversized_record_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(
        dir.path(),
        small_config(Durability::OsBuffer),
        OpenOptions::default(),
    )
    .unwrap();
    let mut b = Batch::new();
    b.push(1, None, b"small").unwrap();
    b.push(1, None, &[0; 5000]).unwrap();
    assert!(matches!(
        log.append(&b),
        Err(AppendError::RecordTooLarge { max: 4096, .. })
    ));
    assert_eq!(log.bounds().next, 0);
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SegmentLog::open(dir.path(), LogConfig::default(), OpenOptions::default()).unwrap();
    assert!(matches!(
        SegmentLog::open(dir.path(), LogConfig::default(), OpenOptions::default()),
        Err(OpenError::Locked { .. })
    ));
}

#[test]
fn file_log_group_commit_with_concurrent_reader() {
    const PRODUCERS: u64 = 4;
    const BATCHES: u64 = 60;
    const PER_BATCH: u64 = 25;
    let total = PRODUCERS * BATCHES * PER_BATCH;
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let log = FileLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (reader, done) = (log.reader(), done.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                let b = reader.read(seen, ReadLimits::default()).unwrap();
                for r in &b {
                    assert_eq!(r.offset, seen);
                    seen += 1;
                }
                if seen == total {
                    return seen;
                }
                // After the producers finished, one pass must see everything.
                assert!(!(finished && b.is_empty()), "reader stuck at {seen}");
                std::thread::yield_now();
            }
        })
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut pending = std::collections::VecDeque::new();
                let mut acks = Vec::new();
                for b in 0..BATCHES {
                    let mut batch = Batch::with_capacity(64 * PER_BATCH as usize);
                    for i in 0..PER_BATCH {
                        let tag = (p << 32) | (b * PER_BATCH + i);
                        batch
                            .push(tag, Some(&p.to_le_bytes()), &tag.to_le_bytes())
                            .unwrap();
                    }
                    pending.push_back(log.append_blocking(batch).unwrap());
                    if pending.len() > 8 {
                        acks.push(pending.pop_front().unwrap().wait().unwrap());
                    }
                }
                acks.extend(pending.into_iter().map(|a| a.wait().unwrap()));
                acks
            })
        })
        .collect();
    let mut acks: Vec<AppendAck> = producers
        .into_iter()
        .flat_map(|h| {
            let acks = h.join().unwrap();
            // one producer's batches are in its submission order
            assert!(acks.windows(2).all(|w| w[0].base_offset < w[1].base_offset));
            acks
        })
        .collect();
    done.store(true, Ordering::Release);
    assert_eq!(reader.join().unwrap(), total);
    acks.sort_by_key(|a| a.base_offset);
    let mut next = 0;
    for a in &acks {
        assert_eq!((a.base_offset, a.count as u64), (next, PER_BATCH));
        next = a.next_offset();
    }
    // the value of each record is its tag: per producer, tags are in order
    let all = read_all(|f, l| log.read(f, l), 0, ReadLimits::default());
    let mut last = [None::<u64>; PRODUCERS as usize];
    for r in &all {
        let p = u64::from_le_bytes(r.key.clone().unwrap().try_into().unwrap()) as usize;
        let tag = u64::from_le_bytes(r.value.clone().try_into().unwrap());
        assert!(last[p].is_none_or(|l| l < tag));
        last[p] = Some(tag);
    }
    drop(log);
    let log = FileLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    assert_eq!(log.bounds().next, total);
}

#[test]
fn try_append_hands_the_batch_back_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        queue_capacity: 1,
        durability: Durability::OsBuffer,
        ..LogConfig::default()
    };
    let log = FileLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    let mut pending = Vec::new();
    let mut full = 0;
    for i in 0..200u64 {
        let mut b = Batch::new();
        b.push(i, None, &[0; 100]).unwrap();
        match log.try_append(b) {
            Ok(p) => pending.push(p),
            Err(TryAppendError::Full(b)) => {
                assert_eq!(b.len(), 1);
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = pending.len() as u64;
    for p in pending {
        p.wait().unwrap();
    }
    assert_eq!(log.bounds().next, n);
    let _ = full; // may be 0 on a fast writer; the type is what matters here
}

async fn exercise_store<S: LogStore>(store: &S) {
    let recs: Vec<Record> = (0..40).map(record).collect();
    for chunk in recs.chunks(9) {
        store.append(batch_of(chunk)).await.unwrap();
    }
    let bounds = store.bounds().await.unwrap();
    assert_eq!(
        bounds,
        OffsetBounds {
            earliest: 0,
            next: 40
        }
    );
    let b = store.read(5, ReadLimits::records(10)).await.unwrap();
    assert_eq!(b.len(), 10);
    for r in &b {
        assert!(same_content(&r.to_record(), &recs[r.offset as usize]));
    }
    for ts in [0, 1100, 1300, 1499, 1500, 2000] {
        let want = recs
            .iter()
            .position(|r| r.timestamp >= ts)
            .map(|i| i as u64);
        assert_eq!(store.offset_for_timestamp(ts).await.unwrap(), want);
    }
    assert!(store.read(41, ReadLimits::default()).await.is_err());
}

#[test]
fn log_store_implementations_agree() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileLog::open(
        dir.path(),
        small_config(Durability::Fsync),
        OpenOptions::default(),
    )
    .unwrap();
    block_on(exercise_store(&file));
    block_on(exercise_store(&MemLog::new()));
}

#[test]
fn mem_log_retention_per_record() {
    let mem = MemLog::with_config(LogConfig {
        retention_ms: Some(100),
        ..LogConfig::default()
    });
    for ts in [0, 10, 500, 20] {
        let mut b = Batch::new();
        b.push(ts, None, b"v").unwrap();
        mem.append_now(&b).unwrap();
    }
    let r = mem.retain_now(300);
    assert_eq!(
        r.records_deleted, 2,
        "stops at the first record still young"
    );
    assert_eq!(
        mem.bounds_now(),
        OffsetBounds {
            earliest: 2,
            next: 4
        }
    );
}
