//! The [`Codec`] trait (bytes ↔ values for serde types) and the codecs:
//! [`Postcard`] (default), [`Json`] and, behind the `bincode` feature,
//! `Bincode`. [`CodecKind`] names a codec on the wire and dispatches to it.
//!
//! # Why generic methods and an enum, not a trait object
//!
//! serde's `Serialize`/`Deserialize` are not object-safe, so a `dyn Codec`
//! would need `erased-serde`: one more dependency and a virtual call per
//! serialized field, on the path that must move millions of small messages a
//! second. The set of codecs is closed anyway (the handshake names the codec
//! in one byte), so [`CodecKind`] implements [`Codec`] by a `match`: the
//! transport picks the codec at runtime from the handshake and pays one
//! well-predicted branch per message, while code that knows its codec
//! statically can use [`Postcard`] or [`Json`] directly.
//!
//! Framing is not a codec's job: a codec writes exactly one value's bytes.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::CodecError;

/// Turns serde values into bytes and back.
///
/// Encoding appends to a caller-provided buffer (so a header, the payload and
/// the frame prefix can share one allocation); on error the buffer is left as
/// it was. Decoding borrows the input, so messages with `&str`/`&[u8]` fields
/// can be zero-copy, and refuses trailing bytes: a payload that decodes as a
/// prefix of another type is a [`CodecError::TrailingBytes`], not a silent
/// misread.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use plexus_codecs::{Codec, CodecKind};
///
/// # fn main() -> Result<(), plexus_codecs::CodecError> {
/// let codec = CodecKind::Json; // chosen at runtime, e.g. from the handshake
/// let mut buf = BytesMut::new();
/// codec.encode(&(7u32, "seven"), &mut buf)?;
/// assert_eq!(&buf[..], br#"[7,"seven"]"#);
/// let back: (u32, String) = codec.decode(&buf)?;
/// assert_eq!(back, (7, "seven".to_owned()));
/// # Ok(()) }
/// ```
pub trait Codec: fmt::Debug + Send + Sync + 'static {
    /// The wire identifier of this codec.
    fn kind(&self) -> CodecKind;

    /// Appends the encoding of `value` to `dst`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] if the format cannot represent the value,
    /// [`CodecError::Unavailable`] if the codec is not compiled in. `dst` is
    /// unchanged on error.
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError>;

    /// Decodes one `T` that must span all of `src`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] for bytes that are not a `T`,
    /// [`CodecError::TrailingBytes`] if bytes are left over,
    /// [`CodecError::Unavailable`] if the codec is not compiled in.
    fn decode<'de, T: Deserialize<'de>>(&self, src: &'de [u8]) -> Result<T, CodecError>;
}

/// Which codec a node sends with: named in the handshake by one byte.
///
/// Every variant exists in every build so that a peer's choice can be named
/// in an error; [`CodecKind::is_available`] says whether this build can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// postcard: compact, varint-based, the default.
    #[default]
    Postcard,
    /// serde_json: for humans and debugging.
    Json,
    /// bincode 2: only with the `bincode` cargo feature (unmaintained upstream).
    Bincode,
}

impl CodecKind {
    /// Every codec kind, compiled in or not.
    pub const ALL: [Self; 3] = [Self::Postcard, Self::Json, Self::Bincode];

    /// The byte that names this codec in the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_codecs::CodecKind;
    /// assert_eq!(CodecKind::from_id(CodecKind::Json.id()), Some(CodecKind::Json));
    /// ```
    pub const fn id(self) -> u8 {
        match self {
            Self::Postcard => 1,
            Self::Json => 2,
            Self::Bincode => 3,
        }
    }

    /// The codec named by `id`, if any.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Postcard),
            2 => Some(Self::Json),
            3 => Some(Self::Bincode),
            _ => None,
        }
    }

    /// Lowercase name, as in errors and feature flags.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Postcard => "postcard",
            Self::Json => "json",
            Self::Bincode => "bincode",
        }
    }

    /// Whether this build can encode and decode with this codec.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_codecs::CodecKind;
    /// assert!(CodecKind::Postcard.is_available());
    /// assert_eq!(CodecKind::Bincode.is_available(), cfg!(feature = "bincode"));
    /// ```
    pub const fn is_available(self) -> bool {
        match self {
            Self::Postcard | Self::Json => true,
            Self::Bincode => cfg!(feature = "bincode"),
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Codec for CodecKind {
    fn kind(&self) -> CodecKind {
        *self
    }

    #[inline]
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        match self {
            Self::Postcard => Postcard.encode(value, dst),
            Self::Json => Json.encode(value, dst),
            #[cfg(feature = "bincode")]
            Self::Bincode => Bincode.encode(value, dst),
            #[cfg(not(feature = "bincode"))]
            Self::Bincode => Err(CodecError::Unavailable { kind: *self }),
        }
    }

    #[inline]
    fn decode<'de, T: Deserialize<'de>>(&self, src: &'de [u8]) -> Result<T, CodecError> {
        match self {
            Self::Postcard => Postcard.decode(src),
            Self::Json => Json.decode(src),
            #[cfg(feature = "bincode")]
            Self::Bincode => Bincode.decode(src),
            #[cfg(not(feature = "bincode"))]
            Self::Bincode => Err(CodecError::Unavailable { kind: *self }),
        }
    }
}

/// Runs `write`; on error, truncates `dst` back to where it started.
fn rollback_on_error<E>(
    dst: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let start = dst.len();
    let result = write(dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

/// The postcard codec: compact varint encoding, the default.
///
/// # Examples
///
/// ```
/// # use bytes::BytesMut;
/// # use plexus_codecs::{Codec, Postcard};
/// # fn main() -> Result<(), plexus_codecs::CodecError> {
/// let mut buf = BytesMut::new();
/// Postcard.encode(&300u32, &mut buf)?;
/// assert_eq!(&buf[..], &[0xac, 0x02]);
/// assert_eq!(Postcard.decode::<u32>(&buf)?, 300);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postcard;

/// A postcard output flavor that appends straight into a `BytesMut`.
struct BytesMutFlavor<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for BytesMutFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl Codec for Postcard {
    fn kind(&self) -> CodecKind {
        CodecKind::Postcard
    }

    #[inline]
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        rollback_on_error(dst, |dst| {
            postcard::serialize_with_flavor(value, BytesMutFlavor(dst)).map_err(|e| {
                CodecError::Encode {
                    kind: CodecKind::Postcard,
                    source: Box::new(e),
                }
            })
        })
    }

    #[inline]
    fn decode<'de, T: Deserialize<'de>>(&self, src: &'de [u8]) -> Result<T, CodecError> {
        let (value, rest) = postcard::take_from_bytes(src).map_err(|e| CodecError::Decode {
            kind: CodecKind::Postcard,
            source: Box::new(e),
        })?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(CodecError::TrailingBytes {
                kind: CodecKind::Postcard,
                count: rest.len(),
            })
        }
    }
}

/// The serde_json codec: readable, larger and slower than postcard.
///
/// # Examples
///
/// ```
/// # use bytes::BytesMut;
/// # use plexus_codecs::{Codec, Json};
/// # fn main() -> Result<(), plexus_codecs::CodecError> {
/// let mut buf = BytesMut::new();
/// Json.encode(&vec![1, 2], &mut buf)?;
/// assert_eq!(&buf[..], b"[1,2]");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

impl Codec for Json {
    fn kind(&self) -> CodecKind {
        CodecKind::Json
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        rollback_on_error(dst, |dst| {
            serde_json::to_writer(dst.writer(), value).map_err(|e| CodecError::Encode {
                kind: CodecKind::Json,
                source: Box::new(e),
            })
        })
    }

    fn decode<'de, T: Deserialize<'de>>(&self, src: &'de [u8]) -> Result<T, CodecError> {
        // `from_slice` already rejects anything but whitespace after the value.
        serde_json::from_slice(src).map_err(|e| CodecError::Decode {
            kind: CodecKind::Json,
            source: Box::new(e),
        })
    }
}

/// The bincode 2 codec (`standard()` configuration: little endian, varints).
///
/// Only with the `bincode` cargo feature: bincode is unmaintained
/// (RUSTSEC-2025-0141) and 3.0.0 is a tombstone, so it is kept for
/// compatibility with existing bincode peers, not as a default.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bincode;

#[cfg(feature = "bincode")]
struct BytesMutWriter<'a>(&'a mut BytesMut);

#[cfg(feature = "bincode")]
impl bincode::enc::write::Writer for BytesMutWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(feature = "bincode")]
impl Codec for Bincode {
    fn kind(&self) -> CodecKind {
        CodecKind::Bincode
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        rollback_on_error(dst, |dst| {
            bincode::serde::encode_into_writer(
                value,
                BytesMutWriter(dst),
                bincode::config::standard(),
            )
            .map_err(|e| CodecError::Encode {
                kind: CodecKind::Bincode,
                source: Box::new(e),
            })
        })
    }

    fn decode<'de, T: Deserialize<'de>>(&self, src: &'de [u8]) -> Result<T, CodecError> {
        // bincode allocates a string or byte buffer for its claimed length
        // before reading it, so an unlimited decode of a 10-byte input can
        // ask for exabytes. A limit caps what all claims together may
        // reserve; a decoded value's memory is at most 16× its encoding
        // (a one-byte varint can become a u128), so the smallest step
        // of the ladder at or above 16× the input never refuses valid data.
        let needed = src.len().saturating_mul(16);
        let decoded = if needed <= 1 << 12 {
            bincode_decode_limited::<T, { 1 << 12 }>(src)
        } else if needed <= 1 << 16 {
            bincode_decode_limited::<T, { 1 << 16 }>(src)
        } else if needed <= 1 << 20 {
            bincode_decode_limited::<T, { 1 << 20 }>(src)
        } else if needed <= 1 << 24 {
            bincode_decode_limited::<T, { 1 << 24 }>(src)
        } else if needed <= 1 << 28 {
            bincode_decode_limited::<T, { 1 << 28 }>(src)
        } else {
            bincode_decode_limited::<T, { usize::MAX }>(src)
        };
        let (value, read) = decoded.map_err(|e| CodecError::Decode {
            kind: CodecKind::Bincode,
            source: Box::new(e),
        })?;
        match src.len().checked_sub(read) {
            Some(0) => Ok(value),
            Some(count) => Err(CodecError::TrailingBytes {
                kind: CodecKind::Bincode,
                count,
            }),
            None => Err(CodecError::TrailingBytes {
                kind: CodecKind::Bincode,
                count: 0,
            }),
        }
    }
}

#[cfg(feature = "bincode")]
fn bincode_decode_limited<'de, T: Deserialize<'de>, const LIMIT: usize>(
    src: &'de [u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::borrow_decode_from_slice(src, bincode::config::standard().with_limit::<LIMIT>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: u64,
        sku: String,
        qty: u32,
        notes: Option<Vec<u8>>,
        price: i64,
    }

    fn order() -> impl Strategy<Value = Order> {
        (
            any::<u64>(),
            ".{0,20}",
            any::<u32>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            any::<i64>(),
        )
            .prop_map(|(id, sku, qty, notes, price)| Order {
                id,
                sku,
                qty,
                notes,
                price,
            })
    }

    fn available() -> impl Strategy<Value = CodecKind> {
        proptest::sample::select(
            CodecKind::ALL
                .into_iter()
                .filter(|k| k.is_available())
                .collect::<Vec<_>>(),
        )
    }

    proptest! {
        #[test]
        fn every_available_codec_round_trips(kind in available(), value in order()) {
            let mut buf = BytesMut::from(&b"prefix"[..]);
            kind.encode(&value, &mut buf)?;
            prop_assert_eq!(&buf[..6], b"prefix");
            let back: Order = kind.decode(&buf[6..])?;
            prop_assert_eq!(back, value);
        }

        #[test]
        fn garbage_never_panics(kind in available(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = kind.decode::<Order>(&bytes);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for kind in [CodecKind::Postcard, CodecKind::Bincode] {
            if !kind.is_available() {
                continue;
            }
            let mut buf = BytesMut::new();
            kind.encode(&(1u8, 2u8), &mut buf).unwrap();
            let err = kind.decode::<u8>(&buf).unwrap_err();
            assert!(
                matches!(err, CodecError::TrailingBytes { count: 1, .. }),
                "{kind}: {err:?}"
            );
        }
        assert!(matches!(
            Json.decode::<u8>(b"1 2"),
            Err(CodecError::Decode { .. })
        ));
    }

    #[test]
    fn failed_encode_leaves_buffer_untouched() {
        use std::collections::HashMap;
        let mut map = HashMap::new();
        map.insert((1u8, 2u8), 3u8); // JSON cannot have tuple keys
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            Json.encode(&map, &mut buf),
            Err(CodecError::Encode { .. })
        ));
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn ids_round_trip_and_are_distinct() {
        for kind in CodecKind::ALL {
            assert_eq!(CodecKind::from_id(kind.id()), Some(kind));
        }
        assert_eq!(CodecKind::from_id(0), None);
        assert_eq!(CodecKind::default(), CodecKind::Postcard);
    }

    #[cfg(not(feature = "bincode"))]
    #[test]
    fn bincode_without_feature_is_a_typed_error() {
        let mut buf = BytesMut::new();
        assert!(matches!(
            CodecKind::Bincode.encode(&1u8, &mut buf),
            Err(CodecError::Unavailable {
                kind: CodecKind::Bincode
            })
        ));
        assert!(matches!(
            CodecKind::Bincode.decode::<u8>(&[1]),
            Err(CodecError::Unavailable { .. })
        ));
    }

    #[test]
    fn borrowed_decode_is_zero_copy() {
        let mut buf = BytesMut::new();
        Postcard.encode("hello", &mut buf).unwrap();
        let s: &str = Postcard.decode(&buf).unwrap();
        assert_eq!(s, "hello");
        assert!(buf.as_ptr_range().contains(&s.as_ptr()));
    }
}
