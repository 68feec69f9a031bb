//! Length-prefixed framing: a 4-byte big-endian length, then that many
//! bytes. [`FrameEncoder`] writes frames into a caller's buffer;
//! [`FrameDecoder`] is fed bytes as they arrive (sans-IO) and hands out whole
//! frames. A length above the configured maximum is refused as soon as its
//! four bytes are seen, before anything is allocated for it.
//!
//! A fixed-width prefix (rather than a varint) lets a sender reserve it,
//! write the envelope and payload after it, and patch the length in place:
//! see [`FrameEncoder::begin`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Framing limits. Both ends of a connection should use the same values.
///
/// # Examples
///
/// ```
/// # use plexus_codecs::FrameConfig;
/// let config = FrameConfig { max_frame: 64 * 1024, ..FrameConfig::default() };
/// assert_eq!(config.max_frame, 65_536);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameConfig {
    /// Largest frame body accepted or written, in bytes (prefix excluded).
    /// Values above `u32::MAX` act as `u32::MAX`. Default 1 MiB.
    pub max_frame: usize,
    /// Smallest buffer the decoder allocates at a time, so a stream of small
    /// frames does not allocate per frame. Capped at `max_frame + 4`.
    /// Default 8 KiB.
    pub min_alloc: usize,
}

impl FrameConfig {
    /// The default maximum frame size: 1 MiB.
    pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

    /// `max_frame` as actually enforced.
    const fn limit(&self) -> usize {
        if self.max_frame > u32::MAX as usize {
            u32::MAX as usize
        } else {
            self.max_frame
        }
    }
}

impl Default for FrameConfig {
    fn default() -> Self {
        Self {
            max_frame: Self::DEFAULT_MAX_FRAME,
            min_alloc: 8 * 1024,
        }
    }
}

/// Where a frame started in the output buffer; returned by
/// [`FrameEncoder::begin`], consumed by [`FrameEncoder::finish`].
#[derive(Debug)]
#[must_use = "call FrameEncoder::finish to write the length prefix"]
pub struct FrameStart {
    at: usize,
}

/// Writes length-prefixed frames into a caller's buffer.
///
/// # Examples
///
/// ```
/// # use bytes::BytesMut;
/// # use plexus_codecs::{FrameConfig, FrameEncoder};
/// # fn main() -> Result<(), plexus_codecs::FrameError> {
/// let encoder = FrameEncoder::new(FrameConfig::default());
/// let mut out = BytesMut::new();
/// encoder.encode(b"hello", &mut out)?;
/// assert_eq!(&out[..], b"\0\0\0\x05hello");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    max_frame: usize,
}

impl FrameEncoder {
    /// An encoder enforcing `config.max_frame`.
    pub const fn new(config: FrameConfig) -> Self {
        Self {
            max_frame: config.limit(),
        }
    }

    /// Appends `body` as one frame.
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`] if `body` exceeds the maximum; `dst` is
    /// unchanged.
    pub fn encode(&self, body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = self.check(body.len())?;
        dst.reserve(LEN_PREFIX + body.len());
        dst.put_u32(len);
        dst.extend_from_slice(body);
        Ok(())
    }

    /// Starts a frame whose body the caller appends to `dst` next (an
    /// envelope header, then a payload straight from a codec); reserves the
    /// prefix. Call [`finish`](Self::finish) with the result.
    pub fn begin(&self, dst: &mut BytesMut) -> FrameStart {
        let at = dst.len();
        dst.put_u32(0);
        FrameStart { at }
    }

    /// Ends the frame started at `start`: writes its length prefix.
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`] if the body grew past the maximum; `dst` is
    /// truncated back to where the frame started.
    pub fn finish(&self, start: FrameStart, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body = dst.len().saturating_sub(start.at + LEN_PREFIX);
        match self.check(body) {
            Ok(len) => {
                dst[start.at..start.at + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Err(err) => {
                dst.truncate(start.at);
                Err(err)
            }
        }
    }

    fn check(&self, len: usize) -> Result<u32, FrameError> {
        u32::try_from(len)
            .ok()
            .filter(|_| len <= self.max_frame)
            .ok_or(FrameError::Oversized {
                len: len as u64,
                max: self.max_frame,
            })
    }
}

/// Splits one whole frame off the front of `src`, if it holds one.
///
/// For callers that read straight into their own `BytesMut` (zero copy: the
/// frame is `src`'s memory). The length is checked against `max_frame` as
/// soon as the prefix is present, before anything is reserved for it; a
/// valid but incomplete frame reserves room for the rest in `src`.
///
/// # Errors
///
/// [`FrameError::Oversized`] for a length above `max_frame`; the stream
/// cannot be resynchronised after it.
///
/// # Examples
///
/// ```
/// # use bytes::BytesMut;
/// # use plexus_codecs::split_frame;
/// let mut buf = BytesMut::from(&b"\0\0\0\x02hi\0\0"[..]);
/// assert_eq!(split_frame(&mut buf, 16).unwrap().as_deref(), Some(&b"hi"[..]));
/// assert_eq!(split_frame(&mut buf, 16).unwrap(), None);
/// assert!(split_frame(&mut BytesMut::from(&b"\xff\xff\xff\xff"[..]), 16).is_err());
/// ```
pub fn split_frame(src: &mut BytesMut, max_frame: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(len) = peek_len(src, max_frame)? else {
        return Ok(None);
    };
    if src.len() < LEN_PREFIX + len {
        src.reserve(LEN_PREFIX + len - src.len());
        return Ok(None);
    }
    src.advance(LEN_PREFIX);
    Ok(Some(src.split_to(len).freeze()))
}

/// The validated body length of the frame at the front of `src`, if its
/// prefix has arrived.
fn peek_len(src: &[u8], max_frame: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = src.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let mut raw = [0u8; LEN_PREFIX];
    raw.copy_from_slice(prefix);
    let len = u32::from_be_bytes(raw);
    match usize::try_from(len) {
        Ok(len) if len <= max_frame => Ok(Some(len)),
        _ => Err(FrameError::Oversized {
            len: u64::from(len),
            max: max_frame,
        }),
    }
}

/// Reassembles frames from bytes fed in arbitrary chunks.
///
/// Sans-IO: the transport reads from its socket and calls
/// [`push`](Self::push), then drains [`next_frame`](Self::next_frame). The
/// decoder never holds more than `max_frame + 4` bytes, and its buffer's
/// capacity never exceeds that either ([`buffered_capacity`](Self::buffered_capacity)):
/// `push` takes only what fits and says how much it took.
///
/// # Examples
///
/// ```
/// # use plexus_codecs::{FrameConfig, FrameDecoder};
/// # fn main() -> Result<(), plexus_codecs::FrameError> {
/// let mut decoder = FrameDecoder::new(FrameConfig::default());
/// let mut input: &[u8] = b"\0\0\0\x03abc\0\0\0\x01z";
/// let mut frames = Vec::new();
/// while !input.is_empty() {
///     let taken = decoder.push(input);
///     input = &input[taken..];
///     while let Some(frame) = decoder.next_frame()? {
///         frames.push(frame);
///     }
/// }
/// decoder.finish()?; // no partial frame left
/// assert_eq!(frames, [&b"abc"[..], &b"z"[..]]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
    min_alloc: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder enforcing `config.max_frame`. Allocates nothing until fed.
    pub fn new(config: FrameConfig) -> Self {
        let max_frame = config.limit();
        Self {
            buf: BytesMut::new(),
            max_frame,
            min_alloc: config.min_alloc.min(max_frame.saturating_add(LEN_PREFIX)),
            failed: None,
        }
    }

    /// Most bytes the decoder ever buffers: one maximal frame and its prefix.
    pub const fn buffer_limit(&self) -> usize {
        self.max_frame.saturating_add(LEN_PREFIX)
    }

    /// Copies as much of `data` as fits into the buffer and returns how many
    /// bytes it took. Feed the rest after draining [`next_frame`](Self::next_frame);
    /// while a whole frame is buffered the decoder may take nothing.
    ///
    /// After an error it takes nothing and `next_frame` repeats the error.
    #[must_use = "bytes not taken must be pushed again after draining frames"]
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let room = self.buffer_limit().saturating_sub(self.buf.len());
        let take = data.len().min(room);
        if take == 0 {
            return 0;
        }
        if self.buf.capacity() - self.buf.len() < take {
            self.grow(take);
        }
        self.buf.extend_from_slice(&data[..take]);
        take
    }

    /// Replaces the buffer by one with room for `take` more bytes, the rest
    /// of the current frame (once its length is known and valid) and at
    /// least `min_alloc`, never more than [`buffer_limit`](Self::buffer_limit).
    ///
    /// A fresh allocation rather than `reserve`: `reserve` may double, and
    /// frames already handed out keep the old buffer alive anyway.
    fn grow(&mut self, take: usize) {
        let current_frame = match peek_len(&self.buf, self.max_frame) {
            Ok(Some(len)) => LEN_PREFIX + len,
            _ => 0,
        };
        let want = (self.buf.len() + take)
            .max(current_frame)
            .max(self.min_alloc)
            .min(self.buffer_limit());
        let mut fresh = BytesMut::with_capacity(want);
        fresh.extend_from_slice(&self.buf);
        self.buf = fresh;
    }

    /// The next whole frame, if one is buffered.
    ///
    /// The frame shares the decoder's buffer (no copy).
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`] once a length prefix above the maximum has
    /// arrived; the decoder stays failed and the connection should be closed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let Some(len) = peek_len(&self.buf, self.max_frame).inspect_err(|err| {
            self.buf = BytesMut::new();
            self.failed = Some(err.clone());
        })?
        else {
            return Ok(None);
        };
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(LEN_PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The next whole frame straight out of `data`, a chunk as read, when
    /// nothing is buffered: the frame is a slice of `data` (no copy) and
    /// `data` moves past it. `Ok(None)` when a partial frame is buffered or
    /// `data` does not start with a whole frame: [`push`](Self::push) it
    /// then. Limits and errors are those of [`next_frame`](Self::next_frame).
    ///
    /// # Errors
    ///
    /// [`FrameError::Oversized`], as `next_frame`; the decoder stays failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use plexus_codecs::{FrameConfig, FrameDecoder};
    /// # fn main() -> Result<(), plexus_codecs::FrameError> {
    /// let mut decoder = FrameDecoder::new(FrameConfig::default());
    /// let mut chunk = Bytes::from_static(b"\0\0\0\x03abc\0\0\0\x02z");
    /// assert_eq!(decoder.next_frame_from(&mut chunk)?.as_deref(), Some(&b"abc"[..]));
    /// assert_eq!(decoder.next_frame_from(&mut chunk)?, None); // partial: push it
    /// let taken = decoder.push(&chunk);
    /// assert_eq!(taken, 5);
    /// # Ok(()) }
    /// ```
    pub fn next_frame_from(&mut self, data: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.buf.is_empty() {
            return Ok(None);
        }
        let Some(len) = peek_len(data, self.max_frame).inspect_err(|err| {
            self.failed = Some(err.clone());
        })?
        else {
            return Ok(None);
        };
        if data.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        let mut frame = data.split_to(LEN_PREFIX + len);
        frame.advance(LEN_PREFIX);
        Ok(Some(frame))
    }

    /// Call at end of stream: fails if a partial frame is buffered.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] with the partial frame's size, or the error
    /// the decoder failed with.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buf.len(),
            })
        }
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Capacity of the buffer being filled (always ≤ [`buffer_limit`](Self::buffer_limit)).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests;
