//! Errors of the log protocol, one enum per operation family.

use std::io;
use std::path::PathBuf;

use crate::storage::{AppendError, KvError, OpenError, ReadError, RecordError, RetentionError};

use super::idempotence::SequenceError;

/// Why a topic could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A partition's log could not be opened (damage, lock, i/o); see the source.
    #[error("partition {partition} of the topic could not be opened")]
    Partition {
        /// The partition.
        partition: u32,
        /// What went wrong.
        #[source]
        source: OpenError,
    },
    /// The topic's metadata file could not be read or written. Check the
    /// path and permissions.
    #[error("i/o error on {path}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The topic exists with another partition count. Partitions cannot be
    /// changed (keys would move); open it with the stored count, or use `0`
    /// to accept what is stored.
    #[error("topic has {existing} partitions, {requested} requested")]
    PartitionMismatch {
        /// Partitions on disk.
        existing: u32,
        /// Partitions asked for.
        requested: u32,
    },
    /// The stored metadata is unreadable. Restore it (it holds only
    /// `partitions=N`).
    #[error("bad topic metadata in {path}")]
    BadMetadata {
        /// The metadata file.
        path: PathBuf,
    },
    /// A new topic needs at least one partition.
    #[error("a topic needs at least one partition")]
    NoPartitions,
    /// Rebuilding the idempotent-producer table from the log failed.
    #[error("reading partition {partition} to rebuild producer state failed")]
    Recovery {
        /// The partition.
        partition: u32,
        /// What went wrong.
        #[source]
        source: ReadError,
    },
}

/// Why a produce was not acknowledged. Records of a failed produce may or
/// may not be in the log; an idempotent retry sorts that out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// A record could not be encoded (too large, header name too long).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A partition's log refused or failed the append; see [`AppendError`].
    #[error("append to partition {partition} failed")]
    Append {
        /// The partition.
        partition: u32,
        /// Why.
        #[source]
        source: AppendError,
    },
    /// An idempotent batch was refused; see [`SequenceError`].
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// The record names a partition the topic does not have.
    #[error("partition {partition} out of range (topic has {partitions})")]
    UnknownPartition {
        /// Partition asked for.
        partition: u32,
        /// Partitions of the topic.
        partitions: u32,
    },
}

/// Why a read or seek failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The topic has no such partition.
    #[error("partition {partition} out of range (topic has {partitions})")]
    UnknownPartition {
        /// Partition asked for.
        partition: u32,
        /// Partitions of the topic.
        partitions: u32,
    },
    /// The storage read failed; an [`ReadError::OutOfRange`] offset was
    /// deleted by retention: restart from `earliest`.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why retention or compaction of a topic failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintenanceError {
    /// Retention of a partition failed; segments deleted before stay deleted.
    #[error("retention of partition {partition} failed")]
    Retention {
        /// The partition.
        partition: u32,
        /// Why.
        #[source]
        source: RetentionError,
    },
    /// Compaction of a partition failed; the partition is unchanged.
    #[error("compaction of partition {partition} failed")]
    Compaction {
        /// The partition.
        partition: u32,
        /// Why.
        #[source]
        source: crate::storage::CompactionError,
    },
}

/// Why a consumer-group request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The member is not (or no longer) in the group: it left, stopped or
    /// missed its heartbeats. Join again.
    #[error("member {0} is not in the group")]
    UnknownMember(u64),
    /// The request belongs to an older generation: a rebalance happened.
    /// Wait for the new assignment.
    #[error("generation {got} is stale (current {current})")]
    StaleGeneration {
        /// Generation of the request.
        got: u64,
        /// Current generation.
        current: u64,
    },
    /// The member does not own the partition in this generation; its commit
    /// is fenced off.
    #[error("member {member} does not own partition {partition}")]
    NotOwner {
        /// The member.
        member: u64,
        /// The partition.
        partition: u32,
    },
    /// Storing committed offsets failed (message of the [`KvError`]); the
    /// offset was not committed.
    #[error("offset store failed: {0}")]
    Storage(String),
    /// The coordinator has stopped.
    #[error("group coordinator is gone")]
    CoordinatorGone,
}

impl From<KvError> for GroupError {
    fn from(e: KvError) -> Self {
        Self::Storage(e.to_string())
    }
}
