//! Crash-safe storage: a segmented append-only log per partition, and a
//! small durable key/value store for offsets and queue state.
//!
//! # Pieces
//!
//! - [`Batch`] encodes records for appending; [`ReadBatch`] / [`RecordRef`]
//!   return them without a per-record allocation.
//! - [`SegmentLog`]: the synchronous single-owner log (stage, commit, read,
//!   retention). [`FileLog`]: a `SegmentLog` on a writer thread with group
//!   commit, cloneable, with async and blocking appends.
//! - [`LogStore`]: the one trait the protocols use; implemented by
//!   [`FileLog`] and [`MemLog`].
//! - [`KvStore`]: committed consumer offsets and queue state.
//!
//! The storage never reads a clock: record timestamps and the `now_millis`
//! of retention are given by the caller, so runs are reproducible.
//!
//! # Example
//!
//! ```
//! # use plexus_runtime::storage::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let log = FileLog::open(tmp.path(), LogConfig::default(), OpenOptions::default())?;
//! let mut batch = Batch::new();
//! batch.push(1_700_000_000_000, Some(b"order-1"), b"{\"qty\":2}")?;
//! let ack = log.append_blocking(batch)?.wait()?;
//! assert_eq!(ack.base_offset, 0);
//! let read = log.read(0, ReadLimits::default())?;
//! assert_eq!(read.iter().next().map(|r| r.value), Some(&b"{\"qty\":2}"[..]));
//! # Ok(()) }
//! ```
//!
//! # Directory layout
//!
//! A log directory holds, per segment, three files named by the segment's
//! base offset (its first record's offset), zero-padded to 20 digits:
//! `00000000000000000000.log`, `.index` and `.timeindex`, plus a `.lock`
//! file held (advisory `flock`) while the log is open.
//!
//! # Record format (`.log`)
//!
//! Records are stored back to back; all integers little-endian.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 4 | `len` | bytes after this field, 28 ..= `max_record_bytes - 4` |
//! | 4 | `crc` | CRC32C (Castagnoli) of the `len - 4` bytes after it |
//! | 8 | `offset` | the record's offset; consecutive within the log |
//! | 8 | `timestamp` | milliseconds, given by the caller |
//! | 4 | `key_len` | key length; `0xFFFF_FFFF` = no key |
//! | `key_len` | key | |
//! | 4 | `header_count` | |
//! | per header | `u16` name length, UTF-8 name, `u32` value length, value | |
//! | rest | value | up to the end of the record |
//!
//! A record with no key, headers or value takes 32 bytes.
//!
//! # Index formats
//!
//! Sparse: one entry for the first record at or past every
//! `index_interval_bytes` of segment. `.index` entries are
//! `[u64 offset, u64 byte position]`; `.timeindex` entries are
//! `[u64 largest timestamp of the segment's records before offset, u64
//! offset]`, one per `.index` entry. A lookup by offset starts at the last
//! entry at or before it; a lookup by time starts at the last entry before
//! which every record is older than the target, then scans (timestamps need
//! not be monotonic). Index files are not synced on each commit: they are
//! checked on open and rebuilt from the segment when missing or stale.
//!
//! # Appends, durability and group commit
//!
//! Offsets are assigned by the writer, in queue order. A [`FileLog`]'s
//! writer takes everything queued (up to `max_group_bytes`, waiting up to
//! `linger` for more), encodes it into one buffer, does one write and, under
//! [`Durability::Fsync`], one `fdatasync`, then publishes the new end to
//! readers and acknowledges every request. A segment rolls (the full one is
//! synced first) when the next record would push it past `segment_bytes`,
//! or when the record's timestamp is `segment_age_ms` past the segment's
//! first record. A batch may span a roll, so after a crash an
//! *unacknowledged* batch may be partly present; acknowledged ones are
//! always whole.
//!
//! # Reads
//!
//! Readers (any thread, no writer lock) see records below the high-water
//! mark only, which moves after the write (and sync). They read large
//! blocks with `pread` and verify every record's checksum and offset; a
//! failure is [`ReadError::Corrupt`], never a skipped record.
//!
//! # Recovery on open
//!
//! - The last segment is scanned fully. A final record that is incomplete
//!   or fails its checksum, with no valid record after it, is a torn write:
//!   the file is truncated there (logged at `warn`).
//! - A bad record followed by a valid one, in the last segment, or any bad
//!   record in an older segment, is [`OpenError::Corrupt`] naming the file,
//!   byte position and offset; nothing is changed. [`OpenOptions::repair`]
//!   truncates the log there instead (deleting later segments).
//! - Older segments are checked from their last index entry to their end
//!   (all of them with [`OpenOptions::verify_all`]); missing or
//!   inconsistent index files are rebuilt.
//! - Gaps or overlaps between segments are reported like corruption,
//!   except the intended gaps of a compacted segment (see below).
//!
//! # Compaction
//!
//! [`FileLog::compact`] keeps, in sealed segments, only the latest record of
//! each key, and drops tombstones (records with the [`TOMBSTONE_HEADER`])
//! older than a cutoff. Offsets never change: a compacted segment has gaps,
//! and a `<base>.compacted` file next to it records its end offset so
//! recovery accepts them. Reads from an offset inside a gap start at the
//! next stored record.
//!
//! Library code never panics on anything read from disk.
//!
//! A caveat on power loss: pages of an unsynced write may reach the disk
//! out of order. A hole of lost pages followed by surviving ones looks like
//! damage before the end and needs `repair`; every acknowledged record
//! lies before such a hole, so repair loses none of them.

mod compaction;
mod config;
mod error;
mod file_log;
mod index;
mod kv;
mod lock;
mod log;
mod read_batch;
mod reader;
mod record;
mod recovery;
mod segment;
mod store;

#[cfg(test)]
mod tests;

pub use compaction::{CompactionReport, TOMBSTONE_HEADER};
pub use config::{Durability, LogConfig, OpenOptions, ReadLimits};
pub use error::{
    AppendError, CompactionError, KvError, LogError, OpenError, ReadError, RecordError,
    RetentionError, TryAppendError,
};
pub use file_log::{FileLog, PendingAck};
pub use kv::{KvOp, KvOptions, KvStore};
pub use log::{AppendAck, LogReader, RetentionReport, SegmentLog};
pub use read_batch::{ReadBatch, ReadBatchIter};
pub use reader::OffsetBounds;
pub use record::{Batch, Header, HeaderIter, Headers, MAX_FRAME_BYTES, Record, RecordRef};
pub use store::{LogStore, MemLog};
