//! Durable work queues: RabbitMQ / SQS semantics as an actor protocol.
//!
//! A [`Queue`] is a named, durable queue in a data directory you choose.
//! Producers [`enqueue`](Queue::enqueue) messages (bytes plus headers, with
//! an optional delay, deduplication id and FIFO group); the call returns
//! once the message is on disk. Consumers are actors (or any
//! [`Recipient<Delivery>`](crate::Recipient)) that
//! [`subscribe`](Queue::subscribe_actor) with a prefetch: the queue pushes
//! up to that many unacked [`Delivery`]s to each, round robin. Each
//! delivery carries a lease (visibility timeout); the consumer
//! [`ack`](Delivery::ack)s, [`nack`](Delivery::nack)s (retry after a
//! backoff, or dead-letter) or [`extend`](Delivery::extend)s it.
//!
//! # Delivery contract
//!
//! - **At least once.** A message is delivered until it is acked or moved
//!   to the dead-letter queue. It is delivered again when its lease runs
//!   out, when it is nacked, when its consumer stops or dies (death watch),
//!   and after a restart if it was not acked. Processing must therefore be
//!   idempotent; [`Delivery::attempt`] says how many deliveries it had.
//! - **One holder at a time.** While a lease is valid, no other consumer
//!   holds the message. An ack with an ended lease is refused
//!   ([`AckError::LeaseEnded`]).
//! - **Order.** Messages are offered in enqueue order, but with competing
//!   consumers, retries and delays they may complete in any order. Messages
//!   of one FIFO group are delivered one at a time, in enqueue order: the
//!   next is delivered only after the previous was acked or dead-lettered.
//! - **Dead letters.** After [`max_attempts`](QueueConfig::max_attempts)
//!   deliveries (or a nack asking for it) a message moves to the queue's
//!   dead-letter queue, with the reason and attempt count;
//!   [`redrive`](Queue::redrive) moves it back.
//! - **Deduplication.** An enqueue whose deduplication id was seen within
//!   [`dedup_window`](QueueConfig::dedup_window) returns the first
//!   message's id and stores nothing. The window survives restarts.
//! - **What survives a crash.** Every enqueue that returned `Ok` and every
//!   [`ack_durable`](Delivery::ack_durable) that returned `Ok` (with
//!   `Fsync`, also power loss). Dead letters, nack backoffs and attempt
//!   counts survive too (an attempt counted in the last few milliseconds
//!   before a crash may be lost). Leases do not: messages that were leased
//!   are ready again after a restart. A plain [`ack`](Delivery::ack)
//!   returns before it is durable: if the process crashes just after, the
//!   message is delivered again.
//!
//! # Persistence
//!
//! Each queue is a directory with an append-only event log (see
//! [`storage`](crate::storage)): enqueued, delivered, acked, nacked,
//! dead-lettered, redriven. Events are batched into records and group
//! committed: many acks share one `fdatasync`. Opening replays the log.
//! When the log is much larger than the live data, the queue writes a
//! snapshot of the live state into a new log generation and deletes the
//! old one; a crash at any point leaves one complete generation. Storage
//! failures stop the queue (fail-stop): reopen it to recover from disk.
//!
//! # Design
//!
//! [`core::QueueCore`] is the sans-IO state machine: inputs (enqueue,
//! subscribe, ack, nack, extend, tick) take `now` and produce
//! [`core::Action`]s (deliver, persist). [`QueueActor`] is the thin driver:
//! it performs actions, writes events to the log and uses the node's
//! clock for lease expiry, delays and backoff.

pub mod codec;
pub mod core;
mod driver;
mod error;
mod handle;
mod store;
mod types;

pub use self::core::{Enqueued, MessageState};
pub use driver::QueueActor;
pub use error::{AckError, EnqueueError, OpenError};
pub use handle::{Delivery, Queue};
pub use types::{
    Body, ConsumerId, DeadLetter, LeaseId, MessageId, Nack, NewMessage, QueueConfig, QueueMetrics,
};
