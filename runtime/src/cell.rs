//! The shared half of an actor: what every `ActorRef` points at.
//!
//! `Shared<A>` holds the user mailbox (an [`Inbox`], whose lock also guards
//! its open/closed state), the priority lane for system messages, and the
//! untyped `Core` (identity, metrics, death watch). The actor's task owns
//! the receiving side's batch.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};

use tokio::task::AbortHandle;

use crate::actor::{Actor, ActorId, StopReason, Terminated};
use crate::counter_hash::CounterHasher;
use crate::envelope::BoxEnvelope;
use crate::inbox::Inbox;
use crate::metrics::ActorMetrics;
use crate::node::NodeInner;
use crate::supervision::Supervisor;

/// Lock a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a few plain field updates).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Control messages on the priority lane.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Close the mailbox, handle what is queued, then stop with the reason.
    Stop(StopReason),
    /// Close the mailbox, reject what is queued, stop with the reason.
    Kill(StopReason),
    /// A sibling failed under an all-for-one supervisor: restart.
    Restart(StopReason),
    /// A child exceeded its restart intensity: treat it as our own failure.
    ChildEscalated { child: ActorId, reason: StopReason },
}

/// An item on the priority lane.
pub(crate) enum Sys<A: Actor> {
    Ctl(Control),
    /// A message that must not wait behind the user mailbox (death notices).
    Deliver(BoxEnvelope<A>),
}

/// The priority lane. The actor waits on it with the waker it leaves in
/// its mailbox (see `Shared::push_sys`), so the lane keeps none of its own.
///
/// Most lanes only ever carry one plain stop or kill (every actor gets one
/// when it is stopped): that item sits in `head`, in the padding beside
/// `closed`, and costs no allocation. `head` only fills while `queue` is
/// empty, so it always precedes what is queued: the lane stays FIFO.
pub(crate) struct SysLane<A: Actor> {
    head: Option<Plain>,
    pub(crate) closed: bool,
    queue: VecDeque<Sys<A>>,
}

/// A stop or kill whose reason carries no data.
#[derive(Clone, Copy)]
enum Plain {
    Stop(PlainReason),
    Kill(PlainReason),
}

#[derive(Clone, Copy)]
enum PlainReason {
    Normal,
    Killed,
    SupervisorStopped,
    Shutdown,
}

impl PlainReason {
    fn of(reason: &StopReason) -> Option<Self> {
        Some(match reason {
            StopReason::Normal => Self::Normal,
            StopReason::Killed => Self::Killed,
            StopReason::SupervisorStopped => Self::SupervisorStopped,
            StopReason::Shutdown => Self::Shutdown,
            _ => return None,
        })
    }

    fn reason(self) -> StopReason {
        match self {
            Self::Normal => StopReason::Normal,
            Self::Killed => StopReason::Killed,
            Self::SupervisorStopped => StopReason::SupervisorStopped,
            Self::Shutdown => StopReason::Shutdown,
        }
    }
}

impl Plain {
    fn of<A: Actor>(item: &Sys<A>) -> Option<Self> {
        match item {
            Sys::Ctl(Control::Stop(r)) => PlainReason::of(r).map(Self::Stop),
            Sys::Ctl(Control::Kill(r)) => PlainReason::of(r).map(Self::Kill),
            _ => None,
        }
    }

    fn item<A: Actor>(self) -> Sys<A> {
        Sys::Ctl(match self {
            Self::Stop(r) => Control::Stop(r.reason()),
            Self::Kill(r) => Control::Kill(r.reason()),
        })
    }
}

/// What is at the front of the lane.
pub(crate) enum Front {
    Empty,
    /// A stop or a kill: handled without awaiting.
    StopOrKill,
    /// Anything else (needs the async path).
    Other,
}

impl<A: Actor> SysLane<A> {
    pub(crate) fn new() -> Self {
        Self {
            head: None,
            closed: false,
            queue: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, item: Sys<A>) {
        if self.head.is_none()
            && self.queue.is_empty()
            && let Some(plain) = Plain::of(&item)
        {
            self.head = Some(plain);
            return;
        }
        if self.queue.capacity() == 0 {
            // Usually a lone item: room for one, not the default four.
            self.queue.reserve_exact(1);
        }
        self.queue.push_back(item);
    }

    pub(crate) fn pop(&mut self) -> Option<Sys<A>> {
        match self.head.take() {
            Some(plain) => Some(plain.item()),
            None => self.queue.pop_front(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none() && self.queue.is_empty()
    }

    pub(crate) fn front(&self) -> Front {
        if self.head.is_some() {
            return Front::StopOrKill;
        }
        match self.queue.front() {
            None => Front::Empty,
            Some(Sys::Ctl(Control::Stop(_) | Control::Kill(_))) => Front::StopOrKill,
            Some(_) => Front::Other,
        }
    }

    /// Close the lane; what was queued is returned (to be dropped outside
    /// the lock).
    pub(crate) fn close(&mut self) -> VecDeque<Sys<A>> {
        self.closed = true;
        self.head = None;
        std::mem::take(&mut self.queue)
    }
}

type Watcher = Box<dyn FnOnce(&Terminated) + Send>;

/// Someone waiting for an actor's death notice.
enum Waiter {
    Call(Watcher),
    /// A `terminated()` future: it reads the notice itself once woken.
    Wake(Waker),
}

#[derive(Default)]
pub(crate) struct Death {
    pub(crate) reason: Option<StopReason>,
    waiters: Waiters,
    /// The actor's task, for aborting it when it ignores a kill (kept
    /// under this lock rather than in a `OnceLock` of its own: one word
    /// less per actor).
    task: Option<AbortHandle>,
}

/// Who waits for the death notice, newest first: one pointer while nobody
/// does (most actors are never watched), one allocation per waiter.
#[derive(Default)]
struct Waiters(Option<Box<Link>>);

struct Link {
    waiter: Waiter,
    next: Option<Box<Self>>,
}

impl Waiters {
    fn push(&mut self, waiter: Waiter) {
        let next = self.0.take();
        self.0 = Some(Box::new(Link { waiter, next }));
    }

    fn iter(&self) -> impl Iterator<Item = &Waiter> {
        std::iter::successors(self.0.as_deref(), |l| l.next.as_deref()).map(|l| &l.waiter)
    }

    /// Every waiter, oldest first (the order they were added in).
    fn take_oldest_first(&mut self) -> OldestFirst {
        let mut reversed = None;
        let mut cur = self.0.take();
        while let Some(mut link) = cur {
            cur = std::mem::replace(&mut link.next, reversed);
            reversed = Some(link);
        }
        OldestFirst(reversed)
    }
}

impl Drop for Waiters {
    fn drop(&mut self) {
        // Unlink one by one: a long list must not recurse.
        drop(self.take_oldest_first());
    }
}

struct OldestFirst(Option<Box<Link>>);

impl Iterator for OldestFirst {
    type Item = Waiter;

    fn next(&mut self) -> Option<Waiter> {
        let link = self.0.take()?;
        let Link { waiter, next } = *link;
        self.0 = next;
        Some(waiter)
    }
}

impl Drop for OldestFirst {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

/// The untyped part of an actor's shared state.
pub(crate) struct Core {
    pub(crate) id: ActorId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) sys_pending: AtomicBool,
    pub(crate) node: Arc<NodeInner>,
    /// Who supervises this actor.
    pub(crate) parent: Arc<Supervisor>,
    /// This actor as a supervisor of its children; made on first child.
    pub(crate) children: OnceLock<Arc<Supervisor>>,
    pub(crate) metrics: ActorMetrics,
    pub(crate) death: Mutex<Death>,
}

impl Core {
    pub(crate) fn new(
        id: ActorId,
        name: Option<Arc<str>>,
        node: &Arc<NodeInner>,
        parent: &Arc<Supervisor>,
    ) -> Self {
        Self {
            id,
            name,
            sys_pending: AtomicBool::new(false),
            node: Arc::clone(node),
            parent: Arc::clone(parent),
            children: OnceLock::new(),
            metrics: ActorMetrics::default(),
            death: Mutex::default(),
        }
    }

    /// Remember the actor's task (once, right after it is spawned).
    pub(crate) fn set_task(&self, task: AbortHandle) {
        lock(&self.death).task = Some(task);
    }

    /// Abort the actor's task (its future is dropped where it stands).
    pub(crate) fn abort_task(&self) {
        let task = lock(&self.death).task.clone();
        if let Some(task) = task {
            task.abort();
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        lock(&self.death).reason.is_some()
    }

    /// Run `f` with the death notice once the actor has stopped — at once if
    /// it already has.
    pub(crate) fn on_death(&self, f: Watcher) {
        let mut death = lock(&self.death);
        match &death.reason {
            Some(reason) => {
                let notice = Terminated {
                    id: self.id,
                    name: self.name.clone(),
                    reason: reason.clone(),
                };
                drop(death);
                f(&notice);
            }
            None => death.waiters.push(Waiter::Call(f)),
        }
    }

    /// The death notice if the actor has stopped; otherwise `cx`'s task is
    /// woken when it does. No allocation beyond the waiter list's slot.
    pub(crate) fn poll_death(&self, cx: &mut std::task::Context<'_>) -> Poll<Terminated> {
        let mut death = lock(&self.death);
        match &death.reason {
            Some(reason) => Poll::Ready(Terminated {
                id: self.id,
                name: self.name.clone(),
                reason: reason.clone(),
            }),
            None => {
                let known = death
                    .waiters
                    .iter()
                    .any(|w| matches!(w, Waiter::Wake(w) if w.will_wake(cx.waker())));
                if !known {
                    death.waiters.push(Waiter::Wake(cx.waker().clone()));
                }
                Poll::Pending
            }
        }
    }

    /// Record the final reason and notify every watcher, once.
    pub(crate) fn die(&self, reason: StopReason) {
        let watchers = {
            let mut death = lock(&self.death);
            if death.reason.is_some() {
                return;
            }
            death.reason = Some(reason.clone());
            death.waiters.take_oldest_first()
        };
        let notice = Terminated {
            id: self.id,
            name: self.name.clone(),
            reason,
        };
        for w in watchers {
            match w {
                Waiter::Call(f) => f(&notice),
                Waiter::Wake(w) => w.wake(),
            }
        }
    }
}

/// An actor's shared state, typed by its actor.
pub(crate) struct Shared<A: Actor> {
    pub(crate) core: Core,
    pub(crate) inbox: Inbox<BoxEnvelope<A>>,
    pub(crate) sys: Mutex<SysLane<A>>,
}

impl<A: Actor> Shared<A> {
    /// `capacity`: `None` = unbounded.
    pub(crate) fn new(core: Core, capacity: Option<usize>) -> Arc<Self> {
        let inbox = Inbox::new(capacity);
        Arc::new(Self {
            core,
            inbox,
            sys: Mutex::new(SysLane::new()),
        })
    }

    /// Close the mailbox to new senders (they get `Closed` and their
    /// message back). Returns whether it was open.
    pub(crate) fn close(&self) -> bool {
        self.inbox.close()
    }

    /// Put an item on the priority lane and wake the actor. `false` if the
    /// actor has finished.
    ///
    /// The actor is woken through its mailbox's receiver waker: it registers
    /// that waker under the mailbox lock and then checks `sys_pending`, and
    /// this sets `sys_pending` before taking the waker under the same lock,
    /// so either the actor sees the flag or this sees its waker.
    pub(crate) fn push_sys(&self, item: Sys<A>) -> bool {
        {
            let mut lane = lock(&self.sys);
            if lane.closed {
                return false;
            }
            lane.push(item);
            self.core.sys_pending.store(true, Ordering::Release);
        }
        self.inbox.wake_receiver();
        true
    }
}

/// What other parts of the runtime may do with an actor of unknown type.
pub(crate) trait AnyCell: Send + Sync + 'static {
    fn core(&self) -> &Core;
    /// The actor's Rust type.
    fn type_name(&self) -> &'static str;
    /// Close the mailbox to new senders.
    fn close(&self) -> bool;
    fn control(&self, c: Control) -> bool;
    fn mailbox_len(&self) -> usize;
    fn mailbox_capacity(&self) -> Option<usize>;
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<A: Actor> AnyCell for Shared<A> {
    fn core(&self) -> &Core {
        &self.core
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<A>()
    }

    fn close(&self) -> bool {
        Self::close(self)
    }

    fn control(&self, c: Control) -> bool {
        self.push_sys(Sys::Ctl(c))
    }

    fn mailbox_len(&self) -> usize {
        self.inbox.len()
    }

    fn mailbox_capacity(&self) -> Option<usize> {
        self.inbox.capacity()
    }

    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

pub(crate) type CellRef = Arc<dyn AnyCell>;

/// Children of a supervisor. Every spawn inserts and every stop removes,
/// so they are a hash map (a `BTreeMap` of 10,000 actors cost ~400
/// instructions per spawn and stop); walks sort by id so that they stay
/// deterministic.
#[derive(Default)]
pub(crate) struct Children(HashMap<ActorId, CellRef, BuildHasherDefault<CounterHasher>>);

impl Children {
    pub(crate) fn insert(&mut self, id: ActorId, cell: CellRef) {
        self.0.insert(id, cell);
    }

    pub(crate) fn remove(&mut self, id: ActorId) {
        self.0.remove(&id);
        // Give the memory of a burst back (a map never shrinks by itself).
        if self.0.capacity() > 64 && self.0.len() * 8 < self.0.capacity() {
            self.0.shrink_to_fit();
        }
    }

    /// Every child, ordered by id.
    pub(crate) fn by_id(&self) -> Vec<CellRef> {
        let mut kids: Vec<(ActorId, CellRef)> =
            self.0.iter().map(|(id, c)| (*id, Arc::clone(c))).collect();
        kids.sort_unstable_by_key(|(id, _)| *id);
        kids.into_iter().map(|(_, c)| c).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Idle;
    impl Actor for Idle {}

    fn popped(lane: &mut SysLane<Idle>) -> Vec<String> {
        std::iter::from_fn(|| lane.pop())
            .map(|item| match item {
                Sys::Ctl(c) => format!("{c:?}"),
                Sys::Deliver(_) => "deliver".into(),
            })
            .collect()
    }

    /// The inline head only takes an item while the queue is empty, so
    /// items come out in the order they went in.
    #[test]
    fn the_priority_lane_stays_fifo_with_its_inline_head() {
        let mut lane = SysLane::<Idle>::new();
        lane.push(Sys::Ctl(Control::Stop(StopReason::Normal)));
        assert!(lane.queue.capacity() == 0, "a lone stop allocates nothing");
        lane.push(Sys::Ctl(Control::Restart(StopReason::Killed)));
        lane.push(Sys::Ctl(Control::Kill(StopReason::Shutdown)));
        assert!(matches!(lane.front(), Front::StopOrKill));
        assert_eq!(
            popped(&mut lane),
            ["Stop(Normal)", "Restart(Killed)", "Kill(Shutdown)"]
        );
        assert!(lane.is_empty() && matches!(lane.front(), Front::Empty));

        // A plain stop behind another item queues behind it.
        lane.push(Sys::Ctl(Control::Restart(StopReason::Normal)));
        lane.push(Sys::Ctl(Control::Stop(StopReason::Shutdown)));
        assert!(matches!(lane.front(), Front::Other));
        assert_eq!(popped(&mut lane), ["Restart(Normal)", "Stop(Shutdown)"]);

        // A stop whose reason carries data is queued, and keeps it.
        let reason = StopReason::Panicked {
            message: "boom".into(),
        };
        lane.push(Sys::Ctl(Control::Kill(reason.clone())));
        assert_eq!(popped(&mut lane), [format!("{:?}", Control::Kill(reason))]);

        // Closing drops the head and the queue.
        lane.push(Sys::Ctl(Control::Stop(StopReason::Normal)));
        lane.push(Sys::Ctl(Control::Stop(StopReason::Normal)));
        assert_eq!(lane.close().len(), 1);
        assert!(lane.closed && lane.is_empty());
    }
}
