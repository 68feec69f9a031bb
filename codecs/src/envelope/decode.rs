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

/// A reader over a frame that hands out zero-copy slices of it.
struct Cursor<'a> {
    frame: &'a Bytes,
    reader: Reader<'a>,
}

impl Cursor<'_> {
    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        self.reader.u8().map_err(|f| EnvelopeError::read(f, field))
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, EnvelopeError> {
        self.reader
            .varint()
            .map_err(|f| EnvelopeError::read(f, field))
    }

    fn wire_str(&mut self, field: &'static str) -> Result<WireStr, EnvelopeError> {
        let raw = self
            .reader
            .bytes()
            .map_err(|f| EnvelopeError::read(f, field))?;
        let end = self.reader.pos();
        WireStr::from_utf8(self.frame.slice(end - raw.len()..end))
            .map_err(|_| EnvelopeError::InvalidUtf8 { field })
    }
}

impl Envelope {
    /// Reads an envelope from one whole frame.
    ///
    /// Names, metadata and the payload are slices of `frame` (no copy); the
    /// only allocation is the metadata list, when there is metadata. Every
    /// length is checked against the bytes actually present before use, so
    /// hostile input costs at most its own size.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] for any malformed input; never panics.
    pub fn decode(frame: Bytes) -> Result<Self, EnvelopeError> {
        let mut cur = Cursor {
            frame: &frame,
            reader: Reader::new(&frame),
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
            let name = cur.wire_str("message name")?;
            let version = cur
                .reader
                .varint_u32()
                .map_err(|f| EnvelopeError::read(f, "message version"))?;
            Some(MessageId { name, version })
        } else {
            None
        };

        let target = if flags & FLAG_TARGET_NAME != 0 {
            Some(Target::Name(cur.wire_str("target name")?))
        } else if flags & FLAG_TARGET_ID != 0 {
            Some(Target::Id(cur.varint("target id")?))
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
            decode_metadata(&mut cur)?
        } else {
            Metadata::new()
        };

        let payload = frame.slice(cur.reader.pos()..);
        Ok(Self {
            kind,
            correlation,
            from_callee: flags & FLAG_FROM_CALLEE != 0,
            message,
            target,
            deadline,
            traceparent,
            metadata,
            payload,
        })
    }
}

fn decode_metadata(cur: &mut Cursor<'_>) -> Result<Metadata, EnvelopeError> {
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
    let mut entries: Vec<(WireStr, WireStr)> = Vec::with_capacity(n);
    for _ in 0..n {
        let key = cur.wire_str("metadata key")?;
        let value = cur.wire_str("metadata value")?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(EnvelopeError::DuplicateMetadataKey);
        }
        entries.push((key, value));
    }
    Ok(Metadata::from_entries(entries))
}
