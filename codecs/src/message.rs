//! Remote-capable messages: [`RemoteMessage`] gives a serde type a stable
//! wire name and version, [`remote_message!`](crate::remote_message) writes
//! the impl in one line, and [`MessageId`] is the (name, version) pair as it
//! travels in envelopes and handshakes.

use std::fmt;

use plexus_runtime::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire_str::WireStr;

/// A message that can cross the wire: a serde type with a stable name and a
/// version, and the serde type of its reply.
///
/// The name, not the Rust type path, identifies the message on the wire, so
/// types can be renamed or moved freely; bump [`VERSION`](Self::VERSION) when
/// the encoding changes incompatibly. A receiver that knows the name but not
/// the version answers [`WireError::IncompatibleVersion`](crate::WireError::IncompatibleVersion).
///
/// Implement it with [`remote_message!`](crate::remote_message).
///
/// # Relation to the runtime's `Message`
///
/// [`plexus_runtime::Message`] is a supertrait: the reply type is the
/// message's `Message::Reply`, which must also be serde. So a remote message
/// is an ordinary message that any local actor handles, and a
/// `Recipient<M>` may stand for a local or a remote actor. A handler's own
/// error type travels as part of the reply: `reply = Result<OrderId, OrderError>`.
///
/// # Examples
///
/// ```
/// use plexus_codecs::{RemoteMessage, remote_message};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct PlaceOrder { sku: String, qty: u32 }
/// #[derive(Serialize, Deserialize)]
/// struct OrderId(u64);
///
/// remote_message!(PlaceOrder, "orders.PlaceOrder", 1, reply = OrderId);
///
/// assert_eq!(PlaceOrder::NAME, "orders.PlaceOrder");
/// assert_eq!(PlaceOrder::VERSION, 1);
/// ```
pub trait RemoteMessage:
    Message<Reply: Serialize + DeserializeOwned> + Serialize + DeserializeOwned + Send + 'static
{
    /// Stable wire name, conventionally `package.Type` (`orders.PlaceOrder`):
    /// ASCII letters, digits and `.`, `_`, `-`, `:`, `/`, at most
    /// [`MessageId::MAX_NAME_LEN`] bytes.
    const NAME: &'static str;
    /// Encoding version; bump it on incompatible changes.
    const VERSION: u32;
}

/// Implements [`RemoteMessage`] and `plexus_runtime::Message` in one line:
/// `remote_message!(Type, "wire.Name", version, reply = ReplyType);`
///
/// # Examples
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Ping;
/// plexus_codecs::remote_message!(Ping, "health.Ping", 2, reply = ());
/// # use plexus_codecs::RemoteMessage;
/// assert_eq!(<Ping as RemoteMessage>::VERSION, 2);
/// ```
#[macro_export]
macro_rules! remote_message {
    ($ty:ty, $name:expr, $version:expr, reply = $reply:ty $(,)?) => {
        impl $crate::__runtime::Message for $ty {
            type Reply = $reply;
        }
        impl $crate::RemoteMessage for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
        }
    };
}

/// A message's wire identity: its name and version.
///
/// # Examples
///
/// ```
/// # use plexus_codecs::{MessageId, remote_message};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct PlaceOrder;
/// # remote_message!(PlaceOrder, "orders.PlaceOrder", 3, reply = ());
/// let id = MessageId::of::<PlaceOrder>();
/// assert_eq!(id.to_string(), "orders.PlaceOrder v3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The stable name.
    pub name: WireStr,
    /// The version.
    pub version: u32,
}

impl MessageId {
    /// The longest accepted name, in bytes.
    pub const MAX_NAME_LEN: usize = 255;

    /// A name and version.
    pub fn new(name: impl Into<WireStr>, version: u32) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }

    /// The identity of `M`; no allocation.
    pub const fn of<M: RemoteMessage>() -> Self {
        Self {
            name: WireStr::from_static(M::NAME),
            version: M::VERSION,
        }
    }

    /// Checks `name` against the naming rule of [`RemoteMessage::NAME`];
    /// returns what is wrong.
    pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
        if name.is_empty() {
            return Err("empty");
        }
        if name.len() > Self::MAX_NAME_LEN {
            return Err("longer than 255 bytes");
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/');
        if name.chars().all(ok) {
            Ok(())
        } else {
            Err("only ASCII letters, digits and . _ - : / are allowed")
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}
