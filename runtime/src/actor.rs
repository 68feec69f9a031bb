//! The nouns every service is written with: [`Actor`], [`Message`],
//! [`Handler`], plus the identity and death notice of an actor.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::context::Context;

/// A service: state plus the messages it handles.
///
/// Every hook has a default that does nothing; implement the ones you need.
/// Hooks run inside the actor's own task, one at a time, like handlers.
///
/// Lifecycle: `started` → handlers … → `stopping` → `stopped`. When a
/// handler panics and the actor was spawned from a factory, the failed value
/// is dropped without further hooks, a fresh value is made, and it gets
/// [`restarted`](Actor::restarted) and then [`started`](Actor::started); the
/// mailbox and every [`ActorRef`](crate::ActorRef) stay as they were.
pub trait Actor: Sized + Send + 'static {
    /// Runs before the first message is handled.
    fn started(&mut self, cx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = cx;
        async {}
    }

    /// Runs on a fresh value made after a failure, before
    /// [`started`](Actor::started). `failure` says what went wrong.
    fn restarted(
        &mut self,
        failure: &StopReason,
        cx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (failure, cx);
        async {}
    }

    /// Runs once the actor has decided to stop, after the last message it
    /// will handle; the context can still send messages.
    fn stopping(&mut self, cx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = cx;
        async {}
    }

    /// Runs last, with the reason the actor stopped.
    fn stopped(&mut self, reason: &StopReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }
}

/// A message names its reply type, so that a type-erased
/// [`Recipient`](crate::Recipient) knows what `ask` returns.
///
/// Use `()` as the reply of a message that is only ever told.
pub trait Message: Send + 'static {
    /// What a handler returns for this message.
    type Reply: Send + 'static;
}

/// An actor answers `M`. Implement it once per message type.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// struct Counter(u64);
/// impl Actor for Counter {}
///
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
///
/// impl Handler<Add> for Counter {
///     async fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) -> u64 {
///         self.0 += n;
///         self.0
///     }
/// }
/// # let _ = (Counter(0), Add(1));
/// ```
pub trait Handler<M: Message>: Actor {
    /// Handle one message. The actor handles nothing else until this returns.
    fn handle(&mut self, msg: M, cx: &mut Context<Self>) -> impl Future<Output = M::Reply> + Send;
}

/// The identity of an actor within its node: unique, never reused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(pub(crate) u64);

impl ActorId {
    /// The id that stands for an actor on another node, in errors of
    /// remote sends (its real id is not known to the sender).
    pub const REMOTE: Self = Self(0);

    /// The raw number, for logs and wire formats.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// An id from its raw number (ids are handed out by the node; this is
    /// for decoding one that came over the wire).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why an actor stopped (or, in [`Actor::restarted`], why it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Stopped on request ([`ActorRef::stop`](crate::ActorRef::stop) or
    /// [`Context::stop`]) after handling what was queued.
    Normal,
    /// Killed ([`ActorRef::kill`](crate::ActorRef::kill)): queued asks were
    /// rejected with [`AskError::Stopped`](crate::AskError::Stopped).
    Killed,
    /// A handler or hook panicked and the actor was not restartable (spawned
    /// from a value, not a factory). `message` is the panic message.
    Panicked {
        /// The panic payload, if it was a string.
        message: Arc<str>,
    },
    /// The actor failed more often than its supervisor's restart intensity
    /// allows; the failure was escalated to the supervisor.
    RestartLimitExceeded {
        /// The last failure.
        last: Arc<str>,
    },
    /// Its supervisor restarted or stopped, taking its children with it.
    SupervisorStopped,
    /// The node shut down.
    Shutdown,
}

impl StopReason {
    /// Whether the actor stopped because something went wrong.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Panicked { .. } | Self::RestartLimitExceeded { .. }
        )
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("stopped"),
            Self::Killed => f.write_str("killed"),
            Self::Panicked { message } => write!(f, "panicked: {message}"),
            Self::RestartLimitExceeded { last } => {
                write!(f, "restart limit exceeded (last failure: {last})")
            }
            Self::SupervisorStopped => f.write_str("supervisor stopped"),
            Self::Shutdown => f.write_str("node shut down"),
        }
    }
}

/// The death notice a watcher receives (see [`Context::watch`]).
///
/// It travels on the watcher's priority lane, so a full mailbox never holds
/// it back, and it is delivered even when the watched actor was already dead
/// when the watch was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Who stopped.
    pub id: ActorId,
    /// Its registered name, if it had one.
    pub name: Option<Arc<str>>,
    /// Why.
    pub reason: StopReason,
}

impl Message for Terminated {
    type Reply = ();
}
