//! [`QueueCore`]: the queue's state machine. It never does I/O, never reads
//! a clock and never awaits: every input takes `now`, and effects come out
//! as [`Action`]s (deliver this, persist that) drained with
//! [`QueueCore::poll_action`]. The driver actor performs them; tests call
//! the core directly with a virtual `now`.
//!
//! Every message is in exactly one place: `entries` (waiting behind its
//! FIFO group, scheduled for later, ready, or leased) or `dead`. Acked
//! messages are forgotten. The index sets (`ready`, `scheduled`, `leases`)
//! mirror each entry's `State` and are only changed together with it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{AckError, EnqueueError};
use super::types::{
    Body, ConsumerId, DeadLetter, LeaseId, MessageId, Nack, NewMessage, QueueConfig, QueueMetrics,
};

/// A fact the queue must make durable, in the order produced. Replaying
/// the persisted events (see [`QueueCore::replay`]) rebuilds the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message was accepted (or, in a compaction snapshot, is still held
    /// with `attempts` deliveries so far).
    Enqueued {
        /// Its id.
        id: MessageId,
        /// What the producer sent.
        body: Arc<Body>,
        /// Not deliverable before this instant.
        not_before: Instant,
        /// Deliveries so far.
        attempts: u32,
    },
    /// The message was handed to a consumer (one attempt used).
    Delivered(MessageId),
    /// A delivery never reached its consumer (mailbox full): the attempt
    /// is given back.
    Returned(MessageId),
    /// The message was acked and leaves the queue.
    Acked(MessageId),
    /// The message was nacked and waits until `not_before`.
    Nacked {
        /// Its id.
        id: MessageId,
        /// Redelivery not before this instant.
        not_before: Instant,
        /// The consumer's reason.
        reason: Arc<str>,
    },
    /// The message moved to the dead-letter queue.
    DeadLettered {
        /// Its id.
        id: MessageId,
        /// Why.
        reason: Arc<str>,
    },
    /// A dead letter was moved back, with its attempts reset.
    Redriven(MessageId),
    /// A deduplication id remembered until `expires` (compaction snapshot).
    DedupKept {
        /// The deduplication id.
        key: Arc<str>,
        /// The message it names.
        id: MessageId,
        /// Forgotten at this instant.
        expires: Instant,
    },
    /// End of a compaction snapshot: ids below `next_id` are used.
    Checkpoint {
        /// The next id to assign.
        next_id: u64,
    },
}

/// A delivery the driver must hand to `consumer`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Who receives it.
    pub consumer: ConsumerId,
    /// The message.
    pub id: MessageId,
    /// This delivery's lease.
    pub lease: LeaseId,
    /// 1 for the first delivery, then 2, 3, …
    pub attempt: u32,
    /// The lease ends at this instant unless acked, nacked or extended.
    pub lease_until: Instant,
    /// The message content.
    pub body: Arc<Body>,
}

/// An effect requested by the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Hand a message to a consumer. If the consumer cannot take it now,
    /// report it with [`QueueCore::refused`]; if it is gone, with
    /// [`QueueCore::unsubscribe`].
    Deliver(Grant),
    /// Append this event to the queue's log.
    Persist(Event),
}

/// The result of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Enqueued {
    /// The message's id (the first message's, for a duplicate).
    pub id: MessageId,
    /// True when the deduplication id was seen within the window and
    /// nothing new was stored.
    pub duplicate: bool,
}

/// Where one message is, for inspection and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageState {
    /// Waiting for an earlier message of its FIFO group.
    Held,
    /// Delayed or backing off until the given instant.
    Scheduled(Instant),
    /// Deliverable now.
    Ready,
    /// Leased to a consumer.
    Leased {
        /// The consumer.
        consumer: ConsumerId,
        /// The lease.
        lease: LeaseId,
        /// When it ends.
        until: Instant,
    },
    /// In the dead-letter queue.
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Scheduled,
    Ready,
    Leased {
        consumer: ConsumerId,
        lease: LeaseId,
        until: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    body: Arc<Body>,
    attempts: u32,
    not_before: Instant,
    state: State,
    last_failure: Option<Arc<str>>,
}

#[derive(Debug)]
struct DeadEntry {
    body: Arc<Body>,
    attempts: u32,
    reason: Arc<str>,
}

#[derive(Debug, Default)]
struct Group {
    /// Members not yet acked or dead, in id (enqueue) order.
    pending: BTreeSet<MessageId>,
    /// The one member allowed out of `Held`.
    active: Option<MessageId>,
}

#[derive(Debug)]
struct Consumer {
    prefetch: u32,
    leased: BTreeSet<MessageId>,
    paused: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    enqueued: u64,
    acked: u64,
    redeliveries: u64,
    dead_lettered: u64,
    expired: u64,
}

/// The queue's state machine; see the [module docs](self).
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::queue::core::{Action, QueueCore};
/// # use plexus_runtime::protocols::queue::{NewMessage, QueueConfig};
/// # use std::time::Instant;
/// let now = Instant::now();
/// let mut q = QueueCore::new(QueueConfig::default());
/// let id = q.enqueue(NewMessage::new(b"job".to_vec()), now).unwrap().id;
/// let worker = q.subscribe(8, now);
/// let mut lease = None;
/// while let Some(action) = q.poll_action() {
///     if let Action::Deliver(grant) = action {
///         assert_eq!((grant.consumer, grant.id), (worker, id));
///         lease = Some(grant.lease);
///     }
/// }
/// q.ack(id, lease.unwrap(), now).unwrap();
/// assert_eq!(q.metrics(now).acked, 1);
/// ```
#[derive(Debug)]
pub struct QueueCore {
    config: QueueConfig,
    next_id: u64,
    next_lease: u64,
    next_consumer: u64,
    entries: BTreeMap<MessageId, Entry>,
    dead: BTreeMap<MessageId, DeadEntry>,
    ready: BTreeSet<MessageId>,
    scheduled: BTreeSet<(Instant, MessageId)>,
    leases: BTreeSet<(Instant, MessageId)>,
    groups: BTreeMap<Arc<str>, Group>,
    dedup: BTreeMap<Arc<str>, (MessageId, Instant)>,
    dedup_expiry: BTreeSet<(Instant, Arc<str>)>,
    consumers: BTreeMap<ConsumerId, Consumer>,
    /// Consumers with spare prefetch that are not paused.
    available: BTreeSet<ConsumerId>,
    /// The consumer served last (round robin).
    last_served: Option<ConsumerId>,
    actions: VecDeque<Action>,
    counters: Counters,
    live_bytes: u64,
}

impl QueueCore {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            next_id: 0,
            next_lease: 1,
            next_consumer: 1,
            entries: BTreeMap::new(),
            dead: BTreeMap::new(),
            ready: BTreeSet::new(),
            scheduled: BTreeSet::new(),
            leases: BTreeSet::new(),
            groups: BTreeMap::new(),
            dedup: BTreeMap::new(),
            dedup_expiry: BTreeSet::new(),
            consumers: BTreeMap::new(),
            available: BTreeSet::new(),
            last_served: None,
            actions: VecDeque::new(),
            counters: Counters::default(),
            live_bytes: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The next effect to perform, in order. Drain them all after each input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`tick`](Self::tick) must next be called (a delay ends, a
    /// backoff ends or a lease runs out); `None` = only on input.
    pub fn next_deadline(&self) -> Option<Instant> {
        let s = self.scheduled.first().map(|&(t, _)| t);
        let l = self.leases.first().map(|&(t, _)| t);
        match (s, l) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes of messages still held (live and dead): what a compaction keeps.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Accept a message.
    ///
    /// # Errors
    /// [`EnqueueError::TooLarge`], [`EnqueueError::KeyTooLong`]; nothing
    /// changes then.
    pub fn enqueue(&mut self, msg: NewMessage, now: Instant) -> Result<Enqueued, EnqueueError> {
        self.check(&msg)?;
        self.prune_dedup(now);
        if let Some(key) = &msg.dedup_id
            && let Some(&(id, _)) = self.dedup.get(key.as_str())
        {
            return Ok(Enqueued {
                id,
                duplicate: true,
            });
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        let dedup_id: Option<Arc<str>> = msg.dedup_id.map(Arc::from);
        if let Some(key) = &dedup_id {
            self.remember_dedup(
                Arc::clone(key),
                id,
                crate::clock::after(now, self.config.dedup_window),
            );
        }
        let body = Arc::new(Body {
            payload: msg.payload,
            headers: msg.headers,
            group: msg.group.map(Arc::from),
            dedup_id,
            enqueued_at: now,
        });
        let not_before = crate::clock::after(now, msg.delay.unwrap_or_default());
        self.actions.push_back(Action::Persist(Event::Enqueued {
            id,
            body: Arc::clone(&body),
            not_before,
            attempts: 0,
        }));
        self.insert_entry(id, body, 0, not_before);
        self.counters.enqueued += 1;
        self.admit(id, now);
        self.dispatch(now);
        Ok(Enqueued {
            id,
            duplicate: false,
        })
    }

    /// Whether `msg` would be accepted by [`enqueue`](Self::enqueue)
    /// (deduplication aside).
    ///
    /// # Errors
    /// [`EnqueueError::TooLarge`], [`EnqueueError::KeyTooLong`].
    pub fn check(&self, msg: &NewMessage) -> Result<(), EnqueueError> {
        // Each header costs 6 bytes of framing: counted, so that many
        // empty headers cannot exceed the record limit.
        let size = msg.payload.len()
            + msg
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len() + 6)
                .sum::<usize>();
        if size > self.config.max_message_bytes {
            return Err(EnqueueError::TooLarge {
                size,
                max: self.config.max_message_bytes,
            });
        }
        let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 65_535);
        if too_long(&msg.dedup_id)
            || too_long(&msg.group)
            || msg.headers.iter().any(|h| h.name.len() > 65_535)
        {
            return Err(EnqueueError::KeyTooLong);
        }
        Ok(())
    }

    /// The id the next [`subscribe`](Self::subscribe) will return.
    pub fn next_consumer_id(&self) -> ConsumerId {
        ConsumerId(self.next_consumer)
    }

    /// Add a consumer that may hold up to `prefetch` unacked deliveries
    /// (at least 1). Deliveries to it may follow at once.
    pub fn subscribe(&mut self, prefetch: u32, now: Instant) -> ConsumerId {
        let id = ConsumerId(self.next_consumer);
        self.next_consumer += 1;
        self.consumers.insert(
            id,
            Consumer {
                prefetch: prefetch.max(1),
                leased: BTreeSet::new(),
                paused: false,
            },
        );
        self.available.insert(id);
        self.dispatch(now);
        id
    }

    /// Remove a consumer (it left, or died). Its leased messages are
    /// delivered again (the attempt counts) or dead-lettered if that was
    /// their last attempt. `false` if it was unknown.
    pub fn unsubscribe(&mut self, consumer: ConsumerId, reason: &str, now: Instant) -> bool {
        self.available.remove(&consumer);
        let Some(c) = self.consumers.remove(&consumer) else {
            return false;
        };
        let reason: Arc<str> = Arc::from(reason);
        for id in c.leased {
            if let Some(e) = self.entries.get(&id)
                && let State::Leased { until, .. } = e.state
            {
                self.leases.remove(&(until, id));
                self.release(id, Arc::clone(&reason), now);
            }
        }
        self.dispatch(now);
        true
    }

    /// Acknowledge a delivery: the message leaves the queue.
    ///
    /// # Errors
    /// [`AckError::UnknownMessage`], [`AckError::LeaseEnded`].
    pub fn ack(&mut self, id: MessageId, lease: LeaseId, now: Instant) -> Result<(), AckError> {
        self.end_lease(id, lease)?;
        self.remove_entry(id, now);
        self.actions.push_back(Action::Persist(Event::Acked(id)));
        self.counters.acked += 1;
        self.dispatch(now);
        Ok(())
    }

    /// Give a delivery back: it is delivered again after the nack's delay
    /// (or the queue's backoff), or dead-lettered if the nack says so or
    /// this was its last attempt.
    ///
    /// # Errors
    /// [`AckError::UnknownMessage`], [`AckError::LeaseEnded`].
    pub fn nack(
        &mut self,
        id: MessageId,
        lease: LeaseId,
        nack: Nack,
        now: Instant,
    ) -> Result<(), AckError> {
        self.end_lease(id, lease)?;
        let reason: Arc<str> = Arc::from(format!("nacked: {}", nack.reason));
        let attempts = self.entries.get(&id).map_or(0, |e| e.attempts);
        if nack.dead_letter || attempts >= self.config.max_attempts {
            self.dead_letter(id, reason, now);
        } else {
            let delay = nack.delay.unwrap_or_else(|| self.config.backoff(attempts));
            let not_before = crate::clock::after(now, delay);
            if let Some(e) = self.entries.get_mut(&id) {
                e.not_before = not_before;
                e.last_failure = Some(Arc::clone(&reason));
            }
            self.actions.push_back(Action::Persist(Event::Nacked {
                id,
                not_before,
                reason,
            }));
            self.activate(id, now);
        }
        self.dispatch(now);
        Ok(())
    }

    /// Extend a lease to end `by` from now (capped at
    /// [`max_lease`](QueueConfig::max_lease)); returns the new end.
    ///
    /// # Errors
    /// [`AckError::UnknownMessage`], [`AckError::LeaseEnded`].
    pub fn extend(
        &mut self,
        id: MessageId,
        lease: LeaseId,
        by: Duration,
        now: Instant,
    ) -> Result<Instant, AckError> {
        let new_until = crate::clock::after(now, by.min(self.config.max_lease));
        let entry = self.leased_entry(id, lease)?;
        let State::Leased {
            consumer, until, ..
        } = entry.state
        else {
            return Err(AckError::LeaseEnded(id));
        };
        entry.state = State::Leased {
            consumer,
            lease,
            until: new_until,
        };
        self.leases.remove(&(until, id));
        self.leases.insert((new_until, id));
        Ok(new_until)
    }

    /// A delivery could not be handed over (the consumer's mailbox was
    /// full): the message is ready again without losing an attempt, and
    /// the consumer gets nothing more until [`resume`](Self::resume) or
    /// its next ack or nack.
    pub fn refused(&mut self, consumer: ConsumerId, id: MessageId, lease: LeaseId, now: Instant) {
        if self.end_lease(id, lease).is_err() {
            return;
        }
        if let Some(e) = self.entries.get_mut(&id) {
            if e.attempts > 1 {
                self.counters.redeliveries = self.counters.redeliveries.saturating_sub(1);
            }
            e.attempts = e.attempts.saturating_sub(1);
        }
        self.actions.push_back(Action::Persist(Event::Returned(id)));
        if let Some(c) = self.consumers.get_mut(&consumer) {
            c.paused = true;
        }
        self.available.remove(&consumer);
        self.activate(id, now);
        self.dispatch(now);
    }

    /// Let a paused consumer receive deliveries again.
    pub fn resume(&mut self, consumer: ConsumerId, now: Instant) {
        if let Some(c) = self.consumers.get_mut(&consumer) {
            c.paused = false;
            if c.leased.len() < c.prefetch as usize {
                self.available.insert(consumer);
            }
        }
        self.dispatch(now);
    }

    /// Whether a consumer is paused after a refused delivery.
    pub fn is_paused(&self, consumer: ConsumerId) -> bool {
        self.consumers.get(&consumer).is_some_and(|c| c.paused)
    }

    /// Advance to `now`: end delays and backoffs, expire leases (their
    /// messages are delivered again or dead-lettered), forget old
    /// deduplication ids, deliver.
    pub fn tick(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.scheduled.first() {
            if at > now {
                break;
            }
            self.scheduled.pop_first();
            if let Some(e) = self.entries.get_mut(&id) {
                e.state = State::Ready;
                self.ready.insert(id);
            }
        }
        while let Some(&(until, id)) = self.leases.first() {
            if until > now {
                break;
            }
            self.leases.pop_first();
            self.counters.expired += 1;
            if let Some(e) = self.entries.get(&id)
                && let State::Leased { consumer, .. } = e.state
            {
                self.free_slot(consumer, id);
                self.release(id, Arc::from("lease expired"), now);
            }
        }
        self.prune_dedup(now);
        self.dispatch(now);
    }

    /// Move dead letters back into the queue with their attempts reset:
    /// the given ids, or (with `None`) the oldest `limit`. Returns how many
    /// moved.
    pub fn redrive(&mut self, ids: Option<&[MessageId]>, limit: usize, now: Instant) -> usize {
        let chosen: Vec<MessageId> = match ids {
            Some(ids) => ids
                .iter()
                .copied()
                .filter(|id| self.dead.contains_key(id))
                .take(limit)
                .collect(),
            None => self.dead.keys().copied().take(limit).collect(),
        };
        let mut moved = 0;
        for id in chosen {
            let Some(d) = self.dead.remove(&id) else {
                continue;
            };
            self.entries.insert(
                id,
                Entry {
                    body: d.body,
                    attempts: 0,
                    not_before: now,
                    state: State::Held,
                    last_failure: None,
                },
            );
            self.actions.push_back(Action::Persist(Event::Redriven(id)));
            self.admit(id, now);
            moved += 1;
        }
        self.dispatch(now);
        moved
    }

    /// Up to `limit` dead letters, oldest first.
    pub fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        self.dead
            .iter()
            .take(limit)
            .map(|(&id, d)| DeadLetter {
                id,
                body: Arc::clone(&d.body),
                attempts: d.attempts,
                reason: Arc::clone(&d.reason),
            })
            .collect()
    }

    /// The queue's counters as of `now`.
    pub fn metrics(&self, now: Instant) -> QueueMetrics {
        let in_flight = self.leases.len() as u64;
        QueueMetrics {
            depth: self.entries.len() as u64 - in_flight,
            ready: self.ready.len() as u64,
            in_flight,
            oldest_age: self
                .entries
                .values()
                .next()
                .map(|e| now.saturating_duration_since(e.body.enqueued_at)),
            dead_letters: self.dead.len() as u64,
            redeliveries: self.counters.redeliveries,
            enqueued: self.counters.enqueued,
            acked: self.counters.acked,
            dead_lettered: self.counters.dead_lettered,
            expired_leases: self.counters.expired,
            consumers: self.consumers.len() as u64,
        }
    }

    /// Where message `id` is; `None` once acked (or if unknown).
    pub fn state_of(&self, id: MessageId) -> Option<MessageState> {
        if self.dead.contains_key(&id) {
            return Some(MessageState::Dead);
        }
        let e = self.entries.get(&id)?;
        Some(match e.state {
            State::Held => MessageState::Held,
            State::Scheduled => MessageState::Scheduled(e.not_before),
            State::Ready => MessageState::Ready,
            State::Leased {
                consumer,
                lease,
                until,
            } => MessageState::Leased {
                consumer,
                lease,
                until,
            },
        })
    }

    /// Deliveries so far of a message that is still held.
    pub fn attempts(&self, id: MessageId) -> Option<u32> {
        self.entries
            .get(&id)
            .map(|e| e.attempts)
            .or_else(|| self.dead.get(&id).map(|d| d.attempts))
    }

    // ------------------------------------------------------------ internals

    fn insert_entry(&mut self, id: MessageId, body: Arc<Body>, attempts: u32, nb: Instant) {
        self.live_bytes += body.size();
        self.entries.insert(
            id,
            Entry {
                body,
                attempts,
                not_before: nb,
                state: State::Held,
                last_failure: None,
            },
        );
    }

    fn remember_dedup(&mut self, key: Arc<str>, id: MessageId, expires: Instant) {
        if let Some((_, old)) = self.dedup.insert(Arc::clone(&key), (id, expires)) {
            self.dedup_expiry.remove(&(old, Arc::clone(&key)));
        }
        self.dedup_expiry.insert((expires, key));
    }

    fn prune_dedup(&mut self, now: Instant) {
        while let Some((at, _)) = self.dedup_expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.dedup_expiry.pop_first() {
                self.dedup.remove(&key);
            }
        }
    }

    /// A held entry joins the flow: at once, or behind its group's head.
    fn admit(&mut self, id: MessageId, now: Instant) {
        let group = self.entries.get(&id).and_then(|e| e.body.group.clone());
        match group {
            None => self.activate(id, now),
            Some(g) => {
                let grp = self.groups.entry(g).or_default();
                grp.pending.insert(id);
                if grp.active.is_none() {
                    grp.active = Some(id);
                    self.activate(id, now);
                }
            }
        }
    }

    /// Put an entry (not in any index) into `ready` or `scheduled`.
    fn activate(&mut self, id: MessageId, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.not_before <= now {
            e.state = State::Ready;
            self.ready.insert(id);
        } else {
            e.state = State::Scheduled;
            self.scheduled.insert((e.not_before, id));
        }
    }

    fn leased_entry(&mut self, id: MessageId, lease: LeaseId) -> Result<&mut Entry, AckError> {
        let Some(e) = self.entries.get_mut(&id) else {
            return Err(AckError::UnknownMessage(id));
        };
        match e.state {
            State::Leased { lease: l, .. } if l == lease => Ok(e),
            _ => Err(AckError::LeaseEnded(id)),
        }
    }

    /// Check the lease and take the message out of it (state becomes Held).
    fn end_lease(&mut self, id: MessageId, lease: LeaseId) -> Result<(), AckError> {
        let e = self.leased_entry(id, lease)?;
        let State::Leased {
            consumer, until, ..
        } = e.state
        else {
            return Err(AckError::LeaseEnded(id));
        };
        e.state = State::Held;
        self.leases.remove(&(until, id));
        self.free_slot(consumer, id);
        if let Some(c) = self.consumers.get_mut(&consumer)
            && c.paused
        {
            c.paused = false;
            if c.leased.len() < c.prefetch as usize {
                self.available.insert(consumer);
            }
        }
        Ok(())
    }

    fn free_slot(&mut self, consumer: ConsumerId, id: MessageId) {
        if let Some(c) = self.consumers.get_mut(&consumer) {
            c.leased.remove(&id);
            if !c.paused && c.leased.len() < c.prefetch as usize {
                self.available.insert(consumer);
            }
        }
    }

    /// A lease ended without ack (expiry, consumer gone): ready again, or
    /// dead if that was the last attempt. The entry is in no index.
    fn release(&mut self, id: MessageId, reason: Arc<str>, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.attempts >= self.config.max_attempts {
            self.dead_letter(id, reason, now);
            return;
        }
        e.not_before = now;
        e.last_failure = Some(reason);
        self.activate(id, now);
    }

    /// Remove an entry that is in no index, letting its group move on.
    fn remove_entry(&mut self, id: MessageId, now: Instant) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        self.live_bytes = self.live_bytes.saturating_sub(e.body.size());
        if let Some(g) = &e.body.group {
            self.leave_group(id, g, now);
        }
        Some(e)
    }

    fn leave_group(&mut self, id: MessageId, g: &Arc<str>, now: Instant) {
        let Some(grp) = self.groups.get_mut(g) else {
            return;
        };
        grp.pending.remove(&id);
        if grp.active == Some(id) {
            grp.active = grp.pending.first().copied();
            if let Some(next) = grp.active {
                self.activate(next, now);
            }
        }
        if self.groups.get(g).is_some_and(|grp| grp.pending.is_empty()) {
            self.groups.remove(g);
        }
    }

    /// Move an entry (in no index) to the dead-letter queue.
    fn dead_letter(&mut self, id: MessageId, reason: Arc<str>, now: Instant) {
        let Some(e) = self.remove_entry(id, now) else {
            return;
        };
        self.live_bytes += e.body.size();
        self.actions.push_back(Action::Persist(Event::DeadLettered {
            id,
            reason: Arc::clone(&reason),
        }));
        self.counters.dead_lettered += 1;
        self.dead.insert(
            id,
            DeadEntry {
                body: e.body,
                attempts: e.attempts,
                reason,
            },
        );
    }

    fn next_consumer(&mut self) -> Option<ConsumerId> {
        let next = match self.last_served {
            Some(last) => self
                .available
                .range((Bound::Excluded(last), Bound::Unbounded))
                .next()
                .or_else(|| self.available.first()),
            None => self.available.first(),
        }
        .copied();
        self.last_served = next.or(self.last_served);
        next
    }

    /// Hand ready messages to consumers with spare prefetch.
    fn dispatch(&mut self, now: Instant) {
        while !self.ready.is_empty() && !self.available.is_empty() {
            let Some(id) = self.ready.pop_first() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.attempts >= self.config.max_attempts {
                // Used up before a restart (or a redrive of a config change).
                let last = e.last_failure.clone();
                e.state = State::Held;
                let reason = match last {
                    Some(r) => format!("max attempts reached; last: {r}"),
                    None => "max attempts reached (interrupted by a restart)".to_owned(),
                };
                self.dead_letter(id, Arc::from(reason), now);
                continue;
            }
            let Some(consumer) = self.next_consumer() else {
                self.ready.insert(id);
                break;
            };
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            e.attempts += 1;
            if e.attempts > 1 {
                self.counters.redeliveries += 1;
            }
            let lease = LeaseId(self.next_lease);
            self.next_lease += 1;
            let until = crate::clock::after(now, self.config.lease);
            e.state = State::Leased {
                consumer,
                lease,
                until,
            };
            let grant = Grant {
                consumer,
                id,
                lease,
                attempt: e.attempts,
                lease_until: until,
                body: Arc::clone(&e.body),
            };
            self.leases.insert((until, id));
            if let Some(c) = self.consumers.get_mut(&consumer) {
                c.leased.insert(id);
                if c.leased.len() >= c.prefetch as usize {
                    self.available.remove(&consumer);
                }
            }
            self.actions
                .push_back(Action::Persist(Event::Delivered(id)));
            self.actions.push_back(Action::Deliver(grant));
        }
    }
}

mod replay;

#[cfg(test)]
mod tests;
