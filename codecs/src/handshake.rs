//! The [`Handshake`] two nodes exchange when a connection opens, and
//! [`check_compat`], which decides whether they can talk.
//!
//! # Layout
//!
//! The handshake has its own fixed layout, independent of any codec, so it
//! can be read before a codec is agreed and a version mismatch is reported
//! clearly instead of as garbage:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `PLXS` |
//! | 2 | wire-protocol version, big endian |
//! | varint + UTF-8 | node id |
//! | 1 | codec this node sends with ([`CodecKind::id`]) |
//! | varint | number of exposed messages |
//! | per message: varint + UTF-8, varint | name, version |
//!
//! Everything after the version is only read when the version matches.
//!
//! # Codecs
//!
//! Each node sends with its own codec and the peer decodes with it: a JSON
//! node can call a postcard node. [`check_compat`] only requires that both
//! codecs are compiled into this build.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use crate::codec::CodecKind;
use crate::error::HandshakeError;
use crate::message::MessageId;
use crate::varint::{Reader, put_varint};
use crate::wire_error::WireError;
use crate::wire_str::WireStr;

/// The wire-protocol version this build speaks: envelope header layout,
/// framing, handshake and rpc semantics together. v2 added the
/// from-callee flag that streams in both directions need; v3 the bound
/// tell frames ([`BoundTell`](crate::BoundTell)) and the `TooLarge` and
/// `TooManyChannels` wire errors.
pub const WIRE_VERSION: u16 = 3;

/// The first four bytes of every plexus connection.
pub const MAGIC: [u8; 4] = *b"PLXS";

/// What a node says about itself when a connection opens.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use plexus_codecs::{CodecKind, Handshake, MessageId, check_compat};
///
/// # fn main() -> Result<(), plexus_codecs::HandshakeError> {
/// let ours = Handshake::new("node-a", CodecKind::Postcard, vec![]);
/// let theirs = Handshake::new("node-b", CodecKind::Json,
///     vec![MessageId::new("orders.PlaceOrder", 1)]);
///
/// let mut buf = BytesMut::new();
/// theirs.encode(&mut buf);
/// let received = Handshake::decode(&buf)?;
///
/// let agreed = check_compat(&ours, &received)?;
/// assert_eq!(agreed.peer, "node-b");
/// assert_eq!(agreed.decode_with, CodecKind::Json);
/// assert!(agreed.check_call("orders.PlaceOrder", 1).is_ok());
/// assert!(agreed.check_call("orders.PlaceOrder", 2).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handshake {
    /// Wire-protocol version; [`WIRE_VERSION`] for this build.
    pub wire_version: u16,
    /// This node's id (its certificate name, once TLS is wired in).
    pub node_id: String,
    /// The codec this node encodes payloads with.
    pub codec: CodecKind,
    /// The messages this node handles, e.g. from [`Registry::exposed`](crate::Registry::exposed).
    pub messages: Vec<MessageId>,
}

impl Handshake {
    /// A handshake at this build's [`WIRE_VERSION`].
    pub fn new(node_id: impl Into<String>, codec: CodecKind, messages: Vec<MessageId>) -> Self {
        Self {
            wire_version: WIRE_VERSION,
            node_id: node_id.into(),
            codec,
            messages,
        }
    }

    /// Appends the handshake to `dst` (frame it like any other message).
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.extend_from_slice(&MAGIC);
        dst.put_u16(self.wire_version);
        put_varint(dst, self.node_id.len() as u64);
        dst.extend_from_slice(self.node_id.as_bytes());
        dst.put_u8(self.codec.id());
        put_varint(dst, self.messages.len() as u64);
        for message in &self.messages {
            put_varint(dst, message.name.len() as u64);
            dst.extend_from_slice(message.name.as_bytes());
            put_varint(dst, u64::from(message.version));
        }
    }

    /// Reads a peer's handshake.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::BadMagic`] if this is not a plexus peer;
    /// [`HandshakeError::IncompatibleWireVersion`] if it speaks another
    /// version (the rest is not read: its layout may differ);
    /// [`HandshakeError::UnknownCodec`], and the malformed-input variants.
    /// Never panics; allocates at most in proportion to `src`.
    pub fn decode(src: &[u8]) -> Result<Self, HandshakeError> {
        let mut r = Reader::new(src);
        let found = r
            .array::<4>()
            .map_err(|f| HandshakeError::read(f, "magic"))?;
        if found != MAGIC {
            return Err(HandshakeError::BadMagic { found });
        }
        let wire_version = u16::from_be_bytes(
            r.array::<2>()
                .map_err(|f| HandshakeError::read(f, "wire version"))?,
        );
        if wire_version != WIRE_VERSION {
            return Err(HandshakeError::IncompatibleWireVersion {
                local: WIRE_VERSION,
                remote: wire_version,
            });
        }
        let node_id = read_str(&mut r, "node id")?.to_owned();
        let codec_id = r.u8().map_err(|f| HandshakeError::read(f, "codec"))?;
        let codec =
            CodecKind::from_id(codec_id).ok_or(HandshakeError::UnknownCodec { id: codec_id })?;
        let count = r
            .varint()
            .map_err(|f| HandshakeError::read(f, "message count"))?;
        // Each entry takes at least two bytes: bound the Vec by the input.
        let count = usize::try_from(count)
            .ok()
            .filter(|&n| n <= r.remaining() / 2)
            .ok_or(HandshakeError::Truncated { field: "messages" })?;
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            let name = read_str(&mut r, "message name")?.to_owned();
            let version = r
                .varint_u32()
                .map_err(|f| HandshakeError::read(f, "message version"))?;
            messages.push(MessageId::new(WireStr::from(name), version));
        }
        if r.remaining() != 0 {
            return Err(HandshakeError::TrailingBytes {
                count: r.remaining(),
            });
        }
        Ok(Self {
            wire_version,
            node_id,
            codec,
            messages,
        })
    }
}

fn read_str<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a str, HandshakeError> {
    let raw = r.bytes().map_err(|f| HandshakeError::read(f, field))?;
    std::str::from_utf8(raw).map_err(|_| HandshakeError::InvalidUtf8 { field })
}

/// What two compatible nodes agreed on: the result of [`check_compat`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Agreed {
    /// The wire-protocol version both speak.
    pub wire_version: u16,
    /// The peer's node id.
    pub peer: String,
    /// The codec to encode outgoing payloads with (ours).
    pub encode_with: CodecKind,
    /// The codec to decode incoming payloads with (the peer's).
    pub decode_with: CodecKind,
    /// The peer's exposed messages: name → versions.
    pub peer_messages: HashMap<WireStr, Vec<u32>>,
}

impl Agreed {
    /// Whether the peer handles `name` at `version`: call before sending,
    /// so an unknown name or version is a typed error on the call instead of
    /// a round trip (the receiver checks again, through its registry).
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownMessage`] if the peer does not expose `name`;
    /// [`WireError::IncompatibleVersion`] (with the peer's newest version as
    /// `expected`) if it does at other versions only.
    pub fn check_call(&self, name: &str, version: u32) -> Result<(), WireError> {
        let Some(versions) = self.peer_messages.get(name) else {
            return Err(WireError::UnknownMessage {
                name: name.to_owned(),
            });
        };
        if versions.contains(&version) {
            return Ok(());
        }
        Err(WireError::IncompatibleVersion {
            name: name.to_owned(),
            expected: versions.iter().copied().max().unwrap_or_default(),
            got: version,
        })
    }
}

/// Decides whether this node (`local`) can talk to the peer (`remote`).
///
/// # Errors
///
/// - [`HandshakeError::IncompatibleWireVersion`] if the wire versions differ:
///   the connection must be closed, and the message names both versions so
///   the operator knows which node to upgrade;
/// - [`HandshakeError::CodecUnavailable`] if either side's codec is not
///   compiled into this build;
/// - [`HandshakeError::EmptyNodeId`] / [`HandshakeError::SameNodeId`] for
///   an unusable peer id.
///
/// # Examples
///
/// ```
/// # use plexus_codecs::{check_compat, CodecKind, Handshake, HandshakeError};
/// let ours = Handshake::new("a", CodecKind::Postcard, vec![]);
/// let mut theirs = Handshake::new("b", CodecKind::Postcard, vec![]);
/// theirs.wire_version = 2;
/// let err = check_compat(&ours, &theirs).unwrap_err();
/// assert_eq!(err, HandshakeError::IncompatibleWireVersion { local: 3, remote: 2 });
/// assert!(err.to_string().contains("upgrade the older node"));
/// ```
pub fn check_compat(local: &Handshake, remote: &Handshake) -> Result<Agreed, HandshakeError> {
    if local.wire_version != remote.wire_version {
        return Err(HandshakeError::IncompatibleWireVersion {
            local: local.wire_version,
            remote: remote.wire_version,
        });
    }
    for codec in [local.codec, remote.codec] {
        if !codec.is_available() {
            return Err(HandshakeError::CodecUnavailable { codec });
        }
    }
    if remote.node_id.is_empty() {
        return Err(HandshakeError::EmptyNodeId);
    }
    if remote.node_id == local.node_id {
        return Err(HandshakeError::SameNodeId {
            node_id: remote.node_id.clone(),
        });
    }
    let mut peer_messages: HashMap<WireStr, Vec<u32>> = HashMap::new();
    for message in &remote.messages {
        peer_messages
            .entry(message.name.clone())
            .or_default()
            .push(message.version);
    }
    Ok(Agreed {
        wire_version: local.wire_version,
        peer: remote.node_id.clone(),
        encode_with: local.codec,
        decode_with: remote.codec,
        peer_messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn arb_handshake() -> impl Strategy<Value = Handshake> {
        (
            "\\PC{1,20}",
            proptest::sample::select(CodecKind::ALL.to_vec()),
            vec(("[a-zA-Z.]{1,30}", any::<u32>()), 0..10),
        )
            .prop_map(|(id, codec, messages)| {
                let messages = messages
                    .into_iter()
                    .map(|(n, v)| MessageId::new(WireStr::from(n), v))
                    .collect();
                Handshake::new(id, codec, messages)
            })
    }

    fn encoded(h: &Handshake) -> BytesMut {
        let mut buf = BytesMut::new();
        h.encode(&mut buf);
        buf
    }

    proptest! {
        #[test]
        fn round_trips(h in arb_handshake()) {
            prop_assert_eq!(Handshake::decode(&encoded(&h))?, h);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in vec(any::<u8>(), 0..128), magic in any::<bool>()) {
            if magic && bytes.len() >= 6 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4..6].copy_from_slice(&WIRE_VERSION.to_be_bytes());
            }
            let _ = Handshake::decode(&bytes);
        }
    }

    #[test]
    fn a_v2_peer_from_before_bound_tells_is_refused() {
        let mut old = Handshake::new("b", CodecKind::Postcard, vec![]);
        old.wire_version = 2;
        let err = Handshake::decode(&encoded(&old)).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::IncompatibleWireVersion {
                local: 3,
                remote: 2
            }
        );
    }

    #[test]
    fn a_newer_wire_version_is_refused_before_its_body_is_read() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&7u16.to_be_bytes());
        bytes.extend_from_slice(b"an unknown future layout");
        let err = Handshake::decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::IncompatibleWireVersion {
                local: WIRE_VERSION,
                remote: 7
            }
        );
        assert_eq!(
            err.to_string(),
            "incompatible wire protocol: this node speaks v3, the peer speaks v7; upgrade the older node"
        );
    }

    #[test]
    fn non_plexus_peers_are_refused() {
        assert!(matches!(
            Handshake::decode(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::BadMagic { found }) if &found == b"GET "
        ));
        assert_eq!(
            Handshake::decode(b"PL"),
            Err(HandshakeError::Truncated { field: "magic" })
        );
    }

    #[test]
    fn malformed_bodies_give_typed_errors() {
        let good = encoded(&Handshake::new("n", CodecKind::Postcard, vec![]));
        let mut unknown_codec = good.to_vec();
        unknown_codec[8] = 9;
        assert_eq!(
            Handshake::decode(&unknown_codec),
            Err(HandshakeError::UnknownCodec { id: 9 })
        );
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert_eq!(
            Handshake::decode(&trailing),
            Err(HandshakeError::TrailingBytes { count: 1 })
        );
        let mut huge_count = good[..9].to_vec();
        huge_count.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            Handshake::decode(&huge_count),
            Err(HandshakeError::Truncated { field: "messages" })
        );
    }

    #[test]
    fn compat_checks() {
        let a = Handshake::new("a", CodecKind::Postcard, vec![]);
        let b = Handshake::new(
            "b",
            CodecKind::Json,
            vec![MessageId::new("x.Y", 1), MessageId::new("x.Y", 2)],
        );
        let agreed = check_compat(&a, &b).unwrap();
        assert_eq!(
            (agreed.encode_with, agreed.decode_with),
            (CodecKind::Postcard, CodecKind::Json)
        );
        assert_eq!(agreed.check_call("x.Y", 2), Ok(()));
        assert_eq!(
            agreed.check_call("x.Y", 3),
            Err(WireError::IncompatibleVersion {
                name: "x.Y".into(),
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            agreed.check_call("x.Z", 1),
            Err(WireError::UnknownMessage { name: "x.Z".into() })
        );

        assert_eq!(
            check_compat(&a, &a),
            Err(HandshakeError::SameNodeId {
                node_id: "a".into()
            })
        );
        let anonymous = Handshake::new("", CodecKind::Postcard, vec![]);
        assert_eq!(
            check_compat(&a, &anonymous),
            Err(HandshakeError::EmptyNodeId)
        );
        let bincode_peer = Handshake::new("c", CodecKind::Bincode, vec![]);
        assert_eq!(
            check_compat(&a, &bincode_peer).is_ok(),
            cfg!(feature = "bincode")
        );
        let older = Handshake {
            wire_version: 0,
            ..b
        };
        assert_eq!(
            check_compat(&a, &older),
            Err(HandshakeError::IncompatibleWireVersion {
                local: WIRE_VERSION,
                remote: 0
            })
        );
    }
}
