//! Reading an [`Envelope`] (layout in the parent module's docs).

use std::time::Duration;

use bytes::Bytes;

use super::encode::{
    FLAG_DEADLINE, FLAG_FROM_CALLEE, FLAG_MESSAGE, FLAG_METADATA, FLAG_TARGET_ID, FLAG_TARGET_NAME,
    FLAG_TRACEPARENT, KNOWN_FLAGS,
};
use super::{Envelope, HEADER_VERSION, Kind, Target};
use crate::error::EnvelopeError;
use crate::message::MessageId;
use crate::metadata::Metadata;
use crate::trace::TraceParent;
use crate::varint::Reader;
use crate::wire_str::WireStr;

/// A reader over a frame that hands out borrowed strings of it.
struct Cursor<'a> {
    reader: Reader<'a>,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        self.reader.u8().map_err(|f| EnvelopeError::read(f, field))
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, EnvelopeError> {
        self.reader
            .varint()
            .map_err(|f| EnvelopeError::read(f, field))
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, EnvelopeError> {
        let raw = self
            .reader
            .bytes()
            .map_err(|f| EnvelopeError::read(f, field))?;
        std::str::from_utf8(raw).map_err(|_| EnvelopeError::InvalidUtf8 { field })
    }
}

/// Which actor an [`EnvelopeRef`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRef<'a> {
    /// A registered actor name.
    Name(&'a str),
    /// A numeric actor id.
    Id(u64),
}

/// An [`Envelope`] read in place: its names, metadata and payload borrow
/// the frame. Reading one allocates nothing and touches no reference
/// count, so a receiver that only needs to route the payload (a tell) pays
/// for no owned copy; [`Envelope::decode`] is this plus owned slices.
///
/// # Examples
///
/// ```
/// # use bytes::BytesMut;
/// # use plexus_codecs::{Envelope, EnvelopeRef, Kind, MessageId, Target, TargetRef};
/// # fn main() -> Result<(), plexus_codecs::EnvelopeError> {
/// let mut buf = BytesMut::new();
/// Envelope::new(Kind::Tell, 9)
///     .with_message(MessageId::new("metrics.Sample", 1))
///     .with_target(Target::Name("sink".into()))
///     .encode(&mut buf);
/// let env = EnvelopeRef::decode(&buf)?;
/// assert_eq!(env.message, Some(("metrics.Sample", 1)));
/// assert_eq!(env.target, Some(TargetRef::Name("sink")));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvelopeRef<'a> {
    /// What this envelope is.
    pub kind: Kind,
    /// See [`Envelope::correlation`].
    pub correlation: u64,
    /// See [`Envelope::from_callee`].
    pub from_callee: bool,
    /// Name and version of the payload's message.
    pub message: Option<(&'a str, u32)>,
    /// The actor on the receiving node.
    pub target: Option<TargetRef<'a>>,
    /// See [`Envelope::deadline`].
    pub deadline: Option<Duration>,
    /// See [`Envelope::traceparent`].
    pub traceparent: Option<TraceParent>,
    /// The metadata, encoded (checked: count, UTF-8, unique keys); empty
    /// when there is none. [`metadata`](Self::metadata) reads it.
    metadata: &'a [u8],
    /// The encoded message, reply, error or stream item.
    pub payload: &'a [u8],
}

impl<'a> EnvelopeRef<'a> {
    /// The kind of the envelope in `frame`, read from its first two bytes
    /// without decoding the rest: `None` if they are not a known header
    /// version and kind. A receiver picks how to decode by it.
    pub fn peek_kind(frame: &[u8]) -> Option<Kind> {
        match frame {
            [HEADER_VERSION, kind, ..] => Kind::from_u8(*kind),
            _ => None,
        }
    }

    /// Reads an envelope from one whole frame, borrowing it.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] for any malformed input, exactly as
    /// [`Envelope::decode`]; never panics.
    pub fn decode(frame: &'a [u8]) -> Result<Self, EnvelopeError> {
        let mut cur = Cursor {
            reader: Reader::new(frame),
        };
        let version = cur.u8("version")?;
        if version != HEADER_VERSION {
            return Err(EnvelopeError::UnsupportedVersion { version });
        }
        let kind_byte = cur.u8("kind")?;
        let kind =
            Kind::from_u8(kind_byte).ok_or(EnvelopeError::UnknownKind { kind: kind_byte })?;
        let flags = cur.u8("flags")?;
        let both_targets = FLAG_TARGET_NAME | FLAG_TARGET_ID;
        if flags & !KNOWN_FLAGS != 0 || flags & both_targets == both_targets {
            return Err(EnvelopeError::InvalidFlags { flags });
        }
        let correlation = cur.varint("correlation")?;

        let message = if flags & FLAG_MESSAGE != 0 {
            let name = cur.str("message name")?;
            let version = cur
                .reader
                .varint_u32()
                .map_err(|f| EnvelopeError::read(f, "message version"))?;
            Some((name, version))
        } else {
            None
        };

        let target = if flags & FLAG_TARGET_NAME != 0 {
            Some(TargetRef::Name(cur.str("target name")?))
        } else if flags & FLAG_TARGET_ID != 0 {
            Some(TargetRef::Id(cur.varint("target id")?))
        } else {
            None
        };

        let deadline = if flags & FLAG_DEADLINE != 0 {
            Some(Duration::from_micros(cur.varint("deadline")?))
        } else {
            None
        };

        let traceparent = if flags & FLAG_TRACEPARENT != 0 {
            let raw = cur
                .reader
                .array::<{ TraceParent::WIRE_LEN }>()
                .map_err(|f| EnvelopeError::read(f, "traceparent"))?;
            Some(TraceParent::from_bytes(raw).map_err(EnvelopeError::InvalidTraceParent)?)
        } else {
            None
        };

        let metadata = if flags & FLAG_METADATA != 0 {
            let from = cur.reader.pos();
            check_metadata(&mut cur)?;
            &frame[from..cur.reader.pos()]
        } else {
            &[]
        };

        Ok(Self {
            kind,
            correlation,
            from_callee: flags & FLAG_FROM_CALLEE != 0,
            message,
            target,
            deadline,
            traceparent,
            metadata,
            payload: &frame[cur.reader.pos()..],
        })
    }

    /// The metadata entries, in wire order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let mut cur = Cursor {
            reader: Reader::new(self.metadata),
        };
        let count = if self.metadata.is_empty() {
            0
        } else {
            cur.varint("metadata count").unwrap_or(0)
        };
        // Checked by `decode`: every entry reads back.
        (0..count).map_while(move |_| Some((cur.str("key").ok()?, cur.str("value").ok()?)))
    }

    /// Whether the envelope carries metadata.
    pub fn has_metadata(&self) -> bool {
        !self.metadata.is_empty()
    }

    /// This envelope with owned fields, sharing `frame`'s buffer; `frame`
    /// must be the buffer this was decoded from.
    fn to_owned_in(self, frame: &Bytes) -> Envelope {
        let wire = |s: &'a str| WireStr::slice_of(frame, s);
        let metadata = if self.metadata.is_empty() {
            Metadata::new()
        } else {
            Metadata::from_entries(self.metadata().map(|(k, v)| (wire(k), wire(v))).collect())
        };
        Envelope {
            kind: self.kind,
            correlation: self.correlation,
            from_callee: self.from_callee,
            message: self.message.map(|(name, version)| MessageId {
                name: wire(name),
                version,
            }),
            target: self.target.map(|t| match t {
                TargetRef::Name(n) => Target::Name(wire(n)),
                TargetRef::Id(id) => Target::Id(id),
            }),
            deadline: self.deadline,
            traceparent: self.traceparent,
            metadata,
            payload: frame.slice_ref(self.payload),
        }
    }
}

impl Envelope {
    /// Reads an envelope from one whole frame.
    ///
    /// Names, metadata and the payload are slices of `frame` (no copy); the
    /// only allocation is the metadata list, when there is metadata. Every
    /// length is checked against the bytes actually present before use, so
    /// hostile input costs at most its own size. [`EnvelopeRef::decode`]
    /// reads the same without owned slices.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] for any malformed input; never panics.
    pub fn decode(frame: Bytes) -> Result<Self, EnvelopeError> {
        Ok(EnvelopeRef::decode(&frame)?.to_owned_in(&frame))
    }
}

/// Checks the metadata at the cursor: its count, that every entry reads
/// as UTF-8 and that no key repeats.
fn check_metadata(cur: &mut Cursor<'_>) -> Result<(), EnvelopeError> {
    let count = cur.varint("metadata count")?;
    // Checked before allocating: the list is at most MAX_ENTRIES long, and
    // each entry takes at least two bytes of input.
    let max = Metadata::MAX_ENTRIES;
    let n = usize::try_from(count)
        .ok()
        .filter(|&n| n <= max)
        .ok_or(EnvelopeError::TooManyMetadata { count, max })?;
    if n.saturating_mul(2) > cur.reader.remaining() {
        return Err(EnvelopeError::Truncated { field: "metadata" });
    }
    let mut keys: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        let key = cur.str("metadata key")?;
        cur.str("metadata value")?;
        if keys.contains(&key) {
            return Err(EnvelopeError::DuplicateMetadataKey);
        }
        keys.push(key);
    }
    Ok(())
}
