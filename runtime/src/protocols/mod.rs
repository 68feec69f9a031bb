//! Protocols built from ordinary messages and actors.
//!
//! - [`queue`]: durable work queues with competing consumers, leases,
//!   redelivery, dead letters and FIFO groups (RabbitMQ / SQS semantics).
//! - [`log`]: a partitioned, durable event log with Kafka semantics: topics,
//!   keyed partitioning, idempotent producers, consumer groups with
//!   committed offsets, live subscriptions, retention and compaction.
//! - [`rpc`]: the pieces of request/response across nodes that are
//!   independent of any transport: pending calls, credit windows, deadline
//!   budgets.

pub mod log;
pub mod queue;
pub mod rpc;
