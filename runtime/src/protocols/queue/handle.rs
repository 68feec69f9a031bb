//! [`Queue`], the handle producers and administrators use, and
//! [`Delivery`], what consumers receive.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::core::{Enqueued, Grant, MessageState};
use super::driver::{
    AckMsg, DeadLettersMsg, EnqueueMsg, ExtendMsg, FlushMsg, MetricsMsg, NackMsg, QueueActor,
    RedriveMsg, StateMsg, SubscribeMsg, UnsubscribeMsg,
};
use super::error::{AckError, EnqueueError, OpenError};
use super::store;
use super::types::{
    Body, ConsumerId, DeadLetter, LeaseId, MessageId, Nack, NewMessage, QueueConfig, QueueMetrics,
};
use crate::storage::Header;
use crate::{ActorRef, AskError, Handler, Message, Node, Recipient, SpawnOptions, Terminated};

/// Capacity of a queue actor's mailbox.
const MAILBOX: usize = 8192;

/// A durable work queue: a handle to the actor serving it. Cheap to clone.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use plexus_runtime::protocols::queue::{Delivery, NewMessage, Queue, QueueConfig};
/// struct Worker;
/// impl Actor for Worker {}
/// impl Handler<Delivery> for Worker {
///     async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
///         println!("working on {:?}", d.payload());
///         let _ = d.ack().await;
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let node = Node::builder().build();
/// let jobs = Queue::open(&node, tmp.path(), "jobs", QueueConfig::default()).await?;
/// jobs.enqueue(NewMessage::new(b"resize 1.png".to_vec())).await?;
/// let worker = node.spawn(Worker);
/// jobs.subscribe_actor(&worker, 16).await?;
/// # for _ in 0..1000 { if jobs.metrics().await?.acked == 1 { break } tokio::task::yield_now().await }
/// # assert_eq!(jobs.metrics().await?.acked, 1);
/// jobs.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    actor: ActorRef<QueueActor>,
    name: Arc<str>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("actor", &self.actor)
            .finish()
    }
}

impl Queue {
    /// Open (or create) the queue `name` in `data_dir/name`, replay it from
    /// disk and start its actor on `node` (registered as `queue/<name>`).
    /// Messages that were leased when the queue last closed or crashed are
    /// ready again; their deliveries so far count as attempts.
    ///
    /// # Errors
    /// [`OpenError`]: a bad name or configuration, damaged or locked files,
    /// a queue of that name already open on the node.
    pub async fn open(
        node: &Node,
        data_dir: impl AsRef<Path>,
        name: &str,
        config: QueueConfig,
    ) -> Result<Self, OpenError> {
        if !store::valid_name(name) {
            return Err(OpenError::InvalidName(name.to_owned()));
        }
        config.validate().map_err(OpenError::InvalidConfig)?;
        let dir = data_dir.as_ref().join(name);
        let map = store::time_map(node.now(), node.clock().wall());
        // Replaying a queue reads and decodes its whole log and may delete
        // directories: blocking work, kept off the runtime's workers (two
        // on a small machine) so other actors keep running meanwhile.
        let rt = tokio::runtime::Handle::current();
        let (at, cfg) = (dir.clone(), config.clone());
        let opened =
            match tokio::task::spawn_blocking(move || rt.block_on(store::open(&at, &cfg, map)))
                .await
            {
                Ok(opened) => opened?,
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(_) => {
                        return Err(OpenError::Io {
                            path: dir,
                            source: std::io::Error::other("the runtime shut down during open"),
                        });
                    }
                },
            };
        let name: Arc<str> = Arc::from(name);
        let actor = QueueActor::new(Arc::clone(&name), dir, opened);
        // Acks from every consumer converge here: a deep mailbox keeps
        // consumers from waiting on each other.
        let opts = SpawnOptions::new()
            .name(format!("queue/{name}"))
            .capacity(MAILBOX);
        let actor = node.spawn_with(opts, actor)?;
        Ok(Self { actor, name })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actor serving the queue.
    pub fn actor(&self) -> &ActorRef<QueueActor> {
        &self.actor
    }

    /// Enqueue one message; returns once it is durable (per the queue's
    /// durability), with its id.
    ///
    /// # Errors
    /// See [`EnqueueError`].
    ///
    /// # Cancel safety
    /// Dropped after the message reached the queue, the message is stored
    /// anyway; give it a deduplication id to retry safely.
    pub async fn enqueue(&self, msg: NewMessage) -> Result<Enqueued, EnqueueError> {
        let mut out = self.enqueue_batch(vec![msg]).await?;
        out.pop().ok_or(EnqueueError::Closed)
    }

    /// Enqueue several messages at once (all or none pass validation);
    /// returns once all are durable, with their ids in order.
    ///
    /// # Errors
    /// See [`EnqueueError`].
    ///
    /// # Cancel safety
    /// As [`enqueue`](Self::enqueue).
    pub async fn enqueue_batch(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let (tx, rx) = oneshot::channel();
        self.actor
            .tell(EnqueueMsg {
                messages,
                reply: Some(tx),
            })
            .await
            .map_err(|_| EnqueueError::Closed)?;
        rx.await.unwrap_or(Err(EnqueueError::Closed))
    }

    /// Push deliveries to `consumer`, at most `prefetch` unacked at a time.
    /// Deliveries that find its mailbox full are offered again shortly
    /// (their attempt is not counted); when it has stopped, its unacked
    /// messages are delivered to others. To notice an actor's death at
    /// once, use [`subscribe_actor`](Self::subscribe_actor).
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn subscribe(
        &self,
        consumer: Recipient<Delivery>,
        prefetch: u32,
    ) -> Result<ConsumerId, AskError> {
        self.actor
            .ask(SubscribeMsg {
                consumer,
                prefetch,
                watch: None,
            })
            .await
    }

    /// As [`subscribe`](Self::subscribe), and watch the actor: when it
    /// stops (or dies), its unacked messages are delivered again at once.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub async fn subscribe_actor<A: Handler<Delivery>>(
        &self,
        consumer: &ActorRef<A>,
        prefetch: u32,
    ) -> Result<ConsumerId, AskError> {
        let watched = consumer.clone();
        self.actor
            .ask(SubscribeMsg {
                consumer: consumer.recipient(),
                prefetch,
                watch: Some(Box::new(move |cx| {
                    cx.watch(&watched);
                    watched.id()
                })),
            })
            .await
    }

    /// Stop pushing to a consumer; its unacked messages are delivered
    /// again. `false` if it was not subscribed.
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn unsubscribe(&self, consumer: ConsumerId) -> Result<bool, AskError> {
        self.actor.ask(UnsubscribeMsg(consumer)).await
    }

    /// The queue's metrics now.
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn metrics(&self) -> Result<QueueMetrics, AskError> {
        self.actor.ask(MetricsMsg).await
    }

    /// Where message `id` is now (held behind its group, scheduled, ready,
    /// leased or dead); `None` once acked, or if it never existed.
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn state_of(&self, id: MessageId) -> Result<Option<MessageState>, AskError> {
        self.actor.ask(StateMsg(id)).await
    }

    /// Up to `limit` dead letters, oldest first.
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, AskError> {
        self.actor.ask(DeadLettersMsg(limit)).await
    }

    /// Move dead letters back into the queue with their attempts reset:
    /// the given ids, or (with `None`) the oldest `limit`. Returns how many
    /// moved.
    ///
    /// # Errors
    /// [`AskError`] if the queue has stopped or does not answer in time.
    pub async fn redrive(
        &self,
        ids: Option<Vec<MessageId>>,
        limit: usize,
    ) -> Result<usize, AskError> {
        self.actor.ask(RedriveMsg { ids, limit }).await
    }

    /// Wait until every change made so far is durable.
    ///
    /// # Errors
    /// [`AckError::Closed`], [`AckError::Storage`].
    pub async fn flush(&self) -> Result<(), AckError> {
        let (tx, rx) = oneshot::channel();
        self.actor
            .tell(FlushMsg(tx))
            .await
            .map_err(|_| AckError::Closed)?;
        rx.await.unwrap_or(Err(AckError::Closed))
    }

    /// Stop the queue after the messages already sent to it, make
    /// everything durable, and wait for it to end. Unacked deliveries are
    /// delivered again after the queue is reopened.
    pub async fn close(&self) -> Terminated {
        self.actor.stop();
        self.actor.terminated().await
    }
}

/// A message leased to a consumer. Ack it when done, nack it to retry
/// later (or dead-letter it), or extend the lease while working. If the
/// lease runs out first, the message is delivered again (perhaps to
/// another consumer) and this delivery's ack is refused.
pub struct Delivery {
    queue: ActorRef<QueueActor>,
    queue_name: Arc<str>,
    id: MessageId,
    lease: LeaseId,
    attempt: u32,
    lease_until: Instant,
    body: Arc<Body>,
}

impl Message for Delivery {
    type Reply = ();
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue_name)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub(crate) fn new(queue: ActorRef<QueueActor>, queue_name: Arc<str>, g: Grant) -> Self {
        Self {
            queue,
            queue_name,
            id: g.id,
            lease: g.lease,
            attempt: g.attempt,
            lease_until: g.lease_until,
            body: g.body,
        }
    }

    /// The message's id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.queue_name
    }

    /// This delivery's lease.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// 1 for the first delivery, then 2, 3, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the lease ends (node clock) unless extended.
    pub fn lease_until(&self) -> Instant {
        self.lease_until
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.body.payload
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.body.headers
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.body
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_slice())
    }

    /// The FIFO group, if any.
    pub fn group(&self) -> Option<&str> {
        self.body.group.as_deref()
    }

    /// The whole body (shared, not copied).
    pub fn body(&self) -> &Arc<Body> {
        &self.body
    }

    /// Acknowledge: the message leaves the queue. Returns once the ack is
    /// in the queue's mailbox; it becomes durable with the next group
    /// commit. A refused ack (the lease had ended) is not reported: use
    /// [`ack_durable`](Self::ack_durable) to learn the outcome.
    ///
    /// # Errors
    /// [`AckError::Closed`] if the queue has stopped.
    pub async fn ack(&self) -> Result<(), AckError> {
        self.queue
            .tell(AckMsg {
                id: self.id,
                lease: self.lease,
                reply: None,
            })
            .await
            .map_err(|_| AckError::Closed)
    }

    /// Acknowledge and wait until the ack is durable.
    ///
    /// # Errors
    /// [`AckError::LeaseEnded`] (the message will be delivered again),
    /// [`AckError::UnknownMessage`], [`AckError::Closed`],
    /// [`AckError::Storage`].
    pub async fn ack_durable(&self) -> Result<(), AckError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .tell(AckMsg {
                id: self.id,
                lease: self.lease,
                reply: Some(tx),
            })
            .await
            .map_err(|_| AckError::Closed)?;
        rx.await.unwrap_or(Err(AckError::Closed))
    }

    /// Give the message back: redelivered after the nack's delay or the
    /// queue's backoff, or dead-lettered (on request, or when this was
    /// its last attempt).
    ///
    /// # Errors
    /// [`AckError::LeaseEnded`], [`AckError::UnknownMessage`],
    /// [`AckError::Closed`].
    pub async fn nack(&self, nack: Nack) -> Result<(), AckError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .tell(NackMsg {
                id: self.id,
                lease: self.lease,
                nack,
                reply: Some(tx),
            })
            .await
            .map_err(|_| AckError::Closed)?;
        rx.await.unwrap_or(Err(AckError::Closed))
    }

    /// Extend the lease to end `by` from now (capped at the queue's
    /// `max_lease`); returns the new end.
    ///
    /// # Errors
    /// [`AckError::LeaseEnded`], [`AckError::UnknownMessage`],
    /// [`AckError::Closed`].
    pub async fn extend(&self, by: Duration) -> Result<Instant, AckError> {
        self.queue
            .ask(ExtendMsg {
                id: self.id,
                lease: self.lease,
                by,
            })
            .await
            .unwrap_or(Err(AckError::Closed))
    }
}
