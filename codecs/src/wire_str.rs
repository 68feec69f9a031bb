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

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Every constructor checked UTF-8, so this cannot fail; re-checking
        // keeps the crate free of `unsafe` and costs a few ns on short names.
        std::str::from_utf8(&self.0).unwrap_or_default()
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
    fn looks_up_by_str() {
        let mut map = HashMap::new();
        map.insert(WireStr::from(String::from("a.B")), 1);
        assert_eq!(map.get("a.B"), Some(&1));
    }
}
