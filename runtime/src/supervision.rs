//! Supervision: who restarts a failed actor, how often, and how fast.
//!
//! Every actor has a supervisor: the actor that spawned it as a child
//! ([`Context::spawn_child`](crate::Context::spawn_child)), or the node for
//! top-level actors. The supervisor's [`SupervisionStrategy`] decides what a
//! child's failure (a panic in a handler or hook) does:
//!
//! - [`OneForOne`](Strategy::OneForOne): only the failed child restarts.
//! - [`AllForOne`](Strategy::AllForOne): the failed child and all its
//!   siblings restart (for children that only make sense together).
//!
//! A restart makes a fresh value from the actor's factory (see
//! [`Node::spawn_factory`](crate::Node::spawn_factory)) and keeps the
//! mailbox: queued messages are handled by the new value, and every
//! `ActorRef` stays valid. Only the message whose handler panicked fails, to
//! its asker, with [`AskError::HandlerPanicked`](crate::AskError). An actor
//! spawned from a value, not a factory, cannot be restarted: it stops with
//! [`StopReason::Panicked`](crate::StopReason::Panicked) and its queued asks get
//! [`AskError::Stopped`](crate::AskError::Stopped).
//!
//! Restart intensity bounds the damage: at most `max_restarts` within
//! `within`. One more failure escalates: the child stops with
//! [`StopReason::RestartLimitExceeded`](crate::StopReason::RestartLimitExceeded) and its supervisor is told, which
//! counts as the supervisor's own failure (handled by *its* supervisor). At
//! the node, escalation stops the child and logs an error. Between restarts
//! the child waits a [`Backoff`] on the node's clock.

use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use crate::cell::{AnyCell, Children};

/// Which children restart when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Only the failed child restarts.
    OneForOne,
    /// Every child of the supervisor restarts.
    AllForOne,
}

/// Delay between a failure and the restart, growing with each restart that
/// falls in the intensity window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Multiplier per consecutive restart.
    pub factor: u32,
    /// Whether to scale each delay by a random factor in [0.5, 1.0] drawn
    /// from the actor's seeded RNG (spreads restarts of many actors).
    pub jitter: bool,
}

impl Backoff {
    /// Restart at once.
    pub const fn none() -> Self {
        Self {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            factor: 1,
            jitter: false,
        }
    }

    /// Exponential backoff doubling from `initial` up to `max`, with jitter.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2,
            jitter: true,
        }
    }

    /// The delay before restart number `n` (0-based) in the current window.
    pub(crate) fn delay(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let mut d = self.initial;
        for _ in 0..n {
            d = d.saturating_mul(self.factor);
            if d >= self.max {
                d = self.max;
                break;
            }
        }
        let d = d.min(self.max.max(self.initial));
        if self.jitter {
            d.mul_f64(0.5 + rng.f64() * 0.5)
        } else {
            d
        }
    }
}

impl Default for Backoff {
    /// 10 ms doubling up to 1 s, with jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// How a supervisor treats its children's failures.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::supervision::{Backoff, SupervisionStrategy};
/// # use std::time::Duration;
/// let strategy = SupervisionStrategy::all_for_one()
///     .intensity(5, Duration::from_secs(30))
///     .backoff(Backoff::none());
/// # let _ = strategy;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionStrategy {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) within: Duration,
    pub(crate) backoff: Backoff,
}

impl SupervisionStrategy {
    /// Restart only the failed child; at most 3 restarts in 5 s; default
    /// backoff.
    pub fn one_for_one() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            within: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }

    /// Restart the failed child and its siblings; at most 3 restarts in 5 s;
    /// default backoff.
    pub fn all_for_one() -> Self {
        Self {
            strategy: Strategy::AllForOne,
            ..Self::one_for_one()
        }
    }

    /// At most `max_restarts` restarts within `within`; the next failure
    /// escalates.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// The delay between a failure and its restart.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Which children restart.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
}

impl Default for SupervisionStrategy {
    fn default() -> Self {
        Self::one_for_one()
    }
}

/// Restart times within the intensity window.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// Record a failure at `now`: `Some(n)` = restart, being the n-th
    /// (0-based) in the window; `None` = the intensity is exceeded.
    pub(crate) fn admit(&mut self, now: Instant, s: &SupervisionStrategy) -> Option<u32> {
        while let Some(&t) = self.times.front() {
            if now.saturating_duration_since(t) > s.within {
                self.times.pop_front();
            } else {
                break;
            }
        }
        let n = u32::try_from(self.times.len()).unwrap_or(u32::MAX);
        if n >= s.max_restarts {
            return None;
        }
        self.times.push_back(now);
        Some(n)
    }
}

/// The supervising side: a node's root, or an actor with children.
pub(crate) struct Supervisor {
    pub(crate) strategy: SupervisionStrategy,
    /// The supervising actor; `None` for the node's root.
    pub(crate) owner: Option<Weak<dyn AnyCell>>,
    pub(crate) children: Mutex<ChildSet>,
    /// Shared restart window for all-for-one.
    pub(crate) group: Mutex<RestartWindow>,
}

#[derive(Default)]
pub(crate) struct ChildSet {
    pub(crate) live: Children,
    /// No more children may be added (the owner is stopping).
    pub(crate) closed: bool,
}

impl Supervisor {
    pub(crate) fn new(strategy: SupervisionStrategy, owner: Option<Weak<dyn AnyCell>>) -> Self {
        Self {
            strategy,
            owner,
            children: Mutex::new(ChildSet::default()),
            group: Mutex::new(RestartWindow::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_admits_up_to_intensity_then_refuses() {
        let s = SupervisionStrategy::one_for_one().intensity(2, Duration::from_secs(10));
        let mut w = RestartWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.admit(t0, &s), Some(0));
        assert_eq!(w.admit(t0 + Duration::from_secs(1), &s), Some(1));
        assert_eq!(w.admit(t0 + Duration::from_secs(2), &s), None);
        // Old restarts age out of the window.
        assert_eq!(w.admit(t0 + Duration::from_secs(11), &s), Some(1));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            jitter: false,
            ..Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50))
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(b.delay(0, &mut rng), Duration::from_millis(10));
        assert_eq!(b.delay(1, &mut rng), Duration::from_millis(20));
        assert_eq!(b.delay(2, &mut rng), Duration::from_millis(40));
        assert_eq!(b.delay(3, &mut rng), Duration::from_millis(50));
        assert_eq!(b.delay(30, &mut rng), Duration::from_millis(50));
        assert_eq!(Backoff::none().delay(5, &mut rng), Duration::ZERO);
    }
}
