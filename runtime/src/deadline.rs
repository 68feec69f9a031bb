//! One timer per node for the deadlines of every pending ask.
//!
//! Registering a tokio timer per ask (and the time driver's bookkeeping of
//! thousands of short-lived entries) was about a quarter of an ask's cost.
//! Instead, a pending ask puts `(deadline, waker)` in the node's set, and
//! one reaper task sleeps on the node's clock until the earliest deadline
//! and wakes the asks that are due; each then sees from the clock that its
//! time is up. Works the same on a `ManualClock`.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::cell::lock;
use crate::clock::Clock;

pub(crate) type Key = (Instant, u64);

#[derive(Default)]
struct State {
    entries: BTreeMap<Key, Waker>,
    next: u64,
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
        let wake_reaper = {
            let mut st = lock(&self.state);
            let key = (at, st.next);
            st.next += 1;
            st.entries.insert(key, waker.clone());
            let earlier = st.armed.is_none_or(|armed| at < armed);
            if earlier {
                st.rearm = true;
            }
            let w = if earlier { st.reaper.take() } else { None };
            (key, w)
        };
        if let Some(w) = wake_reaper.1 {
            w.wake();
        }
        wake_reaper.0
    }

    /// Keep the registration current with the task's waker.
    pub(crate) fn refresh(&self, key: Key, waker: &Waker) {
        let mut st = lock(&self.state);
        if let Some(w) = st.entries.get_mut(&key)
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    pub(crate) fn remove(&self, key: Key) {
        lock(&self.state).entries.remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }
}

/// The node's reaper: runs until the node's `Deadlines` is dropped.
pub(crate) async fn reaper(set: Weak<Deadlines>, clock: Arc<dyn Clock>) {
    loop {
        let next = {
            let Some(d) = set.upgrade() else { return };
            let now = clock.now();
            let (due, next) = {
                let mut st = lock(&d.state);
                let later = st.entries.split_off(&(now, u64::MAX));
                let due = std::mem::replace(&mut st.entries, later);
                let next = st.entries.keys().next().map(|(at, _)| *at);
                st.armed = next;
                st.rearm = false;
                (due, next)
            };
            for (_, w) in due {
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
}
