//! [`Context`]: what a handler can reach besides its own state.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actor::{Actor, ActorId, Handler, Message, Terminated};
use crate::actor_ref::ActorRef;
use crate::cell::Sys;
use crate::envelope::{BoxEnvelope, Tell};
use crate::error::SpawnError;
use crate::node::Node;
use crate::remote::CancelToken;
use crate::spawn::SpawnOptions;
use crate::supervision::{SupervisionStrategy, Supervisor};
use crate::timer::{TimerEntry, TimerId, Timers};
use crate::trace::{Meta, TraceContext};

/// The actor's view of the runtime, passed to every handler and hook.
pub struct Context<A: Actor> {
    pub(crate) myself: ActorRef<A>,
    pub(crate) node: Node,
    pub(crate) meta: Option<Meta>,
    pub(crate) stop_requested: bool,
    pub(crate) timers: Timers<A>,
    pub(crate) rng: fastrand::Rng,
    pub(crate) restarts: u32,
    pub(crate) child_strategy: Option<Box<SupervisionStrategy>>,
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("actor", &self.myself)
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

fn notice_meta() -> Meta {
    Meta::plain(0)
}

impl<A: Actor> Context<A> {
    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.myself.id()
    }

    /// A reference to this actor (to hand out, or to tell yourself).
    pub fn myself(&self) -> &ActorRef<A> {
        &self.myself
    }

    /// The node this actor runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stop after the current handler returns: the mailbox closes now, what
    /// is already queued is still handled (see [`ActorRef::stop`]).
    pub fn stop(&mut self) {
        self.myself.shared.close();
        self.stop_requested = true;
    }

    /// How many times this actor has been restarted.
    pub fn restart_count(&self) -> u32 {
        self.restarts
    }

    /// The node clock's current instant.
    pub fn now(&self) -> Instant {
        self.node.inner.clock.now()
    }

    /// This actor's random number generator, seeded from the node's seed
    /// and the actor's spawn order: the same seed gives the same numbers.
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    /// The deadline of the message being handled, if it has one (asks do).
    pub fn deadline(&self) -> Option<Instant> {
        self.meta.as_ref().and_then(|m| m.deadline)
    }

    /// Time left before the current message's deadline; `None` without one.
    /// Asks made from this handler inherit the deadline automatically.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(self.now()))
    }

    /// The correlation id of the message being handled (shared by every
    /// message sent while handling it).
    pub fn correlation_id(&self) -> Option<u64> {
        self.meta.as_ref().map(|m| m.correlation)
    }

    /// The trace context of the message being handled, if it carries one.
    pub fn trace(&self) -> Option<TraceContext> {
        self.meta.as_ref().and_then(Meta::trace)
    }

    /// The authenticated identity of the remote node that sent the message
    /// being handled (its certificate name on a QUIC link); `None` for
    /// messages sent from this node.
    pub fn caller(&self) -> Option<&str> {
        self.meta.as_ref().and_then(|m| m.caller().map(|c| &**c))
    }

    /// Whether the remote caller of the message being handled has given up
    /// (the handler is dropped at its next `.await` anyway; long synchronous
    /// work can check this).
    pub fn is_cancelled(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(Meta::cancel)
            .is_some_and(CancelToken::is_cancelled)
    }

    fn supervisor(&self) -> Arc<Supervisor> {
        let core = self.myself.core();
        Arc::clone(core.children.get_or_init(|| {
            let strategy = self
                .child_strategy
                .as_deref()
                .cloned()
                .unwrap_or_else(|| self.node.inner.default_supervision.clone());
            let me: Arc<dyn crate::cell::AnyCell> = self.myself.shared.clone();
            Arc::new(Supervisor::new(strategy, Some(Arc::downgrade(&me))))
        }))
    }

    /// Spawn an actor supervised by this one (with this actor's
    /// `SpawnOptions::supervise_children` strategy). Spawned from a value it
    /// cannot be restarted; use [`spawn_child_factory`](Self::spawn_child_factory)
    /// for that. Children stop before their parent does.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] if the name is taken, the node is shutting down, or
    /// this actor is stopping.
    pub fn spawn_child<C: Actor>(
        &mut self,
        opts: SpawnOptions,
        child: C,
    ) -> Result<ActorRef<C>, SpawnError> {
        let sup = self.supervisor();
        self.node.spawn_inner(opts, child, None, sup)
    }

    /// Spawn a restartable child from a factory.
    ///
    /// # Errors
    ///
    /// As [`spawn_child`](Self::spawn_child).
    pub fn spawn_child_factory<C, F>(
        &mut self,
        opts: SpawnOptions,
        mut factory: F,
    ) -> Result<ActorRef<C>, SpawnError>
    where
        C: Actor,
        F: FnMut() -> C + Send + 'static,
    {
        let sup = self.supervisor();
        let first = factory();
        self.node
            .spawn_inner(opts, first, Some(Box::new(factory)), sup)
    }

    /// Watch another actor: when it stops (or at once, if it already has),
    /// this actor handles a [`Terminated`] notice, delivered on the priority
    /// lane so a full mailbox does not hold it back.
    pub fn watch<B: Actor>(&mut self, other: &ActorRef<B>)
    where
        A: Handler<Terminated>,
    {
        let me = Arc::downgrade(&self.myself.shared);
        other.core().on_death(Box::new(move |t: &Terminated| {
            if let Some(me) = me.upgrade() {
                let env: BoxEnvelope<A> = Tell::boxed(t.clone(), notice_meta());
                me.push_sys(Sys::Deliver(env));
            }
        }));
    }

    /// Handle `msg` after `delay` on the node's clock. Timers are cancelled
    /// when the actor stops or restarts.
    pub fn run_later<M>(&mut self, delay: Duration, msg: M) -> TimerId
    where
        A: Handler<M>,
        M: Message,
    {
        let at = crate::clock::after(self.now(), delay);
        self.timers.add(
            at,
            TimerEntry::Once(Box::new(move || Tell::boxed(msg, notice_meta()))),
        )
    }

    /// Handle a message made by `make` every `period` on the node's clock,
    /// first after one period. Missed ticks (a long handler, a clock advanced
    /// by several periods) fire one after another, as tokio's default
    /// `MissedTickBehavior::Burst` does, so a period far shorter than the
    /// handler keeps the actor busy with ticks. A zero period is taken as
    /// one nanosecond; a period too long for `Instant` never fires.
    pub fn run_interval<M, F>(&mut self, period: Duration, mut make: F) -> TimerId
    where
        A: Handler<M>,
        M: Message,
        F: FnMut() -> M + Send + 'static,
    {
        let at = crate::clock::after(self.now(), period);
        self.timers.add(
            at,
            TimerEntry::Every {
                period,
                make: Box::new(move || Tell::boxed(make(), notice_meta())),
            },
        )
    }

    /// Cancel a timer; `false` if it already fired (one-shot) or is unknown.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }
}
