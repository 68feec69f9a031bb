//! Per-actor timers on the node's clock.
//!
//! Timers live in the actor's own task, not in separate tasks: a due timer
//! is handled before the next mailbox message, and it never waits for
//! mailbox space. With a [`ManualClock`](crate::clock::ManualClock), advancing
//! the clock makes every due timer fire, in deadline order, before any
//! message sent after the advance — tests need no sleeping.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::actor::Actor;
use crate::clock::{Clock, Sleep};
use crate::envelope::BoxEnvelope;

/// Identifies a timer for [`Context::cancel_timer`](crate::Context::cancel_timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

pub(crate) enum TimerEntry<A: Actor> {
    Once(Box<dyn FnOnce() -> BoxEnvelope<A> + Send>),
    Every {
        period: Duration,
        make: Box<dyn FnMut() -> BoxEnvelope<A> + Send>,
    },
}

/// An actor's timers; allocated on the first one, so an actor without
/// timers carries one pointer.
pub(crate) struct Timers<A: Actor>(Option<Box<Set<A>>>);

struct Set<A: Actor> {
    entries: BTreeMap<(Instant, TimerId), TimerEntry<A>>,
    /// When each pending timer is due, so `cancel` finds its entry without
    /// a scan (only looked up, never iterated).
    due: HashMap<TimerId, Instant>,
    next: u64,
    /// The clock's sleep for the earliest timer, kept across waits (one
    /// sleep per deadline, not one per wait) and here rather than in the
    /// actor's wait future, so an actor without timers does not carry it.
    armed: Option<(Instant, Sleep)>,
}

impl<A: Actor> fmt::Debug for Timers<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("pending", &self.0.as_ref().map_or(0, |s| s.entries.len()))
            .finish()
    }
}

impl<A: Actor> Timers<A> {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.entries.is_empty())
    }

    pub(crate) fn add(&mut self, at: Instant, entry: TimerEntry<A>) -> TimerId {
        let set = self.0.get_or_insert_with(|| {
            Box::new(Set {
                entries: BTreeMap::new(),
                due: HashMap::new(),
                next: 0,
                armed: None,
            })
        });
        let id = TimerId(set.next);
        set.next += 1;
        set.entries.insert((at, id), entry);
        set.due.insert(id, at);
        id
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        let Some(set) = self.0.as_mut() else {
            return false;
        };
        set.due
            .remove(&id)
            .is_some_and(|at| set.entries.remove(&(at, id)).is_some())
    }

    /// Cancel every timer (ids stay unique: the set is kept).
    pub(crate) fn clear(&mut self) {
        if let Some(set) = self.0.as_mut() {
            set.entries.clear();
            set.due.clear();
            set.armed = None;
        }
    }

    /// Ready once the earliest timer is due on `clock`; registers `cx` to be
    /// woken then. Pending (and never woken by this) without timers.
    ///
    /// Every idle actor's wait polls this, nearly always without timers:
    /// that check is inlined, the rest is not (its register saving alone
    /// was about 20 instructions per call, twice per ask).
    #[inline]
    pub(crate) fn poll_due(&mut self, clock: &dyn Clock, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.as_deref_mut() {
            None => Poll::Pending,
            Some(set) => set.poll_due(clock, cx),
        }
    }

    /// The message of the earliest timer due at `now`, rescheduling it if it
    /// repeats (missed ticks fire one after another: burst catch-up).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<BoxEnvelope<A>> {
        let set = self.0.as_mut()?;
        let first = set.entries.first_entry()?;
        let (at, id) = *first.key();
        if at > now {
            return None;
        }
        match first.remove() {
            TimerEntry::Once(make) => {
                set.due.remove(&id);
                Some(make())
            }
            TimerEntry::Every { period, mut make } => {
                let env = make();
                let next = crate::clock::after(at, period.max(Duration::from_nanos(1)));
                set.entries
                    .insert((next, id), TimerEntry::Every { period, make });
                set.due.insert(id, next);
                Some(env)
            }
        }
    }
}

impl<A: Actor> Set<A> {
    /// [`Timers::poll_due`] with timers allocated.
    #[inline(never)]
    fn poll_due(&mut self, clock: &dyn Clock, cx: &mut Context<'_>) -> Poll<()> {
        let Some(&(at, _)) = self.entries.keys().next() else {
            self.armed = None;
            return Poll::Pending;
        };
        let sleep = match &mut self.armed {
            Some((armed_at, sleep)) if *armed_at == at => sleep,
            armed => &mut armed.insert((at, clock.sleep_until(at))).1,
        };
        if sleep.as_mut().poll(cx).is_ready() {
            self.armed = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
