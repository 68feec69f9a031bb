//! [`SegmentLog`]: the synchronous, single-owner log of one partition.
//! [`FileLog`](super::FileLog) drives one from a writer thread for group
//! commit; tests and single-threaded callers can use it directly.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compaction::{self, CompactionReport};
use super::config::{Durability, LogConfig, OpenOptions, ReadLimits};
use super::error::{AppendError, CompactionError, OpenError, ReadError, RetentionError};
use super::index::{self, IndexCursor, IndexEntry};
use super::read_batch::ReadBatch;
use super::reader::{OffsetBounds, Shared};
use super::record::{Batch, MAX_FRAME_BYTES, announced_len, read_u64, seal};
use super::recovery::{self, Recovered};
use super::segment::{Segment, log_name, write_all_at};

/// Offsets assigned to an appended batch: `base_offset .. base_offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppendAck {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Number of records.
    pub count: usize,
}

impl AppendAck {
    /// One past the batch's last offset.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.count as u64
    }
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Whole segments deleted.
    pub segments_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Records deleted.
    pub records_deleted: u64,
}

/// A read-only view of a log, usable from any thread while the log is
/// being appended to. Sees only acknowledged records.
#[derive(Debug, Clone)]
pub struct LogReader {
    pub(super) shared: Arc<Shared>,
}

impl LogReader {
    /// Records from offset `from`, within `limits`. An empty batch means
    /// `from` is the end of the log.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] outside [`bounds`](Self::bounds);
    /// [`ReadError::Corrupt`] when a stored record fails verification;
    /// [`ReadError::Io`] when the file cannot be read.
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, ReadError> {
        self.shared.read(from, limits)
    }

    /// The first offset whose record has `timestamp >= ts`; `None` if no
    /// stored record is that recent. Uses the time index, then scans.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, ReadError> {
        self.shared.offset_for_timestamp(ts)
    }

    /// Earliest stored and next offsets.
    pub fn bounds(&self) -> OffsetBounds {
        self.shared.bounds()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

/// Writer-side state of the segment being appended to.
#[derive(Debug)]
struct Active {
    seg: Arc<Segment>,
    /// Bytes written to the file.
    size: u64,
    /// Indexing state, including staged records.
    cursor: IndexCursor,
    index_file: File,
    time_file: File,
}

/// Segmented append-only log of one partition, owned by one writer.
///
/// Appending is two steps so a driver can group many requests into one
/// write: [`stage`](Self::stage) encodes into a buffer and assigns offsets,
/// [`commit`](Self::commit) writes, syncs (under [`Durability::Fsync`]) and
/// publishes to readers. [`append`](Self::append) does both. Staged records
/// that are never committed are lost, like a crash before the write.
#[derive(Debug)]
pub struct SegmentLog {
    shared: Arc<Shared>,
    config: LogConfig,
    active: Active,
    /// Staged bytes of the active segment, not yet written.
    wbuf: Vec<u8>,
    /// Index entries of written or staged, unpublished records.
    unpublished: Vec<IndexEntry>,
    /// Written since the last sync.
    dirty: bool,
    /// Next offset to assign (≥ the published high-water mark).
    next: u64,
    poisoned: bool,
    index_scratch: (Vec<u8>, Vec<u8>),
}

impl SegmentLog {
    /// Open (or create) the log in `dir`, recovering it as described in the
    /// [module docs](super).
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] for damage before the end (unless
    /// `options.repair`), [`OpenError::Locked`] if the directory is open
    /// elsewhere, [`OpenError::InvalidConfig`], [`OpenError::Io`].
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        options: OpenOptions,
    ) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        let Recovered {
            segments,
            next,
            active_size,
            active_cursor,
            lock,
        } = recovery::recover(&dir, &config, options)?;
        let Some(seg) = segments.last().cloned() else {
            return Err(OpenError::InvalidConfig("log directory has no segment"));
        };
        let (index_file, time_file) =
            recovery::write_index(&dir, seg.base, &seg.index_snapshot(), false)?;
        let max_frame = config.max_record_bytes as usize;
        let shared = Arc::new(Shared::new(dir, max_frame, segments, next, lock));
        Ok(Self {
            shared,
            active: Active {
                seg,
                size: active_size,
                cursor: active_cursor,
                index_file,
                time_file,
            },
            config,
            wbuf: Vec::new(),
            unpublished: Vec::new(),
            dirty: false,
            next,
            poisoned: false,
            index_scratch: (Vec::new(), Vec::new()),
        })
    }

    /// A reader sharing this log's data; it sees each commit as it happens.
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Stage and commit `batch`; the ack means durable per the policy.
    ///
    /// # Errors
    /// As [`stage`](Self::stage) and [`commit`](Self::commit).
    pub fn append(&mut self, batch: &Batch) -> Result<AppendAck, AppendError> {
        let ack = self.stage(batch)?;
        self.commit()?;
        Ok(ack)
    }

    /// Assign offsets to `batch` and encode it into the write buffer. Rolls
    /// segments as needed (writing and syncing the full one). Not visible
    /// to readers, and not durable, until [`commit`](Self::commit).
    ///
    /// # Errors
    /// [`AppendError::RecordTooLarge`] (nothing staged);
    /// [`AppendError::Io`] if a roll failed (the log is then poisoned);
    /// [`AppendError::Poisoned`] after an earlier failure.
    pub fn stage(&mut self, batch: &Batch) -> Result<AppendAck, AppendError> {
        if self.poisoned {
            return Err(AppendError::Poisoned);
        }
        let frames = batch.frames();
        let max = self.config.max_record_bytes as usize;
        let mut at = 0;
        while at < frames.len() {
            let rest = frames.get(at..).unwrap_or_default();
            let len = announced_len(rest, MAX_FRAME_BYTES).unwrap_or(rest.len());
            if len > max || len == 0 {
                return Err(AppendError::RecordTooLarge { size: len, max });
            }
            at += len;
        }
        let base = self.next;
        let interval = self.config.index_interval_bytes;
        let mut at = 0;
        while let Some(rest) = frames.get(at..).filter(|r| !r.is_empty()) {
            let len = announced_len(rest, MAX_FRAME_BYTES).unwrap_or(rest.len());
            let Some(frame) = rest.get(..len) else { break };
            let ts = read_u64(frame, 16).unwrap_or(0);
            if self.should_roll(len, ts) {
                self.roll()?;
            }
            let pos = self.active.size + self.wbuf.len() as u64;
            let start = self.wbuf.len();
            self.wbuf.extend_from_slice(frame);
            if let Some(slot) = self.wbuf.get_mut(start..) {
                seal(slot, self.next);
            }
            let entry = self.active.cursor.observe(self.next, pos, ts, interval);
            self.unpublished.extend(entry);
            self.next += 1;
            at += len;
        }
        Ok(AppendAck {
            base_offset: base,
            count: batch.len(),
        })
    }

    /// Write staged records, sync them under [`Durability::Fsync`] and
    /// publish them to readers. Returns the new high-water mark.
    ///
    /// # Errors
    /// [`AppendError::Io`] if the write or sync failed: the log is then
    /// poisoned and must be reopened. [`AppendError::Poisoned`] after that.
    pub fn commit(&mut self) -> Result<u64, AppendError> {
        if self.poisoned {
            return Err(AppendError::Poisoned);
        }
        self.write_staged()?;
        if self.dirty && self.config.durability == Durability::Fsync {
            self.sync_active()?;
        }
        self.publish_active();
        self.shared.publish_next(self.next);
        Ok(self.next)
    }

    /// Records from offset `from`, within `limits`; see [`LogReader::read`].
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, ReadError> {
        self.shared.read(from, limits)
    }

    /// See [`LogReader::offset_for_timestamp`].
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, ReadError> {
        self.shared.offset_for_timestamp(ts)
    }

    /// Earliest stored and next (acknowledged) offsets.
    pub fn bounds(&self) -> OffsetBounds {
        self.shared.bounds()
    }

    /// Delete whole segments, oldest first, per the retention settings: by
    /// size, while the log stays at least
    /// [`retention_bytes`](LogConfig::retention_bytes) without it; by age,
    /// while a segment's newest timestamp is more than
    /// [`retention_ms`](LogConfig::retention_ms) before `now_millis`. The
    /// active segment is never deleted. Readers holding an older view keep
    /// reading deleted segments until they finish (on Unix).
    ///
    /// # Errors
    /// [`RetentionError::Io`] if a file cannot be deleted; segments removed
    /// before it stay removed.
    pub fn enforce_retention(
        &mut self,
        now_millis: u64,
    ) -> Result<RetentionReport, RetentionError> {
        let segs = self.shared.snapshot();
        let sealed = segs.len().saturating_sub(1);
        let mut total: u64 = segs.iter().map(|s| s.end()).sum();
        let mut report = RetentionReport::default();
        for seg in segs.iter().take(sealed) {
            let size = seg.end();
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|max| total.saturating_sub(size) >= max);
            let by_age = self
                .config
                .retention_ms
                .is_some_and(|ms| now_millis.saturating_sub(seg.max_ts()) > ms);
            if !(by_size || by_age) {
                break;
            }
            total -= size;
            report.segments_deleted += 1;
            report.bytes_deleted += size;
            report.records_deleted += seg.next_offset() - seg.base;
        }
        if report.segments_deleted == 0 {
            return Ok(report);
        }
        let keep: Vec<Arc<Segment>> = segs
            .get(report.segments_deleted..)
            .unwrap_or_default()
            .to_vec();
        self.shared.set_segments(keep);
        let dir = self.shared.dir.clone();
        for seg in segs.iter().take(report.segments_deleted) {
            recovery::remove_segment_files(&dir, seg.base).map_err(retention_io)?;
            tracing::debug!(base = seg.base, "retention deleted segment");
        }
        recovery::sync_dir(&dir, self.config.durability).map_err(retention_io)?;
        Ok(report)
    }

    /// Compact the sealed segments: keep only the latest record of each
    /// key (keyless records stay), drop tombstones whose timestamp is below
    /// `tombstone_cutoff`. See [`CompactionReport`]. Blocks appends while it
    /// runs (on a [`FileLog`](super::FileLog), it runs on the writer thread).
    ///
    /// # Errors
    /// See [`CompactionError`].
    pub fn compact(&mut self, tombstone_cutoff: u64) -> Result<CompactionReport, CompactionError> {
        if self.poisoned {
            return Err(CompactionError::Poisoned);
        }
        let (list, report) = compaction::compact(&self.shared, &self.config, tombstone_cutoff)?;
        if report.segments_rewritten > 0 {
            self.shared.set_segments(list.as_ref().clone());
        }
        Ok(report)
    }

    fn should_roll(&self, len: usize, ts: u64) -> bool {
        let filled = self.active.size + self.wbuf.len() as u64;
        if filled == 0 {
            return false;
        }
        let by_size = filled + len as u64 > self.config.segment_bytes;
        let by_age = match (self.config.segment_age_ms, self.active.cursor.first_ts) {
            (Some(age), Some(first)) => ts.saturating_sub(first) >= age,
            _ => false,
        };
        by_size || by_age
    }

    /// Seal the active segment (write, sync, publish its index) and start a
    /// new one at the next offset.
    fn roll(&mut self) -> Result<(), AppendError> {
        self.write_staged()?;
        self.sync_active()?;
        let fail = |this: &mut Self, path: PathBuf, e: std::io::Error| {
            this.poisoned = true;
            AppendError::Io {
                path,
                source: Arc::new(e),
            }
        };
        let synced = self
            .active
            .index_file
            .sync_data()
            .and_then(|()| self.active.time_file.sync_data());
        if let Err(e) = synced {
            let path = self.shared.dir.clone();
            return Err(fail(self, path, e));
        }
        self.publish_active();
        let dir = self.shared.dir.clone();
        let base = self.next;
        let path = dir.join(log_name(base));
        let file = match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => return Err(fail(self, path, e)),
        };
        let (index_file, time_file) = match recovery::write_index(&dir, base, &[], false)
            .and_then(|files| recovery::sync_dir(&dir, self.config.durability).map(|()| files))
        {
            Ok(files) => files,
            Err(e) => {
                self.poisoned = true;
                return Err(open_to_append(e));
            }
        };
        let seg = Arc::new(Segment::new(base, path, file, 0, base, 0, Vec::new()));
        let mut list = self.shared.snapshot().as_ref().clone();
        list.push(Arc::clone(&seg));
        self.shared.set_segments(list);
        tracing::debug!(base, "rolled segment");
        self.active = Active {
            seg,
            size: 0,
            cursor: IndexCursor::default(),
            index_file,
            time_file,
        };
        Ok(())
    }

    /// Write the staged bytes and their index entries (no sync).
    fn write_staged(&mut self) -> Result<(), AppendError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Err(e) = write_all_at(&self.active.seg.file, &self.wbuf, self.active.size) {
            self.poisoned = true;
            return Err(AppendError::Io {
                path: self.active.seg.path.clone(),
                source: Arc::new(e),
            });
        }
        self.active.size += self.wbuf.len() as u64;
        self.wbuf.clear();
        self.dirty = true;
        // Every unpublished entry belongs to the bytes just written: a
        // write is always followed by a publish.
        let (o, t) = &mut self.index_scratch;
        o.clear();
        t.clear();
        index::encode(&self.unpublished, o, t);
        let written = self
            .active
            .index_file
            .write_all(o)
            .and_then(|()| self.active.time_file.write_all(t));
        if let Err(e) = written {
            // The index is rebuilt on open; a failed index write only costs speed.
            tracing::warn!(error = %e, "index write failed; it will be rebuilt on open");
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), AppendError> {
        if let Err(e) = self.active.seg.file.sync_data() {
            self.poisoned = true;
            return Err(AppendError::Io {
                path: self.active.seg.path.clone(),
                source: Arc::new(e),
            });
        }
        self.dirty = false;
        Ok(())
    }

    /// Make everything written to the active segment visible to readers.
    fn publish_active(&mut self) {
        let max_ts = self.active.cursor.max_ts.unwrap_or(0);
        self.active
            .seg
            .publish(&self.unpublished, self.active.size, self.next, max_ts);
        self.unpublished.clear();
    }
}

fn retention_io(e: OpenError) -> RetentionError {
    match e {
        OpenError::Io { path, source } => RetentionError::Io { path, source },
        other => RetentionError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn open_to_append(e: OpenError) -> AppendError {
    match e {
        OpenError::Io { path, source } => AppendError::Io {
            path,
            source: Arc::new(source),
        },
        other => AppendError::Io {
            path: PathBuf::new(),
            source: Arc::new(std::io::Error::other(other.to_string())),
        },
    }
}
