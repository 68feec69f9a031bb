//! [`Remote`]: a node's rpc endpoint. It exposes message types to peers,
//! runs one session per [`Link`] (simulated or QUIC), and hands out
//! [`Recipient<M>`]s for actors on other nodes that local code cannot tell
//! from local ones.
//!
//! # Protocol in short
//!
//! - On a new link both sides send a [`Handshake`] (wire version, node id,
//!   codec, exposed messages); [`check_compat`] refuses an incompatible peer.
//! - Asks carry a correlation id, the target actor's name, the message name
//!   and version, the remaining deadline budget and a traceparent. The
//!   receiver decodes by name, runs the ask under a
//!   [`CallScope`](plexus_runtime::remote::CallScope) (deadline, trace,
//!   caller identity, cancel token) and answers `Reply` or a typed `Error`.
//! - Dropping an ask future sends `Cancel`: the remote handler is dropped.
//! - Tells to one target travel on a channel with a credit window of
//!   [`TELL_WINDOW`]: the receiver grants credit as the target's mailbox
//!   accepts them, so a full mailbox makes the remote sender wait and memory
//!   is bounded on both nodes.
//! - A tell of a message the peer does not expose (or not at this version)
//!   is refused at once with `SendError::Rejected`; a tell to an actor the
//!   peer does not have is dropped there and reported back, and the next
//!   tell to that target returns `SendError::Rejected` with
//!   `AskError::UnknownTarget` (as a socket reports an unreachable port on
//!   its next send).
//! - Streams (`ReplyStream` replies, `Duplex` calls) flow under a credit
//!   window of [`STREAM_WINDOW`] per direction; see [`Remote::stream_recipient`]
//!   and [`Remote::duplex_recipient`].
//! - When the link closes, pending asks fail at once with
//!   `AskError::PeerUnavailable`, open streams end with it, and tells are
//!   refused with `SendError::Rejected` carrying `PeerUnavailable` (handing
//!   the message back): there is no outbox.
//! - Two nodes that dial each other keep one link: the one opened by the
//!   node whose name sorts first.

mod inbound;
mod proxy;
mod session;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use plexus_codecs::{
    CodecKind, Handshake, HandshakeError, RegistryError, RemoteDuplex, RemoteMessage, RemoteStream,
    WireStr, check_compat,
};
use plexus_runtime::remote::{Link, LinkError};
use plexus_runtime::stream::Duplex;
use plexus_runtime::{Node, Recipient};

pub use session::TELL_WINDOW;
pub use stream::STREAM_WINDOW;

use inbound::{Inbound, Typed, TypedDuplex, TypedStream};
use session::{Session, lock};

/// Settings of a [`Remote`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// How long [`Remote::attach`] waits for the peer's handshake.
    pub handshake_timeout: Duration,
    /// How many calls (asks and streams) from one peer this node serves at
    /// once (default 1,024). A call past the limit is refused at once: its
    /// caller gets [`AskError::Full`](plexus_runtime::AskError::Full) and
    /// may retry. Tells are bounded by their credit window instead.
    pub max_inbound_calls: usize,
    /// How many tell channels one peer may open on this node per link
    /// (default 4,096). A peer's node opens one per target actor it tells,
    /// and the channel (its credit state, and a task while the target's
    /// mailbox is full) lives as long as the link, so this bounds that
    /// memory. A tell to one target more is refused: the sender's next
    /// tell to it returns `SendError::Rejected` with an
    /// [`AskError::Remote`](plexus_runtime::AskError::Remote) that says so.
    pub max_tell_channels: usize,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            max_inbound_calls: 1024,
            max_tell_channels: 4096,
        }
    }
}

/// Why [`Remote::attach`] failed; the link is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The link closed during the handshake.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The peer's handshake was malformed or incompatible (wire version).
    /// Upgrade one side.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// No handshake within [`RemoteConfig::handshake_timeout`].
    #[error("no handshake from {peer} in time")]
    Timeout {
        /// The peer.
        peer: Arc<str>,
    },
    /// The peer's handshake gives another node name than the link's peer
    /// (over QUIC: the name its certificate was verified for). The node's
    /// name (`NodeBuilder::name`) and the name its endpoint is started
    /// with must be the same; fix the peer's configuration.
    #[error("the link is to {peer}, but its handshake names node {claimed:?}")]
    Identity {
        /// The link's (verified) peer.
        peer: Arc<str>,
        /// The node name in the peer's handshake.
        claimed: String,
    },
    /// Both nodes dialed each other; both keep the link opened by the node
    /// whose name sorts first, and this is the other one. Use the kept
    /// link ([`Remote::connection`]); nothing is wrong.
    #[error(
        "a link with {peer} already exists (the one opened by the node whose name sorts first is kept)"
    )]
    Duplicate {
        /// The peer.
        peer: Arc<str>,
    },
}

/// A node's rpc endpoint. Cheap to clone.
///
/// # Examples
///
/// Two nodes in one process on the simulated network:
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use plexus_transports::{remote::Remote, sim::SimNetwork};
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Add(u64, u64);
/// plexus_codecs::remote_message!(Add, "calc.Add", 1, reply = u64);
///
/// struct Calc;
/// impl Actor for Calc {}
/// impl Handler<Add> for Calc {
///     async fn handle(&mut self, Add(a, b): Add, _: &mut Context<Self>) -> u64 { a + b }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = (Node::builder().name("a").build(), Node::builder().name("b").build());
/// b.spawn_with(SpawnOptions::new().name("calc"), Calc)?.expose::<Add>()?;
/// let ra = Remote::builder(&a).build();
/// let rb = Remote::builder(&b).expose::<Add>()?.build();
///
/// let net = SimNetwork::with_clock(a.clock().clone(), 1);
/// let (ab, ba) = net.link("a", "b");
/// let (x, y) = tokio::join!(ra.attach(ab), rb.attach(ba));
/// x?; y?;
///
/// let calc: Recipient<Add> = ra.recipient("b", "calc");
/// assert_eq!(calc.ask(Add(2, 3)).await?, 5);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Remote {
    inner: Arc<RemoteInner>,
}

pub(crate) struct RemoteInner {
    pub(crate) node: Node,
    pub(crate) registry: plexus_codecs::Registry<Arc<dyn Inbound>>,
    codec: CodecKind,
    pub(crate) config: RemoteConfig,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    changed: tokio::sync::Notify,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("node", &self.inner.node.name())
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Remote`]; see [`Remote::builder`].
#[must_use = "call .build()"]
pub struct RemoteBuilder {
    node: Node,
    registry: plexus_codecs::Registry<Arc<dyn Inbound>>,
    codec: CodecKind,
    config: RemoteConfig,
}

impl fmt::Debug for RemoteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("node", &self.node.name())
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl RemoteBuilder {
    /// Let peers send `M` to this node's actors that expose it
    /// ([`ActorRef::expose`](plexus_runtime::ActorRef::expose)).
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid or duplicate name and version.
    pub fn expose<M: RemoteMessage>(mut self) -> Result<Self, RegistryError> {
        self.registry
            .register_with::<M>(Arc::new(Typed::<M>::new()))?;
        Ok(self)
    }

    /// Let peers ask `M`, whose reply is a stream, of this node's actors
    /// that expose it. The items flow under credit flow control
    /// ([`STREAM_WINDOW`]).
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid or duplicate name and version.
    pub fn expose_stream<M: RemoteStream>(mut self) -> Result<Self, RegistryError> {
        self.registry
            .register_with::<M>(Arc::new(TypedStream::<M>::new()))?;
        Ok(self)
    }

    /// Let peers open bidirectional streams with `O` to this node's actors
    /// that expose `Duplex<O>`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid or duplicate name and version.
    pub fn expose_duplex<O: RemoteDuplex>(mut self) -> Result<Self, RegistryError> {
        self.registry
            .register_with::<O>(Arc::new(TypedDuplex::<O>::new()))?;
        Ok(self)
    }

    /// The codec this node encodes with (default postcard).
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = codec;
        self
    }

    /// All settings at once; replaces what earlier setters chose (call the
    /// single setters after it to adjust one).
    pub fn config(mut self, config: RemoteConfig) -> Self {
        self.config = config;
        self
    }

    /// How many calls from one peer this node serves at once
    /// ([`RemoteConfig::max_inbound_calls`]; at least 1).
    pub fn max_inbound_calls(mut self, n: usize) -> Self {
        self.config.max_inbound_calls = n;
        self
    }

    /// How many tell channels one peer may open per link
    /// ([`RemoteConfig::max_tell_channels`]; at least 1).
    pub fn max_tell_channels(mut self, n: usize) -> Self {
        self.config.max_tell_channels = n;
        self
    }

    /// How long [`Remote::attach`] waits for the peer's handshake
    /// ([`RemoteConfig::handshake_timeout`]; default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Make the endpoint. A `max_inbound_calls` or `max_tell_channels` of
    /// 0 (which would refuse everything) is taken as 1.
    pub fn build(mut self) -> Remote {
        self.config.max_inbound_calls = self.config.max_inbound_calls.max(1);
        self.config.max_tell_channels = self.config.max_tell_channels.max(1);
        Remote {
            inner: Arc::new(RemoteInner {
                node: self.node,
                registry: self.registry,
                codec: self.codec,
                config: self.config,
                sessions: Mutex::new(HashMap::new()),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl RemoteInner {
    pub(crate) fn session(&self, peer: &str) -> Option<Arc<Session>> {
        lock(&self.sessions)
            .get(peer)
            .filter(|s| s.is_alive())
            .cloned()
    }

    /// Drop `session` from the table if it is still the current one.
    pub(crate) fn forget(&self, session: &Arc<Session>) {
        let mut sessions = lock(&self.sessions);
        if sessions
            .get(&session.peer)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.peer);
        }
        drop(sessions);
        self.changed.notify_waiters();
    }
}

/// A live session with one peer, from [`Remote::attach`].
#[derive(Clone)]
pub struct Connection {
    session: Arc<Session>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.session.peer)
            .field("alive", &self.session.is_alive())
            .finish()
    }
}

impl Connection {
    /// The peer's authenticated name.
    pub fn peer(&self) -> &str {
        &self.session.peer
    }

    /// Whether the link is up.
    pub fn is_alive(&self) -> bool {
        self.session.is_alive()
    }

    /// Resolves when the link has closed (for reconnect loops).
    pub async fn closed(&self) {
        self.session.closed().await;
    }

    /// Close the link; pending asks on both sides fail with `PeerUnavailable`.
    pub fn close(&self) {
        self.session.shutdown();
    }
}

impl Remote {
    /// A builder for `node`'s endpoint: nothing exposed, postcard.
    pub fn builder(node: &Node) -> RemoteBuilder {
        RemoteBuilder {
            node: node.clone(),
            registry: plexus_codecs::Registry::new(),
            codec: CodecKind::Postcard,
            config: RemoteConfig::default(),
        }
    }

    /// The node this endpoint serves.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// Run the rpc protocol over `link`: exchange handshakes, then serve the
    /// peer until the link closes. One link per pair of nodes: a new link
    /// opened from the same side as the live one replaces it (a reconnect);
    /// when the two nodes dialed each other, both keep the link opened by
    /// the node whose name sorts first and the other attach fails with
    /// [`AttachError::Duplicate`].
    ///
    /// # Errors
    ///
    /// [`AttachError`]; the link is closed.
    pub async fn attach(&self, link: Link) -> Result<Connection, AttachError> {
        let Link {
            peer,
            tx,
            mut rx,
            opened_here,
        } = link;
        let inner = &self.inner;
        let hello = Handshake::new(inner.node.name(), inner.codec, inner.registry.exposed());
        let mut buf = BytesMut::new();
        hello.encode(&mut buf);
        let result = async {
            tx.send(buf.freeze()).await?;
            let clock = inner.node.clock();
            let timeout = clock.sleep_until(plexus_runtime::clock::after(
                clock.now(),
                inner.config.handshake_timeout,
            ));
            let first = tokio::select! {
                r = rx.recv() => r?,
                () = timeout => return Err(AttachError::Timeout { peer: Arc::clone(&peer) }),
            };
            let theirs = Handshake::decode(&first)?;
            if theirs.node_id != *peer {
                return Err(AttachError::Identity {
                    peer: Arc::clone(&peer),
                    claimed: theirs.node_id,
                });
            }
            Ok(check_compat(&hello, &theirs)?)
        }
        .await;
        let agreed = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "handshake failed; link closed");
                tx.close();
                return Err(e);
            }
        };
        let session = Arc::new(Session::new(Arc::clone(&peer), tx, agreed, opened_here));
        let mut sessions = lock(&inner.sessions);
        if let Some(old) = sessions.get(&peer).filter(|s| s.is_alive())
            && old.opened_here != opened_here
            && opened_here != (inner.node.name() < session.agreed.peer.as_str())
        {
            // Both dialed: keep the link the node named first opened (by
            // the node ids of the handshake, which both sides see alike).
            drop(sessions);
            tracing::debug!(node = inner.node.name(), peer = %peer, "duplicate link closed");
            session.shutdown();
            return Err(AttachError::Duplicate { peer });
        }
        // A reconnect (or the link to keep) replaces the old session.
        let old = sessions.insert(Arc::clone(&peer), Arc::clone(&session));
        drop(sessions);
        if let Some(old) = old {
            old.shutdown();
        }
        tracing::info!(node = inner.node.name(), peer = %peer, codec = %session.agreed.decode_with, "peer connected");
        inner.changed.notify_waiters();
        tokio::spawn(Arc::clone(&session).run(rx, Arc::downgrade(inner)));
        Ok(Connection { session })
    }

    /// The actor named `actor` on node `peer`, as a [`Recipient<M>`]. The
    /// peer need not be connected yet: each call uses the link of the moment
    /// (asks fail with `PeerUnavailable` while there is none).
    pub fn recipient<M: RemoteMessage>(&self, peer: &str, actor: &str) -> Recipient<M> {
        Recipient::new(proxy::RemoteSink::<M>::new(
            Arc::clone(&self.inner),
            peer.into(),
            WireStr::from(actor.to_owned()),
        ))
    }

    /// The actor named `actor` on node `peer`, for a message whose reply is
    /// a stream: `ask` returns the [`ReplyStream`](plexus_runtime::ReplyStream)
    /// of the remote handler's items, read at the caller's pace (the remote
    /// producer waits for credit). The ask's deadline bounds opening the
    /// stream (until the handler returns it); the stream then lives until it
    /// ends, the caller drops it (which cancels the remote side), or the
    /// link goes down (`PeerUnavailable` as its last item).
    pub fn stream_recipient<M: RemoteStream>(&self, peer: &str, actor: &str) -> Recipient<M> {
        Recipient::new(proxy::RemoteStreamSink(proxy::RemoteSink::<M>::new(
            Arc::clone(&self.inner),
            peer.into(),
            WireStr::from(actor.to_owned()),
        )))
    }

    /// The actor named `actor` on node `peer`, for bidirectional streams
    /// opened by `O`: ask it a [`Duplex`] of the opening message and a
    /// stream of inputs; the reply is the stream of outputs. Inputs are sent
    /// as the remote handler reads them (credit), outputs as the caller
    /// reads them. Telling a `Duplex` is refused (`Closed`, message handed
    /// back): the output has nowhere to go.
    pub fn duplex_recipient<O: RemoteDuplex>(
        &self,
        peer: &str,
        actor: &str,
    ) -> Recipient<Duplex<O>> {
        Recipient::new(proxy::RemoteDuplexSink(proxy::RemoteSink::<O>::new(
            Arc::clone(&self.inner),
            peer.into(),
            WireStr::from(actor.to_owned()),
        )))
    }

    /// The live session with `peer`, if any.
    pub fn connection(&self, peer: &str) -> Option<Connection> {
        self.inner
            .session(peer)
            .map(|session| Connection { session })
    }

    /// Whether a link to `peer` is up.
    pub fn is_connected(&self, peer: &str) -> bool {
        self.inner.session(peer).is_some()
    }

    /// Wait until a link to `peer` is up.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; wrap it in a timeout to bound the wait.
    pub async fn connected(&self, peer: &str) {
        loop {
            let notified = self.inner.changed.notified();
            if self.is_connected(peer) {
                return;
            }
            notified.await;
        }
    }

    /// Names of the peers with a live link, sorted.
    pub fn peers(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = lock(&self.inner.sessions)
            .iter()
            .filter(|(_, s)| s.is_alive())
            .map(|(k, _)| Arc::clone(k))
            .collect();
        v.sort();
        v
    }

    /// Close the link to `peer`, if any.
    pub fn disconnect(&self, peer: &str) {
        if let Some(s) = self.inner.session(peer) {
            s.shutdown();
        }
    }
}
