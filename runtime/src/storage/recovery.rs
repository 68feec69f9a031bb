//! Opening a log directory: lock it, validate the segments, truncate a torn
//! tail, rebuild stale indexes, and report (or, with `repair`, cut off)
//! damage before the end.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{Durability, LogConfig, OpenOptions};
use super::error::{OpenError, io_at};
use super::index::{self, IndexCursor, IndexEntry};
use super::lock::{self, Lock, LockFailure};
use super::segment::{
    Scan, Segment, compacted_path, index_path, log_name, parse_name, scan, time_index_path,
    valid_record_after,
};

/// Name of the lock file in a log directory.
const LOCK_FILE: &str = ".lock";

/// Suffix of files written by compaction before they replace a segment.
pub(super) const COMPACT_TMP: &str = ".compact-tmp";

/// The end offset recorded for a compacted segment, if it is one. An
/// unreadable marker is treated as absent (the strict checks then apply).
pub(super) fn read_compacted(dir: &Path, base: u64) -> Option<u64> {
    let bytes = fs::read(compacted_path(dir, base)).ok()?;
    let (end, crc) = bytes.split_at_checked(8)?;
    let end: [u8; 8] = end.try_into().ok()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    (crc32c::crc32c(&end) == u32::from_le_bytes(crc)).then(|| u64::from_le_bytes(end))
}

/// Write the compaction marker of segment `base` (synced, atomically).
pub(super) fn write_compacted(dir: &Path, base: u64, end: u64) -> Result<(), OpenError> {
    use std::io::Write;
    let path = compacted_path(dir, base);
    let tmp = dir.join(format!("{base:020}.compacted{COMPACT_TMP}"));
    let mut bytes = end.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&end.to_le_bytes()).to_le_bytes());
    let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
    f.write_all(&bytes).map_err(io_at(&tmp))?;
    f.sync_data().map_err(io_at(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_at(&path))
}

/// What the writer needs to resume after recovery.
#[derive(Debug)]
pub(super) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub next: u64,
    /// Bytes of the last segment.
    pub active_size: u64,
    /// Indexing state after the last segment's last record.
    pub active_cursor: IndexCursor,
    pub lock: Lock,
}

/// Damage found before the end of the log.
#[derive(Debug, Clone)]
struct Damage {
    /// Index of the segment in the list.
    segment: usize,
    path: PathBuf,
    position: u64,
    offset: u64,
    reason: &'static str,
}

enum Attempt {
    Done(Recovered),
    Damaged(Damage, Lock),
}

pub(super) fn recover(
    dir: &Path,
    config: &LogConfig,
    opts: OpenOptions,
) -> Result<Recovered, OpenError> {
    config.validate()?;
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut lock = Some(lock_dir(dir)?);
    let mut bases = list_segments(dir)?;
    if bases.is_empty() {
        let path = dir.join(log_name(0));
        File::create_new(&path).map_err(io_at(&path))?;
        sync_dir(dir, config.durability)?;
        bases.push(0);
    }
    // Each repair removes at least one segment's tail, so this ends.
    for _ in 0..=bases.len() {
        let Some(lock_file) = lock.take() else { break };
        match attempt(dir, config, opts, &bases, lock_file)? {
            Attempt::Done(r) => return Ok(r),
            Attempt::Damaged(d, lock_file) => {
                if !opts.repair {
                    return Err(OpenError::Corrupt {
                        path: d.path,
                        position: d.position,
                        offset: d.offset,
                        reason: d.reason,
                    });
                }
                repair(dir, config, &mut bases, &d)?;
                lock = Some(lock_file);
            }
        }
    }
    Err(OpenError::InvalidConfig(
        "repair did not converge; the directory keeps changing",
    ))
}

fn lock_dir(dir: &Path) -> Result<Lock, OpenError> {
    let path = dir.join(LOCK_FILE);
    match lock::acquire(&path) {
        Ok(l) => Ok(l),
        Err(LockFailure::Held) => Err(OpenError::Locked { path }),
        Err(LockFailure::Io(e)) => Err(io_at(path)(e)),
    }
}

/// Base offsets of the segments, sorted; removes index files whose segment
/// is gone (left by an interrupted retention).
fn list_segments(dir: &Path) -> Result<Vec<u64>, OpenError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(COMPACT_TMP)) {
            // Left by an interrupted compaction: the original is intact.
            let path = entry.path();
            fs::remove_file(&path).map_err(io_at(&path))?;
            continue;
        }
        let Some((base, ext)) = name.to_str().and_then(parse_name) else {
            continue;
        };
        if ext == "log" {
            logs.push(base);
        } else {
            indexes.push(entry.path());
        }
    }
    logs.sort_unstable();
    for path in indexes {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let orphan = parse_name(name).is_some_and(|(b, _)| logs.binary_search(&b).is_err());
        if orphan {
            fs::remove_file(&path).map_err(io_at(&path))?;
        }
    }
    Ok(logs)
}

fn attempt(
    dir: &Path,
    config: &LogConfig,
    opts: OpenOptions,
    bases: &[u64],
    lock: Lock,
) -> Result<Attempt, OpenError> {
    let max_frame = config.max_record_bytes as usize;
    let interval = config.index_interval_bytes;
    let mut segments = Vec::with_capacity(bases.len());
    let mut expected_base: Option<(u64, u64, PathBuf)> = None; // (next, end, path) of previous
    let mut active = (0, IndexCursor::default());
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(log_name(base));
        if let Some((next, end, prev_path)) = expected_base.take()
            && next != base
        {
            let reason = if base > next {
                "records missing before the next segment"
            } else {
                "segment overlaps the next segment"
            };
            let d = Damage {
                segment: i - 1,
                path: prev_path,
                position: end,
                offset: next,
                reason,
            };
            return Ok(Attempt::Damaged(d, lock));
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let len = file.metadata().map_err(io_at(&path))?.len();
        let last = i + 1 == bases.len();
        let compacted_end = if last {
            None
        } else {
            read_compacted(dir, base)
        };
        let sparse = compacted_end.is_some();
        let (scan, mut entries, changed) = if last || opts.verify_all {
            let s = scan(
                &file,
                0,
                base,
                len,
                IndexCursor::default(),
                interval,
                max_frame,
                sparse,
            )
            .map_err(io_at(&path))?;
            let e = s.entries.clone();
            (s, e, true)
        } else {
            quick_scan(dir, &file, base, len, interval, max_frame, sparse).map_err(io_at(&path))?
        };
        if let Some(stop) = scan.stop {
            let torn = last
                && !valid_record_after(&file, stop.position, len, stop.offset, max_frame)
                    .map_err(io_at(&path))?;
            if !torn {
                let d = Damage {
                    segment: i,
                    path,
                    position: stop.position,
                    offset: stop.offset,
                    reason: stop.reason,
                };
                return Ok(Attempt::Damaged(d, lock));
            }
            tracing::warn!(
                path = %path.display(),
                position = stop.position,
                offset = stop.offset,
                reason = stop.reason,
                dropped_bytes = len - stop.position,
                "truncating torn tail of log"
            );
            file.set_len(stop.position).map_err(io_at(&path))?;
            file.sync_all().map_err(io_at(&path))?;
            entries.retain(|e| e.position < stop.position);
        }
        if changed && !last {
            write_index(dir, base, &entries, true)?;
        }
        let max_ts = scan.cursor.max_ts.unwrap_or(0);
        if last {
            active = (scan.valid_end, scan.cursor);
        }
        // A compacted segment keeps its original end even if its last
        // records were compacted away.
        let seg_next = compacted_end.map_or(scan.next, |end| end.max(scan.next));
        expected_base = Some((seg_next, scan.valid_end, path.clone()));
        let mut seg = Segment::new(base, path, file, scan.valid_end, seg_next, max_ts, entries);
        seg.sparse = sparse;
        segments.push(Arc::new(seg));
    }
    let next = segments.last().map_or(0, |s| s.next_offset());
    Ok(Attempt::Done(Recovered {
        segments,
        next,
        active_size: active.0,
        active_cursor: active.1,
        lock,
    }))
}

/// Check a sealed segment through its index: verify from the last index
/// point to the end. Falls back to a full scan when the index is missing or
/// inconsistent. Returns the scan, the full index and whether it changed.
fn quick_scan(
    dir: &Path,
    file: &File,
    base: u64,
    len: u64,
    interval: u32,
    max_frame: usize,
    sparse: bool,
) -> std::io::Result<(Scan, Vec<IndexEntry>, bool)> {
    let offsets = fs::read(index_path(dir, base)).unwrap_or_default();
    let times = fs::read(time_index_path(dir, base)).unwrap_or_default();
    if let Some(mut loaded) = index::decode(&offsets, &times, base, len)
        && let Some(last) = loaded.last().copied()
    {
        let s = scan(
            file,
            last.position,
            last.offset,
            len,
            IndexCursor::resume(&last),
            interval,
            max_frame,
            sparse,
        )?;
        if s.stop.is_none_or(|st| st.position != last.position) {
            let changed = !s.entries.is_empty();
            loaded.extend_from_slice(&s.entries);
            return Ok((s, loaded, changed));
        }
    }
    let s = scan(
        file,
        0,
        base,
        len,
        IndexCursor::default(),
        interval,
        max_frame,
        sparse,
    )?;
    let e = s.entries.clone();
    Ok((s, e, true))
}

/// Cut the log at the damage: truncate that segment, delete every later one.
fn repair(
    dir: &Path,
    config: &LogConfig,
    bases: &mut Vec<u64>,
    d: &Damage,
) -> Result<(), OpenError> {
    let later = bases.get(d.segment + 1..).unwrap_or_default().to_vec();
    tracing::warn!(
        path = %d.path.display(),
        position = d.position,
        offset = d.offset,
        reason = d.reason,
        deleted_segments = later.len(),
        "repair: truncating log at corrupt record"
    );
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&d.path)
        .map_err(io_at(&d.path))?;
    file.set_len(d.position).map_err(io_at(&d.path))?;
    file.sync_all().map_err(io_at(&d.path))?;
    for base in later {
        remove_segment_files(dir, base)?;
    }
    bases.truncate(d.segment + 1);
    sync_dir(dir, config.durability)
}

pub(super) fn remove_segment_files(dir: &Path, base: u64) -> Result<(), OpenError> {
    for path in [
        dir.join(log_name(base)),
        index_path(dir, base),
        time_index_path(dir, base),
        compacted_path(dir, base),
    ] {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(path)(e)),
        }
    }
    Ok(())
}

/// Rewrite both index files of a segment; returns the open handles
/// positioned at their end, for appending.
pub(super) fn write_index(
    dir: &Path,
    base: u64,
    entries: &[IndexEntry],
    sync: bool,
) -> Result<(File, File), OpenError> {
    let (mut offsets, mut times) = (Vec::new(), Vec::new());
    index::encode(entries, &mut offsets, &mut times);
    let write = |path: PathBuf, bytes: &[u8]| -> Result<File, OpenError> {
        use std::io::Write;
        let mut f = File::create(&path).map_err(io_at(&path))?;
        f.write_all(bytes).map_err(io_at(&path))?;
        if sync {
            f.sync_data().map_err(io_at(&path))?;
        }
        Ok(f)
    };
    let o = write(index_path(dir, base), &offsets)?;
    let t = write(time_index_path(dir, base), &times)?;
    Ok((o, t))
}

/// Make a file creation or deletion in `dir` durable (no-op for `OsBuffer`).
pub(super) fn sync_dir(dir: &Path, durability: Durability) -> Result<(), OpenError> {
    if durability == Durability::OsBuffer || cfg!(not(unix)) {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}
