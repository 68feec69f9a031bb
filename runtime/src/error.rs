//! Typed errors, one enum per operation family. Each variant's doc says what
//! the caller can do about it. Errors of operations that consume a message
//! hand the message back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::ActorId;

/// Why [`ActorRef::tell`](crate::ActorRef::tell) did not enqueue. The message
/// comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The actor stopped (or is stopping) and accepts no more messages;
    /// later sends fail too. Look the name up again or give up.
    #[error("actor {id} has stopped")]
    Closed {
        /// The message that was not sent.
        msg: M,
        /// The actor it was for.
        id: ActorId,
    },
    /// Remote tells: the peer refused this kind of tell (it does not expose
    /// the message at this version, or has no such actor). A refusal of an
    /// earlier tell is reported by the next one, as a socket reports an
    /// unreachable port on its next send; this message was not sent. Fix
    /// the name or version, or wait for the actor to exist, then retry.
    ///
    /// Also this message itself, when it could not be sent: `error` is then
    /// [`AskError::PeerUnavailable`] (no link to the peer right now; links
    /// reconnect on their own, so retry later), [`AskError::TooLarge`] (the
    /// encoded message exceeds the link's frame limit) or
    /// [`AskError::BadPayload`] (the message did not encode). Later tells
    /// are unaffected.
    #[error("tell not delivered: {error}")]
    Rejected {
        /// The message that was not sent.
        msg: M,
        /// Why the peer refused.
        error: AskError,
    },
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Closed { msg, .. } | Self::Rejected { msg, .. } => msg,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { id, .. } => f
                .debug_struct("Closed")
                .field("id", id)
                .finish_non_exhaustive(),
            Self::Rejected { error, .. } => f
                .debug_struct("Rejected")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

/// Why [`ActorRef::try_tell`](crate::ActorRef::try_tell) did not enqueue. The
/// message comes back for a retry or rerouting.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<M> {
    /// The mailbox is at capacity. Await `tell` instead, give the actor a
    /// larger mailbox, or shed the message.
    #[error("mailbox of actor {id} is full ({capacity} queued)")]
    Full {
        /// The message that was not sent.
        msg: M,
        /// The actor it was for.
        id: ActorId,
        /// The mailbox's capacity.
        capacity: usize,
    },
    /// The actor stopped (or is stopping); later sends fail too.
    #[error("actor {id} has stopped")]
    Closed {
        /// The message that was not sent.
        msg: M,
        /// The actor it was for.
        id: ActorId,
    },
    /// Remote tells: the peer refused this kind of tell, or this message
    /// could not be sent; see [`SendError::Rejected`].
    #[error("tell not delivered: {error}")]
    Rejected {
        /// The message that was not sent.
        msg: M,
        /// Why the peer refused.
        error: AskError,
    },
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full { msg, .. } | Self::Closed { msg, .. } | Self::Rejected { msg, .. } => msg,
        }
    }

    /// Whether the mailbox was full (as opposed to closed).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full { .. })
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { id, capacity, .. } => f
                .debug_struct("Full")
                .field("id", id)
                .field("capacity", capacity)
                .finish_non_exhaustive(),
            Self::Closed { id, .. } => f
                .debug_struct("Closed")
                .field("id", id)
                .finish_non_exhaustive(),
            Self::Rejected { error, .. } => f
                .debug_struct("Rejected")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

impl<M> From<SendError<M>> for TrySendError<M> {
    fn from(e: SendError<M>) -> Self {
        match e {
            SendError::Closed { msg, id } => Self::Closed { msg, id },
            SendError::Rejected { msg, error } => Self::Rejected { msg, error },
        }
    }
}

/// Why an ask got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No reply before the deadline. The request may or may not have been
    /// handled (if it was still queued when the deadline passed, it will not
    /// be). Retry only if the message is idempotent.
    #[error("no reply within {after:?}")]
    Timeout {
        /// The time budget the ask had.
        after: Duration,
    },
    /// The mailbox was closed when the ask was sent: the actor had stopped.
    /// The request was not handled. Look the name up again.
    #[error("actor {id} has stopped; the request was not delivered")]
    Closed {
        /// The actor.
        id: ActorId,
    },
    /// The actor stopped (was killed, or its node shut down) after the
    /// request was queued and before it was handled. It was not handled.
    #[error("actor {id} stopped before handling the request")]
    Stopped {
        /// The actor.
        id: ActorId,
    },
    /// The handler panicked while handling this request. The actor was
    /// restarted or stopped, per its supervision; other queued requests are
    /// unaffected.
    #[error("handler of actor {id} panicked: {message}")]
    HandlerPanicked {
        /// The actor.
        id: ActorId,
        /// The panic message, if it was a string.
        message: Arc<str>,
    },
    /// A remote node refused the call: the target's mailbox was full, or
    /// the node already serves as many calls from this node as it allows
    /// (its `RemoteConfig::max_inbound_calls`); `id` is then
    /// [`ActorId::REMOTE`]. Retry later, or shed load. The request was not
    /// handled. (A local `ask` waits for mailbox room instead.)
    #[error("mailbox of actor {id} is full")]
    Full {
        /// The actor.
        id: ActorId,
    },
    /// Remote asks: the deadline's budget ran out (on the way, while
    /// queued at the remote node, or before the reply came back). An expired
    /// request is not handled by the remote node. Give the call more time, or
    /// shed it.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// Remote asks: no link to the peer node, or it went down while the
    /// request was pending (reported at once, not at the deadline). Retry
    /// once the link is back (links reconnect on their own).
    #[error("peer {peer} is unavailable")]
    PeerUnavailable {
        /// The peer node's name.
        peer: Arc<str>,
    },
    /// Remote asks: the peer exposes no message of this name. Check the
    /// name, or register the message on the peer.
    #[error("peer exposes no message named {name:?}")]
    UnknownMessage {
        /// The message name.
        name: Arc<str>,
    },
    /// Remote asks: the peer knows the message at another version. Deploy
    /// matching versions, or have the peer register both.
    #[error("{name} v{got} is not understood by the peer, which has v{expected}")]
    IncompatibleVersion {
        /// The message name.
        name: Arc<str>,
        /// The newest version the peer registered.
        expected: u32,
        /// The version that was sent.
        got: u32,
    },
    /// Remote asks: the request or its reply did not decode. A bug or a
    /// version skew; the node stays up.
    #[error("bad payload: {reason}")]
    BadPayload {
        /// What the decoder said.
        reason: Arc<str>,
    },
    /// Remote asks: no actor of this name on the peer exposes the message.
    #[error("no actor {target:?} on the peer exposes the message")]
    UnknownTarget {
        /// The target name.
        target: Arc<str>,
    },
    /// Remote asks: any other failure the peer reported (e.g. the caller
    /// is not authorized), as text.
    #[error("remote error: {reason}")]
    Remote {
        /// The peer's explanation.
        reason: Arc<str>,
    },
    /// Remote calls: the request, its reply or a stream item encoded to a
    /// frame larger than the link carries (`max_frame` of the QUIC or
    /// simulated link; 1 MiB by default). A request was not sent; for a
    /// reply or an item, the handler ran but its answer was not delivered.
    /// Send less per message (a stream of pieces), or raise the limit on
    /// both nodes.
    #[error("frame of {len} bytes exceeds the link's limit of {max}")]
    TooLarge {
        /// The encoded frame's size.
        len: usize,
        /// The link's limit.
        max: usize,
    },
    /// Streams: the producer ended the stream early, with this reason (it
    /// called [`StreamSender::abort`](crate::stream::StreamSender::abort),
    /// or panicked while holding the sender). Items before it were real;
    /// no more follow.
    #[error("stream aborted: {reason}")]
    StreamAborted {
        /// The producer's explanation.
        reason: Arc<str>,
    },
}

impl AskError {
    /// Whether the ask ran out of time: [`Timeout`](Self::Timeout) (a local
    /// actor) or [`DeadlineExceeded`](Self::DeadlineExceeded) (a remote
    /// one). Code behind a [`Recipient`](crate::Recipient) that may be either
    /// matches this instead of both variants.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::DeadlineExceeded)
    }
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// Another live actor is registered under this name. Pick another name
    /// or look the existing one up.
    #[error("the name {0:?} is already registered")]
    NameTaken(Arc<str>),
    /// The node is shutting down and accepts no new actors.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The supervisor given in the options has stopped.
    #[error("supervisor {0} has stopped")]
    SupervisorStopped(ActorId),
}

/// Why a registry lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Nothing is registered under this name (never was, or it stopped).
    #[error("no actor is registered as {0:?}")]
    NotFound(Arc<str>),
    /// Something is registered under this name, but of another actor type.
    #[error("{name:?} is a {actual}, not a {expected}")]
    WrongType {
        /// The name looked up.
        name: Arc<str>,
        /// The type asked for.
        expected: &'static str,
        /// The registered actor's type.
        actual: &'static str,
    },
    /// The actor is registered but does not expose this message type as a
    /// recipient; call `ActorRef::expose::<M>()` when registering it.
    #[error("{name:?} does not expose {message}")]
    NotExposed {
        /// The name looked up.
        name: Arc<str>,
        /// The message type asked for.
        message: &'static str,
    },
}

/// Why `ActorRef::expose` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExposeError {
    /// Only named actors are in the registry; spawn with a name.
    #[error("actor {0} has no registered name")]
    Unnamed(ActorId),
    /// The actor has stopped and its name was released.
    #[error("actor {0} has stopped")]
    Stopped(ActorId),
}
