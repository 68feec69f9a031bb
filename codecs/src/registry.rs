//! The [`Registry`]: the messages a node exposes, by stable name and
//! version, and how to decode each from a payload into a type-erased value.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use crate::codec::{Codec, CodecKind};
use crate::envelope::Envelope;
use crate::error::{CodecError, RegistryError};
use crate::message::{MessageId, WireMessage};
use crate::wire_error::WireError;
use crate::wire_str::WireStr;

/// A decoded message whose type is known only at runtime.
pub type AnyMessage = Box<dyn Any + Send>;

type DecodeFn = fn(CodecKind, &[u8]) -> Result<AnyMessage, CodecError>;

fn decode_as<M: WireMessage>(codec: CodecKind, payload: &[u8]) -> Result<AnyMessage, CodecError> {
    let message: M = codec.decode(payload)?;
    Ok(Box::new(message))
}

struct Entry<H> {
    name: &'static str,
    version: u32,
    type_name: &'static str,
    decode: DecodeFn,
    handler: H,
}

/// The messages a node accepts: name → version → decoder, plus a value of
/// your choice per message (`H`, e.g. the closure that forwards the decoded
/// message to its actor).
///
/// A node registers each [`WireMessage`] it handles at startup, announces
/// [`exposed`](Self::exposed) in its [`Handshake`](crate::Handshake), and
/// decodes every incoming payload by the name and version in its envelope.
/// A bad name, version or payload is a [`WireError`] to send back, never a
/// panic. Several versions of one name may be registered (as different
/// types), so a node can accept v1 and v2 during a rollout.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use plexus_codecs::{Codec, CodecKind, Registry, WireError, remote_message};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Ping(u32);
/// remote_message!(Ping, "health.Ping", 1, reply = u32);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = Registry::new();
/// registry.register::<Ping>()?;
///
/// let mut payload = BytesMut::new();
/// CodecKind::Postcard.encode(&Ping(5), &mut payload)?;
/// let decoded = registry.decode(CodecKind::Postcard, "health.Ping", 1, &payload)?;
/// assert_eq!(decoded.downcast::<Ping>().ok(), Some(Ping(5)));
///
/// assert_eq!(
///     registry.decode(CodecKind::Postcard, "health.Pong", 1, &payload).err(),
///     Some(WireError::UnknownMessage { name: "health.Pong".into() }),
/// );
/// # Ok(()) }
/// ```
pub struct Registry<H = ()> {
    by_name: HashMap<&'static str, Vec<Entry<H>>>,
}

/// A message decoded by [`Registry::decode`], with its registration.
#[non_exhaustive]
pub struct Decoded<'r, H> {
    /// The registered name and version.
    pub id: MessageId,
    /// The message, as the registered Rust type behind `dyn Any`.
    pub value: AnyMessage,
    /// The value registered with the message.
    pub handler: &'r H,
}

impl<H> Decoded<'_, H> {
    /// The message as `M`, or the decoded value back if it is another type.
    ///
    /// # Errors
    ///
    /// The unchanged `Decoded` if the message is not an `M`.
    pub fn downcast<M: WireMessage>(self) -> Result<M, Self> {
        match self.value.downcast::<M>() {
            Ok(message) => Ok(*message),
            Err(value) => Err(Self { value, ..self }),
        }
    }
}

impl<H> fmt::Debug for Decoded<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoded")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Registry<()> {
    /// Registers `M` under its [`NAME`](WireMessage::NAME) and
    /// [`VERSION`](WireMessage::VERSION).
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidName`] or [`RegistryError::Duplicate`].
    pub fn register<M: WireMessage>(&mut self) -> Result<&mut Self, RegistryError> {
        self.register_with::<M>(())
    }
}

impl<H> Registry<H> {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            by_name: HashMap::new(),
        }
    }

    /// Registers `M`, keeping `handler` alongside it.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidName`] if `M::NAME` breaks the naming rule;
    /// [`RegistryError::Duplicate`] if this name and version are taken.
    pub fn register_with<M: WireMessage>(
        &mut self,
        handler: H,
    ) -> Result<&mut Self, RegistryError> {
        MessageId::check_name(M::NAME).map_err(|reason| RegistryError::InvalidName {
            name: M::NAME,
            reason,
        })?;
        let entries = self.by_name.entry(M::NAME).or_default();
        if entries.iter().any(|e| e.version == M::VERSION) {
            return Err(RegistryError::Duplicate {
                name: M::NAME,
                version: M::VERSION,
            });
        }
        entries.push(Entry {
            name: M::NAME,
            version: M::VERSION,
            type_name: std::any::type_name::<M>(),
            decode: decode_as::<M>,
            handler,
        });
        Ok(self)
    }

    /// The handler registered for `name` at `version`.
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownMessage`] if no version of `name` is registered,
    /// [`WireError::IncompatibleVersion`] (with the newest registered
    /// version as `expected`) if others are.
    pub fn lookup(&self, name: &str, version: u32) -> Result<&H, WireError> {
        self.entry(name, version).map(|e| &e.handler)
    }

    fn entry(&self, name: &str, version: u32) -> Result<&Entry<H>, WireError> {
        let Some(entries) = self.by_name.get(name) else {
            return Err(WireError::UnknownMessage {
                name: name.to_owned(),
            });
        };
        entries
            .iter()
            .find(|e| e.version == version)
            .ok_or_else(|| WireError::IncompatibleVersion {
                name: name.to_owned(),
                expected: entries.iter().map(|e| e.version).max().unwrap_or_default(),
                got: version,
            })
    }

    /// Decodes `payload` as the message registered under `name` and `version`.
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownMessage`], [`WireError::IncompatibleVersion`] as
    /// for [`lookup`](Self::lookup); [`WireError::BadPayload`] if the bytes
    /// are not that message in `codec`.
    pub fn decode(
        &self,
        codec: CodecKind,
        name: &str,
        version: u32,
        payload: &[u8],
    ) -> Result<Decoded<'_, H>, WireError> {
        let entry = self.entry(name, version)?;
        let value = (entry.decode)(codec, payload)?;
        Ok(Decoded {
            id: MessageId::new(WireStr::from_static(entry.name), entry.version),
            value,
            handler: &entry.handler,
        })
    }

    /// Decodes an incoming tell or ask by the message id in its header.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode); [`WireError::BadPayload`] if the
    /// envelope names no message.
    pub fn decode_envelope(
        &self,
        codec: CodecKind,
        envelope: &Envelope,
    ) -> Result<Decoded<'_, H>, WireError> {
        let Some(message) = &envelope.message else {
            return Err(WireError::BadPayload {
                reason: "envelope names no message".to_owned(),
            });
        };
        self.decode(codec, &message.name, message.version, &envelope.payload)
    }

    /// Every registered (name, version), sorted: what the handshake announces.
    pub fn exposed(&self) -> Vec<MessageId> {
        let mut ids: Vec<MessageId> = self
            .by_name
            .values()
            .flat_map(|entries| {
                entries
                    .iter()
                    .map(|e| MessageId::new(WireStr::from_static(e.name), e.version))
            })
            .collect();
        ids.sort();
        ids
    }

    /// Whether `name` is registered at `version`.
    pub fn contains(&self, name: &str, version: u32) -> bool {
        self.entry(name, version).is_ok()
    }

    /// Number of registered (name, version) pairs.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl<H> Default for Registry<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H> fmt::Debug for Registry<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, entries) in &self.by_name {
            for entry in entries {
                map.entry(&format_args!("{name} v{}", entry.version), &entry.type_name);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::envelope::{Kind, Target};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PlaceOrder {
        sku: String,
        qty: u32,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OrderId(u64);
    crate::remote_message!(PlaceOrder, "orders.PlaceOrder", 2, reply = OrderId);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PlaceOrderV1 {
        sku: String,
    }
    crate::remote_message!(PlaceOrderV1, "orders.PlaceOrder", 1, reply = OrderId);

    #[derive(Serialize, Deserialize)]
    struct BadName;
    crate::remote_message!(BadName, "orders place", 1, reply = ());

    fn payload<T: Serialize>(codec: CodecKind, value: &T) -> Bytes {
        let mut buf = BytesMut::new();
        codec.encode(value, &mut buf).unwrap();
        buf.freeze()
    }

    fn order() -> PlaceOrder {
        PlaceOrder {
            sku: "A1".into(),
            qty: 3,
        }
    }

    #[test]
    fn decodes_by_name_and_version() {
        let mut registry = Registry::new();
        registry
            .register::<PlaceOrder>()
            .unwrap()
            .register::<PlaceOrderV1>()
            .unwrap();
        for codec in [CodecKind::Postcard, CodecKind::Json] {
            let v2 = registry
                .decode(codec, "orders.PlaceOrder", 2, &payload(codec, &order()))
                .unwrap();
            assert_eq!(v2.id, MessageId::new("orders.PlaceOrder", 2));
            assert_eq!(v2.downcast::<PlaceOrder>().unwrap(), order());
            let v1 = registry
                .decode(
                    codec,
                    "orders.PlaceOrder",
                    1,
                    &payload(codec, &PlaceOrderV1 { sku: "B".into() }),
                )
                .unwrap();
            let v1 = v1.downcast::<PlaceOrder>().unwrap_err(); // wrong type hands it back
            assert_eq!(v1.downcast::<PlaceOrderV1>().unwrap().sku, "B");
        }
        assert_eq!(
            registry.exposed(),
            vec![
                MessageId::new("orders.PlaceOrder", 1),
                MessageId::new("orders.PlaceOrder", 2)
            ]
        );
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn unknown_name_is_unknown_message() {
        let registry: Registry = Registry::new();
        assert_eq!(
            registry
                .decode(CodecKind::Postcard, "orders.Nope", 1, &[])
                .err(),
            Some(WireError::UnknownMessage {
                name: "orders.Nope".into()
            })
        );
    }

    #[test]
    fn wrong_version_is_incompatible_version() {
        let mut registry = Registry::new();
        registry.register::<PlaceOrder>().unwrap();
        assert_eq!(
            registry
                .decode(
                    CodecKind::Postcard,
                    "orders.PlaceOrder",
                    7,
                    &payload(CodecKind::Postcard, &order())
                )
                .err(),
            Some(WireError::IncompatibleVersion {
                name: "orders.PlaceOrder".into(),
                expected: 2,
                got: 7
            })
        );
    }

    #[test]
    fn bad_payload_is_bad_payload_not_a_panic() {
        let mut registry = Registry::new();
        registry.register::<PlaceOrder>().unwrap();
        let cases: [&[u8]; 4] = [&[], &[0xff; 9], b"\x02A1\x03trailing", b"{\"sku\":1}"];
        for codec in [CodecKind::Postcard, CodecKind::Json] {
            for bytes in cases {
                let err = registry.decode(codec, "orders.PlaceOrder", 2, bytes).err();
                assert!(
                    matches!(err, Some(WireError::BadPayload { .. })),
                    "{codec} {bytes:?}: {err:?}"
                );
            }
        }
        // A v1 payload sent as v2 does not silently decode.
        let v1 = payload(CodecKind::Postcard, &PlaceOrderV1 { sku: "A1".into() });
        assert!(matches!(
            registry
                .decode(CodecKind::Postcard, "orders.PlaceOrder", 2, &v1)
                .err(),
            Some(WireError::BadPayload { .. })
        ));
    }

    #[test]
    fn registration_errors() {
        let mut registry = Registry::new();
        registry.register::<PlaceOrder>().unwrap();
        assert_eq!(
            registry.register::<PlaceOrder>().err(),
            Some(RegistryError::Duplicate {
                name: "orders.PlaceOrder",
                version: 2
            })
        );
        assert!(matches!(
            registry.register::<BadName>().err(),
            Some(RegistryError::InvalidName {
                name: "orders place",
                ..
            })
        ));
    }

    #[test]
    fn decodes_an_envelope_and_carries_a_handler() {
        let mut registry: Registry<&'static str> = Registry::new();
        registry.register_with::<PlaceOrder>("order desk").unwrap();
        let env = Envelope::for_message::<PlaceOrder>(Kind::Ask, 1, Target::Id(3))
            .with_payload(payload(CodecKind::Postcard, &order()));
        let decoded = registry.decode_envelope(CodecKind::Postcard, &env).unwrap();
        assert_eq!(*decoded.handler, "order desk");
        assert_eq!(registry.lookup("orders.PlaceOrder", 2), Ok(&"order desk"));
        assert!(matches!(
            registry.decode_envelope(CodecKind::Postcard, &Envelope::new(Kind::Tell, 0)),
            Err(WireError::BadPayload { .. })
        ));
        assert!(format!("{registry:?}").contains("orders.PlaceOrder v2"));
    }
}
