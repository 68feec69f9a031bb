//! Typed dispatch of decoded requests to local actors: one [`Inbound`] per
//! exposed message type, kept in the codecs registry beside its decoder.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use std::sync::Arc;

use bytes::Bytes;
use plexus_codecs::{
    Codec, CodecKind, Envelope, Kind, RemoteDuplex, RemoteMessage, RemoteStream, StreamReply,
    WireError, WireMessage,
};
use plexus_runtime::remote::SharedScope;
use plexus_runtime::stream::{Duplex, ReplyStream};
use plexus_runtime::{AskError, BoxFuture, Message, Node, Recipient, ReplyFn, TrySendError};
use serde::Serialize;

use super::session::{Session, build_frame};
use super::stream::{Encoded, remote_items};

/// A tell ready to be delivered in order by a channel's forwarder.
pub(crate) type TellJob = BoxFuture<'static, ()>;

/// Serves one inbound ask: sends its answer (for a stream: every item,
/// under credit) on the session.
type ServeFuture = BoxFuture<'static, ()>;

/// How an inbound ask is being served.
pub(crate) enum Serve {
    /// The actor answers it from its own task as the handler returns
    /// (the reply frame is sent from there): nothing to poll.
    Replying,
    /// This future answers it; the session's reader polls it.
    Polled(ServeFuture),
}

/// What the receiving node can do with a decoded message of one type.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// `target`'s ask route for this message type, resolved once and
    /// kept while the node's registry is unchanged.
    fn ask_target(&self, node: &Node, target: &str) -> Result<Box<dyn AskTarget>, WireError>;

    /// `target`'s tell route for this message type, resolved once for a
    /// tell channel.
    fn tell_target(&self, node: &Node, target: &str) -> Result<Box<dyn TellTarget>, WireError>;
}

/// An ask target resolved once: it decodes payloads straight into the
/// message type and asks the actor, skipping the registry and actor-name
/// lookups.
pub(crate) trait AskTarget: Send + 'static {
    /// Decode `payload` and start the ask for the peer's call `corr` on
    /// `session` (already registered as served, so an answer produced at
    /// once finds it); it is answered with the encoded reply or reply
    /// stream, in `span`.
    fn ask(
        &self,
        payload: &[u8],
        scope: SharedScope,
        session: &Arc<Session>,
        corr: u64,
        span: &tracing::Span,
    ) -> Result<Serve, WireError>;
}

/// A tell target resolved once per tell channel (and message type): it
/// decodes payloads straight into the message type and tells the actor,
/// skipping the registry and actor-name lookups of the first tell.
pub(crate) trait TellTarget: Send + 'static {
    /// Decode `payload` and tell it now if the mailbox has room (`None`);
    /// if it is full, the job that waits for room (`Some`).
    /// `scope` is only cloned into a job.
    fn try_tell(
        &mut self,
        node: &Node,
        codec: CodecKind,
        payload: &[u8],
        scope: &SharedScope,
    ) -> Result<Option<TellJob>, WireError>;

    /// Decode `payload` into a job that tells it, waiting for mailbox room
    /// (backpressure).
    fn tell(
        &mut self,
        codec: CodecKind,
        payload: &[u8],
        scope: &SharedScope,
    ) -> Result<TellJob, WireError>;
}

pub(crate) struct Typed<M>(PhantomData<fn() -> M>);

impl<M> Typed<M> {
    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

fn recipient<M: Message>(node: &Node, target: &str) -> Result<Recipient<M>, WireError> {
    node.lookup_recipient::<M>(target)
        .map_err(|_| WireError::UnknownTarget {
            target: target.to_owned(),
        })
}

impl<M: RemoteMessage> Inbound for Typed<M> {
    fn ask_target(&self, node: &Node, target: &str) -> Result<Box<dyn AskTarget>, WireError> {
        Ok(Box::new(UnaryAsk(recipient::<M>(node, target)?)))
    }

    fn tell_target(&self, node: &Node, target: &str) -> Result<Box<dyn TellTarget>, WireError> {
        TypedTarget::<M>::resolve(node, target)
    }
}

struct UnaryAsk<M: Message>(Recipient<M>);

impl<M: RemoteMessage> AskTarget for UnaryAsk<M> {
    fn ask(
        &self,
        payload: &[u8],
        scope: SharedScope,
        session: &Arc<Session>,
        corr: u64,
        span: &tracing::Span,
    ) -> Result<Serve, WireError> {
        let msg: M = session.agreed.decode_with.decode(payload)?;
        let codec = session.codec();
        // A local actor sends the reply frame from its task as the handler
        // returns: no future, no task, no wake-up of the reader.
        let then: ReplyFn<M::Reply> = Box::new({
            let session = Arc::clone(session);
            let span = span.clone();
            move |outcome| {
                let _in = span.enter();
                let frame = match outcome {
                    Some(Ok(reply)) => reply_frame(corr, codec, &reply),
                    Some(Err(e)) => Err(to_wire(e)),
                    None => Err(WireError::Stopped),
                };
                session.answer(corr, frame);
            }
        });
        let msg = match scope.enter(|| self.0.ask_then(msg, then)) {
            Ok(()) => return Ok(Serve::Replying),
            Err((msg, _)) => msg,
        };
        let ask = scoped_ask(self.0.clone(), msg, scope);
        Ok(Serve::Polled(Box::pin(Arc::clone(session).serve_unary(
            corr,
            async move {
                let reply = ask.await?;
                reply_frame(corr, codec, &reply)
            },
        ))))
    }
}

/// The reply frame of call `corr`: the reply encoded straight after its
/// header.
fn reply_frame<R: Serialize>(corr: u64, codec: CodecKind, reply: &R) -> Result<Bytes, WireError> {
    Ok(build_frame(|buf| {
        Envelope::new(Kind::Reply, corr)
            .from_callee()
            .encode_header(buf);
        codec.encode(reply, buf)
    })?)
}

/// Server streaming: the handler's reply is a stream.
pub(crate) struct TypedStream<M>(PhantomData<fn() -> M>);

impl<M> TypedStream<M> {
    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M: RemoteStream> Inbound for TypedStream<M> {
    fn ask_target(&self, node: &Node, target: &str) -> Result<Box<dyn AskTarget>, WireError> {
        Ok(Box::new(StreamAsk(recipient::<M>(node, target)?)))
    }

    fn tell_target(&self, node: &Node, target: &str) -> Result<Box<dyn TellTarget>, WireError> {
        TypedTarget::<M>::resolve(node, target)
    }
}

struct StreamAsk<M: Message>(Recipient<M>);

impl<M: RemoteStream> AskTarget for StreamAsk<M> {
    fn ask(
        &self,
        payload: &[u8],
        scope: SharedScope,
        session: &Arc<Session>,
        corr: u64,
        _: &tracing::Span,
    ) -> Result<Serve, WireError> {
        let msg: M = session.agreed.decode_with.decode(payload)?;
        let ask = scoped_ask(self.0.clone(), msg, scope);
        let codec = session.codec();
        Ok(Serve::Polled(Box::pin(Arc::clone(session).serve_stream(
            corr,
            async move {
                let items = ask.await?.into_stream();
                Ok(encoded(items, codec))
            },
        ))))
    }
}

/// Bidirectional streams: the peer's input arrives as a stream, the
/// handler's reply is a stream.
pub(crate) struct TypedDuplex<O>(PhantomData<fn() -> O>);

impl<O> TypedDuplex<O> {
    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<O: RemoteDuplex> Inbound for TypedDuplex<O> {
    fn ask_target(&self, node: &Node, target: &str) -> Result<Box<dyn AskTarget>, WireError> {
        Ok(Box::new(DuplexAsk(recipient::<Duplex<O>>(node, target)?)))
    }

    fn tell_target(&self, _: &Node, _: &str) -> Result<Box<dyn TellTarget>, WireError> {
        Err(WireError::BadPayload {
            reason: format!("{} opens a bidirectional stream: ask it", O::NAME),
        })
    }
}

struct DuplexAsk<O: RemoteDuplex>(Recipient<Duplex<O>>);

impl<O: RemoteDuplex> AskTarget for DuplexAsk<O> {
    fn ask(
        &self,
        payload: &[u8],
        scope: SharedScope,
        session: &Arc<Session>,
        corr: u64,
        _: &tracing::Span,
    ) -> Result<Serve, WireError> {
        let open: O = session.agreed.decode_with.decode(payload)?;
        let to = self.0.clone();
        let codec = session.codec();
        let (feed, input) = remote_items::<O::In>(session, corr, false);
        session.open_feed(corr, false, feed);
        let msg = Duplex::new(open, ReplyStream::from_source(input));
        let ask = scoped_ask(to, msg, scope);
        Ok(Serve::Polled(Box::pin(Arc::clone(session).serve_stream(
            corr,
            async move {
                let items = ask.await?;
                Ok(encoded(items, codec))
            },
        ))))
    }
}

/// The resolved [`TellTarget`] of a message type `M`.
struct TypedTarget<M: Message> {
    name: Box<str>,
    to: Recipient<M>,
}

impl<M: WireMessage + Message> TypedTarget<M> {
    fn resolve(node: &Node, target: &str) -> Result<Box<dyn TellTarget>, WireError> {
        Ok(Box::new(Self {
            name: target.into(),
            to: recipient::<M>(node, target)?,
        }))
    }

    /// Tell now, or hand back the job that waits for room; `Err` gives the
    /// message back if the actor is closed.
    fn deliver(&self, msg: M, scope: &SharedScope) -> Result<Option<TellJob>, M> {
        match self.to.try_tell_in(msg, scope) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full { msg, .. }) => {
                Ok(Some(tell_job(self.to.clone(), msg, scope.clone())))
            }
            Err(TrySendError::Closed { msg, .. }) => Err(msg),
            Err(e) => {
                tracing::debug!(error = %e, "remote tell not delivered");
                Ok(None)
            }
        }
    }
}

impl<M: WireMessage + Message> TellTarget for TypedTarget<M> {
    fn try_tell(
        &mut self,
        node: &Node,
        codec: CodecKind,
        payload: &[u8],
        scope: &SharedScope,
    ) -> Result<Option<TellJob>, WireError> {
        let msg: M = codec.decode(payload)?;
        let msg = match self.deliver(msg, scope) {
            Ok(job) => return Ok(job),
            Err(msg) => msg,
        };
        // The actor stopped; another may have taken its name since.
        self.to = recipient::<M>(node, &self.name)?;
        match self.deliver(msg, scope) {
            Ok(job) => Ok(job),
            Err(_) => {
                tracing::debug!(target = %self.name, "remote tell not delivered: actor stopped");
                Ok(None)
            }
        }
    }

    fn tell(
        &mut self,
        codec: CodecKind,
        payload: &[u8],
        scope: &SharedScope,
    ) -> Result<TellJob, WireError> {
        let msg: M = codec.decode(payload)?;
        Ok(tell_job(self.to.clone(), msg, scope.clone()))
    }
}

fn tell_job<M: Message>(to: Recipient<M>, msg: M, scope: SharedScope) -> TellJob {
    Box::pin(Scoped {
        scope,
        fut: Box::pin(async move {
            if let Err(e) = to.tell(msg).await {
                tracing::debug!(error = %e, "remote tell not delivered");
            }
        }),
    })
}

/// Asks `to` with `scope` as the current request (deadline, trace, caller,
/// cancel). The ask is made inside the scope and carries it from then on,
/// so only its creation, not every poll, runs in the scope.
async fn scoped_ask<M: Message>(
    to: Recipient<M>,
    msg: M,
    scope: SharedScope,
) -> Result<M::Reply, WireError> {
    let ask = scope.enter(|| to.ask(msg).into_future());
    ask.await.map_err(to_wire)
}

/// A handler's reply stream, encoded.
fn encoded<T: Serialize + Send + 'static>(
    items: ReplyStream<T>,
    codec: CodecKind,
) -> ReplyStream<Bytes> {
    ReplyStream::from_source(Encoded::new(items, codec))
}

/// Polls `fut` with `scope` as the current request, so the ask or tell it
/// creates carries the remote call's deadline, trace, caller and cancel.
pub(crate) struct Scoped<F> {
    pub(crate) scope: SharedScope,
    pub(crate) fut: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let fut = this.fut.as_mut();
        this.scope.enter(|| fut.poll(cx))
    }
}

/// The wire error for a frame of `len` bytes over a link limit of `max`.
pub(crate) fn too_large(len: usize, max: usize) -> WireError {
    WireError::TooLarge {
        len: len as u64,
        max: max as u64,
    }
}

/// An ask failure on this node as the caller should see it.
pub(crate) fn to_wire(e: AskError) -> WireError {
    match e {
        AskError::Timeout { .. } | AskError::DeadlineExceeded => WireError::DeadlineExceeded,
        AskError::Closed { .. } | AskError::Stopped { .. } => WireError::Stopped,
        AskError::HandlerPanicked { .. } => WireError::HandlerPanicked,
        AskError::Full { .. } => WireError::MailboxFull,
        AskError::PeerUnavailable { .. } => WireError::PeerUnavailable,
        AskError::UnknownMessage { name } => WireError::UnknownMessage {
            name: name.to_string(),
        },
        AskError::IncompatibleVersion {
            name,
            expected,
            got,
        } => WireError::IncompatibleVersion {
            name: name.to_string(),
            expected,
            got,
        },
        AskError::UnknownTarget { target } => WireError::UnknownTarget {
            target: target.to_string(),
        },
        AskError::StreamAborted { reason } => WireError::StreamAborted {
            reason: reason.to_string(),
        },
        AskError::TooLarge { len, max } => too_large(len, max),
        other => WireError::BadPayload {
            reason: other.to_string(),
        },
    }
}

/// A remote failure as a typed [`AskError`] for the caller.
pub(crate) fn from_wire(e: WireError, peer: &str) -> AskError {
    match e {
        WireError::DeadlineExceeded => AskError::DeadlineExceeded,
        WireError::PeerUnavailable => AskError::PeerUnavailable { peer: peer.into() },
        WireError::UnknownMessage { name } => AskError::UnknownMessage { name: name.into() },
        WireError::IncompatibleVersion {
            name,
            expected,
            got,
        } => AskError::IncompatibleVersion {
            name: name.into(),
            expected,
            got,
        },
        WireError::BadPayload { reason } => AskError::BadPayload {
            reason: reason.into(),
        },
        WireError::MailboxFull => AskError::Full {
            id: plexus_runtime::ActorId::REMOTE,
        },
        WireError::Stopped => AskError::Stopped {
            id: plexus_runtime::ActorId::REMOTE,
        },
        WireError::HandlerPanicked => AskError::HandlerPanicked {
            id: plexus_runtime::ActorId::REMOTE,
            message: "remote handler panicked".into(),
        },
        WireError::UnknownTarget { target } => AskError::UnknownTarget {
            target: target.into(),
        },
        WireError::StreamAborted { reason } => AskError::StreamAborted {
            reason: reason.into(),
        },
        WireError::TooLarge { len, max } => AskError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: usize::try_from(max).unwrap_or(usize::MAX),
        },
        other => AskError::Remote {
            reason: other.to_string().into(),
        },
    }
}
