//! [`Maintenance`]: retention (and compaction, for compacted topics) run
//! on a schedule, as Kafka's log cleaner and retention checks do, instead
//! of only when called.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::error::MaintenanceError;
use super::topic::Topic;
use crate::storage::{CompactionReport, RetentionReport};

/// What one scheduled pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenancePass {
    /// Passes run so far, this one included.
    pub pass: u64,
    /// Retention's work.
    pub retention: RetentionReport,
    /// Compaction's work (empty unless the topic is compacted).
    pub compaction: CompactionReport,
}

/// The outcome of one pass.
pub type PassOutcome = Result<MaintenancePass, Arc<MaintenanceError>>;

/// A running maintenance schedule; see [`Topic::maintain_every`]. Dropping
/// it (or calling [`stop`](Self::stop)) ends the schedule; a pass in
/// progress finishes its current partition first only if it is already
/// inside the storage call, otherwise it stops at once.
#[derive(Debug)]
pub struct Maintenance {
    task: tokio::task::JoinHandle<()>,
    passes: watch::Receiver<u64>,
    last: Arc<Mutex<Option<PassOutcome>>>,
}

impl Maintenance {
    pub(super) fn start(topic: Topic, every: Duration) -> Self {
        let (passes_tx, passes) = watch::channel(0);
        let last = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&last);
        let every = every.max(Duration::from_millis(1));
        let clock = Arc::clone(&topic.inner.clock);
        // The schedule starts now, not when the task first runs.
        let mut next = crate::clock::after(clock.now(), every);
        let task = tokio::spawn(async move {
            for pass in 1.. {
                clock.sleep_until(next).await;
                let outcome = run_pass(&topic, pass).await;
                // Missed passes are skipped, not run back to back.
                next = crate::clock::after(next, every).max(clock.now());
                if let Err(e) = &outcome {
                    tracing::warn!(topic = topic.name(), error = %e, "scheduled maintenance failed; retrying next pass");
                }
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
                passes_tx.send_replace(pass);
            }
        });
        Self { task, passes, last }
    }

    /// Passes completed so far.
    pub fn passes(&self) -> u64 {
        *self.passes.borrow()
    }

    /// The outcome of the latest pass, if one has run.
    pub fn last(&self) -> Option<PassOutcome> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once at least `n` passes have completed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn wait_for_pass(&self, n: u64) {
        let mut passes = self.passes.clone();
        let _ = passes.wait_for(|&done| done >= n).await;
    }

    /// End the schedule.
    pub fn stop(self) {}
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_pass(topic: &Topic, pass: u64) -> PassOutcome {
    let retention = topic.enforce_retention().await.map_err(Arc::new)?;
    let compaction = topic.compact().await.map_err(Arc::new)?;
    Ok(MaintenancePass {
        pass,
        retention,
        compaction,
    })
}
