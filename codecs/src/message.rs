//! Remote-capable messages: [`RemoteMessage`] gives a serde type a stable
//! wire name and version, [`remote_message!`](crate::remote_message) writes
//! the impl in one line, and [`MessageId`] is the (name, version) pair as it
//! travels in envelopes and handshakes.

use std::fmt;

use plexus_runtime::Message;
use plexus_runtime::stream::{DuplexMessage, ReplyStream};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire_str::WireStr;

/// What every remote-capable message has: serde, and a stable wire name and
/// version. The three kinds of call build on it: [`RemoteMessage`] (one
/// reply), [`RemoteStream`] (a stream of replies) and [`RemoteDuplex`]
/// (streams both ways). Implement them with
/// [`remote_message!`](crate::remote_message).
///
/// The name, not the Rust type path, identifies the message on the wire, so
/// types can be renamed or moved freely; bump [`VERSION`](Self::VERSION) when
/// the encoding changes incompatibly. A receiver that knows the name but not
/// the version answers [`WireError::IncompatibleVersion`](crate::WireError::IncompatibleVersion).
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// Stable wire name, conventionally `package.Type` (`orders.PlaceOrder`):
    /// ASCII letters, digits and `.`, `_`, `-`, `:`, `/`, at most
    /// [`MessageId::MAX_NAME_LEN`] bytes.
    const NAME: &'static str;
    /// Encoding version; bump it on incompatible changes.
    const VERSION: u32;
}

/// A message that can cross the wire and gets one reply: a serde type with
/// a stable name and a version ([`WireMessage`]), whose reply is serde too.
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
/// use plexus_codecs::{WireMessage, remote_message};
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
pub trait RemoteMessage: WireMessage + Message<Reply: Serialize + DeserializeOwned> {}

/// The reply of a streaming message: a [`ReplyStream`] of serde items.
/// Implemented only for `ReplyStream<T>`; it names the item type for
/// [`RemoteStream`].
pub trait StreamReply: Send + 'static {
    /// The type of one item.
    type Item: Serialize + DeserializeOwned + Send + 'static;
    /// The stream.
    fn into_stream(self) -> ReplyStream<Self::Item>;
    /// Back from the stream.
    fn from_stream(stream: ReplyStream<Self::Item>) -> Self;
}

impl<T: Serialize + DeserializeOwned + Send + 'static> StreamReply for ReplyStream<T> {
    type Item = T;

    fn into_stream(self) -> Self {
        self
    }

    fn from_stream(stream: Self) -> Self {
        stream
    }
}

/// A remote message whose reply is a stream (server streaming, like a gRPC
/// server-streaming method): `Message::Reply` is `ReplyStream<Item>` with a
/// serde `Item`. Across nodes the items flow under credit flow control.
///
/// # Examples
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// pub struct Watch { sku: String }
/// #[derive(Serialize, Deserialize)]
/// pub struct StockLevel(u32);
///
/// plexus_codecs::remote_message!(Watch, "stock.Watch", 1, stream = StockLevel);
/// # fn main() {
/// # use plexus_codecs::WireMessage;
/// # assert_eq!(Watch::NAME, "stock.Watch");
/// # let _ = (Watch { sku: String::new() }.sku, StockLevel(0).0);
/// # }
/// ```
pub trait RemoteStream: WireMessage + Message<Reply: StreamReply> {}

/// The opening message of a remote bidirectional stream: the caller sends
/// a [`Duplex`](plexus_runtime::stream::Duplex) of this and a stream of
/// `In`, and reads a stream of `Out` back; both are serde.
///
/// # Examples
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Join { room: String }
/// #[derive(Serialize, Deserialize)]
/// struct Line(String);
///
/// plexus_codecs::remote_message!(Join, "chat.Join", 1, input = Line, output = Line);
/// # fn main() {
/// # let _ = (Join { room: String::new() }.room, Line(String::new()).0);
/// # }
/// ```
pub trait RemoteDuplex:
    WireMessage + DuplexMessage<In: Serialize + DeserializeOwned, Out: Serialize + DeserializeOwned>
{
}

/// Implements the wire traits and the runtime's message trait in one line:
///
/// - `remote_message!(Type, "wire.Name", version, reply = Reply);` — one
///   reply ([`RemoteMessage`]);
/// - `remote_message!(Type, "wire.Name", version, stream = Item);` — a
///   stream of `Item` ([`RemoteStream`]; the reply is `ReplyStream<Item>`);
/// - `remote_message!(Type, "wire.Name", version, input = In, output = Out);`
///   — a bidirectional stream opened by `Type` ([`RemoteDuplex`]; the actor
///   handles `Duplex<Type>`).
///
/// # Examples
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Ping;
/// plexus_codecs::remote_message!(Ping, "health.Ping", 2, reply = ());
/// # use plexus_codecs::WireMessage;
/// assert_eq!(<Ping as WireMessage>::VERSION, 2);
/// ```
#[macro_export]
macro_rules! remote_message {
    (@wire $ty:ty, $name:expr, $version:expr) => {
        impl $crate::WireMessage for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
        }
    };
    ($ty:ty, $name:expr, $version:expr, reply = $reply:ty $(,)?) => {
        impl $crate::__runtime::Message for $ty {
            type Reply = $reply;
        }
        $crate::remote_message!(@wire $ty, $name, $version);
        impl $crate::RemoteMessage for $ty {}
    };
    ($ty:ty, $name:expr, $version:expr, stream = $item:ty $(,)?) => {
        impl $crate::__runtime::Message for $ty {
            type Reply = $crate::__runtime::stream::ReplyStream<$item>;
        }
        $crate::remote_message!(@wire $ty, $name, $version);
        impl $crate::RemoteStream for $ty {}
    };
    ($ty:ty, $name:expr, $version:expr, input = $in:ty, output = $out:ty $(,)?) => {
        impl $crate::__runtime::stream::DuplexMessage for $ty {
            type In = $in;
            type Out = $out;
        }
        $crate::remote_message!(@wire $ty, $name, $version);
        impl $crate::RemoteDuplex for $ty {}
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
    pub const fn of<M: WireMessage>() -> Self {
        Self {
            name: WireStr::from_static(M::NAME),
            version: M::VERSION,
        }
    }

    /// Checks `name` against the naming rule of [`WireMessage::NAME`];
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
