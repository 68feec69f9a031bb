//! A partitioned, durable event log with Kafka semantics.
//!
//! - [`Topic`]: N partitions in a directory, each a crash-safe
//!   [`FileLog`](crate::storage::FileLog). A record's key picks its
//!   partition by [`murmur2`] (as Kafka does); keyless records go
//!   round-robin. Appends return [`RecordPosition`]s; reads start at an
//!   offset, a timestamp, the earliest or the latest record ([`StartAt`]).
//! - Idempotent producers ([`ProducerId`] + a sequence per batch, see
//!   [`Topic::idempotent_batch`]): a batch sent again — after a timeout, an
//!   error or a restart — returns its original offsets and appends nothing.
//! - Retention by size and age ([`Topic::enforce_retention`]) and, for
//!   keyed topics, compaction ([`Topic::compact`]); both on a schedule of
//!   the topic's clock with [`Topic::maintain_every`].
//!
//! # Delivery contract
//!
//! - An acknowledged append is durable per the topic's
//!   [`Durability`](crate::storage::Durability): with `Fsync` it survives
//!   power loss, with `OsBuffer` a process crash. An unacknowledged append
//!   may or may not be there after a crash, never half a record.
//! - Order: records of one partition are read in offset order, which is
//!   the order their appends were acknowledged; records with the same key
//!   share a partition and so keep their order. No order across partitions.

mod batch;
mod consumer;
mod error;
mod group;
mod idempotence;
mod maintenance;
mod partition;
mod record;
mod topic;

pub use batch::{PendingProduce, TopicBatch};
pub use consumer::{ConsumerConfig, Delivery, GroupConsumer, Positions, Subscription};
pub use error::{FetchError, GroupError, MaintenanceError, ProduceError, TopicError};
pub use group::{
    Assignment, Assignor, CommitOffsets, FetchOffsets, GroupAction, GroupConfig, GroupCoordinator,
    GroupCore, GroupSnapshot, Heartbeat, JoinAck, JoinGroup, LeaveGroup, MemberId, Snapshot,
    assign,
};
pub use idempotence::{
    DEFAULT_WINDOW, Decision, PRODUCER_HEADER, ProducerId, ProducerTable, SequenceError,
};
pub use maintenance::{Maintenance, MaintenancePass, PassOutcome};
pub use partition::{murmur2, partition_for_key};
pub use record::{ProducerRecord, RecordPosition, StartAt};
pub use topic::{Topic, TopicConfig};
