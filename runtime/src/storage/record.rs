//! Record codec: the on-disk frame, the write-side [`Batch`] builder and the
//! read-side [`RecordRef`]. Pure byte work, no I/O.
//!
//! Frame layout (all integers little-endian), see the module docs of
//! [`storage`](super) for the full description:
//!
//! ```text
//! 0   u32  len          bytes after this field (crc .. end of value)
//! 4   u32  crc          CRC32C of bytes [8, 4 + len)
//! 8   u64  offset
//! 16  u64  timestamp    milliseconds, chosen by the caller
//! 24  u32  key_len      u32::MAX = no key
//! 28  ..   key
//!     u32  header_count
//!     per header: u16 name_len, name (UTF-8), u32 value_len, value
//!     ..   value        the rest of the frame
//! ```

use super::error::RecordError;

/// Bytes of the frame before the key: len, crc, offset, timestamp, key_len.
pub(super) const FIXED_PREFIX: usize = 28;
/// Smallest possible frame: fixed prefix + header count, no key, no value.
pub(super) const MIN_FRAME: usize = FIXED_PREFIX + 4;
/// Hard upper bound of one encoded frame, whatever the configuration says.
pub const MAX_FRAME_BYTES: usize = 1 << 30;
const NO_KEY: u32 = u32::MAX;

/// One header of a record: a UTF-8 name and opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header name; at most 65,535 bytes.
    pub name: String,
    /// Header value.
    pub value: Vec<u8>,
}

/// An owned record, convenient for tests and small call sites. Hot paths use
/// [`Batch`] to encode and [`RecordRef`] to read without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Record {
    /// Offset in the log; ignored when appending (the log assigns it).
    pub offset: u64,
    /// Milliseconds since an epoch the caller chooses; the log never reads a clock.
    pub timestamp: u64,
    /// Optional key.
    pub key: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Payload.
    pub value: Vec<u8>,
}

/// Records encoded for appending, in one contiguous buffer (no allocation
/// per record). Offsets and checksums are filled in by the log when it
/// appends the batch. Reuse a batch with [`Batch::clear`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    buf: Vec<u8>,
    count: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` encoded bytes
    /// (a record takes 32 bytes plus key, headers and value).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Add a record without headers.
    ///
    /// # Errors
    /// [`RecordError::TooLarge`] if the encoded record exceeds [`MAX_FRAME_BYTES`].
    pub fn push(
        &mut self,
        timestamp: u64,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(), RecordError> {
        self.push_with_headers(timestamp, key, &[], value)
    }

    /// Add a record with headers given as `(name, value)` pairs.
    ///
    /// # Errors
    /// [`RecordError::TooLarge`] if the encoded record exceeds
    /// [`MAX_FRAME_BYTES`]; [`RecordError::HeaderNameTooLong`] if a name
    /// exceeds 65,535 bytes. The batch is unchanged on error.
    pub fn push_with_headers(
        &mut self,
        timestamp: u64,
        key: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        value: &[u8],
    ) -> Result<(), RecordError> {
        let mut size = MIN_FRAME
            .saturating_add(key.map_or(0, <[u8]>::len))
            .saturating_add(value.len());
        for (name, v) in headers {
            if name.len() > usize::from(u16::MAX) {
                return Err(RecordError::HeaderNameTooLong { len: name.len() });
            }
            size = size.saturating_add(6 + name.len()).saturating_add(v.len());
        }
        let key_len = match key {
            None => NO_KEY,
            Some(k) => u32::try_from(k.len()).ok().filter(|&l| l != NO_KEY).ok_or(
                RecordError::TooLarge {
                    size,
                    max: MAX_FRAME_BYTES,
                },
            )?,
        };
        if size > MAX_FRAME_BYTES {
            return Err(RecordError::TooLarge {
                size,
                max: MAX_FRAME_BYTES,
            });
        }
        // All lengths below fit in u32/u16: checked against MAX_FRAME_BYTES (< 2^32).
        let len = (size - 4) as u32;
        let b = &mut self.buf;
        b.reserve(size);
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&[0; 12]); // crc + offset, patched on append
        b.extend_from_slice(&timestamp.to_le_bytes());
        b.extend_from_slice(&key_len.to_le_bytes());
        if let Some(k) = key {
            b.extend_from_slice(k);
        }
        b.extend_from_slice(&(headers.len() as u32).to_le_bytes());
        for (name, v) in headers {
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(v);
        }
        b.extend_from_slice(value);
        self.count += 1;
        Ok(())
    }

    /// Add an owned [`Record`] (its `offset` is ignored).
    ///
    /// # Errors
    /// As [`Batch::push_with_headers`].
    pub fn push_record(&mut self, record: &Record) -> Result<(), RecordError> {
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
            .collect();
        self.push_with_headers(
            record.timestamp,
            record.key.as_deref(),
            &headers,
            &record.value,
        )
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size in bytes, as it will be written.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Remove every record, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }

    /// The encoded frames (offset and crc zeroed).
    pub(super) fn frames(&self) -> &[u8] {
        &self.buf
    }
}

/// Why bytes do not hold a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameFault {
    /// The length field is out of range.
    BadLength,
    /// The checksum does not match.
    Checksum,
    /// Checksum fine but the inner structure is inconsistent.
    Malformed,
}

impl FrameFault {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::BadLength => "length field out of range",
            Self::Checksum => "checksum mismatch",
            Self::Malformed => "malformed record structure",
        }
    }
}

/// Shape of a validated frame: enough to slice it without re-parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameInfo {
    /// Total bytes of the frame, length field included.
    pub len: u32,
    pub offset: u64,
    pub timestamp: u64,
    /// `u32::MAX` = no key.
    pub key_len: u32,
    pub headers_len: u32,
    pub header_count: u32,
}

/// Result of looking at the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoded {
    /// A valid frame.
    Frame(FrameInfo),
    /// Not enough bytes; `need` is the total frame size when known (else 0).
    Incomplete { need: usize },
    /// Not a valid frame.
    Fault(FrameFault),
}

pub(super) fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

pub(super) fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

pub(super) fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(s))
}

/// Total frame length announced by the length field at the start of `b`,
/// if the field is readable and within `[MIN_FRAME, max_frame]`.
pub(super) fn announced_len(b: &[u8], max_frame: usize) -> Option<usize> {
    let len = (read_u32(b, 0)? as usize).checked_add(4)?;
    (MIN_FRAME..=max_frame).contains(&len).then_some(len)
}

/// Decode and validate the frame at the start of `b`. Never panics.
pub(super) fn decode(b: &[u8], max_frame: usize) -> Decoded {
    if b.len() < 4 {
        return Decoded::Incomplete { need: 0 };
    }
    let Some(len) = announced_len(b, max_frame) else {
        return Decoded::Fault(FrameFault::BadLength);
    };
    let Some(frame) = b.get(..len) else {
        return Decoded::Incomplete { need: len };
    };
    let stored = read_u32(frame, 4);
    let body = frame.get(8..).unwrap_or_default();
    if stored != Some(crc32c::crc32c(body)) {
        return Decoded::Fault(FrameFault::Checksum);
    }
    match parse_body(frame) {
        Some(info) => Decoded::Frame(info),
        None => Decoded::Fault(FrameFault::Malformed),
    }
}

/// Parse the structure of a checksum-valid frame (exactly one frame long).
fn parse_body(frame: &[u8]) -> Option<FrameInfo> {
    let len = frame.len();
    let offset = read_u64(frame, 8)?;
    let timestamp = read_u64(frame, 16)?;
    let key_len = read_u32(frame, 24)?;
    let mut at = FIXED_PREFIX;
    if key_len != NO_KEY {
        at = at.checked_add(key_len as usize)?;
    }
    let header_count = read_u32(frame, at)?;
    at += 4;
    let headers_start = at;
    for _ in 0..header_count {
        let name_len = usize::from(read_u16(frame, at)?);
        let name = frame.get(at + 2..(at + 2).checked_add(name_len)?)?;
        std::str::from_utf8(name).ok()?;
        at += 2 + name_len;
        let value_len = read_u32(frame, at)? as usize;
        at = at.checked_add(4)?.checked_add(value_len)?;
        if at > len {
            return None;
        }
    }
    if at > len {
        return None;
    }
    Some(FrameInfo {
        len: u32::try_from(len).ok()?,
        offset,
        timestamp,
        key_len,
        headers_len: u32::try_from(at - headers_start).ok()?,
        header_count,
    })
}

/// Fill in offset and checksum of a frame built by [`Batch`]
/// (`frame` is exactly one frame).
pub(super) fn seal(frame: &mut [u8], offset: u64) {
    if let Some(slot) = frame.get_mut(8..16) {
        slot.copy_from_slice(&offset.to_le_bytes());
    }
    let crc = crc32c::crc32c(frame.get(8..).unwrap_or_default());
    if let Some(slot) = frame.get_mut(4..8) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
}

/// A record borrowed from a [`ReadBatch`](super::ReadBatch). Valid by
/// construction: its checksum was verified when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset in the log.
    pub offset: u64,
    /// Timestamp given when the record was appended.
    pub timestamp: u64,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Headers.
    pub headers: Headers<'a>,
    /// Payload.
    pub value: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// View of a validated frame. Out-of-range slices (impossible for a
    /// validated frame) yield empty fields rather than a panic.
    pub(super) fn from_frame(frame: &'a [u8], info: &FrameInfo) -> Self {
        let (key, after_key) = if info.key_len == NO_KEY {
            (None, FIXED_PREFIX)
        } else {
            let end = FIXED_PREFIX + info.key_len as usize;
            (Some(frame.get(FIXED_PREFIX..end).unwrap_or_default()), end)
        };
        let h_start = after_key + 4;
        let h_end = h_start + info.headers_len as usize;
        Self {
            offset: info.offset,
            timestamp: info.timestamp,
            key,
            headers: Headers {
                raw: frame.get(h_start..h_end).unwrap_or_default(),
                count: info.header_count,
            },
            value: frame.get(h_end..).unwrap_or_default(),
        }
    }

    /// Copy into an owned [`Record`].
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| Header {
                    name: n.to_owned(),
                    value: v.to_vec(),
                })
                .collect(),
            value: self.value.to_vec(),
        }
    }
}

/// The headers of a [`RecordRef`], decoded lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    raw: &'a [u8],
    count: u32,
}

impl<'a> Headers<'a> {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there is no header.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            raw: self.raw,
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over `(name, value)` header pairs.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    raw: &'a [u8],
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let raw = self.raw;
        let n = usize::from(read_u16(raw, 0)?);
        let name = std::str::from_utf8(raw.get(2..2 + n)?).ok()?;
        let v = read_u32(raw, 2 + n)? as usize;
        let value = raw.get(6 + n..(6 + n).checked_add(v)?)?;
        self.raw = raw.get(6 + n + v..)?;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(vec(any::<u8>(), 0..40)),
            vec(("[a-z]{0,8}", vec(any::<u8>(), 0..16)), 0..4),
            vec(any::<u8>(), 0..300),
        )
            .prop_map(|(offset, timestamp, key, headers, value)| Record {
                offset,
                timestamp,
                key,
                headers: headers
                    .into_iter()
                    .map(|(name, value)| Header { name, value })
                    .collect(),
                value,
            })
    }

    #[test]
    fn empty_record_is_min_frame() {
        let mut b = Batch::new();
        b.push(7, None, b"").unwrap();
        assert_eq!(b.encoded_len(), MIN_FRAME);
        let mut frame = b.frames().to_vec();
        seal(&mut frame, 3);
        let Decoded::Frame(info) = decode(&frame, MAX_FRAME_BYTES) else {
            panic!("not a frame")
        };
        assert_eq!((info.offset, info.timestamp), (3, 7));
    }

    #[test]
    fn zeroes_are_not_a_frame() {
        assert_eq!(
            decode(&[0; 64], MAX_FRAME_BYTES),
            Decoded::Fault(FrameFault::BadLength)
        );
    }

    proptest! {
        #[test]
        fn round_trip(records in vec(arb_record(), 1..8)) {
            let mut b = Batch::new();
            for r in &records { b.push_record(r).unwrap(); }
            prop_assert_eq!(b.len(), records.len());
            let mut buf = b.frames().to_vec();
            // seal each frame with the record's own offset
            let mut at = 0;
            for r in &records {
                let len = announced_len(&buf[at..], MAX_FRAME_BYTES).unwrap();
                seal(&mut buf[at..at + len], r.offset);
                at += len;
            }
            prop_assert_eq!(at, buf.len());
            let mut at = 0;
            for r in &records {
                let Decoded::Frame(info) = decode(&buf[at..], MAX_FRAME_BYTES) else {
                    return Err(TestCaseError::fail("decode failed"));
                };
                let frame = &buf[at..at + info.len as usize];
                prop_assert_eq!(&RecordRef::from_frame(frame, &info).to_record(), r);
                // every strict prefix is incomplete, never a frame
                let cut = frame.len() / 2;
                let is_incomplete =
                    matches!(decode(&frame[..cut], MAX_FRAME_BYTES), Decoded::Incomplete { .. });
                prop_assert!(is_incomplete);
                at += info.len as usize;
            }
        }

        #[test]
        fn decoder_never_panics(bytes in vec(any::<u8>(), 0..512), max in 0usize..2048) {
            let _ = decode(&bytes, max);
        }

        #[test]
        fn flipped_bit_is_detected(r in arb_record(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut b = Batch::new();
            b.push_record(&r).unwrap();
            let mut buf = b.frames().to_vec();
            seal(&mut buf, r.offset);
            let i = pos.index(buf.len());
            buf[i] ^= 1 << bit;
            let is_frame = matches!(decode(&buf, MAX_FRAME_BYTES), Decoded::Frame(_));
            prop_assert!(!is_frame);
        }
    }
}
