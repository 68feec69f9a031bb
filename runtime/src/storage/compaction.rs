//! Compaction of a keyed log: in sealed segments, keep only the latest
//! record of each key (and drop old tombstones). Offsets never change, so
//! a compacted segment has gaps; a `.compacted` marker file records its end
//! offset so recovery knows the gaps are intended.
//!
//! Crash safety: the new segment is written to a temporary file and synced;
//! then the old index files are removed, the marker is written, the
//! temporary file is renamed over the segment and a fresh index is
//! written. A crash at any point leaves either the old or the new segment,
//! each readable (a missing index is rebuilt on open).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::sync::Arc;

use super::config::{LogConfig, ReadLimits};
use super::error::{CompactionError, OpenError};
use super::index::IndexCursor;
use super::reader::{SegmentList, Shared};
use super::recovery::{self, COMPACT_TMP};
use super::segment::{Segment, index_path, log_name, time_index_path};

/// Name of the header that marks a record as a tombstone: in a compacted
/// log it deletes its key (see [`FileLog::compact`](super::FileLog::compact)).
pub const TOMBSTONE_HEADER: &str = "plexus.tombstone";

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionReport {
    /// Sealed segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
}

const SCAN: ReadLimits = ReadLimits {
    max_records: 1 << 20,
    max_bytes: 16 << 20,
};

/// Compact the sealed segments of `shared`; returns the new segment list
/// (the active segment unchanged) for the writer to publish.
pub(super) fn compact(
    shared: &Shared,
    config: &LogConfig,
    tombstone_cutoff: u64,
) -> Result<(SegmentList, CompactionReport), CompactionError> {
    let segs = shared.snapshot();
    let mut report = CompactionReport::default();
    if segs.len() < 2 {
        return Ok((segs, report));
    }
    // Pass 1: the latest offset of every key in the whole log.
    let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut from = shared.bounds().earliest;
    loop {
        let batch = shared.read(from, SCAN)?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            if let Some(k) = r.key {
                latest.insert(k.to_vec(), r.offset);
            }
        }
        from = batch.next_offset();
    }
    // Pass 2: rewrite each sealed segment that loses records.
    let mut out: Vec<Arc<Segment>> = segs.as_ref().clone();
    let sealed = segs.len() - 1;
    for (i, pair) in segs.windows(2).enumerate().take(sealed) {
        let [seg, next_seg] = pair else { continue };
        let end_offset = next_seg.base;
        let mut kept = Vec::new();
        let mut entries = Vec::new();
        let mut cursor = IndexCursor::default();
        let (mut removed, mut removed_bytes) = (0u64, 0u64);
        let mut from = seg.base;
        'segment: loop {
            let batch = shared.read(from, SCAN)?;
            if batch.is_empty() {
                break;
            }
            for (j, (start, info)) in batch.entries.iter().enumerate() {
                if info.offset >= end_offset {
                    break 'segment;
                }
                let Some(r) = batch.get(j) else { continue };
                let keep = match r.key {
                    None => true,
                    Some(k) => {
                        let tombstone = r.headers.iter().any(|(n, _)| n == TOMBSTONE_HEADER);
                        latest.get(k) == Some(&r.offset)
                            && !(tombstone && r.timestamp < tombstone_cutoff)
                    }
                };
                let len = info.len as usize;
                if keep {
                    let pos = kept.len() as u64;
                    entries.extend(cursor.observe(
                        info.offset,
                        pos,
                        info.timestamp,
                        config.index_interval_bytes,
                    ));
                    kept.extend_from_slice(batch.buf.get(*start..start + len).unwrap_or_default());
                } else {
                    removed += 1;
                    removed_bytes += len as u64;
                }
            }
            from = batch.next_offset();
        }
        if removed == 0 {
            continue;
        }
        let dir = &shared.dir;
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| CompactionError::Io { path, source }
        };
        let tmp = dir.join(format!("{}{COMPACT_TMP}", log_name(seg.base)));
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&kept).map_err(io(&tmp))?;
        file.sync_data().map_err(io(&tmp))?;
        for path in [index_path(dir, seg.base), time_index_path(dir, seg.base)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        recovery::write_compacted(dir, seg.base, end_offset).map_err(from_open)?;
        let path = dir.join(log_name(seg.base));
        fs::rename(&tmp, &path).map_err(io(&path))?;
        let _files: (File, File) =
            recovery::write_index(dir, seg.base, &entries, true).map_err(from_open)?;
        recovery::sync_dir(dir, config.durability).map_err(from_open)?;
        let mut fresh = Segment::new(
            seg.base,
            path,
            file,
            kept.len() as u64,
            end_offset,
            seg.max_ts(),
            entries,
        );
        fresh.sparse = true;
        if let Some(slot) = out.get_mut(i) {
            *slot = Arc::new(fresh);
        }
        tracing::debug!(base = seg.base, removed, "compacted segment");
        report.segments_rewritten += 1;
        report.records_removed += removed;
        report.bytes_removed += removed_bytes;
    }
    Ok((Arc::new(out), report))
}

fn from_open(e: OpenError) -> CompactionError {
    match e {
        OpenError::Io { path, source } => CompactionError::Io { path, source },
        other => CompactionError::Io {
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
