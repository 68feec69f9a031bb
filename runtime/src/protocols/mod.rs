//! Protocols built from ordinary messages and actors.
//!
//! - [`log`]: a partitioned, durable event log with Kafka semantics: topics,
//!   keyed partitioning, idempotent producers, consumer groups with
//!   committed offsets, live subscriptions, retention and compaction.
//! - [`rpc`]: the pieces of request/response across nodes that are
//!   independent of any transport: pending calls, credit windows, deadline
//!   budgets.

pub mod log;
pub mod rpc;
