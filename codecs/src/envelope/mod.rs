//! The wire [`Envelope`]: one message, reply, error or control signal, with
//! everything the rpc protocol needs to route, time out, trace and
//! authorize it, around an opaque payload.
//!
//! # Layout (header version 1)
//!
//! Integers marked *varint* are unsigned LEB128; strings are a varint byte
//! length and UTF-8 bytes. Optional fields are present when their flag is set.
//!
//! | bytes | field | notes |
//! |---|---|---|
//! | 1 | header version | `1` |
//! | 1 | [`Kind`] | `0` tell … `7` credit |
//! | 1 | flags | bit 0 message, 1 target name, 2 target id, 3 deadline, 4 traceparent, 5 metadata, 6 from callee; bit 7 zero; bits 1 and 2 not both |
//! | varint | correlation id | |
//! | string, varint | message name, version | if bit 0 |
//! | string | target actor name | if bit 1 |
//! | varint | target actor id | if bit 2 |
//! | varint | deadline budget, µs | if bit 3 |
//! | 25 | traceparent: trace id 16, parent id 8, flags 1 | if bit 4 |
//! | varint, then pairs of strings | metadata count (≤ 64), key/value pairs | if bit 5 |
//! | rest | payload | not length-prefixed: it runs to the end of the frame |
//!
//! A tell of a 64-byte payload to actor id 7 with a 17-byte name costs
//! 3 + 1 + 19 + 1 + payload = 88 bytes.
//!
//! A stream of plain tells to one target can drop the header after the
//! first: see [`BoundTell`] (a frame's first byte tells the forms apart:
//! `1` is this header, [`BIND_TAG`] and [`LEAN_TAG`] the bound forms).

mod bound;
pub use bound::{BIND_TAG, BoundTell, LEAN_TAG, MAX_BINDING};
mod decode;
pub use decode::{EnvelopeRef, TargetRef};
mod encode;
#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

use bytes::Bytes;

use crate::message::{MessageId, WireMessage};
use crate::metadata::Metadata;
use crate::trace::TraceParent;
use crate::wire_error::WireError;
use crate::wire_str::WireStr;

/// The header layout version written by this build.
pub const HEADER_VERSION: u8 = 1;

/// What an envelope is.
///
/// | kind | message | target | payload |
/// |---|---|---|---|
/// | `Tell`, `Ask` | yes | yes | the message |
/// | `Reply` | – | – | the reply |
/// | `Error` | – | – | a [`WireError`] |
/// | `StreamItem` | – | – | one item of a streamed reply or request |
/// | `StreamEnd`, `Cancel` | – | – | empty |
/// | `Credit` | – | – | varint: how many more stream items the receiver accepts |
///
/// `correlation` ties every envelope after the first to its `Ask`; a
/// `Tell` may leave it 0. The codec layer does not enforce the table: the rpc
/// protocol does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// One-way message.
    Tell,
    /// Request that expects a `Reply`, `Error`, or a stream.
    Ask,
    /// The answer to an `Ask`.
    Reply,
    /// The `Ask` failed; the payload is a [`WireError`].
    Error,
    /// One item of a stream.
    StreamItem,
    /// The stream is complete.
    StreamEnd,
    /// The caller gave up: stop the handler or stream.
    Cancel,
    /// Flow control: the receiver grants more stream items.
    Credit,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Self; 8] = [
        Self::Tell,
        Self::Ask,
        Self::Reply,
        Self::Error,
        Self::StreamItem,
        Self::StreamEnd,
        Self::Cancel,
        Self::Credit,
    ];

    /// The kind's byte on the wire.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The kind for a wire byte.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_codecs::Kind;
    /// assert_eq!(Kind::from_u8(Kind::Credit.to_u8()), Some(Kind::Credit));
    /// assert_eq!(Kind::from_u8(8), None);
    /// ```
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Tell),
            1 => Some(Self::Ask),
            2 => Some(Self::Reply),
            3 => Some(Self::Error),
            4 => Some(Self::StreamItem),
            5 => Some(Self::StreamEnd),
            6 => Some(Self::Cancel),
            7 => Some(Self::Credit),
            _ => None,
        }
    }
}

/// Which actor on the receiving node an envelope is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A registered actor name.
    Name(WireStr),
    /// A numeric actor id, as handed out by the receiving node.
    Id(u64),
}

/// One unit of traffic between two nodes.
///
/// Built with [`Envelope::new`] and the `with_*` methods (or by setting the
/// public fields), written with [`encode`](Self::encode) into a caller's
/// buffer, and read with [`decode`](Self::decode) from a frame's [`Bytes`]
/// without copying its strings or payload.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use bytes::{Bytes, BytesMut};
/// use plexus_codecs::{Envelope, Kind, MessageId, Target};
///
/// # fn main() -> Result<(), plexus_codecs::EnvelopeError> {
/// let ask = Envelope::new(Kind::Ask, 42)
///     .with_message(MessageId::new("orders.PlaceOrder", 1))
///     .with_target(Target::Id(7))
///     .with_deadline(Duration::from_millis(250))
///     .with_payload(Bytes::from_static(b"..."));
///
/// let mut buf = BytesMut::with_capacity(ask.encoded_len());
/// ask.encode(&mut buf);
/// let back = Envelope::decode(buf.freeze())?;
/// assert_eq!(back, ask);
/// assert_eq!(back.deadline, Some(Duration::from_millis(250)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// What this envelope is.
    pub kind: Kind,
    /// Ties replies, errors, stream items, cancels and credits to their ask.
    pub correlation: u64,
    /// Sent by the node that *serves* the call `correlation` names (replies,
    /// its stream items, credits for the caller's stream), rather than by
    /// the node that made it. Both nodes number their own calls, so this
    /// says whose number `correlation` is.
    pub from_callee: bool,
    /// Name and version of the payload's message (tell, ask).
    pub message: Option<MessageId>,
    /// The actor on the receiving node (tell, ask).
    pub target: Option<Target>,
    /// Remaining time budget, relative (like `grpc-timeout`) so clock skew
    /// between nodes cannot break it. Carried in whole microseconds, rounded
    /// down. The receiver turns it into a local deadline on arrival.
    pub deadline: Option<Duration>,
    /// W3C trace context of the caller's span.
    pub traceparent: Option<TraceParent>,
    /// Caller identity and context.
    pub metadata: Metadata,
    /// The encoded message, reply, error or stream item.
    pub payload: Bytes,
}

impl Envelope {
    /// An envelope of `kind` with no optional fields and an empty payload.
    pub const fn new(kind: Kind, correlation: u64) -> Self {
        Self {
            kind,
            correlation,
            from_callee: false,
            message: None,
            target: None,
            deadline: None,
            traceparent: None,
            metadata: Metadata::new(),
            payload: Bytes::new(),
        }
    }

    /// A tell or ask header for `M` to `target`; the payload is left empty
    /// so the caller can encode the message straight into the frame after
    /// [`encode_header`](Self::encode_header).
    pub fn for_message<M: WireMessage>(kind: Kind, correlation: u64, target: Target) -> Self {
        Self {
            message: Some(MessageId::of::<M>()),
            target: Some(target),
            ..Self::new(kind, correlation)
        }
    }

    /// An [`Kind::Error`] envelope answering `correlation` with `error`
    /// (from the callee; set [`from_callee`](Self::from_callee) to `false`
    /// when a caller fails its own request stream).
    pub fn error(correlation: u64, error: &WireError) -> Self {
        Self::new(Kind::Error, correlation)
            .from_callee()
            .with_payload(error.to_payload())
    }

    /// Marks the envelope as sent by the callee of `correlation`.
    #[must_use]
    pub const fn from_callee(mut self) -> Self {
        self.from_callee = true;
        self
    }

    /// A [`Kind::Credit`] envelope granting `credits` more stream items.
    pub fn credit(correlation: u64, credits: u64) -> Self {
        let mut payload = bytes::BytesMut::with_capacity(crate::varint::MAX_VARINT_LEN);
        crate::varint::put_varint(&mut payload, credits);
        Self::new(Kind::Credit, correlation).with_payload(payload.freeze())
    }

    /// The credits granted by a [`Kind::Credit`] envelope; `None` for another
    /// kind or a malformed payload.
    pub fn credits(&self) -> Option<u64> {
        if self.kind != Kind::Credit {
            return None;
        }
        let mut reader = crate::varint::Reader::new(&self.payload);
        let credits = reader.varint().ok()?;
        (reader.remaining() == 0).then_some(credits)
    }

    /// The [`WireError`] of a [`Kind::Error`] envelope; `None` for another kind.
    ///
    /// # Errors
    ///
    /// `Some(Err(_))` if the payload is not a `WireError`.
    pub fn wire_error(&self) -> Option<Result<WireError, crate::CodecError>> {
        (self.kind == Kind::Error).then(|| WireError::from_payload(&self.payload))
    }

    /// Sets the message name and version.
    #[must_use]
    pub fn with_message(mut self, message: MessageId) -> Self {
        self.message = Some(message);
        self
    }

    /// Sets the target actor.
    #[must_use]
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets the remaining deadline budget.
    #[must_use]
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some(budget);
        self
    }

    /// Sets the trace context.
    #[must_use]
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Bytes) -> Self {
        self.payload = payload;
        self
    }
}
