//! Error types, one enum per operation family.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a record could not be added to a [`Batch`](super::Batch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The encoded record is larger than allowed. Split the payload or raise
    /// [`LogConfig::max_record_bytes`](super::LogConfig::max_record_bytes).
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A header name is longer than 65,535 bytes. Use a shorter name.
    #[error("header name of {len} bytes exceeds 65535 bytes")]
    HeaderNameTooLong {
        /// Length of the offending name.
        len: usize,
    },
}

/// Why a log or store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file system refused an operation. Check the path, permissions and free space.
    #[error("i/o error on {path}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Another handle (in this or another process) has the directory open.
    /// Close it first; a log has exactly one writer.
    #[error("{path} is locked by another open log")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Data before the end of the log is damaged. Nothing was changed on
    /// disk. Restore from a replica, or reopen with
    /// [`OpenOptions::repair`](super::OpenOptions::repair), which truncates
    /// the log at `position` of `path` and deletes every later record.
    #[error("corrupt record in {path} at byte {position} (offset {offset}): {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the damaged record in that file.
        position: u64,
        /// Offset the damaged record should have had.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The configuration is inconsistent. Fix the named field.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Why an append was not acknowledged. Records of a failed append may or may
/// not be in the log; they were never acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// A record in the batch exceeds
    /// [`LogConfig::max_record_bytes`](super::LogConfig::max_record_bytes).
    /// Nothing of the batch was written.
    #[error("record of {size} bytes exceeds the log's limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A write or sync failed. The log refuses further appends, because after
    /// a failed fsync the state of the disk is unknown: reopen it.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error, shared by every request of the failed group.
        #[source]
        source: Arc<io::Error>,
    },
    /// An earlier write or sync failed; see [`AppendError::Io`]. Reopen the log.
    #[error("log failed earlier and refuses appends until reopened")]
    Poisoned,
    /// The log was closed (or its writer thread ended). Reopen it.
    #[error("log is closed")]
    Closed,
}

/// Why a [`FileLog::try_append`](super::FileLog::try_append) did not
/// enqueue. The batch comes back for retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryAppendError {
    /// The writer's queue is full. Await
    /// [`FileLog::append`](super::FileLog::append) or retry later.
    #[error("append queue full")]
    Full(super::Batch),
    /// The log is closed. Reopen it.
    #[error("log is closed")]
    Closed(super::Batch),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is outside `[earliest, next]`: it was deleted by retention
    /// or is not written yet. Restart from [`OffsetBounds`](super::OffsetBounds).
    #[error("offset {requested} out of range [{earliest}, {next}]")]
    OutOfRange {
        /// Offset asked for.
        requested: u64,
        /// Earliest offset still stored.
        earliest: u64,
        /// Next offset to be written (one past the last readable).
        next: u64,
    },
    /// A stored record failed its checksum or structure check. Reopen with
    /// [`OpenOptions::repair`](super::OpenOptions::repair) or restore.
    #[error("corrupt record in {path} at byte {position} (offset {offset}): {reason}")]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte position in that file.
        position: u64,
        /// Offset expected there.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Reading a segment file failed.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// Why retention could not run to completion. Segments deleted before the
/// failure stay deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// Deleting a segment failed. Check permissions.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The log is closed. Reopen it.
    #[error("log is closed")]
    Closed,
}

/// Why compaction could not run to completion. Segments rewritten before
/// the failure stay compacted; the others are unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactionError {
    /// Writing the compacted segment failed. Check free space and permissions.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading the log failed; see [`ReadError`].
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The log failed earlier and must be reopened.
    #[error("log failed earlier; reopen it before compacting")]
    Poisoned,
    /// The log is closed. Reopen it.
    #[error("log is closed")]
    Closed,
}

/// Error of a [`LogStore`](super::LogStore) backed by files or memory: the
/// union of the operation errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// See [`AppendError`].
    #[error(transparent)]
    Append(#[from] AppendError),
    /// See [`ReadError`].
    #[error(transparent)]
    Read(#[from] ReadError),
    /// See [`RetentionError`].
    #[error(transparent)]
    Retention(#[from] RetentionError),
}

/// Why a [`KvStore`](super::KvStore) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// Opening, writing or syncing the file failed. After a failed write the
    /// store refuses further writes: reopen it.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A record before the end of the file is damaged. Reopen with
    /// [`KvOptions::repair`](super::KvOptions::repair) to truncate there
    /// (losing later updates), or restore.
    #[error("corrupt entry in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// Byte position of the damaged entry.
        position: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another handle (in this or another process) has the store open.
    /// Close it first; a store has exactly one owner.
    #[error("{path} is locked by another open store")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A key or value is too large (keys ≤ 65,535 bytes, entries ≤ 1 GiB).
    #[error("entry of {size} bytes is too large")]
    TooLarge {
        /// Size of the entry.
        size: usize,
    },
    /// An earlier write failed; reopen the store.
    #[error("store failed earlier and refuses writes until reopened")]
    Poisoned,
}

pub(super) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OpenError {
    let path = path.into();
    move |source| OpenError::Io { path, source }
}
