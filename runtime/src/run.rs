//! The actor's task: the loop that takes messages from the priority lane,
//! due timers and the mailbox, runs handlers one at a time, applies
//! supervision on failure, and cleans up on the way out.
//!
//! The actor value and its `Context` travel together (`Held`) into each
//! handler future, so that future is `'static` and lives in one reusable
//! allocation (`Slot`); with small messages stored inline in the mailbox, a
//! steady stream of one message type allocates nothing per message.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, ready};
use std::time::Instant;

use crate::actor::{Actor, StopReason};
use crate::cell::{CellRef, Control, Front, Shared, Sys, lock};
use crate::clock::Clock;
use crate::context::Context;
use crate::envelope::{BoxEnvelope, CatchUnwind, Handled, Held, Outcome, Reject, Slot};
use crate::inbox::Batch;
use crate::spawn::Factory;
use crate::supervision::{RestartWindow, Strategy};
use crate::trace;

pub(crate) struct ActorCell<A: Actor> {
    /// The actor and its context; `None` only while a handler runs.
    held: Option<Box<Held<A>>>,
    shared: Arc<Shared<A>>,
    /// Messages to begin before the next measured one (a countdown, not a
    /// division per message).
    until_timed: u32,
    /// The messages taken from the mailbox in one go.
    batch: Batch<BoxEnvelope<A>>,
    slot: Option<Slot<A>>,
    /// What goes with the running handler; boxed on the first message and
    /// reused, so an idle actor carries one pointer.
    running: Option<Box<Running>>,
    /// Only for an actor spawned from a factory.
    restart: Option<Box<Restart<A>>>,
    /// Set once a graceful stop has begun: handle what is queued, then stop.
    /// (Boxed: an idle actor carries one word, not a stop reason.)
    draining: Option<Box<StopReason>>,
    /// Whether the loop already yielded once on an empty mailbox.
    yielded: bool,
    /// Messages taken from the mailbox since the loop last waited (only
    /// "more than one" matters, so it saturates).
    since_wait: u8,
    released: bool,
    /// This loop has closed the mailbox (closing again would only take
    /// its lock again).
    closed: bool,
}

/// The message being handled, beside its handler future.
struct Running {
    meta: crate::trace::Meta,
    span: tracing::Span,
    start: Option<Instant>,
    /// A handler future is in the slot. (Here, not in the cell: every
    /// byte of the cell is paid by every idle actor.)
    busy: bool,
    /// The message is an ask (see `next_envelope`).
    ask: bool,
}

/// How a restartable actor is made again, and its recent restarts.
struct Restart<A: Actor> {
    factory: Factory<A>,
    window: RestartWindow,
}

/// What the loop does next; see `ActorCell::next_envelope`.
enum Next<A: Actor> {
    Envelope(BoxEnvelope<A>),
    Drained(StopReason),
    Yield,
    Wait,
}

/// What the synchronous pass over the priority lane could not finish.
enum SysNext {
    Stop(StopReason),
    /// The next item needs the async path; it is still queued.
    Await,
}

/// What the loop awaits next (decided before any await, see `main`).
#[derive(Clone, Copy)]
enum Step {
    Run,
    Yield,
    Wait,
}

/// What `begin` made of a message.
enum Begun {
    /// Not handled (expired, or the envelope was empty).
    Skip,
    /// The actor cannot go on.
    Stop(StopReason),
    /// The handler future is in the slot.
    Running,
}

/// Run a lifecycle hook on the held actor, catching a panic.
macro_rules! hook {
    ($self:ident, |$a:ident, $cx:ident| $call:expr) => {{
        match $self.held.as_deref_mut() {
            Some(h) => {
                let ($a, $cx) = (&mut h.actor, &mut h.cx);
                CatchUnwind(std::pin::pin!($call)).await
            }
            None => Ok(()),
        }
    }};
}

impl<A: Actor> ActorCell<A> {
    pub(crate) fn new(actor: A, cx: Context<A>, factory: Option<Factory<A>>) -> Self {
        Self {
            until_timed: 0,
            shared: Arc::clone(&cx.myself.shared),
            held: Some(Box::new(Held { actor, cx })),
            batch: Batch::default(),
            slot: None,
            running: None,
            restart: factory.map(|factory| {
                Box::new(Restart {
                    factory,
                    window: RestartWindow::default(),
                })
            }),
            draining: None,
            yielded: false,
            since_wait: 0,
            released: false,
            closed: false,
        }
    }

    fn clock(&self) -> &dyn Clock {
        &*self.shared.core.node.clock
    }

    fn cx(&mut self) -> Option<&mut Context<A>> {
        self.held.as_deref_mut().map(|h| &mut h.cx)
    }

    /// The actor's task. The cell lives in the task's future itself (one
    /// allocation less per actor), so every await state below is kept small.
    /// (An `async fn` would keep a second copy of its by-value `self`.)
    #[allow(clippy::manual_async_fn)] // see above
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let reason = self.main().await;
            // Rare paths are boxed so the idle actor's task stays small.
            Box::pin(self.finish(reason)).await;
        }
    }

    async fn main(&mut self) -> StopReason {
        if let Some(reason) = Box::pin(self.start()).await {
            return reason;
        }
        // One await point per kind of work keeps the task's future small,
        // and no value that holds an envelope (or a stop reason) is alive
        // across an await: matches decide first, awaits come after them.
        loop {
            if self.shared.core.sys_pending.load(Ordering::Acquire) {
                // Stop and kill are handled here; only what must await
                // (deliveries, restarts) pays for the boxed slow path.
                let slow = match self.handle_sys_now() {
                    Ok(()) => false,
                    Err(SysNext::Stop(reason)) => return reason,
                    Err(SysNext::Await) => true,
                };
                if slow && let Some(reason) = Box::pin(self.handle_sys()).await {
                    return reason;
                }
            }
            if self.draining.is_none() && self.cx().is_some_and(|cx| cx.stop_requested) {
                self.begin_drain(StopReason::Normal);
            }
            let step = match self.next_envelope() {
                Next::Envelope(env) => match self.begin(env) {
                    Begun::Skip => continue,
                    Begun::Stop(reason) => return reason,
                    Begun::Running => Step::Run,
                },
                Next::Drained(reason) => return reason,
                Next::Yield => Step::Yield,
                Next::Wait => Step::Wait,
            };
            match step {
                Step::Run => {}
                Step::Yield => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Step::Wait => match self.wait().await {
                    None | Some(Begun::Skip) => continue,
                    Some(Begun::Stop(reason)) => return reason,
                    Some(Begun::Running) => {}
                },
            }
            let failed = match self.handled().await {
                Some(message) => self.failed(message),
                None => continue,
            };
            if let Some(reason) = failed.await {
                return reason;
            }
        }
    }

    /// The `started` hook, and the supervisor's decision if it panicked.
    /// `Some` = the actor stops.
    async fn start(&mut self) -> Option<StopReason> {
        let message = hook!(self, |a, cx| a.started(cx)).err()?;
        Box::pin(self.fail(StopReason::Panicked { message })).await
    }

    /// What the loop does next, decided without waiting: a due timer, a
    /// queued message, the end of a drain, one yield on an empty mailbox
    /// (a producer on another worker may refill it without a wake-up), or
    /// a wait.
    #[inline]
    fn next_envelope(&mut self) -> Next<A> {
        if self.draining.is_none()
            && let Some(h) = self.held.as_deref_mut()
            && !h.cx.timers.is_empty()
            && let Some(env) = h.cx.timers.pop_due(self.shared.core.node.clock.now())
        {
            return Next::Envelope(env);
        }
        // After an answer the mailbox is nearly always empty (an asker
        // waits for the reply before it sends again): looking here, then
        // again in `wait`, would take the mailbox lock twice per ask.
        // `wait` takes a message that is there without waiting. Asks are
        // not counted below, so nothing changes for them; a tell taken by
        // `wait` counts as the first of a stream, which only delays the
        // yield of a stream that starts right after an ask by one message.
        // (Not after a tell: a stream of tells is counted here.)
        if self.draining.is_none()
            && self.since_wait <= 1
            && self.running.as_deref().is_some_and(|r| r.ask)
        {
            self.since_wait = 0;
            return Next::Wait;
        }
        if let Some(env) = self.shared.inbox.try_pop(&mut self.batch) {
            self.yielded = false;
            // Only tells make a stream worth a yield: an asker waits for
            // the reply before it sends again, so yielding after answering
            // would not let it refill the mailbox, and would cost a
            // scheduling round per ask whenever asker and actor run on two
            // workers at once.
            if !env.is_ask() {
                self.since_wait = self.since_wait.saturating_add(1);
            }
            return Next::Envelope(env);
        }
        if let Some(reason) = &self.draining {
            // The mailbox closed under its lock before the drain began:
            // empty now means empty for good.
            return Next::Drained(StopReason::clone(reason));
        }
        // Yield only in a stream (several messages since the last wait): a
        // lone request/response pays no extra scheduling round.
        if !self.yielded && self.since_wait > 1 {
            self.yielded = true;
            return Next::Yield;
        }
        self.yielded = false;
        self.since_wait = 0;
        Next::Wait
    }

    /// Wait for a mailbox message and begin it (what `begin` made of it is
    /// returned), or for a system message or a due timer (`None`: the loop
    /// looks again).
    /// (A plain `poll_fn`, not an `async fn`: it keeps one reference, and
    /// this is the await state of every idle actor. The message is begun
    /// here, not handed out: the envelope is 80 bytes, and each hand-over
    /// copied it.)
    fn wait(&mut self) -> impl Future<Output = Option<Begun>> + Send + '_ {
        poll_fn(move |tcx| {
            let shared = &self.shared;
            // A due timer goes before a message that arrived at the same
            // time: the loop fires it, then takes the message. (The timer's
            // sleep lives with the timers, so this future holds one
            // reference.)
            if let Some(h) = self.held.as_deref_mut()
                && h.cx
                    .timers
                    .poll_due(&*shared.core.node.clock, tcx)
                    .is_ready()
            {
                return Poll::Ready(None);
            }
            if let Poll::Ready(env) = shared.inbox.poll_pop(&mut self.batch, tcx) {
                self.since_wait = 1;
                return Poll::Ready(Some(self.begin(env)));
            }
            // The mailbox now holds this task's waker, which `push_sys`
            // takes after raising the flag.
            if shared.core.sys_pending.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
    }

    /// Close the mailbox to new senders, once.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.shared.close();
        }
    }

    fn begin_drain(&mut self, reason: StopReason) {
        self.close();
        if let Some(cx) = self.cx() {
            cx.timers.clear();
        }
        if self.draining.is_none() {
            self.draining = Some(Box::new(reason));
        }
    }

    fn pop_sys(&self) -> Option<Sys<A>> {
        let mut lane = lock(&self.shared.sys);
        let item = lane.pop();
        if lane.is_empty() {
            self.shared.core.sys_pending.store(false, Ordering::Release);
        }
        item
    }

    /// Handle queued system messages that need no waiting (stop, kill)
    /// until the lane is empty or one needs the async path.
    fn handle_sys_now(&mut self) -> Result<(), SysNext> {
        loop {
            let item = {
                let mut lane = lock(&self.shared.sys);
                match lane.front() {
                    Front::StopOrKill => {}
                    Front::Other => return Err(SysNext::Await),
                    Front::Empty => {
                        self.shared.core.sys_pending.store(false, Ordering::Release);
                        return Ok(());
                    }
                }
                let item = lane.pop();
                if lane.is_empty() {
                    self.shared.core.sys_pending.store(false, Ordering::Release);
                }
                item
            };
            match item {
                Some(Sys::Ctl(Control::Kill(reason))) => return Err(SysNext::Stop(reason)),
                Some(Sys::Ctl(Control::Stop(reason))) => self.begin_drain(reason),
                _ => {}
            }
        }
    }

    /// Handle every queued system message. `Some` = stop now.
    async fn handle_sys(&mut self) -> Option<StopReason> {
        loop {
            let item = self.pop_sys()?;
            match item {
                Sys::Deliver(env) => {
                    if let Some(reason) = self.dispatch(env).await {
                        return Some(reason);
                    }
                }
                Sys::Ctl(Control::Stop(reason)) => self.begin_drain(reason),
                Sys::Ctl(Control::Kill(reason)) => return Some(reason),
                Sys::Ctl(Control::Restart(reason)) => {
                    if self.draining.is_some() {
                        continue;
                    }
                    if self.restart.is_none() {
                        return Some(StopReason::SupervisorStopped);
                    }
                    if let Some(reason) = self.restart(reason).await {
                        return Some(reason);
                    }
                }
                Sys::Ctl(Control::ChildEscalated { child, reason }) => {
                    let failure = StopReason::RestartLimitExceeded {
                        last: format!("child {child} escalated: {reason}").into(),
                    };
                    if let Some(reason) = Box::pin(self.fail(failure)).await {
                        return Some(reason);
                    }
                }
            }
        }
    }

    /// Handle one message. `Some` = the actor must stop.
    async fn dispatch(&mut self, env: BoxEnvelope<A>) -> Option<StopReason> {
        match self.begin(env) {
            Begun::Skip => None,
            Begun::Stop(reason) => Some(reason),
            Begun::Running => match self.handled().await {
                Some(message) => self.failed(message).await,
                None => None,
            },
        }
    }

    /// Run the handler `begin` put in the slot to its end; the panic
    /// message if it panicked. A plain `poll_fn` over `self`: the actor's
    /// task stays small (it is sized by its largest await state).
    fn handled(&mut self) -> impl Future<Output = Option<Arc<str>>> + Send + '_ {
        poll_fn(move |tcx| {
            let (Some(r), Some(slot)) = (self.running.as_deref(), self.slot.as_mut()) else {
                return Poll::Ready(None);
            };
            if !r.busy {
                return Poll::Ready(None);
            }
            let done = {
                let _entered = r.span.enter();
                ready!(trace::with_current(&r.meta, || slot.poll(tcx)))
            };
            Poll::Ready(self.after(done))
        })
    }

    /// A handler panicked: the supervisor's decision (boxed: rare, and
    /// large). `Some` = the actor must stop.
    fn failed(
        &mut self,
        message: Arc<str>,
    ) -> Pin<Box<impl Future<Output = Option<StopReason>> + Send + '_>> {
        Box::pin(self.fail(StopReason::Panicked { message }))
    }

    /// Take the actor back from a finished handler and count it; the panic
    /// message if it panicked.
    #[inline]
    fn after(&mut self, (mut held, outcome): Handled<A>) -> Option<Arc<str>> {
        // The span closes now; the box stays for the next message.
        let start = match self.running.as_deref_mut() {
            Some(r) => {
                r.busy = false;
                r.span = tracing::Span::none();
                r.meta.extra = None;
                r.start.take()
            }
            None => None,
        };
        held.cx.meta = None;
        self.held = Some(held);
        let core = &self.shared.core;
        if let Some(start) = start {
            core.metrics
                .record_handling(self.clock().now().saturating_duration_since(start));
        }
        core.metrics.handled.incr();
        match outcome {
            Outcome::Done => None,
            Outcome::Cancelled => {
                tracing::debug!(actor = %core.id, "handler cancelled by its remote caller");
                None
            }
            Outcome::Panicked(message) => {
                tracing::warn!(actor = %core.id, %message, "handler panicked");
                Some(message)
            }
        }
    }

    /// Check `env` and put its handler future in the slot.
    fn begin(&mut self, mut env: BoxEnvelope<A>) -> Begun {
        let core = &self.shared.core;
        // One (dynamic) call for the metadata: it is checked, then kept.
        let meta = env.meta().clone();
        // The clock read that checks the deadline also starts a timed
        // handling (one read less per measured message).
        let mut now = None;
        if let Some(deadline) = meta.deadline {
            let t = self.clock().now();
            if t >= deadline {
                core.metrics.more().expired.incr();
                env.reject(Reject::Expired, core.id);
                return Begun::Skip;
            }
            now = Some(t);
        }
        if meta.cancel().is_some_and(|c| c.is_cancelled()) {
            // The remote caller gave up while this was queued.
            core.metrics.more().expired.incr();
            env.reject(Reject::Expired, core.id);
            return Begun::Skip;
        }
        let Some(mut held) = self.held.take() else {
            env.reject(Reject::Stopped, core.id);
            return Begun::Stop(StopReason::Killed);
        };
        let ask = env.is_ask();
        let span = tracing::debug_span!(
            parent: None,
            "handle",
            actor = %core.id,
            name = core.name.as_deref(),
            message = env.message_type(),
            correlation = meta.correlation,
        );
        let timed = self.until_timed == 0;
        self.until_timed = match self.until_timed.checked_sub(1) {
            Some(n) => n,
            // Read from the node when the countdown runs out (one field
            // less in every actor's task).
            None => u32::try_from(self.shared.core.node.timing_sample)
                .unwrap_or(u32::MAX)
                .saturating_sub(1),
        };
        let start = if timed {
            Some(now.unwrap_or_else(|| self.clock().now()))
        } else {
            None
        };
        held.cx.meta = Some(meta.clone());
        if let Err(held) = env.start(held, &mut self.slot) {
            self.held = Some(held);
            return Begun::Skip;
        }
        match self.running.as_deref_mut() {
            // Field by field: the previous message's fields were emptied by
            // `after`, and replacing the whole value would drop it in full.
            Some(r) => {
                r.meta = meta;
                r.span = span;
                r.start = start;
                r.busy = true;
                r.ask = ask;
            }
            None => {
                self.running = Some(Box::new(Running {
                    meta,
                    span,
                    start,
                    busy: true,
                    ask,
                }));
            }
        }
        Begun::Running
    }

    /// A failure of this actor: apply its supervisor's decision. `None` = it
    /// was restarted and goes on; `Some` = it stops with that reason.
    async fn fail(&mut self, mut failure: StopReason) -> Option<StopReason> {
        loop {
            self.shared.core.metrics.more().panics.incr();
            // The failed value's children go with it.
            self.stop_children(Control::Kill(StopReason::SupervisorStopped))
                .await;
            if self.restart.is_none() {
                return Some(failure);
            }
            let core = &self.shared.core;
            let parent = Arc::clone(&core.parent);
            let now = self.clock().now();
            let admitted = match parent.strategy.strategy {
                Strategy::OneForOne => match self.restart.as_deref_mut() {
                    Some(r) => r.window.admit(now, &parent.strategy),
                    None => None,
                },
                Strategy::AllForOne => lock(&parent.group).admit(now, &parent.strategy),
            };
            let Some(n) = admitted else {
                let last: Arc<str> = failure.to_string().into();
                match parent.owner.as_ref().and_then(std::sync::Weak::upgrade) {
                    Some(owner) => {
                        owner.control(Control::ChildEscalated {
                            child: core.id,
                            reason: StopReason::RestartLimitExceeded {
                                last: Arc::clone(&last),
                            },
                        });
                    }
                    None => tracing::error!(
                        actor = %core.id,
                        failure = %last,
                        "restart intensity exceeded at the node's top level; the actor stops"
                    ),
                }
                return Some(StopReason::RestartLimitExceeded { last });
            };
            if parent.strategy.strategy == Strategy::AllForOne {
                let mut siblings: Vec<CellRef> = lock(&parent.children).live.by_id();
                siblings.retain(|c| c.core().id != core.id);
                for s in siblings {
                    s.control(Control::Restart(failure.clone()));
                }
            }
            let delay = match self.cx() {
                Some(cx) => parent.strategy.backoff.delay(n, &mut cx.rng),
                None => parent
                    .strategy
                    .backoff
                    .delay(n, &mut fastrand::Rng::with_seed(n.into())),
            };
            if !delay.is_zero() {
                self.clock()
                    .sleep_until(crate::clock::after(now, delay))
                    .await;
            }
            match self.restart(failure).await {
                None => return None,
                Some(StopReason::Panicked { message }) => {
                    failure = StopReason::Panicked { message }
                }
                Some(other) => return Some(other),
            }
        }
    }

    /// Replace the actor with a fresh value and run its start hooks.
    /// `None` = running again; `Some(Panicked)` = a hook or the factory
    /// panicked (a new failure for the caller to judge).
    async fn restart(&mut self, failure: StopReason) -> Option<StopReason> {
        let factory = &mut self.restart.as_deref_mut()?.factory;
        let fresh = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory)) {
            Ok(a) => a,
            Err(p) => {
                return Some(StopReason::Panicked {
                    message: crate::envelope::panic_message(p.as_ref()),
                });
            }
        };
        let Some(held) = self.held.as_deref_mut() else {
            return Some(StopReason::Killed);
        };
        held.actor = fresh;
        held.cx.restarts += 1;
        held.cx.timers.clear();
        self.shared.core.metrics.more().restarts.incr();
        tracing::info!(actor = %held.cx.id(), restarts = held.cx.restarts, "restarted");
        let hook = hook!(self, |a, cx| a.restarted(&failure, cx));
        if let Err(message) = hook {
            return Some(StopReason::Panicked { message });
        }
        let hook = hook!(self, |a, cx| a.started(cx));
        if let Err(message) = hook {
            return Some(StopReason::Panicked { message });
        }
        None
    }

    /// Send `how` to every child and wait until they have all stopped.
    async fn stop_children(&mut self, how: Control) {
        let Some(sup) = self.shared.core.children.get().cloned() else {
            return;
        };
        let kids: Vec<CellRef> = lock(&sup.children).live.by_id();
        let mut waits = Vec::with_capacity(kids.len());
        for kid in kids.iter().rev() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            kid.core().on_death(Box::new(move |_| {
                let _ = tx.send(());
            }));
            kid.close();
            kid.control(how.clone());
            waits.push(rx);
        }
        for w in waits {
            let _ = w.await;
        }
    }

    async fn finish(&mut self, reason: StopReason) {
        self.reject_queued(&reason);
        // Children stop before their parent's hooks run (boxed: most
        // actors have none, and their future is large).
        let has_children = match self.shared.core.children.get() {
            Some(sup) => {
                lock(&sup.children).closed = true;
                true
            }
            None => false,
        };
        if has_children {
            let how = if reason.is_failure() {
                Control::Kill(StopReason::SupervisorStopped)
            } else {
                Control::Stop(StopReason::SupervisorStopped)
            };
            Box::pin(self.stop_children(how)).await;
        }
        if !reason.is_failure() {
            let hook = hook!(self, |a, cx| a.stopping(cx));
            if let Err(m) = hook {
                tracing::warn!(actor = %self.shared.core.id, message = %m, "stopping hook panicked");
            }
            let hook = match self.held.as_deref_mut() {
                Some(h) => CatchUnwind(std::pin::pin!(h.actor.stopped(&reason))).await,
                None => Ok(()),
            };
            if let Err(m) = hook {
                tracing::warn!(actor = %self.shared.core.id, message = %m, "stopped hook panicked");
            }
        }
        self.release(reason);
    }

    /// Close the mailbox and reject what is still queued: closed, nothing
    /// more can land.
    fn reject_queued(&mut self, reason: &StopReason) {
        self.close();
        let shared = &self.shared;
        let core = &shared.core;
        if let Some(h) = self.held.as_deref_mut() {
            h.cx.timers.clear();
        }
        let mut rejected_tells = 0u64;
        for mut env in shared.inbox.drain(&mut self.batch) {
            if env.is_ask() {
                core.metrics.more().rejected.incr();
            } else {
                core.metrics.more().dropped.incr();
                rejected_tells += 1;
            }
            env.reject(Reject::Stopped, core.id);
        }
        if rejected_tells > 0 {
            tracing::warn!(actor = %core.id, dropped = rejected_tells, %reason, "tells dropped unhandled");
        }
    }

    /// Leave the node: release the name, leave the supervisor, notify
    /// watchers. Runs exactly once, also when the task is aborted.
    fn release(&mut self, reason: StopReason) {
        if self.released {
            return;
        }
        self.released = true;
        self.close();
        let core = &self.shared.core;
        let leftover = { lock(&self.shared.sys).close() };
        drop(leftover);
        if let Some(name) = &core.name {
            core.node.registry.remove(name, core.id);
        }
        lock(&core.parent.children).live.remove(core.id);
        if let Some(sup) = core.children.get() {
            lock(&sup.children).closed = true;
        }
        core.node.stopped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(actor = %core.id, %reason, "stopped");
        core.die(reason);
    }
}

impl<A: Actor> Drop for ActorCell<A> {
    fn drop(&mut self) {
        // Only reached without `finish` when the task was aborted (or the
        // runtime dropped it).
        if !self.released {
            let reason = if self.shared.core.node.is_shutting_down() {
                StopReason::Shutdown
            } else {
                StopReason::Killed
            };
            self.release(reason);
            // The mailbox lives as long as any `ActorRef`, so queued asks
            // must be answered here (`release` closed it: nothing more lands).
            let id = self.shared.core.id;
            for mut env in self.shared.inbox.drain(&mut self.batch) {
                env.reject(Reject::Stopped, id);
            }
        }
    }
}

#[cfg(test)]
mod size_budget {
    use super::*;
    use crate::prelude::*;

    struct Idle;
    impl Actor for Idle {}

    /// Every idle actor pays for its task's future, which holds the cell:
    /// keep both small (see `main` and `wait`). tokio 1.54 lays a task out
    /// as a 32-byte header, 16 bytes of scheduler and id, the future plus
    /// an 8-byte stage tag, and a 48-byte trailer, padded to its 128-byte
    /// alignment: a future of at most 152 bytes makes a 256-byte task, one
    /// byte more a 384-byte one (`examples/spawn_memory` shows the effect).
    #[tokio::test]
    async fn the_actor_task_future_stays_small() {
        let node = Node::builder().build();
        let a = node.spawn(Idle);
        let cx = Context {
            myself: a.clone(),
            node: node.clone(),
            meta: None,
            stop_requested: false,
            timers: crate::timer::Timers::new(),
            rng: fastrand::Rng::with_seed(1),
            restarts: 0,
            child_strategy: None,
        };
        let run = ActorCell::new(Idle, cx, None).run();
        let size = std::mem::size_of_val(&run);
        assert!(size <= 152, "the actor task's future grew to {size} bytes");
    }
}
