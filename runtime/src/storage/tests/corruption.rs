//! Flipped bytes, cut files and damaged indexes: a truncated tail, a typed
//! error naming file and offset, repair, and rebuilt indexes.

use std::fs;
use std::path::{Path, PathBuf};

use super::super::record::{Decoded, decode};
use super::super::*;
use super::support::*;

/// Byte positions of the records of a segment file.
fn positions(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while let Decoded::Frame(info) = decode(&bytes[at..], MAX_FRAME_BYTES) {
        out.push(at as u64);
        at += info.len as usize;
    }
    assert_eq!(at, bytes.len(), "test setup: file fully valid");
    out
}

fn flip(path: &Path, pos: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[pos as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// A log of `n` records, closed; returns its config and records.
fn make(dir: &Path, cfg: &LogConfig, n: u64) -> Vec<Record> {
    let mut log = SegmentLog::open(dir, cfg.clone(), OpenOptions::default()).unwrap();
    let recs: Vec<Record> = (0..n).map(record).collect();
    for chunk in recs.chunks(5) {
        log.append(&batch_of(chunk)).unwrap();
    }
    recs
}

fn one_segment() -> LogConfig {
    LogConfig {
        durability: Durability::OsBuffer,
        ..LogConfig::default()
    }
}

fn seg0(dir: &Path) -> PathBuf {
    dir.join("00000000000000000000.log")
}

#[test]
fn flipped_byte_in_last_record_truncates_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), &one_segment(), 10);
    let pos = positions(&seg0(dir.path()));
    flip(&seg0(dir.path()), pos[9] + 30);
    let mut log = SegmentLog::open(dir.path(), one_segment(), OpenOptions::default()).unwrap();
    assert_eq!(log.bounds().next, 9);
    assert_eq!(fs::metadata(seg0(dir.path())).unwrap().len(), pos[9]);
    let ack = log.append(&batch_of(&[record(99)])).unwrap();
    assert_eq!(ack.base_offset, 9);
}

#[test]
fn zeroed_or_garbage_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), &one_segment(), 10);
    let good = fs::read(seg0(dir.path())).unwrap();
    for tail in [
        vec![0u8; 4096],
        vec![0xff; 3],
        b"\x40\0\0\0garbage".to_vec(),
    ] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&tail);
        fs::write(seg0(dir.path()), &bytes).unwrap();
        let log = SegmentLog::open(dir.path(), one_segment(), OpenOptions::default()).unwrap();
        assert_eq!(log.bounds().next, 10);
        drop(log);
        assert_eq!(fs::read(seg0(dir.path())).unwrap(), good);
    }
}

#[test]
fn flipped_byte_in_the_middle_is_a_typed_error_and_repair_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let recs = make(dir.path(), &one_segment(), 10);
    let pos = positions(&seg0(dir.path()));
    flip(&seg0(dir.path()), pos[4] + 17);
    let len = fs::metadata(seg0(dir.path())).unwrap().len();
    match SegmentLog::open(dir.path(), one_segment(), OpenOptions::default()) {
        Err(OpenError::Corrupt {
            path,
            position,
            offset,
            reason,
        }) => {
            assert_eq!((path, position, offset), (seg0(dir.path()), pos[4], 4));
            assert_eq!(reason, "checksum mismatch");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(
        fs::metadata(seg0(dir.path())).unwrap().len(),
        len,
        "nothing changed"
    );
    let err = SegmentLog::open(dir.path(), one_segment(), OpenOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("00000000000000000000.log at byte"),
        "{err}"
    );
    let repair = OpenOptions {
        repair: true,
        ..OpenOptions::default()
    };
    let log = SegmentLog::open(dir.path(), one_segment(), repair).unwrap();
    assert_eq!(log.bounds().next, 4);
    let got = read_all(|f, l| log.read(f, l), 0, ReadLimits::default());
    assert!(got.iter().zip(&recs).all(|(g, r)| same_content(g, r)));
}

#[test]
fn damage_in_an_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(Durability::OsBuffer);
    make(dir.path(), &cfg, 200);
    let pos = positions(&seg0(dir.path()));
    // record 0 sits before the segment's first index entry: the quick check
    // on open does not reach it, a read does, and so does verify_all.
    flip(&seg0(dir.path()), 20);
    {
        let log = SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()).unwrap();
        match log.read(0, ReadLimits::default()) {
            Err(ReadError::Corrupt {
                path,
                position,
                offset,
                ..
            }) => assert_eq!((path, position, offset), (seg0(dir.path()), 0, 0)),
            other => panic!("expected corruption, got {other:?}"),
        }
        // records past the next index point stay readable
        assert_eq!(log.read(10, ReadLimits::records(3)).unwrap().len(), 3);
    }
    let verify = OpenOptions {
        verify_all: true,
        ..OpenOptions::default()
    };
    assert!(matches!(
        SegmentLog::open(dir.path(), cfg.clone(), verify),
        Err(OpenError::Corrupt {
            position: 0,
            offset: 0,
            ..
        })
    ));
    flip(&seg0(dir.path()), 20); // undo
    // the last record of the segment is in the checked tail
    let last = *pos.last().unwrap();
    flip(&seg0(dir.path()), last + 9);
    match SegmentLog::open(dir.path(), cfg.clone(), OpenOptions::default()) {
        Err(OpenError::Corrupt {
            path,
            position,
            offset,
            ..
        }) => assert_eq!(
            (path, position, offset),
            (seg0(dir.path()), last, pos.len() as u64 - 1)
        ),
        other => panic!("expected corruption, got {other:?}"),
    }
    let repair = OpenOptions {
        repair: true,
        ..OpenOptions::default()
    };
    let log = SegmentLog::open(dir.path(), cfg, repair).unwrap();
    assert_eq!(log.bounds().next, pos.len() as u64 - 1);
    assert_eq!(segment_files(dir.path()), vec![seg0(dir.path())]);
}

#[test]
fn older_segment_cut_short_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(Durability::OsBuffer);
    make(dir.path(), &cfg, 200);
    let pos = positions(&seg0(dir.path()));
    let cut = pos[pos.len() - 2];
    fs::OpenOptions::new()
        .write(true)
        .open(seg0(dir.path()))
        .unwrap()
        .set_len(cut)
        .unwrap();
    match SegmentLog::open(dir.path(), cfg, OpenOptions::default()) {
        Err(OpenError::Corrupt {
            path,
            position,
            offset,
            reason,
        }) => {
            assert_eq!(
                (path, position, offset),
                (seg0(dir.path()), cut, pos.len() as u64 - 2)
            );
            assert_eq!(reason, "records missing before the next segment");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn truncated_missing_or_stale_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(Durability::OsBuffer);
    let recs = make(dir.path(), &cfg, 300);
    let files: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    let originals: Vec<Vec<u8>> = files.iter().map(|p| fs::read(p).unwrap()).collect();
    let index = |n: u64, ext: &str| dir.path().join(format!("{n:020}.{ext}"));
    let bases: Vec<u64> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert!(bases.len() >= 5);
    // truncated mid-entry
    let f = fs::OpenOptions::new()
        .write(true)
        .open(index(bases[0], "index"))
        .unwrap();
    f.set_len(20).unwrap();
    // missing
    fs::remove_file(index(bases[1], "timeindex")).unwrap();
    fs::remove_file(index(bases[2], "index")).unwrap();
    // stale: last entry points inside a record
    let mut stale = fs::read(index(bases[3], "index")).unwrap();
    let n = stale.len();
    stale[n - 8] = stale[n - 8].wrapping_add(3);
    fs::write(index(bases[3], "index"), stale).unwrap();
    // missing entries at the end
    let short = fs::read(index(bases[4], "index")).unwrap();
    let short_t = fs::read(index(bases[4], "timeindex")).unwrap();
    fs::write(index(bases[4], "index"), &short[..short.len() - 16]).unwrap();
    fs::write(index(bases[4], "timeindex"), &short_t[..short_t.len() - 16]).unwrap();
    // the last segment's index is always rebuilt
    let last = *bases.last().unwrap();
    let _ = fs::remove_file(index(last, "index"));

    let log = SegmentLog::open(dir.path(), cfg, OpenOptions::default()).unwrap();
    for (p, o) in files.iter().zip(&originals) {
        assert_eq!(
            &fs::read(p).unwrap(),
            o,
            "{} rebuilt identically",
            p.display()
        );
    }
    let got = read_all(|f, l| log.read(f, l), 0, ReadLimits::records(7));
    assert_eq!(got.len(), recs.len());
    for from in (0..300).step_by(11) {
        assert_eq!(
            log.read(from, ReadLimits::records(1))
                .unwrap()
                .get(0)
                .unwrap()
                .offset,
            from
        );
    }
    for ts in (1000..1500).step_by(50) {
        let want = recs
            .iter()
            .position(|r| r.timestamp >= ts)
            .map(|i| i as u64);
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want);
    }
}

#[test]
fn bogus_lengths_and_offsets_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    make(dir.path(), &one_segment(), 10);
    let good = fs::read(seg0(dir.path())).unwrap();
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = rng.next_u64() as u8;
        }
        if rng.below(3) == 0 {
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
        }
        fs::write(seg0(dir.path()), &bytes).unwrap();
        // any outcome but a panic; what opens must read back cleanly
        if let Ok(log) = SegmentLog::open(dir.path(), one_segment(), OpenOptions::default()) {
            let _ = read_all(|f, l| log.read(f, l), 0, ReadLimits::default());
        }
        let repair = OpenOptions {
            repair: true,
            ..OpenOptions::default()
        };
        let log = SegmentLog::open(dir.path(), one_segment(), repair).unwrap();
        let got = read_all(|f, l| log.read(f, l), 0, ReadLimits::default());
        assert_eq!(got.len() as u64, log.bounds().next);
    }
}
