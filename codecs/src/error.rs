//! Errors, one enum per operation family: encoding a value ([`CodecError`]),
//! reading an envelope ([`EnvelopeError`]), framing ([`FrameError`]), the
//! connection handshake ([`HandshakeError`]), registering messages
//! ([`RegistryError`]), parsing a traceparent ([`TraceParentError`]) and
//! filling metadata ([`MetadataError`]).
//!
//! What crosses the wire to a caller is not here: that is
//! [`WireError`](crate::WireError), a serializable payload.

use crate::codec::CodecKind;
use crate::varint::ReadFault;

/// A boxed source error from a serde format crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`Codec`](crate::Codec) could not turn a value into bytes or back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be serialized (for example a map with non-string
    /// keys under JSON). Fix the type or pick another codec.
    #[error("{kind} could not encode the value")]
    Encode {
        /// The codec that failed.
        kind: CodecKind,
        /// The format crate's error.
        #[source]
        source: BoxError,
    },
    /// The bytes are not a valid encoding of the expected type: the peer sent
    /// another type or version under this name, or the bytes are corrupt.
    #[error("{kind} could not decode the payload")]
    Decode {
        /// The codec that failed.
        kind: CodecKind,
        /// The format crate's error.
        #[source]
        source: BoxError,
    },
    /// The value decoded but bytes were left over, which means the sender
    /// encoded a different (longer) type under the same name.
    #[error("{kind} payload has {count} trailing bytes")]
    TrailingBytes {
        /// The codec that decoded the value.
        kind: CodecKind,
        /// How many bytes were not consumed.
        count: usize,
    },
    /// This codec is not compiled in. Enable the cargo feature of the same
    /// name (`bincode`) or agree on another codec.
    #[error("codec {kind} is not compiled in (enable the `{kind}` cargo feature)")]
    Unavailable {
        /// The missing codec.
        kind: CodecKind,
    },
}

/// Why [`Envelope::decode`](crate::Envelope::decode) refused its input.
///
/// Every variant means the sender is broken or hostile: drop the frame (or the
/// connection), never the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input ended in the middle of `field`.
    #[error("envelope truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A varint in `field` is longer than 10 bytes or too large for its type.
    #[error("envelope field {field} overflows")]
    Overflow {
        /// The field being read.
        field: &'static str,
    },
    /// The header layout version is not one this build reads. Peers agree on a
    /// wire version in the handshake, so this is a bug in the sender.
    #[error("envelope header version {version} is not supported")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The kind byte names no [`Kind`](crate::Kind).
    #[error("unknown envelope kind {kind}")]
    UnknownKind {
        /// The kind byte found.
        kind: u8,
    },
    /// Flag bits this version does not define are set, or both target bits are.
    #[error("invalid envelope flags {flags:#010b}")]
    InvalidFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// A string field is not UTF-8.
    #[error("envelope field {field} is not utf-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// The binary traceparent has an all-zero trace or parent id.
    #[error("invalid traceparent in envelope")]
    InvalidTraceParent(#[source] TraceParentError),
    /// More metadata entries than [`Metadata::MAX_ENTRIES`](crate::Metadata::MAX_ENTRIES).
    #[error("envelope carries {count} metadata entries, at most {max} are allowed")]
    TooManyMetadata {
        /// Entries claimed.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// Two metadata entries share a key.
    #[error("envelope metadata repeats a key")]
    DuplicateMetadataKey,
    /// A [`BoundTell`](crate::BoundTell) names a binding above the limit.
    #[error("tell binding {binding} exceeds the limit {max}")]
    BindingOutOfRange {
        /// The binding found.
        binding: u64,
        /// The limit, [`MAX_BINDING`](crate::envelope::MAX_BINDING).
        max: u64,
    },
    /// A bind frame's envelope is not a plain tell (kind `Tell`, a message
    /// and a target name, no deadline, trace or metadata).
    #[error("a bind frame must carry a plain tell")]
    InvalidBind,
    /// A lean tell names a binding no bind frame of this connection made.
    #[error("lean tell of unknown binding {binding}")]
    UnknownBinding {
        /// The binding found.
        binding: u64,
    },
}

impl EnvelopeError {
    pub(crate) const fn read(fault: ReadFault, field: &'static str) -> Self {
        match fault {
            ReadFault::Truncated => Self::Truncated { field },
            ReadFault::Overflow => Self::Overflow { field },
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix (read or about to be written) exceeds the configured
    /// maximum. On decode the stream cannot be resynchronised: close the
    /// connection. On encode nothing was written: split the message or raise
    /// [`FrameConfig::max_frame`](crate::FrameConfig::max_frame) on both sides.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// The length claimed or attempted.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The stream ended inside a frame (see [`FrameDecoder::finish`](crate::FrameDecoder::finish)).
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the partial frame.
        buffered: usize,
    },
}

/// Why two nodes could not agree at connection time, or a handshake message
/// could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer speaks another wire-protocol version. Upgrade the older node;
    /// nothing is exchanged until both run a compatible build.
    #[error(
        "incompatible wire protocol: this node speaks v{local}, the peer speaks v{remote}; upgrade the older node"
    )]
    IncompatibleWireVersion {
        /// The version this build speaks.
        local: u16,
        /// The version the peer announced.
        remote: u16,
    },
    /// The first bytes are not a plexus handshake: the peer is not a plexus
    /// node, or the port is wrong.
    #[error("not a plexus handshake (magic {found:02x?})")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A codec one side uses is not compiled into this node. Enable its cargo
    /// feature here or configure the peer with another codec.
    #[error("codec {codec} is not compiled into this node")]
    CodecUnavailable {
        /// The codec asked for.
        codec: CodecKind,
    },
    /// The codec byte names no known codec (a newer peer?).
    #[error("unknown codec id {id}")]
    UnknownCodec {
        /// The byte found.
        id: u8,
    },
    /// The peer announced this node's own id: a node connected to itself, or
    /// two nodes share an id. Give every node a distinct id.
    #[error("peer announced our own node id {node_id:?}")]
    SameNodeId {
        /// The shared id.
        node_id: String,
    },
    /// The node id is empty.
    #[error("empty node id")]
    EmptyNodeId,
    /// The handshake ended in the middle of `field`.
    #[error("handshake truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A varint in `field` is too large for its type.
    #[error("handshake field {field} overflows")]
    Overflow {
        /// The field being read.
        field: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("handshake field {field} is not utf-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the end of the handshake.
    #[error("{count} trailing bytes after the handshake")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl HandshakeError {
    pub(crate) const fn read(fault: ReadFault, field: &'static str) -> Self {
        match fault {
            ReadFault::Truncated => Self::Truncated { field },
            ReadFault::Overflow => Self::Overflow { field },
        }
    }
}

/// Why a message type could not be added to a [`Registry`](crate::Registry).
/// These are programmer errors found at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// This (name, version) is already registered, maybe by another type.
    /// Give one of them another name or version.
    #[error("message {name} v{version} is already registered")]
    Duplicate {
        /// The message name.
        name: &'static str,
        /// The version.
        version: u32,
    },
    /// The name is empty, too long, or has characters other than ASCII
    /// letters, digits and `.`, `_`, `-`, `:`, `/`.
    #[error("invalid message name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a W3C `traceparent` could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Not `version-traceid-parentid-flags` with 2, 32, 16 and 2 lowercase hex digits.
    #[error("traceparent is not in the 00-<32 hex>-<16 hex>-<2 hex> form")]
    Format,
    /// Version `ff` is forbidden by the W3C spec.
    #[error("traceparent version ff is invalid")]
    InvalidVersion,
    /// Version 00 must be exactly 55 characters long.
    #[error("traceparent version 00 has trailing data")]
    TrailingData,
    /// The trace id is all zeros.
    #[error("traceparent trace id is all zeros")]
    ZeroTraceId,
    /// The parent (span) id is all zeros.
    #[error("traceparent parent id is all zeros")]
    ZeroParentId,
}

/// Why [`Metadata::insert`](crate::Metadata::insert) refused an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The list already holds [`Metadata::MAX_ENTRIES`](crate::Metadata::MAX_ENTRIES)
    /// entries. Metadata is for small caller context, not for payload.
    #[error("metadata is full ({max} entries)")]
    Full {
        /// The limit.
        max: usize,
    },
}
