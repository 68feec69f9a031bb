//! Per-actor timers on the node's clock.
//!
//! Timers live in the actor's own task, not in separate tasks: a due timer
//! is handled before the next mailbox message, and it never waits for
//! mailbox space. With a [`ManualClock`](crate::clock::ManualClock), advancing
//! the clock makes every due timer fire, in deadline order, before any
//! message sent after the advance — tests need no sleeping.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use crate::actor::Actor;
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
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let set = self.0.as_ref()?;
        set.entries.keys().next().map(|(at, _)| *at)
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
                let next = at + period.max(Duration::from_nanos(1));
                set.entries
                    .insert((next, id), TimerEntry::Every { period, make });
                set.due.insert(id, next);
                Some(env)
            }
        }
    }
}
