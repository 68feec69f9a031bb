//! [`WireStr`]: an immutable UTF-8 string backed by [`Bytes`], so strings
//! decoded from a frame share its buffer instead of being copied.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::str::Utf8Error;

use bytes::Bytes;

/// A cheaply clonable UTF-8 string that can point into a received frame.
///
/// Decoding an [`Envelope`](crate::Envelope) slices its names out of the
/// frame's [`Bytes`] without allocating; building one from a `&'static str`
/// does not allocate either. It dereferences to `str`, hashes like `str` and
/// can be looked up by `&str` in maps.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use plexus_codecs::WireStr;
///
/// let name = WireStr::from_static("orders.PlaceOrder");
/// assert!(name.starts_with("orders."));
/// let decoded = WireStr::from_utf8(Bytes::from_static(b"orders.PlaceOrder")).unwrap();
/// assert_eq!(name, decoded);
/// assert!(WireStr::from_utf8(Bytes::from_static(&[0xff])).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireStr(Bytes);

impl WireStr {
    /// Wraps a static string; no allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes after checking they are UTF-8; no copy.
    ///
    /// # Errors
    ///
    /// The UTF-8 error if `bytes` is not valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    /// `s`, a string inside `frame`, as a slice of `frame` (no copy).
    pub(crate) fn slice_of(frame: &Bytes, s: &str) -> Self {
        Self(frame.slice_ref(s.as_bytes()))
    }

    /// The string.
    #[inline]
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: the field is private and every constructor stores UTF-8
        // only: `from_static` and `From<String>` take `str`s, `from_utf8`
        // checks, `slice_of` takes the bytes of a `str`, `Default` is empty,
        // and `Bytes` is immutable. Re-checking
        // here cost ~500 instructions per remote tell (names are read on
        // decode, encode, hashing and lookup); see `as_str_is_the_checked_text`.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for WireStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for WireStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for WireStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for WireStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for WireStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for WireStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl From<&'static str> for WireStr {
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

impl From<String> for WireStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl fmt::Debug for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn as_str_is_the_checked_text() {
        let frame = Bytes::from_static("x.é\u{1F600}".as_bytes());
        let s = WireStr::from_utf8(frame.slice(0..4)).unwrap();
        assert_eq!(s.as_str(), "x.é");
        assert!(
            WireStr::from_utf8(frame.slice(0..3)).is_err(),
            "half a char"
        );
        assert_eq!(WireStr::default().as_str(), "");
        assert_eq!(
            WireStr::from(String::from("a\u{1F600}")).as_str(),
            "a\u{1F600}"
        );
        assert_eq!(WireStr::from_static("b").as_str(), "b");
    }

    #[test]
    fn looks_up_by_str() {
        let mut map = HashMap::new();
        map.insert(WireStr::from(String::from("a.B")), 1);
        assert_eq!(map.get("a.B"), Some(&1));
    }
}
