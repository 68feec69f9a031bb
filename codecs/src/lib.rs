//! The plexus wire layer: messages to bytes and back, and nothing else — no
//! sockets, no actors, no clocks.
//!
//! A remote call travels as a [`Frame`](frame) (4-byte length, size-limited)
//! holding an [`Envelope`] (kind, correlation id, message name and version,
//! target, deadline budget, traceparent, metadata) — or, for a stream of
//! plain tells to one target, a [`BoundTell`] that names the header with a
//! small number bound once per connection — whose payload is the
//! message encoded by a [`Codec`] (postcard by default, JSON for humans,
//! bincode 2 behind the `bincode` feature). When two nodes connect they
//! exchange a [`Handshake`] and [`check_compat`] refuses an incompatible wire
//! version; the receiving node decodes each payload by name through its
//! [`Registry`], and every failure is a typed [`WireError`] for the caller.
//!
//! ```
//! use bytes::BytesMut;
//! use plexus_codecs::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct PlaceOrder { sku: String, qty: u32 }
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct OrderId(u64);
//! remote_message!(PlaceOrder, "orders.PlaceOrder", 1, reply = OrderId);
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The server exposes PlaceOrder; the client learns that from the handshake.
//! let mut registry = Registry::new();
//! registry.register::<PlaceOrder>()?;
//! let server = Handshake::new("server", CodecKind::Postcard, registry.exposed());
//! let client = Handshake::new("client", CodecKind::Postcard, vec![]);
//! let agreed = check_compat(&client, &server)?;
//! agreed.check_call(PlaceOrder::NAME, PlaceOrder::VERSION)?;
//!
//! // Client: header, then the payload encoded straight into the frame.
//! let frames = FrameEncoder::new(FrameConfig::default());
//! let mut wire = BytesMut::new();
//! let start = frames.begin(&mut wire);
//! Envelope::for_message::<PlaceOrder>(Kind::Ask, 1, Target::Name("orders".into()))
//!     .with_deadline(std::time::Duration::from_millis(200))
//!     .encode_header(&mut wire);
//! agreed.encode_with.encode(&PlaceOrder { sku: "A1".into(), qty: 2 }, &mut wire)?;
//! frames.finish(start, &mut wire)?;
//!
//! // Server: bytes arrive in any chunks; frames, envelopes, then the message by name.
//! let mut decoder = FrameDecoder::new(FrameConfig::default());
//! let _taken = decoder.push(&wire);
//! let frame = decoder.next_frame()?.ok_or("incomplete frame")?;
//! let ask = Envelope::decode(frame)?;
//! let order: PlaceOrder = registry
//!     .decode_envelope(CodecKind::Postcard, &ask)?
//!     .downcast()
//!     .map_err(|_| "not a PlaceOrder")?;
//! assert_eq!(order, PlaceOrder { sku: "A1".into(), qty: 2 });
//! assert_eq!(ask.deadline, Some(std::time::Duration::from_millis(200)));
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `bincode`: the [`CodecKind::Bincode`] codec (bincode 2; unmaintained
//!   upstream, so opt-in).
#![doc(test(attr(deny(warnings))))]

pub mod codec; // Codec trait; Postcard, Json, Bincode; CodecKind picks one at runtime
pub mod envelope; // Envelope, Kind, Target: the header around every payload
pub mod error; // one error enum per operation family
pub mod frame; // length-prefixed frames: FrameEncoder, FrameDecoder (sans-IO)
pub mod handshake; // Handshake, check_compat, Agreed
pub mod message; // WireMessage, RemoteMessage/Stream/Duplex, remote_message!, MessageId
pub mod metadata; // Metadata: caller identity and context
pub mod registry; // Registry: decode incoming payloads by name and version
pub mod trace; // TraceParent: W3C trace context
pub mod wire_error; // WireError: the typed error a caller receives
pub mod wire_str; // WireStr: zero-copy strings out of frames

mod varint;

#[doc(hidden)]
pub use plexus_runtime as __runtime;

#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, CodecKind, Json, Postcard};
pub use envelope::{BoundTell, Envelope, EnvelopeRef, HEADER_VERSION, Kind, Target, TargetRef};
pub use error::{
    CodecError, EnvelopeError, FrameError, HandshakeError, MetadataError, RegistryError,
    TraceParentError,
};
pub use frame::{FrameConfig, FrameDecoder, FrameEncoder, FrameStart, LEN_PREFIX, split_frame};
pub use handshake::{Agreed, Handshake, MAGIC, WIRE_VERSION, check_compat};
pub use message::{MessageId, RemoteDuplex, RemoteMessage, RemoteStream, StreamReply, WireMessage};
pub use metadata::Metadata;
pub use registry::{AnyMessage, Decoded, Registry};
pub use trace::TraceParent;
pub use wire_error::WireError;
pub use wire_str::WireStr;
