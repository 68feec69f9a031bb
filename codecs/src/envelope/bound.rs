//! Tells on a bound channel: [`BoundTell`], the two frame forms that let a
//! stream of plain tells to one target drop their envelope header.
//!
//! A plain tell (no deadline, trace or metadata) repeats the same header
//! every time: kind, channel id, message name and version, target name —
//! 29 bytes for `bench.Note` v1 to `svc`, on a 65-byte payload. The sender
//! instead *binds* a small number to that header once per connection and
//! then sends only the number:
//!
//! | form | bytes |
//! |---|---|
//! | bind | [`BIND_TAG`], varint binding, then a whole plain tell [`Envelope`](super::Envelope) (header and payload) |
//! | lean | [`LEAN_TAG`], varint binding, then the payload (to the end of the frame) |
//!
//! A bind frame is itself a tell: the receiver delivers it and remembers
//! its channel id (the correlation), message and target under the binding;
//! a lean frame is a tell with the header its binding names. A binding is
//! at most [`MAX_BINDING`] so the receiver can keep a small table, and is
//! scoped to one connection: a reconnect binds afresh. The tags cannot be
//! mistaken for an envelope, whose first byte is its header version.
//!
//! A lean tell of a 64-byte payload (65 bytes postcard-encoded) with a
//! one-byte binding is 67 bytes instead of 94.

use bytes::{BufMut, BytesMut};

use super::Kind;
use super::decode::{EnvelopeRef, TargetRef};
use crate::error::EnvelopeError;
use crate::varint::{Reader, put_varint};

/// The first byte of a bind frame.
pub const BIND_TAG: u8 = 0x80;
/// The first byte of a lean tell frame.
pub const LEAN_TAG: u8 = 0x81;
/// The largest binding a frame may carry.
pub const MAX_BINDING: u64 = 1023;

/// A tell in one of the bound forms, read in place from a frame.
///
/// # Examples
///
/// ```
/// # use bytes::{Bytes, BytesMut};
/// # use plexus_codecs::{BoundTell, Envelope, Kind, MessageId, Target, TargetRef};
/// # fn main() -> Result<(), plexus_codecs::EnvelopeError> {
/// // The first tell of a channel binds 5 to its header...
/// let mut bind = BytesMut::new();
/// BoundTell::encode_bind_prefix(5, &mut bind);
/// Envelope::new(Kind::Tell, 1 << 63 | 1)
///     .with_message(MessageId::new("metrics.Sample", 1))
///     .with_target(Target::Name("sink".into()))
///     .with_payload(Bytes::from_static(b"first"))
///     .encode(&mut bind);
/// let Some(BoundTell::Bind { binding: 5, tell }) = BoundTell::decode(&bind)? else {
///     panic!("a bind frame");
/// };
/// assert_eq!(tell.target, Some(TargetRef::Name("sink")));
/// assert_eq!(tell.payload, b"first");
///
/// // ...and later tells carry only the binding and the payload.
/// let mut lean = BytesMut::new();
/// BoundTell::encode_lean_header(5, &mut lean);
/// lean.extend_from_slice(b"second");
/// assert_eq!(lean.len(), 8);
/// assert_eq!(
///     BoundTell::decode(&lean)?,
///     Some(BoundTell::Lean { binding: 5, payload: b"second" })
/// );
///
/// // An ordinary envelope is neither form.
/// let mut plain = BytesMut::new();
/// Envelope::new(Kind::Cancel, 3).encode(&mut plain);
/// assert_eq!(BoundTell::decode(&plain)?, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundTell<'a> {
    /// A plain tell that also binds `binding` to its channel (the
    /// correlation), message and target name.
    Bind {
        /// The number later lean tells use.
        binding: u64,
        /// The tell: kind `Tell`, a message and a target name, no
        /// deadline, trace or metadata.
        tell: EnvelopeRef<'a>,
    },
    /// A tell whose header is the one `binding` was bound to.
    Lean {
        /// The binding of an earlier bind frame on the same connection.
        binding: u64,
        /// The encoded message.
        payload: &'a [u8],
    },
}

impl<'a> BoundTell<'a> {
    /// Reads a bound tell from one whole frame; `Ok(None)` if the frame is
    /// in neither bound form (its first byte is not a tag: an envelope).
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] for a truncated or overlong binding, a binding
    /// above [`MAX_BINDING`] ([`EnvelopeError::BindingOutOfRange`]), a bind
    /// frame whose envelope is malformed or not a plain tell with a message
    /// and a target name ([`EnvelopeError::InvalidBind`]); never panics.
    pub fn decode(frame: &'a [u8]) -> Result<Option<Self>, EnvelopeError> {
        let (lean, rest) = match frame {
            [BIND_TAG, rest @ ..] => (false, rest),
            [LEAN_TAG, rest @ ..] => (true, rest),
            _ => return Ok(None),
        };
        let mut reader = Reader::new(rest);
        let binding = reader
            .varint()
            .map_err(|f| EnvelopeError::read(f, "binding"))?;
        if binding > MAX_BINDING {
            return Err(EnvelopeError::BindingOutOfRange {
                binding,
                max: MAX_BINDING,
            });
        }
        let rest = &rest[reader.pos()..];
        if lean {
            return Ok(Some(Self::Lean {
                binding,
                payload: rest,
            }));
        }
        let tell = EnvelopeRef::decode(rest)?;
        let plain = tell.kind == Kind::Tell
            && tell.message.is_some()
            && matches!(tell.target, Some(TargetRef::Name(_)))
            && tell.deadline.is_none()
            && tell.traceparent.is_none()
            && !tell.has_metadata();
        if !plain {
            return Err(EnvelopeError::InvalidBind);
        }
        Ok(Some(Self::Bind { binding, tell }))
    }

    /// Appends a bind frame's tag and `binding`; the plain tell's envelope
    /// follows.
    pub fn encode_bind_prefix(binding: u64, dst: &mut BytesMut) {
        dst.put_u8(BIND_TAG);
        put_varint(dst, binding);
    }

    /// Appends a lean frame's tag and `binding`; the payload follows.
    pub fn encode_lean_header(binding: u64, dst: &mut BytesMut) {
        dst.put_u8(LEAN_TAG);
        put_varint(dst, binding);
    }
}
