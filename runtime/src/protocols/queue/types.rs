//! The nouns of the queue protocol: ids, message bodies, configuration,
//! metrics and dead letters.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::storage::{Durability, Header};

/// A message's id within its queue: assigned at enqueue, increasing in
/// enqueue order, never reused (it survives restarts and compaction).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub(crate) u64);

impl MessageId {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// An id from its raw number (for ids that were stored or printed).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// One delivery of a message: the token an ack, nack or extend must carry.
/// A message delivered again gets a new lease; the old one is void, so a
/// consumer whose lease expired cannot ack a message someone else now holds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LeaseId(pub(crate) u64);

impl LeaseId {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A lease id from its raw number.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

/// A subscribed consumer, as the queue knows it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConsumerId(pub(crate) u64);

impl ConsumerId {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A consumer id from its raw number.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

/// The immutable part of a message: what the producer sent. Shared (not
/// copied) between the queue, its deliveries and its dead letters.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Headers, in the order given.
    pub headers: Vec<Header>,
    /// The FIFO group, if any.
    pub group: Option<Arc<str>>,
    /// The deduplication id, if any.
    pub dedup_id: Option<Arc<str>>,
    /// When it was enqueued, on the node's clock.
    pub enqueued_at: Instant,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print payloads (they may hold anything).
        f.debug_struct("Body")
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers.len())
            .field("group", &self.group)
            .field("dedup_id", &self.dedup_id)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// Bytes this body accounts for in storage (payload, headers, keys).
    pub(crate) fn size(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 6)
            .sum();
        (self.payload.len()
            + headers
            + self.group.as_deref().map_or(0, str::len)
            + self.dedup_id.as_deref().map_or(0, str::len)
            + 48) as u64
    }
}

/// A message to enqueue: payload plus options. Build with [`NewMessage::new`]
/// and the chained setters.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::queue::NewMessage;
/// # use std::time::Duration;
/// let msg = NewMessage::new(b"order 17".to_vec())
///     .header("content-type", b"text/plain".to_vec())
///     .dedup_id("order-17")
///     .group("customer-4")
///     .delay(Duration::from_secs(5));
/// assert_eq!(msg.payload, b"order 17");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewMessage {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Not delivered before this much time has passed.
    pub delay: Option<Duration>,
    /// A second enqueue with the same id within the queue's
    /// [`dedup_window`](QueueConfig::dedup_window) is not stored again; it
    /// returns the first message's id.
    pub dedup_id: Option<String>,
    /// Messages of one group are delivered one at a time, in enqueue order.
    pub group: Option<String>,
}

impl fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers.len())
            .field("delay", &self.delay)
            .field("dedup_id", &self.dedup_id)
            .field("group", &self.group)
            .finish()
    }
}

impl NewMessage {
    /// A message with this payload and no options.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Deliver no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Set the deduplication id.
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }

    /// Set the FIFO group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
}

/// Settings of one queue. A plain struct: start from `Default` and change
/// fields.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::queue::QueueConfig;
/// # use std::time::Duration;
/// let config = QueueConfig {
///     lease: Duration::from_secs(10),
///     max_attempts: 3,
///     ..QueueConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a delivery is leased to its consumer (the visibility
    /// timeout). Unacknowledged when it ends, the message is delivered
    /// again. Default 30 s.
    pub lease: Duration,
    /// Longest lease an [`extend`](super::Delivery::extend) may ask for.
    /// Default 12 h.
    pub max_lease: Duration,
    /// Deliveries before a message that keeps failing is moved to the
    /// dead-letter queue. Default 5; at least 1.
    pub max_attempts: u32,
    /// Delay before the first redelivery after a nack without an explicit
    /// delay; doubles with each further attempt. Default 100 ms.
    pub backoff_initial: Duration,
    /// Cap of the nack backoff. Default 30 s.
    pub backoff_max: Duration,
    /// How long a deduplication id is remembered after its enqueue.
    /// Default 5 min.
    pub dedup_window: Duration,
    /// Largest payload (plus headers) accepted. Default 1 MiB.
    pub max_message_bytes: usize,
    /// When writes are acknowledged: `Fsync` (default, survives power loss)
    /// or `OsBuffer` (survives a process crash).
    pub durability: Durability,
    /// Compact the queue's event log once it holds at least this many bytes
    /// and more than four times the live data. Default 64 MiB.
    pub compact_min_bytes: u64,
    /// Size of one segment file of the event log. Default 64 MiB.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            max_lease: Duration::from_secs(12 * 3600),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            dedup_window: Duration::from_secs(300),
            max_message_bytes: 1 << 20,
            durability: Durability::Fsync,
            compact_min_bytes: 64 << 20,
            segment_bytes: 64 << 20,
        }
    }
}

impl QueueConfig {
    /// Check the settings.
    ///
    /// # Errors
    /// A description of the first inconsistent field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1");
        }
        if self.lease.is_zero() {
            return Err("lease must be longer than zero");
        }
        if self.max_lease < self.lease {
            return Err("max_lease must be at least lease");
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > (1 << 30) - (1 << 20) {
            return Err("max_message_bytes must be between 1 byte and 1023 MiB");
        }
        if self.segment_bytes == 0 {
            return Err("segment_bytes must be greater than zero");
        }
        Ok(())
    }

    /// Backoff before attempt `attempts + 1` after a nack.
    pub(crate) fn backoff(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.backoff_initial
            .saturating_mul(1 << shift)
            .min(self.backoff_max)
    }
}

/// How a consumer gives a delivery back.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::queue::Nack;
/// # use std::time::Duration;
/// let retry_later = Nack::new("database busy").delay(Duration::from_secs(2));
/// let give_up = Nack::new("malformed order").dead_letter();
/// assert!(give_up.dead_letter && !retry_later.dead_letter);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nack {
    /// Why; kept with the message and shown if it is dead-lettered.
    pub reason: String,
    /// Redeliver after this long instead of the queue's backoff.
    pub delay: Option<Duration>,
    /// Move to the dead-letter queue now instead of retrying.
    pub dead_letter: bool,
}

impl Nack {
    /// Requeue with the queue's backoff, giving `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            ..Self::default()
        }
    }

    /// Redeliver after `delay` instead of the queue's backoff.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Do not retry: dead-letter the message now.
    pub fn dead_letter(mut self) -> Self {
        self.dead_letter = true;
        self
    }
}

/// A message in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id (kept when redriven).
    pub id: MessageId,
    /// What the producer sent.
    pub body: Arc<Body>,
    /// Deliveries it had.
    pub attempts: u32,
    /// Why it was dead-lettered (the last failure).
    pub reason: Arc<str>,
}

/// A snapshot of one queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueMetrics {
    /// Messages waiting: ready now, delayed, backing off, or held back
    /// behind their FIFO group (not leased, not dead).
    pub depth: u64,
    /// Of `depth`, those deliverable now.
    pub ready: u64,
    /// Messages leased to consumers (delivered, not yet acked).
    pub in_flight: u64,
    /// Age of the oldest message not yet acked or dead-lettered.
    pub oldest_age: Option<Duration>,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
    /// Deliveries that were not a message's first, since the queue opened.
    pub redeliveries: u64,
    /// Messages enqueued since the queue opened (duplicates excluded).
    pub enqueued: u64,
    /// Messages acked since the queue opened.
    pub acked: u64,
    /// Messages moved to the dead-letter queue since the queue opened.
    pub dead_lettered: u64,
    /// Leases that ran out since the queue opened.
    pub expired_leases: u64,
    /// Subscribed consumers.
    pub consumers: u64,
}
