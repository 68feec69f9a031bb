//! Rebuilding a [`QueueCore`] from persisted events, and the compaction
//! snapshot that replays to the same state.

use std::sync::Arc;
use std::time::Instant;

use super::{DeadEntry, Event, MessageId, QueueCore, State};

impl QueueCore {
    /// Apply one persisted event while opening, without producing actions.
    /// Call [`finish_replay`](Self::finish_replay) after the last one.
    /// Events about unknown messages are ignored (compaction dropped them).
    pub fn replay(&mut self, event: Event, now: Instant) {
        match event {
            Event::Enqueued {
                id,
                body,
                not_before,
                attempts,
            } => {
                self.next_id = self.next_id.max(id.0.saturating_add(1));
                if let Some(key) = &body.dedup_id {
                    let expires = body.enqueued_at + self.config.dedup_window;
                    if expires > now {
                        self.remember_dedup(Arc::clone(key), id, expires);
                    }
                }
                if !self.entries.contains_key(&id) && !self.dead.contains_key(&id) {
                    self.insert_entry(id, body, attempts, not_before);
                }
            }
            Event::Delivered(id) => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.attempts = e.attempts.saturating_add(1);
                }
            }
            Event::Returned(id) => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.attempts = e.attempts.saturating_sub(1);
                }
            }
            Event::Acked(id) => {
                if let Some(e) = self.entries.remove(&id) {
                    self.live_bytes = self.live_bytes.saturating_sub(e.body.size());
                }
            }
            Event::Nacked {
                id,
                not_before,
                reason,
            } => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.not_before = not_before;
                    e.last_failure = Some(reason);
                }
            }
            Event::DeadLettered { id, reason } => {
                if let Some(e) = self.entries.remove(&id) {
                    self.dead.insert(
                        id,
                        DeadEntry {
                            body: e.body,
                            attempts: e.attempts,
                            reason,
                        },
                    );
                }
            }
            Event::Redriven(id) => {
                if let Some(d) = self.dead.remove(&id) {
                    self.live_bytes = self.live_bytes.saturating_sub(d.body.size());
                    self.insert_entry(id, d.body, 0, now);
                }
            }
            Event::DedupKept { key, id, expires } => {
                if expires > now {
                    self.remember_dedup(key, id, expires);
                }
            }
            Event::Checkpoint { next_id } => {
                self.next_id = self.next_id.max(next_id);
            }
        }
    }

    /// End a replay: every held message becomes ready, scheduled or (behind
    /// its FIFO group) held. Messages that were leased when the queue
    /// closed or crashed are ready again; the deliveries they had count.
    pub fn finish_replay(&mut self, now: Instant) {
        let ids: Vec<MessageId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.state == State::Held)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.admit(id, now);
        }
        self.dispatch(now);
    }

    /// Events that replay to this queue's state (leases excepted: leased
    /// messages come back ready with their attempts), ending with a
    /// [`Event::Checkpoint`]. Written to a fresh log by compaction.
    pub fn snapshot(&self) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.entries.len() + self.dead.len() + 1);
        for (&id, e) in &self.entries {
            out.push(Event::Enqueued {
                id,
                body: Arc::clone(&e.body),
                not_before: e.not_before,
                attempts: e.attempts,
            });
            if let Some(reason) = &e.last_failure {
                out.push(Event::Nacked {
                    id,
                    not_before: e.not_before,
                    reason: Arc::clone(reason),
                });
            }
        }
        for (&id, d) in &self.dead {
            out.push(Event::Enqueued {
                id,
                body: Arc::clone(&d.body),
                not_before: d.body.enqueued_at,
                attempts: d.attempts,
            });
            out.push(Event::DeadLettered {
                id,
                reason: Arc::clone(&d.reason),
            });
        }
        for (key, &(id, expires)) in &self.dedup {
            out.push(Event::DedupKept {
                key: Arc::clone(key),
                id,
                expires,
            });
        }
        out.push(Event::Checkpoint {
            next_id: self.next_id,
        });
        out
    }
}
