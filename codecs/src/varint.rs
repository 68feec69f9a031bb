//! LEB128 varints and a bounds-checked cursor: the two primitives every
//! hand-written layout in this crate (envelope, handshake) is built from.
//!
//! Private: the layouts are public, these helpers are not.

use bytes::{BufMut, BytesMut};

/// Longest LEB128 encoding of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Appends `value` as an unsigned LEB128 varint (1 byte below 128).
#[inline]
pub(crate) fn put_varint(dst: &mut BytesMut, mut value: u64) {
    if value < 0x80 {
        dst.put_u8(value as u8);
        return;
    }
    let mut buf = [0u8; MAX_VARINT_LEN];
    let mut n = 0;
    while value >= 0x80 {
        buf[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    buf[n] = value as u8;
    dst.extend_from_slice(&buf[..=n]);
}

/// Number of bytes [`put_varint`] writes for `value`.
#[inline]
pub(crate) const fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Why a read from a [`Reader`] failed; each layout maps it to its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFault {
    /// Fewer bytes remain than the field needs.
    Truncated,
    /// A varint is longer than 10 bytes or does not fit the target integer.
    Overflow,
}

/// A cursor over a byte slice that never reads past its end.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) const fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, ReadFault> {
        let byte = *self.buf.get(self.pos).ok_or(ReadFault::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadFault> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// The next `len` bytes; checks the length against what is left before
    /// touching anything, so a huge claimed length costs nothing.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ReadFault> {
        if len > self.remaining() {
            return Err(ReadFault::Truncated);
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, ReadFault> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let byte = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(ReadFault::Overflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadFault::Overflow)
    }

    #[inline]
    pub(crate) fn varint_u32(&mut self) -> Result<u32, ReadFault> {
        u32::try_from(self.varint()?).map_err(|_| ReadFault::Overflow)
    }

    /// A varint length that must fit in what is left of the buffer.
    #[inline]
    pub(crate) fn len_prefix(&mut self) -> Result<usize, ReadFault> {
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => Ok(len),
            _ => Err(ReadFault::Truncated),
        }
    }

    /// A varint-length-prefixed byte string.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ReadFault> {
        let len = self.len_prefix()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(value in any::<u64>()) {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            prop_assert_eq!(buf.len(), varint_len(value));
            let mut reader = Reader::new(&buf);
            prop_assert_eq!(reader.varint(), Ok(value));
            prop_assert_eq!(reader.remaining(), 0);
        }

        #[test]
        fn varint_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = Reader::new(&bytes).varint();
        }
    }

    #[test]
    fn eleven_byte_varint_overflows() {
        let bytes = [0xffu8; 11];
        assert_eq!(Reader::new(&bytes).varint(), Err(ReadFault::Overflow));
        let mut max = BytesMut::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
        let mut too_big = max.to_vec();
        too_big[9] = 0x02;
        assert_eq!(Reader::new(&too_big).varint(), Err(ReadFault::Overflow));
    }

    #[test]
    fn huge_length_prefix_is_truncated_not_allocated() {
        let mut buf = BytesMut::new();
        put_varint(&mut buf, u64::MAX);
        assert_eq!(Reader::new(&buf).bytes(), Err(ReadFault::Truncated));
    }
}
