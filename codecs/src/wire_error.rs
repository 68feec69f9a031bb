//! [`WireError`]: the typed error a callee sends back in an envelope of kind
//! [`Kind::Error`](crate::Kind::Error), so the caller can match on it.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, CodecKind, Postcard};
use crate::error::CodecError;

/// Why a remote call failed, as the caller sees it.
///
/// It is the payload of a [`Kind::Error`](crate::Kind::Error) envelope and is
/// always encoded with postcard ([`to_payload`](Self::to_payload)), whatever
/// codec the connection agreed on, so an error stays readable even when the
/// codec is what failed. Only [`Application`](Self::Application) carries
/// bytes in the connection's codec: the handler's own error value.
///
/// Variants are matched by position on the wire: new variants are only ever
/// appended, and an older peer reads an unknown one as a decode error.
///
/// # Examples
///
/// ```
/// use plexus_codecs::{CodecKind, WireError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum OrderError { OutOfStock { sku: String } }
///
/// let sent = WireError::application(CodecKind::Postcard, "orders.OrderError",
///     &OrderError::OutOfStock { sku: "A1".into() })?;
/// let received = WireError::from_payload(&sent.to_payload())?;
/// let err: OrderError = received.decode_application(CodecKind::Postcard, "orders.OrderError")?
///     .ok_or("another error")?;
/// assert_eq!(err, OrderError::OutOfStock { sku: "A1".into() });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The peer exposes no message of this name. Check the name, or that the
    /// peer registered the message (see its handshake).
    #[error("peer exposes no message named {name:?}")]
    UnknownMessage {
        /// The name that was sent.
        name: String,
    },
    /// The peer knows the name at another version. Deploy matching versions,
    /// or have the receiver register both.
    #[error("{name} v{got} is not understood: the receiver has v{expected}")]
    IncompatibleVersion {
        /// The message name.
        name: String,
        /// The (newest) version the receiver registered.
        expected: u32,
        /// The version that was sent.
        got: u32,
    },
    /// The payload did not decode as the named message (or reply).
    #[error("bad payload: {reason}")]
    BadPayload {
        /// The decoder's explanation.
        reason: String,
    },
    /// The deadline budget ran out before the handler answered.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The connection to the peer is down. Retry once it is back.
    #[error("peer unavailable")]
    PeerUnavailable,
    /// The target actor's mailbox was full. Retry later or shed load.
    #[error("target mailbox full")]
    MailboxFull,
    /// The target actor has stopped.
    #[error("target actor stopped")]
    Stopped,
    /// The handler panicked; its actor was restarted or stopped by its supervisor.
    #[error("handler panicked")]
    HandlerPanicked,
    /// The handler returned its own error, encoded in the connection's codec.
    /// Read it back with [`decode_application`](Self::decode_application).
    #[error("application error {name}")]
    Application {
        /// Stable name of the error type.
        name: String,
        /// The encoded error value.
        payload: Bytes,
    },
    /// The caller is not allowed to send this message to this target.
    #[error("caller not authorized")]
    Unauthorized,
    /// No actor with this name or id exists on the peer.
    #[error("no actor {target} on the peer")]
    UnknownTarget {
        /// The target as text (name, or `#id`).
        target: String,
    },
    /// A stream's producer ended it early with this reason.
    #[error("stream aborted: {reason}")]
    StreamAborted {
        /// The producer's explanation.
        reason: String,
    },
    /// The answer (a reply or a stream item) encoded to a frame larger than
    /// the link carries; the handler ran, its answer was not sent. Send
    /// less per message, or raise the frame limit on both nodes.
    #[error("answer of {len} bytes exceeds the link's frame limit of {max}")]
    TooLarge {
        /// The encoded frame's size.
        len: u64,
        /// The link's limit.
        max: u64,
    },
    /// The receiver already keeps as many tell channels (one per target
    /// actor the sender tells) for this link as it allows; tells to a new
    /// target are refused until the link is made anew. Tell fewer distinct
    /// actors over one link, or raise the receiver's limit.
    #[error("the peer takes tells for at most {max} targets per link")]
    TooManyChannels {
        /// The receiver's limit.
        max: u64,
    },
}

impl WireError {
    /// Wraps a handler's error value, encoded with `codec`.
    ///
    /// # Errors
    ///
    /// The codec's error if `error` cannot be encoded.
    pub fn application<E: Serialize + ?Sized>(
        codec: CodecKind,
        name: impl Into<String>,
        error: &E,
    ) -> Result<Self, CodecError> {
        let mut buf = BytesMut::new();
        codec.encode(error, &mut buf)?;
        Ok(Self::Application {
            name: name.into(),
            payload: buf.freeze(),
        })
    }

    /// The handler's error value, if this is an [`Application`](Self::Application)
    /// error named `name`; `Ok(None)` for any other error.
    ///
    /// # Errors
    ///
    /// The codec's error if the payload is not an `E`.
    pub fn decode_application<E: serde::de::DeserializeOwned>(
        &self,
        codec: CodecKind,
        name: &str,
    ) -> Result<Option<E>, CodecError> {
        match self {
            Self::Application { name: n, payload } if n == name => codec.decode(payload).map(Some),
            _ => Ok(None),
        }
    }

    /// Encodes this error as an envelope payload (always postcard).
    pub fn to_payload(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.write_payload(&mut buf);
        buf.freeze()
    }

    /// Appends this error's payload encoding to `dst` (always postcard).
    pub fn write_payload(&self, dst: &mut BytesMut) {
        // Strings, u32s and bytes always serialize under postcard, so this
        // cannot fail; should it ever, the peer reads an empty payload as a
        // decode error rather than this node panicking.
        let _ = Postcard.encode(self, dst);
    }

    /// Reads an envelope payload written by [`to_payload`](Self::to_payload).
    ///
    /// # Errors
    ///
    /// [`CodecError`] for bytes that are not a `WireError` (or a variant
    /// added by a newer peer).
    pub fn from_payload(src: &[u8]) -> Result<Self, CodecError> {
        Postcard.decode(src)
    }
}

impl From<CodecError> for WireError {
    /// A payload that failed to decode is a [`WireError::BadPayload`].
    fn from(err: CodecError) -> Self {
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::BadPayload { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_postcard_and_json() {
        let all = [
            WireError::UnknownMessage { name: "a.B".into() },
            WireError::IncompatibleVersion {
                name: "a.B".into(),
                expected: 2,
                got: 1,
            },
            WireError::BadPayload { reason: "x".into() },
            WireError::DeadlineExceeded,
            WireError::PeerUnavailable,
            WireError::MailboxFull,
            WireError::Stopped,
            WireError::HandlerPanicked,
            WireError::Application {
                name: "e".into(),
                payload: Bytes::from_static(&[1, 2, 3]),
            },
            WireError::Unauthorized,
            WireError::UnknownTarget {
                target: "#7".into(),
            },
            WireError::StreamAborted {
                reason: "disk gone".into(),
            },
            WireError::TooLarge {
                len: 2 << 20,
                max: 1 << 20,
            },
            WireError::TooManyChannels { max: 4096 },
        ];
        for err in all {
            assert_eq!(WireError::from_payload(&err.to_payload()).unwrap(), err);
            let mut buf = BytesMut::new();
            CodecKind::Json.encode(&err, &mut buf).unwrap();
            assert_eq!(CodecKind::Json.decode::<WireError>(&buf).unwrap(), err);
        }
    }

    #[test]
    fn codec_errors_become_bad_payload_with_the_cause() {
        let err = Postcard.decode::<String>(&[5, b'a']).unwrap_err();
        let WireError::BadPayload { reason } = WireError::from(err) else {
            panic!("not BadPayload");
        };
        assert!(
            reason.starts_with("postcard could not decode the payload: "),
            "{reason}"
        );
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        assert!(WireError::from_payload(&[200, 1, 2]).is_err());
        assert!(WireError::from_payload(&[]).is_err());
    }
}
