//! plexus transports: the roads a message takes out of the process.
//!
//! The core runtime never imports this crate; a transport plugs into it
//! through the [`Link`](plexus_runtime::remote::Link) the core defines.
//!
//! - [`remote`]: [`Remote`](remote::Remote), a node's rpc endpoint — it
//!   exposes message types, runs the rpc protocol over links and hands out
//!   `Recipient<M>`s for actors on other nodes.
//! - [`sim`]: an in-process simulated network (latency, jitter/reordering,
//!   loss, partitions) on the node's clock and a seed.
//! - [`quic`]: QUIC links (quinn + rustls with the ring provider) with
//!   mutual TLS, a static peer list and reconnection.
//! - [`certs`]: a development CA and node certificates (rcgen).

pub mod certs;
pub mod quic;
pub mod remote;
pub mod sim;
