//! Typed dispatch of decoded requests to local actors: one [`Inbound`] per
//! exposed message type, kept in the codecs registry beside its decoder.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use plexus_codecs::{AnyMessage, Codec, CodecKind, Envelope, Kind, RemoteMessage, WireError};
use plexus_runtime::remote::CallScope;
use plexus_runtime::{AskError, BoxFuture, Node, Recipient, TrySendError};

use super::session::build_frame;

/// A tell ready to be delivered in order by a channel's forwarder.
pub(crate) type TellJob = BoxFuture<'static, ()>;

/// What the receiving node can do with a decoded message of one type.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// Start an ask of `target`; the future answers with the reply frame
    /// for `correlation`.
    fn ask(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
        codec: CodecKind,
        correlation: u64,
    ) -> Result<BoxFuture<'static, Result<Bytes, WireError>>, WireError>;

    /// A job that tells `target` (waiting for mailbox room: backpressure).
    fn tell(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
    ) -> Result<TellJob, WireError>;

    /// Tell `target` now if its mailbox has room (`None`); if it is full,
    /// the job that waits for room (`Some`).
    fn try_tell(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
    ) -> Result<Option<TellJob>, WireError>;
}

pub(crate) struct Typed<M>(PhantomData<fn() -> M>);

impl<M> Typed<M> {
    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

fn recipient<M: RemoteMessage>(node: &Node, target: &str) -> Result<Recipient<M>, WireError> {
    node.lookup_recipient::<M>(target)
        .map_err(|_| WireError::UnknownTarget {
            target: target.to_owned(),
        })
}

fn downcast<M: RemoteMessage>(msg: AnyMessage) -> Result<M, WireError> {
    msg.downcast::<M>()
        .map(|b| *b)
        .map_err(|_| WireError::BadPayload {
            reason: format!("registry decoded another type than {}", M::NAME),
        })
}

impl<M: RemoteMessage> Inbound for Typed<M> {
    fn ask(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
        codec: CodecKind,
        correlation: u64,
    ) -> Result<BoxFuture<'static, Result<Bytes, WireError>>, WireError> {
        let to = recipient::<M>(node, target)?;
        let msg = downcast::<M>(msg)?;
        Ok(Box::pin(async move {
            let fut = Scoped {
                scope,
                fut: Box::pin(async move { to.ask(msg).await }),
            };
            match fut.await {
                Ok(reply) => build_frame(|buf| {
                    Envelope::new(Kind::Reply, correlation).encode_header(buf);
                    codec.encode(&reply, buf)?;
                    Ok(())
                }),
                Err(e) => Err(to_wire(e)),
            }
        }))
    }

    fn tell(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
    ) -> Result<TellJob, WireError> {
        let to = recipient::<M>(node, target)?;
        let msg = downcast::<M>(msg)?;
        Ok(tell_job(to, msg, scope))
    }

    fn try_tell(
        &self,
        node: &Node,
        target: &str,
        msg: AnyMessage,
        scope: CallScope,
    ) -> Result<Option<TellJob>, WireError> {
        let to = recipient::<M>(node, target)?;
        let msg = downcast::<M>(msg)?;
        match scope.enter(|| to.try_tell(msg)) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full { msg, .. }) => Ok(Some(tell_job(to, msg, scope))),
            Err(e) => {
                tracing::debug!(error = %e, "remote tell not delivered");
                Ok(None)
            }
        }
    }
}

fn tell_job<M: RemoteMessage>(to: Recipient<M>, msg: M, scope: CallScope) -> TellJob {
    Box::pin(Scoped {
        scope,
        fut: Box::pin(async move {
            if let Err(e) = to.tell(msg).await {
                tracing::debug!(error = %e, "remote tell not delivered");
            }
        }),
    })
}

/// Polls `fut` with `scope` as the current request, so the ask or tell it
/// creates carries the remote call's deadline, trace, caller and cancel.
pub(crate) struct Scoped<F> {
    pub(crate) scope: CallScope,
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
        other => AskError::Remote {
            reason: other.to_string().into(),
        },
    }
}
