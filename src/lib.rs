//! plexus: typed actors over bounded mailboxes, in-process first.
//!
//! The six ways services talk — request/response (REST, gRPC), work queues
//! (RabbitMQ, SQS), event streams (Kafka), federated queries (GraphQL
//! Federation) and push (WebSocket, SSE) — are actor *protocols* here:
//! ordinary messages handled by ordinary actors. This facade re-exports the
//! core ([`plexus_runtime`]), the wire layer ([`codecs`]) and the transports
//! ([`transports`]).
//!
//! ```
//! use plexus::prelude::*;
//!
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
//! assert_eq!(counter.ask(Add(2)).await?, 2);
//! # Ok(()) }
//! ```

#![doc(test(attr(deny(warnings))))]

pub use plexus_runtime::*;

/// The wire layer: codecs, envelope, framing.
pub use plexus_codecs as codecs;
/// Links between nodes (QUIC with mutual TLS, a simulated network) and the
/// rpc driver that runs over them.
pub use plexus_transports as transports;

/// The names most plexus code uses: the core's
/// [`prelude`](plexus_runtime::prelude), plus what remote services need
/// ([`remote_message!`](plexus_codecs::remote_message) and
/// [`Remote`](plexus_transports::remote::Remote)).
pub mod prelude {
    pub use plexus_codecs::remote_message;
    pub use plexus_runtime::prelude::*;
    pub use plexus_transports::remote::Remote;
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
