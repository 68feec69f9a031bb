//! [`Metadata`]: the caller's small list of key/value strings (identity
//! claims, tenant, request id…) that rides in an envelope.

use crate::error::MetadataError;
use crate::wire_str::WireStr;

/// Caller identity and context: a short, ordered list of key/value strings.
///
/// Empty metadata costs nothing: no allocation, and no bytes on the wire.
/// Keys are unique ([`insert`](Self::insert) replaces). Values are claims
/// made by the sender; the authenticated identity of the *peer node* comes
/// from its TLS certificate, not from here.
///
/// # Examples
///
/// ```
/// use plexus_codecs::Metadata;
///
/// let mut md = Metadata::new();
/// md.insert(Metadata::CALLER, "alice")?;
/// md.insert("tenant", String::from("acme"))?;
/// md.insert(Metadata::CALLER, "bob")?;
/// assert_eq!(md.get(Metadata::CALLER), Some("bob"));
/// assert_eq!(md.len(), 2);
/// # Ok::<(), plexus_codecs::MetadataError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(WireStr, WireStr)>,
}

impl Metadata {
    /// Most entries one envelope may carry.
    pub const MAX_ENTRIES: usize = 64;
    /// Conventional key for the end-user or service on whose behalf the call
    /// is made.
    pub const CALLER: &'static str = "caller";

    /// Empty metadata; does not allocate.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Sets `key` to `value`, replacing an existing value.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Full`] when adding a new key to a list of
    /// [`MAX_ENTRIES`](Self::MAX_ENTRIES).
    pub fn insert(
        &mut self,
        key: impl Into<WireStr>,
        value: impl Into<WireStr>,
    ) -> Result<(), MetadataError> {
        let key = key.into();
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value.into();
            return Ok(());
        }
        if self.entries.len() >= Self::MAX_ENTRIES {
            return Err(MetadataError::Full {
                max: Self::MAX_ENTRIES,
            });
        }
        self.entries.push((key, value.into()));
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.as_str())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<WireStr> {
        let index = self.entries.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.entries.remove(index).1)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// For the decoder, which has already checked the count and that keys
    /// are unique.
    pub(crate) const fn from_entries(entries: Vec<(WireStr, WireStr)>) -> Self {
        Self { entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_list_refuses_new_keys_but_replaces_old_ones() {
        let mut md = Metadata::new();
        for i in 0..Metadata::MAX_ENTRIES {
            md.insert(WireStr::from(format!("k{i}")), "v").unwrap();
        }
        assert_eq!(
            md.insert("one-too-many", "v"),
            Err(MetadataError::Full {
                max: Metadata::MAX_ENTRIES
            })
        );
        md.insert("k0", "new").unwrap();
        assert_eq!(md.get("k0"), Some("new"));
        assert_eq!(md.remove("k0").as_deref(), Some("new"));
        assert_eq!(md.len(), Metadata::MAX_ENTRIES - 1);
    }
}
