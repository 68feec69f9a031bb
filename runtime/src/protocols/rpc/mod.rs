//! The rpc protocol: asks and tells between nodes, with deadlines that
//! travel as a remaining budget, cancellation, and credit-based flow control.
//!
//! This module holds the protocol's sans-IO pieces — no sockets, no codecs,
//! no clocks read (time comes in as an argument) — that the driver in
//! `plexus-transports` runs over a [`Link`](crate::remote::Link):
//!
//! - [`Pending`]: the caller's table of requests awaiting an answer, failed
//!   all at once when the link goes down (`PeerUnavailable` at once, not at
//!   each request's deadline).
//! - [`SendWindow`] / [`RecvWindow`]: credit windows. A sender may have at
//!   most `window` items un-granted; the receiver grants credit back as the
//!   target mailbox accepts items, in batches of half a window. Memory on
//!   both nodes is bounded by the window, and a full mailbox makes the
//!   remote sender wait.
//! - [`budget`] / [`deadline_from_budget`]: a deadline crosses the wire as
//!   the time left (like `grpc-timeout`), so clock skew cannot break it.
//!
//! # Semantics (what the driver guarantees)
//!
//! - An ask's deadline is enforced on the receiving node: a request whose
//!   budget is spent on arrival, or that expires while queued, is not
//!   handled, and the caller gets `AskError::DeadlineExceeded`.
//! - A handler reads its budget with `Context::remaining`; asks it makes
//!   inherit the deadline, so a chain A → B → C shares one budget.
//! - Dropping the ask future sends a cancel: the remote handler is dropped
//!   at its next `.await`, or not run at all if still queued.
//! - A handler's own error type travels as part of its reply
//!   (`type Reply = Result<T, E>`): the caller matches on `E` directly.
//! - Streams: a reply of type [`ReplyStream<T>`] is a server stream, a
//!   [`Duplex<O>`] call streams both ways (see [`crate::stream`]). Each
//!   direction starts with a window of credits ([`SendWindow`]); the
//!   receiver grants more as its consumer reads ([`RecvWindow`]), so a slow
//!   consumer holds the remote producer back. A stream is opened within the
//!   ask's deadline and lives until it ends, is dropped (which cancels the
//!   other side) or its link goes down (`PeerUnavailable`).
//!
//! The driver itself (frame routing per session) lives in
//! `plexus-transports`, because it needs the wire envelope of
//! `plexus-codecs`, which builds on this crate.

mod credit;
mod pending;
#[cfg(test)]
mod tests;

pub use crate::stream::{Duplex, DuplexMessage, ReplyStream, StreamSender};
pub use credit::{RecvWindow, SendWindow};
pub use pending::{CorrelationHasher, IdHasher, Pending};

use std::time::{Duration, Instant};

/// The budget left before `deadline` at `now` (zero once passed).
pub fn budget(deadline: Instant, now: Instant) -> Duration {
    deadline.saturating_duration_since(now)
}

/// The local deadline of a request that arrived at `now` with `budget` left.
pub fn deadline_from_budget(budget: Duration, now: Instant) -> Instant {
    crate::clock::after(now, budget)
}
