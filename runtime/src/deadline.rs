//! One timer per node for the deadlines of every pending ask.
//!
//! Registering a tokio timer per ask (and the time driver's bookkeeping of
//! thousands of short-lived entries) was about a quarter of an ask's cost.
//! Instead, a pending ask puts `(deadline, waker)` in the node's set, and
//! one reaper task sleeps on the node's clock until the earliest deadline
//! and wakes the asks that are due; each then sees from the clock that its
//! time is up. Works the same on a `ManualClock`.
//!
//! The set is a slab (a vector of entries plus a free list): registering
//! and removing are O(1), which matters because nearly every ask registers
//! and is answered long before its deadline. Only the reaper walks the
//! entries, once per deadline it sleeps until; removing an entry never
//! re-arms it (it may wake for a deadline nobody waits on any more, finds
//! nothing due and sleeps again).
//!
//! Most asks come one after another from the same task, so a finished ask
//! does not remove its entry: it leaves it to its thread as a spare
//! ([`Deadlines::release`]), and the next ask of the same task on that
//! thread takes it over ([`Deadlines::arm`]) if the spare's deadline is no
//! later than its own, and nothing has fired since the entry was last seen
//! live (then it still holds the task's waker). Such an ask is woken early,
//! at the spare's deadline, finds its own not yet reached, and registers
//! anew. A sequence of asks thus takes the set's lock once per timeout
//! instead of twice per ask. A thread keeps at most one spare; the one it
//! replaces is removed.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::cell::lock;
use crate::clock::Clock;

/// An entry's slot and its registration number, unique per set (a stale
/// key never touches a reused slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    slot: u32,
    id: u64,
}

struct Entry {
    at: Instant,
    id: u64,
    /// `None` = the slot is free.
    waker: Option<Waker>,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
    next_id: u64,
    /// The deadline the reaper sleeps until, if it sleeps on one.
    armed: Option<Instant>,
    /// Set when the reaper must look again (an earlier deadline came in).
    rearm: bool,
    reaper: Option<Waker>,
}

pub(crate) struct Deadlines {
    state: Mutex<State>,
    /// Unique per set in the process: tells a thread's spare registration
    /// apart from another node's.
    id: u64,
    /// Bumped (under the lock) each time the reaper fires entries: a
    /// registration seen live before the last bump may be gone.
    fired: AtomicU64,
}

impl Default for Deadlines {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            state: Mutex::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fired: AtomicU64::new(0),
        }
    }
}

/// The task a waker wakes, by identity: the two addresses
/// [`Waker::will_wake`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId {
    data: usize,
    vtable: usize,
}

impl TaskId {
    pub(crate) fn of(waker: &Waker) -> Self {
        Self {
            data: waker.data().addr(),
            vtable: std::ptr::from_ref(waker.vtable()).addr(),
        }
    }
}

/// An entry as one ask holds it: it wakes `task` at `at`, and was live when
/// the set's fire count was `fired`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    key: Key,
    at: Instant,
    task: TaskId,
    fired: u64,
}

thread_local! {
    /// This thread's spare registration and the id of its set (see the
    /// module docs). `Copy`, so reaching it costs no destructor check.
    static SPARE: Cell<Option<(u64, Registration)>> = const { Cell::new(None) };
    /// The id of the set `SPARE_SET` points at.
    static SPARE_SET_ID: Cell<u64> = const { Cell::new(0) };
    /// The set of the spare, for removing the spare when one of another
    /// set replaces it.
    static SPARE_SET: RefCell<Weak<Deadlines>> = const { RefCell::new(Weak::new()) };
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // Let the reaper notice the node is gone and end.
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = st.reaper.take() {
            w.wake();
        }
    }
}

impl Deadlines {
    /// Wake `waker` once the clock reaches `at`.
    pub(crate) fn register(&self, at: Instant, waker: &Waker) -> Key {
        self.register_inner(at, waker).0
    }

    /// Register; also the fire count under which the entry was made.
    fn register_inner(&self, at: Instant, waker: &Waker) -> (Key, u64) {
        let (key, fired, reaper) = {
            let mut st = lock(&self.state);
            let id = st.next_id;
            st.next_id += 1;
            let entry = Entry {
                at,
                id,
                waker: Some(waker.clone()),
            };
            let slot = match st.free.pop() {
                Some(slot) => {
                    st.entries[slot as usize] = entry;
                    slot
                }
                None => {
                    st.entries.push(entry);
                    u32::try_from(st.entries.len() - 1).unwrap_or(u32::MAX)
                }
            };
            let key = Key { slot, id };
            st.live += 1;
            let earlier = st.armed.is_none_or(|armed| at < armed);
            let reaper = if earlier {
                st.rearm = true;
                st.reaper.take()
            } else {
                None
            };
            (key, self.fired.load(Ordering::Relaxed), reaper)
        };
        if let Some(w) = reaper {
            w.wake();
        }
        (key, fired)
    }

    /// An entry that wakes `waker`'s task no later than `at`: this thread's
    /// spare if it qualifies (no lock taken), else a new one.
    ///
    /// Inlined (it runs at nearly every ask): the registration is built in
    /// the ask's future rather than returned through a copy.
    #[inline]
    pub(crate) fn arm(&self, at: Instant, waker: &Waker) -> Registration {
        let task = TaskId::of(waker);
        if let Ok(Some((set, spare))) = SPARE.try_with(Cell::take) {
            // Nothing fired since the spare was last seen live: it is still
            // in the set and holds a waker of the task it names, so that
            // task is alive and, having our waker's address, is ours.
            if set == self.id
                && spare.task == task
                && spare.at <= at
                && spare.fired == self.fired.load(Ordering::Acquire)
            {
                return spare;
            }
            // Not for us: put it back.
            let _ = SPARE.try_with(|s| s.set(Some((set, spare))));
        }
        let (key, fired) = self.register_inner(at, waker);
        Registration {
            key,
            at,
            task,
            fired,
        }
    }

    /// Keep `reg` current with the task's waker. `false` if its entry is
    /// gone (it fired): then arm again.
    pub(crate) fn refresh_registration(&self, reg: &mut Registration, waker: &Waker) -> bool {
        let mut st = lock(&self.state);
        let Some(e) = Self::entry(&mut st, reg.key) else {
            return false;
        };
        if let Some(w) = &mut e.waker
            && !w.will_wake(waker)
        {
            *w = waker.clone();
            reg.task = TaskId::of(waker);
        }
        // Live now: fired entries are taken under this lock.
        reg.fired = self.fired.load(Ordering::Relaxed);
        true
    }

    /// An ask is done with `reg`: keep it as this thread's spare for the
    /// next ask of the same task, removing the spare it replaces.
    /// (Inlined up to the common end: the spare taken by this ask's `arm`
    /// is put back, for a set that already owns the thread's spare.)
    #[inline]
    pub(crate) fn release(this: &Arc<Self>, reg: Registration) {
        let Ok(old) = SPARE.try_with(|s| s.replace(Some((this.id, reg)))) else {
            // The thread is ending: no spare any more.
            this.remove(reg.key);
            return;
        };
        if let Some((set, old)) = old
            && set == this.id
        {
            this.remove(old.key);
            return;
        }
        if SPARE_SET_ID
            .try_with(Cell::get)
            .is_ok_and(|id| id == this.id)
        {
            return;
        }
        Self::take_spare_over(this, old);
    }

    /// The thread's spare now belongs to `this` set: remember it, and
    /// remove `old`, the other set's spare it replaced.
    #[cold]
    fn take_spare_over(this: &Arc<Self>, old: Option<(u64, Registration)>) {
        let other = SPARE_SET
            .try_with(|s| std::mem::replace(&mut *s.borrow_mut(), Arc::downgrade(this)))
            .ok()
            .and_then(|w| w.upgrade());
        let _ = SPARE_SET_ID.try_with(|id| id.set(this.id));
        if let Some((_, old)) = old
            && let Some(other) = other
        {
            other.remove(old.key);
        }
    }

    /// Remove `reg`'s entry now (its deadline has passed, or no spare is
    /// wanted).
    pub(crate) fn remove_registration(&self, reg: Registration) {
        self.remove(reg.key);
    }

    fn entry(st: &mut State, key: Key) -> Option<&mut Entry> {
        st.entries
            .get_mut(key.slot as usize)
            .filter(|e| e.id == key.id && e.waker.is_some())
    }

    /// Keep the registration current with the task's waker.
    pub(crate) fn refresh(&self, key: Key, waker: &Waker) {
        let mut st = lock(&self.state);
        if let Some(e) = Self::entry(&mut st, key)
            && let Some(w) = &mut e.waker
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    pub(crate) fn remove(&self, key: Key) {
        let waker = {
            let mut st = lock(&self.state);
            let Some(e) = Self::entry(&mut st, key) else {
                return;
            };
            let w = e.waker.take();
            st.live -= 1;
            st.free.push(key.slot);
            w
        };
        // A waker's last reference may free its task: outside the lock.
        drop(waker);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.state).live
    }
}

/// The node's reaper: runs until the node's `Deadlines` is dropped.
pub(crate) async fn reaper(set: Weak<Deadlines>, clock: Arc<dyn Clock>) {
    let mut due = Vec::new();
    loop {
        let next = {
            let Some(d) = set.upgrade() else { return };
            let now = clock.now();
            let next = {
                let mut st = lock(&d.state);
                let mut next: Option<Instant> = None;
                let st = &mut *st;
                for (slot, e) in st.entries.iter_mut().enumerate() {
                    if e.waker.is_none() {
                        continue;
                    }
                    if e.at <= now {
                        due.extend(e.waker.take());
                        st.free.push(u32::try_from(slot).unwrap_or(u32::MAX));
                        st.live -= 1;
                    } else if next.is_none_or(|n| e.at < n) {
                        next = Some(e.at);
                    }
                }
                if !due.is_empty() {
                    // Spare registrations seen live before now may be gone.
                    d.fired.fetch_add(1, Ordering::Release);
                }
                if st.live == 0 {
                    // Nothing pending: give the memory of a burst back.
                    st.entries = Vec::new();
                    st.free = Vec::new();
                }
                st.armed = next;
                st.rearm = false;
                next
            };
            for w in due.drain(..) {
                w.wake();
            }
            next
        };
        let mut sleep = next.map(|at| clock.sleep_until(at));
        poll_fn(|cx| {
            let Some(d) = set.upgrade() else {
                return Poll::Ready(());
            };
            if let Some(s) = sleep.as_mut()
                && s.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            let mut st = lock(&d.state);
            if st.rearm {
                return Poll::Ready(());
            }
            st.reaper = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_reaper_wakes_due_entries_in_order_and_ends_with_its_set() {
        let clock = ManualClock::new();
        let set = Arc::new(Deadlines::default());
        let reaper = tokio::spawn(reaper(Arc::downgrade(&set), Arc::new(clock.clone())));
        let a = Arc::new(Count(AtomicUsize::new(0)));
        let b = Arc::new(Count(AtomicUsize::new(0)));
        let t0 = clock.now();
        set.register(t0 + Duration::from_secs(2), &Waker::from(a.clone()));
        set.register(t0 + Duration::from_secs(1), &Waker::from(b.clone()));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1));
        while b.0.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(set.len(), 1);
        clock.advance(Duration::from_secs(1));
        while a.0.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(set.len(), 0);
        drop(set);
        reaper.await.unwrap();
    }

    #[test]
    fn a_released_entry_is_taken_over_only_by_the_same_task_for_a_later_deadline() {
        let set = Arc::new(Deadlines::default());
        let t0 = Instant::now();
        let a = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let b = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let first = set.arm(t0 + Duration::from_secs(1), &a);
        Deadlines::release(&set, first);
        // An earlier deadline, or another task: a new entry.
        let early = set.arm(t0, &a);
        assert_ne!(early.key, first.key);
        Deadlines::release(&set, early);
        assert_eq!(set.len(), 1, "the replaced spare is removed");
        let other = set.arm(t0 + Duration::from_secs(2), &b);
        assert_ne!(other.key, early.key);
        assert_eq!(set.len(), 2);
        Deadlines::release(&set, other);
        assert_eq!(set.len(), 1);
        // The same task, a later deadline: the spare, without a new entry.
        let next = set.arm(t0 + Duration::from_secs(3), &b);
        assert_eq!(next.key, other.key);
        assert_eq!(set.len(), 1);
        // Another set never takes this set's spare, and replacing it
        // removes it from its own set.
        Deadlines::release(&set, next);
        let set2 = Arc::new(Deadlines::default());
        let elsewhere = set2.arm(t0 + Duration::from_secs(9), &b);
        assert_eq!(set2.len(), 1);
        Deadlines::release(&set2, elsewhere);
        assert_eq!(set.len(), 0);
        assert_eq!(set2.len(), 1);
        set2.remove_registration(set2.arm(t0 + Duration::from_secs(9), &b));
        assert_eq!(set2.len(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_spare_whose_entry_fired_is_not_taken_over() {
        let clock = ManualClock::new();
        let set = Arc::new(Deadlines::default());
        let reaper = tokio::spawn(reaper(Arc::downgrade(&set), Arc::new(clock.clone())));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(count.clone());
        let t0 = clock.now();
        let reg = set.arm(t0 + Duration::from_secs(1), &w);
        Deadlines::release(&set, reg);
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1));
        while count.0.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(set.len(), 0);
        let again = set.arm(t0 + Duration::from_secs(5), &w);
        assert_eq!(set.len(), 1, "a fired spare must not be taken over");
        let mut again = again;
        assert!(set.refresh_registration(&mut again, &w));
        set.remove_registration(again);
        drop(set);
        reaper.await.unwrap();
    }

    #[test]
    fn a_stale_key_never_touches_a_reused_slot() {
        let set = Deadlines::default();
        let t0 = Instant::now();
        let w = Waker::noop();
        let a = set.register(t0, w);
        set.remove(a);
        let b = set.register(t0, w);
        assert_eq!(a.slot, b.slot);
        set.remove(a);
        assert_eq!(set.len(), 1);
        set.refresh(a, w);
        set.remove(b);
        assert_eq!(set.len(), 0);
    }
}
