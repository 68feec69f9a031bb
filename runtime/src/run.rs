//! The actor's task: the loop that takes messages from the priority lane,
//! due timers and the mailbox, runs handlers one at a time, applies
//! supervision on failure, and cleans up on the way out.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};

use tracing::Instrument;

use crate::actor::{Actor, StopReason};
use crate::cell::{CellRef, Control, Shared, Sys, lock};
use crate::context::Context;
use crate::envelope::{BoxEnvelope, CatchUnwind, HandleFuture, Outcome, Reject};
use crate::spawn::Factory;
use crate::supervision::{RestartWindow, Strategy};
use crate::trace::{self, Meta};

pub(crate) struct ActorCell<A: Actor> {
    actor: A,
    cx: Context<A>,
    rx: flume::Receiver<BoxEnvelope<A>>,
    factory: Option<Factory<A>>,
    window: RestartWindow,
    /// Set once a graceful stop has begun: handle what is queued, then stop.
    draining: Option<StopReason>,
    released: bool,
}

/// A handler's future, run with its message's metadata as the current one,
/// so that sends and asks made inside inherit correlation, trace and
/// deadline.
struct WithMeta<'a> {
    fut: HandleFuture<'a>,
    meta: Meta,
}

impl Future for WithMeta<'_> {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        if let Some(cancel) = &this.meta.cancel
            && cancel.poll_cancelled(cx).is_ready()
        {
            // The remote caller gave up: drop the handler where it stands.
            return Poll::Ready(Outcome::Cancelled);
        }
        let meta = this.meta.clone();
        trace::with_current(meta, || this.fut.as_mut().poll(cx))
    }
}

impl<A: Actor> ActorCell<A> {
    pub(crate) fn new(
        actor: A,
        cx: Context<A>,
        rx: flume::Receiver<BoxEnvelope<A>>,
        factory: Option<Factory<A>>,
    ) -> Self {
        Self {
            actor,
            cx,
            rx,
            factory,
            window: RestartWindow::default(),
            draining: None,
            released: false,
        }
    }

    fn shared(&self) -> &Arc<Shared<A>> {
        &self.cx.myself.shared
    }

    pub(crate) async fn run(mut self) {
        let reason = self.main().await;
        self.finish(reason).await;
    }

    async fn main(&mut self) -> StopReason {
        let started = CatchUnwind(std::pin::pin!(self.actor.started(&mut self.cx))).await;
        if let Err(p) = started
            && let Some(reason) = self.fail(StopReason::Panicked { message: p }).await
        {
            return reason;
        }
        loop {
            if self.shared().core.sys_pending.load(Ordering::Acquire)
                && let Some(reason) = self.handle_sys().await
            {
                return reason;
            }
            if self.draining.is_none()
                && let Some(reason) = self.cx.stop_reason_requested()
            {
                self.begin_drain(reason);
            }
            if self.draining.is_none() && !self.cx.timers.is_empty() {
                let now = self.cx.node.inner.clock.now();
                if let Some(env) = self.cx.timers.pop_due(now) {
                    if let Some(reason) = self.dispatch(env).await {
                        return reason;
                    }
                    continue;
                }
            }
            match self.rx.try_recv() {
                Ok(env) => {
                    if let Some(reason) = self.dispatch(env).await {
                        return reason;
                    }
                }
                Err(_) => {
                    if let Some(reason) = &self.draining {
                        if self.shared().core.senders_inside() == 0 {
                            // Nobody can enqueue any more: one last look.
                            match self.rx.try_recv() {
                                Ok(env) => {
                                    if let Some(reason) = self.dispatch(env).await {
                                        return reason;
                                    }
                                    continue;
                                }
                                Err(_) => return reason.clone(),
                            }
                        }
                        // A sender is between its check and its push.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    if let Some(env) = self.wait().await
                        && let Some(reason) = self.dispatch(env).await
                    {
                        return reason;
                    }
                }
            }
        }
    }

    /// Wait for a mailbox message (returned), or for a system message or a
    /// due timer (`None`: the loop looks again).
    async fn wait(&mut self) -> Option<BoxEnvelope<A>> {
        let shared = Arc::clone(self.shared());
        let mut sleep = self
            .cx
            .timers
            .next_deadline()
            .map(|at| self.cx.node.inner.clock.sleep_until(at));
        let mut recv = self.rx.recv_async();
        poll_fn(|tcx| {
            // A due timer goes before a message that arrived at the same
            // time: the loop fires it, then takes the message.
            if let Some(s) = sleep.as_mut()
                && s.as_mut().poll(tcx).is_ready()
            {
                return Poll::Ready(None);
            }
            if let Poll::Ready(r) = Pin::new(&mut recv).poll(tcx) {
                return Poll::Ready(r.ok());
            }
            {
                let mut lane = lock(&shared.sys);
                if !lane.queue.is_empty() {
                    return Poll::Ready(None);
                }
                match &lane.waker {
                    Some(w) if w.will_wake(tcx.waker()) => {}
                    _ => lane.waker = Some(tcx.waker().clone()),
                }
            }
            Poll::Pending
        })
        .await
    }

    fn begin_drain(&mut self, reason: StopReason) {
        self.shared().core.close();
        self.cx.timers.clear();
        if self.draining.is_none() {
            self.draining = Some(reason);
        }
    }

    /// Handle every queued system message. `Some` = stop now.
    async fn handle_sys(&mut self) -> Option<StopReason> {
        loop {
            let item = {
                let mut lane = lock(&self.shared().sys);
                let item = lane.queue.pop_front();
                if lane.queue.is_empty() {
                    self.shared()
                        .core
                        .sys_pending
                        .store(false, Ordering::Release);
                }
                item
            };
            let item = item?;
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
                    if self.factory.is_none() {
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
                    if let Some(reason) = self.fail(failure).await {
                        return Some(reason);
                    }
                }
            }
        }
    }

    /// Handle one message. `Some` = the actor must stop.
    async fn dispatch(&mut self, env: BoxEnvelope<A>) -> Option<StopReason> {
        let meta = env.meta().clone();
        let clock = Arc::clone(&self.cx.node.inner.clock);
        let core = &self.cx.myself.shared.core;
        let start = clock.now();
        if let Some(deadline) = meta.deadline
            && start >= deadline
        {
            core.metrics.expired.incr();
            env.reject(Reject::Expired, core.id);
            return None;
        }
        if meta.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            // The remote caller gave up while this was queued.
            core.metrics.expired.incr();
            return None;
        }
        let span = tracing::debug_span!(
            parent: None,
            "handle",
            actor = %core.id,
            name = core.name.as_deref(),
            message = env.message_type(),
            correlation = meta.correlation,
        );
        self.cx.meta = Some(meta.clone());
        let outcome = WithMeta {
            fut: env.handle(&mut self.actor, &mut self.cx),
            meta,
        }
        .instrument(span)
        .await;
        self.cx.meta = None;
        let core = &self.cx.myself.shared.core;
        core.metrics
            .record_handling(clock.now().saturating_duration_since(start));
        core.metrics.handled.incr();
        match outcome {
            Outcome::Done => None,
            Outcome::Cancelled => {
                tracing::debug!(actor = %core.id, "handler cancelled by its remote caller");
                None
            }
            Outcome::Panicked(message) => {
                tracing::warn!(actor = %core.id, %message, "handler panicked");
                self.fail(StopReason::Panicked { message }).await
            }
        }
    }

    /// A failure of this actor: apply its supervisor's decision. `None` = it
    /// was restarted and goes on; `Some` = it stops with that reason.
    async fn fail(&mut self, mut failure: StopReason) -> Option<StopReason> {
        loop {
            let core = &self.cx.myself.shared.core;
            core.metrics.panics.incr();
            // The failed value's children go with it.
            self.stop_children(Control::Kill(StopReason::SupervisorStopped))
                .await;
            if self.factory.is_none() {
                return Some(failure);
            }
            let core = &self.cx.myself.shared.core;
            let parent = Arc::clone(&core.parent);
            let clock = Arc::clone(&core.node.clock);
            let now = clock.now();
            let admitted = match parent.strategy.strategy {
                Strategy::OneForOne => self.window.admit(now, &parent.strategy),
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
                let siblings: Vec<CellRef> = lock(&parent.children)
                    .live
                    .iter()
                    .filter(|(id, _)| **id != core.id)
                    .map(|(_, c)| Arc::clone(c))
                    .collect();
                for s in siblings {
                    s.control(Control::Restart(failure.clone()));
                }
            }
            let delay = parent.strategy.backoff.delay(n, &mut self.cx.rng);
            if !delay.is_zero() {
                clock.sleep_until(now + delay).await;
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
        let factory = self.factory.as_mut()?;
        let fresh = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory)) {
            Ok(a) => a,
            Err(p) => {
                return Some(StopReason::Panicked {
                    message: crate::envelope::panic_message(p.as_ref()),
                });
            }
        };
        self.actor = fresh;
        self.cx.restarts += 1;
        self.cx.timers.clear();
        self.cx.myself.shared.core.metrics.restarts.incr();
        tracing::info!(actor = %self.cx.id(), restarts = self.cx.restarts, "restarted");
        let hook = CatchUnwind(std::pin::pin!(self.actor.restarted(&failure, &mut self.cx))).await;
        if let Err(message) = hook {
            return Some(StopReason::Panicked { message });
        }
        let hook = CatchUnwind(std::pin::pin!(self.actor.started(&mut self.cx))).await;
        if let Err(message) = hook {
            return Some(StopReason::Panicked { message });
        }
        None
    }

    /// Send `how` to every child and wait until they have all stopped.
    async fn stop_children(&mut self, how: Control) {
        let Some(sup) = self.cx.myself.shared.core.children.get().cloned() else {
            return;
        };
        let kids: Vec<CellRef> = lock(&sup.children).live.values().cloned().collect();
        let mut waits = Vec::with_capacity(kids.len());
        for kid in kids.iter().rev() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            kid.core().on_death(Box::new(move |_| {
                let _ = tx.send(());
            }));
            kid.core().close();
            kid.control(how.clone());
            waits.push(rx);
        }
        for w in waits {
            let _ = w.await;
        }
    }

    async fn finish(mut self, reason: StopReason) {
        let core = &self.cx.myself.shared.core;
        core.close();
        self.cx.timers.clear();
        // Reject what is still queued; wait out senders mid-push.
        let mut rejected_tells = 0u64;
        loop {
            while let Ok(env) = self.rx.try_recv() {
                if env.is_ask() {
                    core.metrics.rejected.incr();
                } else {
                    core.metrics.dropped.incr();
                    rejected_tells += 1;
                }
                env.reject(Reject::Stopped, core.id);
            }
            if core.senders_inside() == 0 && self.rx.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if rejected_tells > 0 {
            tracing::warn!(actor = %core.id, dropped = rejected_tells, %reason, "tells dropped unhandled");
        }
        // Children stop before their parent's hooks run.
        if let Some(sup) = core.children.get() {
            lock(&sup.children).closed = true;
        }
        let how = if reason.is_failure() {
            Control::Kill(StopReason::SupervisorStopped)
        } else {
            Control::Stop(StopReason::SupervisorStopped)
        };
        self.stop_children(how).await;
        if !reason.is_failure() {
            let hook = CatchUnwind(std::pin::pin!(self.actor.stopping(&mut self.cx))).await;
            if let Err(m) = hook {
                tracing::warn!(actor = %self.cx.id(), message = %m, "stopping hook panicked");
            }
            let hook = CatchUnwind(std::pin::pin!(self.actor.stopped(&reason))).await;
            if let Err(m) = hook {
                tracing::warn!(actor = %self.cx.id(), message = %m, "stopped hook panicked");
            }
        }
        self.release(reason);
    }

    /// Leave the node: release the name, leave the supervisor, notify
    /// watchers. Runs exactly once, also when the task is aborted.
    fn release(&mut self, reason: StopReason) {
        if self.released {
            return;
        }
        self.released = true;
        let shared = Arc::clone(self.shared());
        let core = &shared.core;
        core.close();
        let leftover = {
            let mut lane = lock(&shared.sys);
            lane.closed = true;
            lane.waker = None;
            std::mem::take(&mut lane.queue)
        };
        drop(leftover);
        if let Some(name) = &core.name {
            core.node.registry.remove(name, core.id);
        }
        lock(&core.parent.children).live.remove(&core.id);
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
        // runtime dropped it): queued asks fail with `Stopped` as their
        // reply slots drop with the receiver.
        if !self.released {
            let reason = if self.cx.node.inner.is_shutting_down() {
                StopReason::Shutdown
            } else {
                StopReason::Killed
            };
            self.release(reason);
            // The channel's queue lives as long as any sender (every
            // `ActorRef`), so queued asks must be answered here. A sender
            // caught mid-push on another thread gets a few chances to land.
            let id = self.cx.id();
            for _ in 0..64 {
                while let Ok(env) = self.rx.try_recv() {
                    env.reject(Reject::Stopped, id);
                }
                if self.cx.myself.shared.core.senders_inside() == 0 {
                    break;
                }
                std::thread::yield_now();
            }
        }
    }
}
