//! [`TraceParent`]: the W3C Trace Context `traceparent` value, parsed from
//! and formatted to `00-<32 hex>-<16 hex>-<2 hex>`, and carried in envelopes
//! as 25 raw bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::TraceParentError;

/// A W3C `traceparent`: trace id, parent (span) id and trace flags.
///
/// Parsing follows the spec: lowercase hex only; version `ff` is invalid;
/// version `00` is exactly 55 characters; a higher version is read as its
/// `00` prefix when a `-` or the end follows it. All-zero ids are invalid.
/// Formatting always writes version `00`, the only one this build knows.
///
/// # Examples
///
/// ```
/// use plexus_codecs::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceParent>().is_err());
/// # Ok::<(), plexus_codecs::TraceParentError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Length of a version-00 traceparent string.
    pub const STR_LEN: usize = 55;
    /// Length of the binary form in an envelope: trace id, parent id, flags.
    pub const WIRE_LEN: usize = 25;
    /// The `sampled` bit of the trace flags.
    pub const FLAG_SAMPLED: u8 = 0x01;

    /// Builds a traceparent from its parts.
    ///
    /// # Errors
    ///
    /// [`TraceParentError::ZeroTraceId`] or [`TraceParentError::ZeroParentId`]
    /// for an all-zero id.
    pub const fn new(
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
    ) -> Result<Self, TraceParentError> {
        if u128::from_be_bytes(trace_id) == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        if u64::from_be_bytes(parent_id) == 0 {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The 16-byte trace id shared by every span of the trace.
    pub const fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The 8-byte id of the caller's span.
    pub const fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags byte.
    pub const fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller sampled this trace.
    pub const fn sampled(&self) -> bool {
        self.flags & Self::FLAG_SAMPLED != 0
    }

    /// The same trace with another parent span: what a callee sends on.
    ///
    /// # Errors
    ///
    /// [`TraceParentError::ZeroParentId`] for an all-zero id.
    pub const fn with_parent(self, parent_id: [u8; 8]) -> Result<Self, TraceParentError> {
        Self::new(self.trace_id, parent_id, self.flags)
    }

    /// The binary wire form: trace id, parent id, flags.
    pub fn to_bytes(&self) -> [u8; Self::WIRE_LEN] {
        let mut out = [0u8; Self::WIRE_LEN];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..24].copy_from_slice(&self.parent_id);
        out[24] = self.flags;
        out
    }

    /// Reads the binary wire form.
    ///
    /// # Errors
    ///
    /// As [`TraceParent::new`].
    pub fn from_bytes(bytes: [u8; Self::WIRE_LEN]) -> Result<Self, TraceParentError> {
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        trace_id.copy_from_slice(&bytes[..16]);
        parent_id.copy_from_slice(&bytes[16..24]);
        Self::new(trace_id, parent_id, bytes[24])
    }
}

/// Decodes lowercase hex into `out`; `None` on any other character.
fn hex_into(src: &[u8], out: &mut [u8]) -> Option<()> {
    if src.len() != out.len() * 2 {
        return None;
    }
    for (pair, byte) in src.chunks_exact(2).zip(out.iter_mut()) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

const fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() < Self::STR_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError::Format);
        }
        let mut version = [0u8; 1];
        hex_into(&b[..2], &mut version).ok_or(TraceParentError::Format)?;
        match version[0] {
            0xff => return Err(TraceParentError::InvalidVersion),
            0 if b.len() != Self::STR_LEN => return Err(TraceParentError::TrailingData),
            _ if b.len() > Self::STR_LEN && b[Self::STR_LEN] != b'-' => {
                return Err(TraceParentError::Format);
            }
            _ => {}
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flags = [0u8; 1];
        hex_into(&b[3..35], &mut trace_id).ok_or(TraceParentError::Format)?;
        hex_into(&b[36..52], &mut parent_id).ok_or(TraceParentError::Format)?;
        hex_into(&b[53..55], &mut flags).ok_or(TraceParentError::Format)?;
        Self::new(trace_id, parent_id, flags[0])
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for byte in self.trace_id {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("-")?;
        for byte in self.parent_id {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let tp: TraceParent = EXAMPLE.parse().unwrap();
        assert_eq!(tp.trace_id()[0], 0x4b);
        assert_eq!(tp.parent_id()[7], 0xb7);
        assert_eq!(tp.flags(), 1);
        assert_eq!(tp.to_string(), EXAMPLE);
    }

    #[test]
    fn rejects_invalid_forms() {
        let cases = [
            ("", TraceParentError::Format),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceParentError::Format,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceParentError::InvalidVersion,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                TraceParentError::TrailingData,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceParentError::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceParentError::ZeroParentId,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceParentError::Format,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                TraceParentError::Format,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                TraceParentError::Format,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<TraceParent>(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn future_version_reads_its_00_prefix() {
        let tp: TraceParent =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"
                .parse()
                .unwrap();
        assert_eq!(tp.to_string(), EXAMPLE);
    }

    proptest! {
        #[test]
        fn string_and_bytes_round_trip(t in 1u128.., p in 1u64.., flags in any::<u8>()) {
            let tp = TraceParent::new(t.to_be_bytes(), p.to_be_bytes(), flags)?;
            prop_assert_eq!(tp.to_string().parse::<TraceParent>()?, tp);
            prop_assert_eq!(TraceParent::from_bytes(tp.to_bytes())?, tp);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,70}") {
            let _ = s.parse::<TraceParent>();
        }
    }
}
