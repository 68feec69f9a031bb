//! Configuration of a log: plain structs with `Default`.

use std::time::Duration;

use super::error::OpenError;
use super::record::{MAX_FRAME_BYTES, MIN_FRAME};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the bytes are written and `fdatasync` returned: survives power loss.
    #[default]
    Fsync,
    /// After the bytes are written to the OS: survives a process crash, not
    /// power loss or a kernel crash.
    OsBuffer,
}

/// Settings of one partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment rolls before it would exceed this many bytes (a single
    /// record larger than this gets a segment of its own). Default 64 MiB.
    pub segment_bytes: u64,
    /// A segment rolls when an incoming record's timestamp is at least this
    /// many milliseconds past the segment's first record. `None` = never.
    pub segment_age_ms: Option<u64>,
    /// Retention deletes the oldest segments while the log is larger than
    /// this. `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// Retention deletes segments whose newest record is older than this
    /// (judged by the `now_millis` passed in). `None` = unlimited.
    pub retention_ms: Option<u64>,
    /// One index entry every this many bytes of segment. Default 4096.
    pub index_interval_bytes: u32,
    /// Largest accepted encoded record, header included. Default 8 MiB.
    pub max_record_bytes: u32,
    /// How long the writer may wait for more appends before writing a
    /// group. Zero (the default) writes as soon as the queue is drained;
    /// appends arriving during a sync still share the next write.
    ///
    /// The wait runs on the log's own writer thread, on the operating
    /// system's monotonic clock, not the node's: it decides only how
    /// appends are grouped into writes, never what is written or in what
    /// order, so a simulation's results do not depend on it.
    pub linger: Duration,
    /// The writer stops collecting a group at this many bytes. Default 8 MiB.
    pub max_group_bytes: usize,
    /// Append requests queued before `append` waits. Default 4096.
    pub queue_capacity: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            segment_bytes: 64 << 20,
            segment_age_ms: None,
            retention_bytes: None,
            retention_ms: None,
            index_interval_bytes: 4096,
            max_record_bytes: 8 << 20,
            linger: Duration::ZERO,
            max_group_bytes: 8 << 20,
            queue_capacity: 4096,
        }
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), OpenError> {
        let max = self.max_record_bytes as usize;
        if !(MIN_FRAME..=MAX_FRAME_BYTES).contains(&max) {
            return Err(OpenError::InvalidConfig(
                "max_record_bytes must be between 32 bytes and 1 GiB",
            ));
        }
        if self.segment_bytes == 0 {
            return Err(OpenError::InvalidConfig("segment_bytes must be > 0"));
        }
        if self.index_interval_bytes == 0 {
            return Err(OpenError::InvalidConfig("index_interval_bytes must be > 0"));
        }
        if self.queue_capacity == 0 {
            return Err(OpenError::InvalidConfig("queue_capacity must be > 0"));
        }
        Ok(())
    }
}

/// How to treat what is found on disk when opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Truncate the log at the first corrupt record instead of failing with
    /// [`OpenError::Corrupt`]. Every record after that point is deleted
    /// (logged at `warn`). A torn final record is always truncated.
    pub repair: bool,
    /// Verify every record of every segment. By default only the last
    /// segment is scanned fully; older segments (synced when they rolled)
    /// are checked through their index and tail, and every read verifies
    /// checksums anyway.
    pub verify_all: bool,
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_records: usize,
    /// At most this many encoded bytes, except that the first record is
    /// always returned whole, so a large record cannot block a reader.
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_records: 10_000,
            max_bytes: 1 << 20,
        }
    }
}

impl ReadLimits {
    /// At most `n` records, byte limit unchanged.
    pub fn records(n: usize) -> Self {
        Self {
            max_records: n,
            ..Self::default()
        }
    }
}
