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

use std::future::poll_fn;
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

#[derive(Default)]
pub(crate) struct Deadlines {
    state: Mutex<State>,
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
        let (key, reaper) = {
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
            (key, reaper)
        };
        if let Some(w) = reaper {
            w.wake();
        }
        key
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
