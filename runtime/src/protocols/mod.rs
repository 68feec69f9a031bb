//! Protocols: ordinary message types and the actors that serve them.
//!
//! - [`queue`]: durable work queues with competing consumers, leases,
//!   redelivery, dead letters and FIFO groups (RabbitMQ / SQS semantics).

pub mod queue;
