//! Actor protocols: ordinary message types and the actors that serve them.

pub mod rpc;
