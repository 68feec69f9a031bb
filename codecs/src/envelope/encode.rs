//! Writing an [`Envelope`] (layout in the parent module's docs).

use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::{Envelope, HEADER_VERSION, Target};
use crate::trace::TraceParent;
use crate::varint::{put_varint, varint_len};

pub(super) const FLAG_MESSAGE: u8 = 1 << 0;
pub(super) const FLAG_TARGET_NAME: u8 = 1 << 1;
pub(super) const FLAG_TARGET_ID: u8 = 1 << 2;
pub(super) const FLAG_DEADLINE: u8 = 1 << 3;
pub(super) const FLAG_TRACEPARENT: u8 = 1 << 4;
pub(super) const FLAG_METADATA: u8 = 1 << 5;
pub(super) const FLAG_FROM_CALLEE: u8 = 1 << 6;
pub(super) const KNOWN_FLAGS: u8 = (1 << 7) - 1;

/// A deadline budget in whole microseconds, saturating.
fn budget_micros(budget: Duration) -> u64 {
    u64::try_from(budget.as_micros()).unwrap_or(u64::MAX)
}

fn str_len(s: &str) -> usize {
    varint_len(s.len() as u64) + s.len()
}

fn put_str(dst: &mut BytesMut, s: &str) {
    put_varint(dst, s.len() as u64);
    dst.extend_from_slice(s.as_bytes());
}

impl Envelope {
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.message.is_some() {
            flags |= FLAG_MESSAGE;
        }
        match self.target {
            Some(Target::Name(_)) => flags |= FLAG_TARGET_NAME,
            Some(Target::Id(_)) => flags |= FLAG_TARGET_ID,
            None => {}
        }
        if self.deadline.is_some() {
            flags |= FLAG_DEADLINE;
        }
        if self.traceparent.is_some() {
            flags |= FLAG_TRACEPARENT;
        }
        if !self.metadata.is_empty() {
            flags |= FLAG_METADATA;
        }
        if self.from_callee {
            flags |= FLAG_FROM_CALLEE;
        }
        flags
    }

    /// Bytes [`encode_header`](Self::encode_header) writes.
    pub fn header_len(&self) -> usize {
        let mut len = 3 + varint_len(self.correlation);
        if let Some(message) = &self.message {
            len += str_len(&message.name) + varint_len(u64::from(message.version));
        }
        len += match &self.target {
            Some(Target::Name(name)) => str_len(name),
            Some(Target::Id(id)) => varint_len(*id),
            None => 0,
        };
        if let Some(budget) = self.deadline {
            len += varint_len(budget_micros(budget));
        }
        if self.traceparent.is_some() {
            len += TraceParent::WIRE_LEN;
        }
        if !self.metadata.is_empty() {
            len += varint_len(self.metadata.len() as u64);
            for (key, value) in self.metadata.iter() {
                len += str_len(key) + str_len(value);
            }
        }
        len
    }

    /// Bytes [`encode`](Self::encode) writes: header and payload.
    pub fn encoded_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Appends the header and the payload to `dst`.
    ///
    /// Reserve [`encoded_len`](Self::encoded_len) first (or let a
    /// reused buffer keep its capacity) and this does not allocate.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        self.encode_header(dst);
        dst.extend_from_slice(&self.payload);
    }

    /// Appends the header only, ignoring [`payload`](Self::payload).
    ///
    /// The payload has no length prefix (it runs to the end of the frame), so
    /// a sender can encode its message with a [`Codec`](crate::Codec) straight
    /// after the header, into the same buffer, with no intermediate copy:
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use plexus_codecs::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let frames = FrameEncoder::new(FrameConfig::default());
    /// let mut out = BytesMut::with_capacity(4096);
    ///
    /// let start = frames.begin(&mut out);
    /// let header = Envelope::new(Kind::Tell, 0)
    ///     .with_message(MessageId::new("metrics.Sample", 1))
    ///     .with_target(Target::Id(3));
    /// header.encode_header(&mut out);
    /// CodecKind::Postcard.encode(&(17u32, 2.5f64), &mut out)?;
    /// frames.finish(start, &mut out)?;
    ///
    /// let mut decoder = FrameDecoder::new(FrameConfig::default());
    /// let _ = decoder.push(&out);
    /// let frame = decoder.next_frame()?.ok_or("no frame")?;
    /// let env = Envelope::decode(frame)?;
    /// assert_eq!(CodecKind::Postcard.decode::<(u32, f64)>(&env.payload)?, (17, 2.5));
    /// # Ok(()) }
    /// ```
    pub fn encode_header(&self, dst: &mut BytesMut) {
        dst.put_u8(HEADER_VERSION);
        dst.put_u8(self.kind.to_u8());
        dst.put_u8(self.flags());
        put_varint(dst, self.correlation);
        if let Some(message) = &self.message {
            put_str(dst, &message.name);
            put_varint(dst, u64::from(message.version));
        }
        match &self.target {
            Some(Target::Name(name)) => put_str(dst, name),
            Some(Target::Id(id)) => put_varint(dst, *id),
            None => {}
        }
        if let Some(budget) = self.deadline {
            put_varint(dst, budget_micros(budget));
        }
        if let Some(traceparent) = &self.traceparent {
            dst.extend_from_slice(&traceparent.to_bytes());
        }
        if !self.metadata.is_empty() {
            put_varint(dst, self.metadata.len() as u64);
            for (key, value) in self.metadata.iter() {
                put_str(dst, key);
                put_str(dst, value);
            }
        }
    }
}
