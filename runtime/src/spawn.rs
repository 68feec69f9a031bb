//! How an actor is spawned: [`SpawnOptions`] and [`Mailbox`] sizing.

use std::sync::Arc;

use crate::actor::{Actor, StopReason};
use crate::actor_ref::ActorRef;
use crate::cell::{CellRef, Core, Shared, lock};
use crate::context::Context;
use crate::error::SpawnError;
use crate::node::Node;
use crate::run::ActorCell;
use crate::supervision::{SupervisionStrategy, Supervisor};
use crate::timer::Timers;

/// The size of an actor's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mailbox {
    /// At most this many queued messages; senders then wait (`tell`) or get
    /// `Full` (`try_tell`). A capacity of 0 is treated as 1.
    Bounded(usize),
    /// No limit. Memory grows with a fast producer: ask for it by name only
    /// where something else bounds the rate.
    Unbounded,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::Bounded(1024)
    }
}

/// Options for one spawn; every field defaults to the node's setting.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use plexus_runtime::supervision::SupervisionStrategy;
/// let opts = SpawnOptions::new()
///     .name("inventory")
///     .mailbox(Mailbox::Bounded(64))
///     .supervise_children(SupervisionStrategy::all_for_one());
/// # let _ = opts;
/// ```
#[derive(Clone, Default)]
pub struct SpawnOptions {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) mailbox: Option<Mailbox>,
    pub(crate) supervision: Option<SupervisionStrategy>,
    pub(crate) supervisor: Option<CellRef>,
}

impl std::fmt::Debug for SpawnOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnOptions")
            .field("name", &self.name)
            .field("mailbox", &self.mailbox)
            .field("supervision", &self.supervision)
            .field("supervisor", &self.supervisor.as_ref().map(|c| c.core().id))
            .finish()
    }
}

impl SpawnOptions {
    /// Defaults: no name, the node's mailbox size, supervised by the node.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register the actor under `name` (unique among live actors of the
    /// node; released when the actor stops).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The mailbox size.
    pub fn mailbox(mut self, mailbox: Mailbox) -> Self {
        self.mailbox = Some(mailbox);
        self
    }

    /// A bounded mailbox of `capacity` messages.
    pub fn capacity(self, capacity: usize) -> Self {
        self.mailbox(Mailbox::Bounded(capacity))
    }

    /// How this actor supervises the children it spawns.
    pub fn supervise_children(mut self, strategy: SupervisionStrategy) -> Self {
        self.supervision = Some(strategy);
        self
    }

    /// Place the new actor under `parent`'s supervision (as
    /// [`Context::spawn_child`] does from inside `parent`).
    pub fn supervisor<P: Actor>(mut self, parent: &ActorRef<P>) -> Self {
        self.supervisor = Some(parent.shared.clone());
        self
    }
}

pub(crate) type Factory<A> = Box<dyn FnMut() -> A + Send>;

impl Node {
    /// Resolve the supervisor named in `opts` (or the node's root).
    pub(crate) fn parent_for(&self, opts: &SpawnOptions) -> Result<Arc<Supervisor>, SpawnError> {
        let Some(parent) = &opts.supervisor else {
            return Ok(Arc::clone(&self.inner.root));
        };
        let core = parent.core();
        if core.is_terminated() {
            return Err(SpawnError::SupervisorStopped(core.id));
        }
        let strategy = self.inner.default_supervision.clone();
        let weak = Arc::downgrade(parent);
        Ok(Arc::clone(core.children.get_or_init(|| {
            Arc::new(Supervisor::new(strategy, Some(weak)))
        })))
    }

    pub(crate) fn spawn_inner<A: Actor>(
        &self,
        opts: SpawnOptions,
        actor: A,
        factory: Option<Factory<A>>,
        parent: Arc<Supervisor>,
    ) -> Result<ActorRef<A>, SpawnError> {
        let inner = &self.inner;
        if inner.is_shutting_down() {
            return Err(SpawnError::ShuttingDown);
        }
        let id = inner.next_actor_id();
        let mailbox = opts.mailbox.unwrap_or(inner.default_mailbox);
        let capacity = match mailbox {
            Mailbox::Bounded(n) => Some(n.max(1)),
            Mailbox::Unbounded => None,
        };
        let shared = Shared::new(Core::new(id, opts.name.clone(), inner, &parent), capacity);
        let cell: CellRef = shared.clone();
        if let Some(name) = &opts.name {
            inner.registry.insert(Arc::clone(name), Arc::clone(&cell))?;
        }
        {
            let mut kids = lock(&parent.children);
            if kids.closed {
                drop(kids);
                if let Some(name) = &opts.name {
                    inner.registry.remove(name, id);
                }
                return Err(match parent.owner.as_ref().and_then(|w| w.upgrade()) {
                    Some(owner) => SpawnError::SupervisorStopped(owner.core().id),
                    None => SpawnError::ShuttingDown,
                });
            }
            kids.live.insert(id, cell);
        }
        let cx = Context {
            myself: ActorRef {
                shared: Arc::clone(&shared),
            },
            node: self.clone(),
            meta: None,
            stop_requested: false,
            timers: Timers::new(),
            rng: fastrand::Rng::with_seed(inner.fork_seed()),
            restarts: 0,
            child_strategy: opts.supervision.map(Box::new),
        };
        let run = ActorCell::new(actor, cx, factory).run();
        let handle = inner.handle.spawn(run);
        shared.core.set_task(handle.abort_handle());
        inner
            .spawned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(ActorRef { shared })
    }

    /// A reference to an actor that never ran (spawned on a node that was
    /// shutting down): every send fails with `Closed`.
    pub(crate) fn dead_ref<A: Actor>(&self) -> ActorRef<A> {
        let inner = &self.inner;
        let core = Core::new(inner.next_actor_id(), None, inner, &inner.root);
        let shared = Shared::new(core, Some(1));
        shared.close();
        lock(&shared.sys).closed = true;
        shared.core.die(StopReason::Shutdown);
        ActorRef { shared }
    }
}
