//! Time, as the node sees it.
//!
//! Everything in plexus that depends on time — ask deadlines, timers,
//! restart backoff, shutdown deadlines, handling-time metrics — reads the
//! node's [`Clock`], never the wall clock directly. [`SystemClock`] is the
//! real one; [`ManualClock`] only moves when a test calls
//! [`ManualClock::advance`], so timers and deadlines can be driven without
//! sleeping and a whole run is reproducible.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

/// `at + d`, without overflow: a duration too long for [`Instant`] (say
/// `Duration::MAX`, meant as "no limit") gives an instant about a century
/// ahead, which no run reaches. Every deadline plexus computes from a
/// caller's, a peer's or a config's duration goes through this.
pub fn after(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// A boxed future that completes when a [`Clock`] reaches a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of time for one node.
///
/// Implement it to plug in another notion of time (a simulation's virtual
/// clock, say); plexus ships [`SystemClock`] and [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic instant.
    fn now(&self) -> Instant;

    /// The current wall-clock time, for timestamps that leave the process
    /// (log records, trace exports). Never used to order events.
    fn wall(&self) -> SystemTime;

    /// A future that completes once [`now`](Clock::now) has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// The real clock: `std::time::Instant` for now, tokio's timer for sleeping.
///
/// Sleeping needs a tokio runtime with the time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// A clock that moves only when told to.
///
/// Cloning gives another handle to the same clock. Sleepers whose deadline
/// is reached are woken by [`advance`](ManualClock::advance) in deadline
/// order.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::clock::{Clock, ManualClock};
/// # use std::time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now() - t0, Duration::from_secs(3));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    base: Instant,
    epoch: SystemTime,
    state: Mutex<ManualState>,
}

#[derive(Default)]
struct ManualState {
    elapsed: Duration,
    next_key: u64,
    sleepers: BTreeMap<(Instant, u64), Option<Waker>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("ManualClock")
            .field("elapsed", &st.elapsed)
            .field("sleepers", &st.sleepers.len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at elapsed zero whose wall time starts at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::with_epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// A clock whose [`wall`](Clock::wall) time starts at `epoch`.
    pub fn with_epoch(epoch: SystemTime) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                epoch,
                state: Mutex::new(ManualState::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // state (a counter and a map) is still consistent.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time elapsed since the clock was made.
    pub fn elapsed(&self) -> Duration {
        self.state().elapsed
    }

    /// Move time forward by `by` and wake every sleeper whose deadline has
    /// been reached.
    pub fn advance(&self, by: Duration) {
        let wakers = {
            let mut st = self.state();
            st.elapsed += by;
            let now = self.inner.base + st.elapsed;
            let mut due = Vec::new();
            for (_, waker) in st.sleepers.range_mut(..=(now, u64::MAX)) {
                if let Some(w) = waker.take() {
                    due.push(w);
                }
            }
            due
        };
        for w in wakers {
            w.wake();
        }
    }

    /// The earliest deadline anyone is sleeping on, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state().sleepers.keys().next().map(|(at, _)| *at)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.base + self.state().elapsed
    }

    fn wall(&self) -> SystemTime {
        self.inner.epoch + self.state().elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            key: None,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut st = this.clock.state();
        if this.clock.inner.base + st.elapsed >= this.deadline {
            if let Some(key) = this.key.take() {
                st.sleepers.remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match this.key {
            Some(k) => k,
            None => {
                let k = (this.deadline, st.next_key);
                st.next_key += 1;
                this.key = Some(k);
                k
            }
        };
        st.sleepers.insert(key, Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.state().sleepers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn manual_sleep_completes_only_after_advance() {
        let clock = ManualClock::new();
        let deadline = clock.now() + Duration::from_millis(10);
        let mut sleep = clock.sleep_until(deadline);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(9));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(1));
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
        assert_eq!(clock.next_deadline(), None);
    }

    #[test]
    fn dropped_sleep_unregisters() {
        let clock = ManualClock::new();
        let mut sleep = clock.sleep_until(clock.now() + Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert!(clock.next_deadline().is_some());
        drop(sleep);
        assert_eq!(clock.next_deadline(), None);
    }
}
