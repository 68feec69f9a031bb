//! plexus transports: the roads a message takes out of the process.
//!
//! The core runtime never imports this crate; a transport plugs into it
//! through the link trait the core defines. What lands here:
//!
//! - QUIC links between nodes (quinn + rustls with the ring provider, mutual
//!   TLS), one connection per pair of nodes carrying every actor's traffic;
//! - an in-process simulated link with latency, loss, reordering and
//!   partitions driven by the node's clock and seed, for deterministic
//!   multi-node tests;
//! - gateways for outside clients (HTTP, WebSocket, SSE) that map requests
//!   onto protocol messages.
//!
//! Nothing is exported yet; the crate builds so that the workspace layout is
//! fixed from the start.
