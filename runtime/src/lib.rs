//! The plexus core: typed actors over bounded mailboxes.
//!
//! A service is an [`Actor`]; what it answers is a set of [`Handler<M>`]
//! impls, one per [`Message`] type, each naming its reply. Callers hold an
//! [`ActorRef<A>`] (typed) or a [`Recipient<M>`] (one message type, any
//! endpoint behind it) and [`tell`](ActorRef::tell), [`try_tell`](ActorRef::try_tell)
//! or [`ask`](ActorRef::ask). Mailboxes are bounded: a fast producer waits
//! instead of growing memory.
//!
//! ```
//! # use plexus_runtime::prelude::*;
//! struct Counter(u64);
//! impl Actor for Counter {}
//!
//! struct Add(u64);
//! impl Message for Add { type Reply = u64; }
//!
//! impl Handler<Add> for Counter {
//!     async fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) -> u64 {
//!         self.0 += n;
//!         self.0
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder().seed(7).build();
//! let counter = node.spawn(Counter(0));
//! counter.tell(Add(1)).await?;
//! assert_eq!(counter.ask(Add(2)).await?, 3);
//! # Ok(()) }
//! ```
//!
//! # Map
//!
//! - [`actor`]: `Actor` (lifecycle hooks), `Message`, `Handler`, ids, stop reasons.
//! - [`ActorRef`], [`Recipient`] / [`MessageSink`]: handles; `tell`, `try_tell`, `ask`.
//! - [`Context`]: the actor's view: itself, its node, children, watch, timers, RNG,
//!   the current message's deadline and trace.
//! - [`Node`]: spawning ([`SpawnOptions`], [`Mailbox`]), the [`Registry`],
//!   metrics, graceful shutdown.
//! - [`supervision`]: one-for-one / all-for-one, restart intensity, backoff.
//! - [`clock`]: the node's [`Clock`](clock::Clock); [`ManualClock`](clock::ManualClock) for tests.
//! - [`metrics`]: per-actor and per-node snapshots.
//! - [`error`]: one error enum per operation family.
//! - [`remote`]: the seam a transport plugs into (`Link`), and the call scope
//!   (deadline, trace, caller identity, cancellation) of remote requests.
//! - [`service`]: `tower::Service<M>` for [`ActorRef`] and [`Recipient`]:
//!   timeouts, retries, limits and load shedding come from tower layers.
//! - [`stream`]: [`ReplyStream`] (server streaming) and [`Duplex`]
//!   (bidirectional streams), bounded end to end.
//! - [`protocols`]: actor protocols; [`protocols::rpc`] holds the sans-IO
//!   pieces of remote calls (pending calls, credit windows).
//!
//! # Delivery and stop semantics
//!
//! - Per sender, messages to one actor are handled in the order sent.
//! - A handled message is handled exactly once. Asks whose deadline passes
//!   while queued are not handled (the asker gets `Timeout`).
//! - [`ActorRef::stop`] closes the mailbox at once (`tell` then returns
//!   `Closed` with the message) and handles everything already queued.
//!   [`ActorRef::kill`] closes it and rejects what is queued: asks get
//!   [`AskError::Stopped`], tells are dropped and counted in the `dropped`
//!   metric. No queued ask is ever left without an answer.
//! - System messages (stop, kill, restart, death notices) travel on a
//!   priority lane that a full mailbox never blocks.

#![doc(test(attr(deny(warnings))))]

pub mod actor;
mod actor_ref;
mod cell;
pub mod clock;
mod context;
mod counter_hash;
mod deadline;
mod envelope;
pub mod error;
mod inbox;
pub mod metrics;
mod node;
pub mod protocols;
mod recipient;
mod registry;
pub mod remote;
mod reply;
mod run;
pub mod service;
mod spawn;
pub mod storage;
pub mod stream;
pub mod supervision;
mod sync;
mod timer;
pub mod trace;

pub use actor::{Actor, ActorId, Handler, Message, StopReason, Terminated};
pub use actor_ref::{ActorRef, AskFuture, AskRequest};
pub use context::Context;
pub use error::{AskError, ExposeError, LookupError, SendError, SpawnError, TrySendError};
pub use node::{Node, NodeBuilder, ShutdownReport};
pub use recipient::{BoxFuture, MessageSink, Recipient, RecipientAsk, ReplyFn};
pub use registry::Registry;
pub use spawn::{Mailbox, SpawnOptions};
pub use stream::{Duplex, DuplexMessage, ReplyStream, StreamSendError, StreamSender};
pub use timer::TimerId;

/// The names every actor file uses.
pub mod prelude {
    pub use crate::{
        Actor, ActorId, ActorRef, AskError, Context, Duplex, DuplexMessage, Handler, Mailbox,
        Message, Node, Recipient, ReplyStream, SendError, SpawnError, SpawnOptions, StopReason,
        StreamSender, Terminated, TrySendError,
    };
}
