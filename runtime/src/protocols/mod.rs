//! Protocols built from ordinary messages and actors.
//!
//! - [`log`]: a partitioned, durable event log with Kafka semantics: topics,
//!   keyed partitioning, idempotent producers, consumer groups with
//!   committed offsets, live subscriptions, retention and compaction.

pub mod log;
