//! [`Node`]: one runtime instance — spawning, the registry, the clock and
//! seeded randomness, metrics, and graceful shutdown.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::actor::{Actor, ActorId, Message, StopReason, Terminated};
use crate::actor_ref::ActorRef;
use crate::cell::{CellRef, Control, lock};
use crate::clock::{Clock, SystemClock};
use crate::error::{LookupError, SpawnError};
use crate::metrics::{ActorMetricsSnapshot, NodeMetrics};
use crate::recipient::Recipient;
use crate::registry::Registry;
use crate::spawn::{Mailbox, SpawnOptions};
use crate::supervision::{SupervisionStrategy, Supervisor};
use crate::trace::TraceContext;
use crate::trace::mix64;

/// One plexus runtime instance, running on the tokio runtime it was built
/// on. Cheap to clone: clones share the node.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use std::time::Duration;
/// # struct Idle;
/// # impl Actor for Idle {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), SpawnError> {
/// let node = Node::builder().name("n1").seed(42).build();
/// let a = node.spawn_with(SpawnOptions::new().name("idle"), Idle)?;
/// assert_eq!(node.lookup::<Idle>("idle").unwrap(), a);
/// let report = node.shutdown(Duration::from_secs(1)).await;
/// assert_eq!(report.stopped, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub(crate) name: Arc<str>,
    pub(crate) seed: u64,
    pub(crate) clock: Arc<dyn Clock>,
    rng: Mutex<fastrand::Rng>,
    next_id: AtomicU64,
    correlation: AtomicU64,
    correlation_salt: u64,
    pub(crate) registry: Registry,
    pub(crate) root: Arc<Supervisor>,
    pub(crate) default_mailbox: Mailbox,
    pub(crate) default_supervision: SupervisionStrategy,
    pub(crate) ask_timeout: Duration,
    pub(crate) deadlines: Arc<crate::deadline::Deadlines>,
    kill_grace: Duration,
    pub(crate) timing_sample: u64,
    shutting_down: AtomicBool,
    pub(crate) handle: Handle,
    pub(crate) spawned: AtomicU64,
    pub(crate) stopped: AtomicU64,
}

impl NodeInner {
    pub(crate) fn next_actor_id(&self) -> ActorId {
        ActorId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh correlation id: a per-node counter mixed with a salt drawn
    /// from the node's seed, so ids of different nodes rarely collide and the
    /// same seed gives the same ids.
    pub(crate) fn next_correlation(&self) -> u64 {
        mix64(
            self.correlation_salt
                .wrapping_add(self.correlation.fetch_add(1, Ordering::Relaxed)),
        )
    }

    /// A seed for a new actor's RNG, from the node's RNG.
    pub(crate) fn fork_seed(&self) -> u64 {
        lock(&self.rng).u64(..)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("seed", &self.inner.seed)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Node`]; see [`Node::builder`].
#[derive(Debug)]
#[must_use = "call .build() to make the node"]
pub struct NodeBuilder {
    name: Arc<str>,
    seed: u64,
    clock: Arc<dyn Clock>,
    mailbox: Mailbox,
    supervision: SupervisionStrategy,
    ask_timeout: Duration,
    kill_grace: Duration,
    timing_sample: u64,
    handle: Option<Handle>,
}

impl NodeBuilder {
    /// The node's name (for logs and, later, the cluster). Default `"node"`.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Seed of the node's RNG, from which every actor's RNG, correlation ids
    /// and restart jitter derive. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The node's clock. Default [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The default mailbox capacity of actors spawned without one. Default
    /// 1024.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox = Mailbox::Bounded(capacity);
        self
    }

    /// How the node supervises top-level actors, and the default for
    /// actors' children. Default [`SupervisionStrategy::one_for_one`].
    pub fn supervision(mut self, strategy: SupervisionStrategy) -> Self {
        self.supervision = strategy;
        self
    }

    /// The time budget of an ask that sets none. Default 5 s.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout = timeout;
        self
    }

    /// How long [`Node::shutdown`] waits for killed actors to finish their
    /// current handler before aborting their tasks. Default 1 s.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// Measure the handling time of one message in `every` (default 8; 1 =
    /// every message). Each measurement is two reads of the node's clock on
    /// the hot path; `handled` counts every message regardless.
    pub fn handling_time_sample(mut self, every: u64) -> Self {
        self.timing_sample = every.max(1);
        self
    }

    /// Run actors on this tokio runtime instead of the current one.
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Make the node.
    ///
    /// # Panics
    ///
    /// If no runtime was given with [`runtime`](Self::runtime) and this is
    /// called outside a tokio runtime (a setup error).
    #[track_caller]
    pub fn build(self) -> Node {
        let handle = match self.handle {
            Some(h) => h,
            None => match Handle::try_current() {
                Ok(h) => h,
                Err(_) => panic!(
                    "Node::build must run inside a tokio runtime, or be given one with .runtime(handle)"
                ),
            },
        };
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let correlation_salt = rng.u64(..);
        let root = Arc::new(Supervisor::new(self.supervision.clone(), None));
        let deadlines = Arc::new(crate::deadline::Deadlines::default());
        handle.spawn(crate::deadline::reaper(
            Arc::downgrade(&deadlines),
            Arc::clone(&self.clock),
        ));
        Node {
            inner: Arc::new(NodeInner {
                name: self.name,
                seed: self.seed,
                clock: self.clock,
                rng: Mutex::new(rng),
                next_id: AtomicU64::new(1),
                correlation: AtomicU64::new(1),
                correlation_salt,
                registry: Registry::new(),
                root,
                default_mailbox: self.mailbox,
                default_supervision: self.supervision,
                ask_timeout: self.ask_timeout,
                deadlines,
                kill_grace: self.kill_grace,
                timing_sample: self.timing_sample,
                shutting_down: AtomicBool::new(false),
                handle,
                spawned: AtomicU64::new(0),
                stopped: AtomicU64::new(0),
            }),
        }
    }
}

/// What [`Node::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Actors that handled their queued messages and stopped in time.
    pub stopped: usize,
    /// Actors still running at the deadline, killed: their queued asks got
    /// `AskError::Stopped`.
    pub killed: usize,
    /// Actors whose handler did not return within the kill grace; their
    /// tasks were aborted (queued asks get `AskError::Stopped`).
    pub aborted: usize,
}

impl Node {
    /// A builder with the defaults.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            name: Arc::from("node"),
            seed: 0,
            clock: Arc::new(SystemClock),
            mailbox: Mailbox::default(),
            supervision: SupervisionStrategy::default(),
            ask_timeout: Duration::from_secs(5),
            kill_grace: Duration::from_secs(1),
            timing_sample: 8,
            handle: None,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node's seed.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The node's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The time budget of an ask that sets none (see
    /// [`NodeBuilder::ask_timeout`]).
    pub fn ask_timeout(&self) -> Duration {
        self.inner.ask_timeout
    }

    /// The node clock's current instant.
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Draw from the node's seeded RNG.
    pub fn random_u64(&self) -> u64 {
        self.inner.fork_seed()
    }

    /// A new root trace context (sampled), its ids drawn from the node's
    /// seeded RNG in one go: what a request that arrives without a trace
    /// starts with.
    pub fn new_trace(&self) -> TraceContext {
        let mut rng = lock(&self.inner.rng);
        TraceContext {
            trace_id: rng.u128(..),
            span_id: rng.u64(..) | 1,
            sampled: true,
        }
    }

    /// The name registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Spawn an actor with the node's defaults, supervised by the node.
    ///
    /// Spawned from a value, the actor is not restarted if it panics; use
    /// [`spawn_factory`](Self::spawn_factory) for that. On a node that is
    /// shutting down, the returned reference is already stopped: sends fail
    /// with `Closed`.
    pub fn spawn<A: Actor>(&self, actor: A) -> ActorRef<A> {
        let root = Arc::clone(&self.inner.root);
        self.spawn_inner(SpawnOptions::default(), actor, None, root)
            .unwrap_or_else(|_| self.dead_ref())
    }

    /// Spawn with options (name, mailbox, supervisor).
    ///
    /// # Errors
    ///
    /// [`SpawnError::NameTaken`], [`SpawnError::ShuttingDown`],
    /// [`SpawnError::SupervisorStopped`].
    pub fn spawn_with<A: Actor>(
        &self,
        opts: SpawnOptions,
        actor: A,
    ) -> Result<ActorRef<A>, SpawnError> {
        let parent = self.parent_for(&opts)?;
        self.spawn_inner(opts, actor, None, parent)
    }

    /// Spawn a restartable actor: `factory` makes the first value and a fresh
    /// one after each failure its supervisor decides to restart.
    ///
    /// # Errors
    ///
    /// As [`spawn_with`](Self::spawn_with).
    pub fn spawn_factory<A, F>(
        &self,
        opts: SpawnOptions,
        mut factory: F,
    ) -> Result<ActorRef<A>, SpawnError>
    where
        A: Actor,
        F: FnMut() -> A + Send + 'static,
    {
        let parent = self.parent_for(&opts)?;
        let first = factory();
        self.spawn_inner(opts, first, Some(Box::new(factory)), parent)
    }

    /// The live actor registered as `name`.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotFound`], [`LookupError::WrongType`].
    pub fn lookup<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, LookupError> {
        self.inner.registry.lookup(name)
    }

    /// The live actor registered as `name`, as a recipient of `M`.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotFound`], [`LookupError::NotExposed`].
    pub fn lookup_recipient<M: Message>(&self, name: &str) -> Result<Recipient<M>, LookupError> {
        self.inner.registry.lookup_recipient(name)
    }

    /// Every live actor, ordered by id.
    fn actors(&self) -> Vec<CellRef> {
        fn walk(sup: &Supervisor, out: &mut BTreeMap<ActorId, CellRef>) {
            let kids: Vec<CellRef> = lock(&sup.children).live.by_id();
            for k in kids {
                if let Some(grand) = k.core().children.get() {
                    walk(grand, out);
                }
                out.insert(k.core().id, k);
            }
        }
        let mut all = BTreeMap::new();
        walk(&self.inner.root, &mut all);
        all.into_values().collect()
    }

    /// Number of live actors.
    pub fn actor_count(&self) -> usize {
        self.actors().len()
    }

    /// Metrics of every live actor and totals.
    pub fn metrics(&self) -> NodeMetrics {
        let mut m = NodeMetrics {
            spawned: self.inner.spawned.load(Ordering::Relaxed),
            stopped: self.inner.stopped.load(Ordering::Relaxed),
            ..NodeMetrics::default()
        };
        for cell in self.actors() {
            let core = cell.core();
            let s = ActorMetricsSnapshot::read(
                core.id,
                core.name.clone(),
                cell.type_name(),
                cell.mailbox_len(),
                cell.mailbox_capacity(),
                &core.metrics,
            );
            m.handled += s.handled;
            m.restarts += s.restarts;
            m.panics += s.panics;
            m.expired += s.expired;
            m.rejected += s.rejected;
            m.dropped += s.dropped;
            m.mailbox_depth += s.mailbox_depth;
            m.handling_time.merge(&s.handling_time);
            m.actors.push(s);
        }
        m
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.is_shutting_down()
    }

    /// Shut down gracefully, within `within` on the node's clock.
    ///
    /// 1. New spawns fail with [`SpawnError::ShuttingDown`]; every mailbox
    ///    closes (sends fail with `Closed`).
    /// 2. Every actor handles what is already queued and stops (children
    ///    before parents), with [`StopReason::Shutdown`].
    /// 3. Actors still running at the deadline are killed: their queued asks
    ///    fail with [`AskError::Stopped`](crate::AskError::Stopped).
    /// 4. Actors whose handler has not returned after the kill grace are
    ///    aborted.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting, not the shutdown: mailboxes
    /// stay closed and actors keep stopping.
    pub async fn shutdown(&self, within: Duration) -> ShutdownReport {
        let inner = &self.inner;
        inner.shutting_down.store(true, Ordering::Release);
        lock(&inner.root.children).closed = true;
        let clock = Arc::clone(&inner.clock);
        let deadline = crate::clock::after(clock.now(), within);
        let all = self.actors();
        let (tx, rx) = flume::unbounded::<ActorId>();
        let mut pending: BTreeMap<ActorId, CellRef> = BTreeMap::new();
        for cell in &all {
            let tx = tx.clone();
            cell.core().on_death(Box::new(move |t: &Terminated| {
                let _ = tx.send(t.id);
            }));
            pending.insert(cell.core().id, Arc::clone(cell));
        }
        drop(tx);
        // Newest first: children are spawned after their parents.
        for cell in all.iter().rev() {
            cell.close();
            cell.control(Control::Stop(StopReason::Shutdown));
        }
        let mut report = ShutdownReport::default();
        wait_for(&rx, &mut pending, clock.sleep_until(deadline)).await;
        report.stopped = all.len() - pending.len();
        if !pending.is_empty() {
            report.killed = pending.len();
            for cell in pending.values().rev() {
                cell.control(Control::Kill(StopReason::Shutdown));
            }
            let grace = crate::clock::after(clock.now(), inner.kill_grace);
            wait_for(&rx, &mut pending, clock.sleep_until(grace)).await;
        }
        if !pending.is_empty() {
            report.aborted = pending.len();
            report.killed -= pending.len();
            for cell in pending.values() {
                tracing::warn!(actor = %cell.core().id, "handler did not return within the kill grace; aborting its task");
                cell.core().abort_task();
            }
        }
        report
    }
}

/// Remove ids from `pending` as their death notices arrive, until none is
/// left or `timeout` completes.
async fn wait_for(
    rx: &flume::Receiver<ActorId>,
    pending: &mut BTreeMap<ActorId, CellRef>,
    timeout: crate::clock::Sleep,
) {
    tokio::pin!(timeout);
    while !pending.is_empty() {
        tokio::select! {
            biased;
            id = rx.recv_async() => match id {
                Ok(id) => { pending.remove(&id); }
                Err(_) => return,
            },
            () = &mut timeout => return,
        }
    }
}
