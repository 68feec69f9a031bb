//! Errors of the queue protocol, one enum per operation family.

use std::path::PathBuf;

use super::types::MessageId;
use crate::error::SpawnError;

/// Why an enqueue was not accepted. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The payload and headers exceed
    /// [`max_message_bytes`](super::QueueConfig::max_message_bytes). Store
    /// the payload elsewhere and enqueue a reference, or raise the limit.
    #[error("message of {size} bytes exceeds the queue's limit of {max} bytes")]
    TooLarge {
        /// Payload plus header bytes.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A deduplication id, group key or header name is longer than 65,535
    /// bytes. Use a shorter one (a hash, for instance).
    #[error("a dedup id, group key or header name is longer than 65535 bytes")]
    KeyTooLong,
    /// The queue has stopped (closed, or stopped after a storage failure).
    /// Reopen it.
    #[error("the queue has stopped")]
    Closed,
    /// The write failed; the message may or may not be stored. The queue
    /// stops; reopen it and retry the enqueue with a deduplication id.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Why an ack, nack or lease extension was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The message is not in the queue any more (already acked or
    /// dead-lettered) or never was.
    #[error("message {0} is not in the queue")]
    UnknownMessage(MessageId),
    /// The message is in the queue but this lease is void: it ran out, its
    /// consumer left, or the message was delivered again since. The message
    /// is (or will be) delivered again; make processing idempotent.
    #[error("the lease on message {0} has ended")]
    LeaseEnded(MessageId),
    /// The queue has stopped. Unacked messages are delivered again after it
    /// is reopened.
    #[error("the queue has stopped")]
    Closed,
    /// The ack could not be made durable; the queue stops. After a reopen
    /// the message may be delivered again.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Why a queue could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name is empty, longer than 128 bytes, starts with a dot or has a
    /// character other than ASCII letters, digits, `-`, `_` and `.`.
    #[error("invalid queue name {0:?}")]
    InvalidName(String),
    /// The configuration is inconsistent. Fix the named field.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(&'static str),
    /// The event log could not be opened (damage before its end, locked by
    /// another open queue, i/o). See the storage error for the remedy.
    #[error("cannot open the queue's event log")]
    Storage(#[from] crate::storage::OpenError),
    /// An event log could not be read back.
    #[error("cannot read the queue's event log")]
    Read(#[from] crate::storage::ReadError),
    /// A record passed its checksum but does not hold valid queue events
    /// (written by another program or another version). Nothing was
    /// changed; move the directory aside.
    #[error("invalid queue event in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The event log directory.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The directory could not be created, listed or cleaned.
    #[error("i/o error on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The queue actor could not be spawned (a queue of that name is
    /// already open on this node, or the node is shutting down).
    #[error("cannot spawn the queue actor")]
    Spawn(#[from] SpawnError),
    /// Writing the initial checkpoint failed.
    #[error("cannot write the queue's event log: {0}")]
    Append(#[from] crate::storage::AppendError),
}
