//! [`QueueActor`]: the tokio glue around [`QueueCore`]. It feeds messages
//! and timer ticks to the core, performs the core's actions (deliveries
//! via `try_tell`, events into the event log) and answers producers and
//! consumers once their writes are durable.
//!
//! Group commit: after each handled message the actor flushes the events
//! staged so far to the [`FileLog`] without waiting (only when its mailbox
//! is empty, or a lot is staged), and a committer task awaits the log's
//! acknowledgements in order and resolves the waiting replies. The log's
//! writer thread turns everything queued during one `fdatasync` into the
//! next single write + sync, so many acks share one sync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::codec::TimeMap;
use super::core::{Action, Enqueued, Grant, MessageState, QueueCore};
use super::error::{AckError, EnqueueError};
use super::handle::Delivery;
use super::store::{self, EventWriter};
use super::types::{ConsumerId, DeadLetter, LeaseId, MessageId, Nack, NewMessage, QueueMetrics};
use crate::storage::{FileLog, PendingAck, TryAppendError};
use crate::{Actor, ActorId, ActorRef, Context, Handler, Message, Recipient, Terminated, TimerId};

/// Flush at once when this many bytes are staged, even if more messages wait.
const FLUSH_BYTES: usize = 1 << 20;
/// A consumer whose mailbox was full is offered deliveries again after this.
const RESUME_AFTER: Duration = Duration::from_millis(5);

/// A reply that waits for durability.
pub(crate) enum Waiter {
    Enqueue {
        tx: oneshot::Sender<Result<Vec<Enqueued>, EnqueueError>>,
        result: Vec<Enqueued>,
    },
    Done(oneshot::Sender<Result<(), AckError>>),
}

impl Waiter {
    fn resolve(self, res: &Result<(), String>) {
        match self {
            Self::Enqueue { tx, result } => {
                let _ = tx.send(match res {
                    Ok(()) => Ok(result),
                    Err(e) => Err(EnqueueError::Storage(e.clone())),
                });
            }
            Self::Done(tx) => {
                let _ = tx.send(res.clone().map_err(AckError::Storage));
            }
        }
    }
}

struct Commit {
    ack: Option<PendingAck>,
    waiters: Vec<Waiter>,
}

/// Awaits log acknowledgements in order and answers the waiting replies.
async fn committer(mut rx: mpsc::UnboundedReceiver<Commit>, queue: ActorRef<QueueActor>) {
    let mut failed: Option<String> = None;
    while let Some(c) = rx.recv().await {
        let res = match (&failed, c.ack) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(p)) => p.await.map(|_| ()).map_err(|e| e.to_string()),
            (None, None) => Ok(()),
        };
        if let Err(e) = &res
            && failed.is_none()
        {
            failed = Some(e.clone());
            let _ = queue.tell(StorageFailed(e.clone())).await;
        }
        for w in c.waiters {
            w.resolve(&res);
        }
    }
}

struct Sink {
    recipient: Recipient<Delivery>,
    actor: Option<ActorId>,
}

/// The actor that serves one durable queue. Use it through a
/// [`Queue`](super::Queue) handle; its messages are internal.
pub struct QueueActor {
    name: Arc<str>,
    dir: PathBuf,
    core: QueueCore,
    /// `None` once stopped: released in `stopped`, before watchers hear of
    /// the death, so the queue can be reopened at once.
    log: Option<FileLog>,
    generation: u64,
    log_bytes: u64,
    /// Size of the last snapshot: what compaction cannot shrink below
    /// (it also holds deduplication ids), so it waits for 4× that.
    floor: u64,
    writer: EventWriter,
    waiters: Vec<Waiter>,
    commits: mpsc::UnboundedSender<Commit>,
    commits_rx: Option<mpsc::UnboundedReceiver<Commit>>,
    consumers: BTreeMap<ConsumerId, Sink>,
    by_actor: BTreeMap<ActorId, Vec<ConsumerId>>,
    timer: Option<(TimerId, Instant)>,
    failed: Option<String>,
}

impl std::fmt::Debug for QueueActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueActor")
            .field("name", &self.name)
            .field("generation", &self.generation)
            .field("consumers", &self.consumers.len())
            .finish_non_exhaustive()
    }
}

impl QueueActor {
    pub(crate) fn new(name: Arc<str>, dir: PathBuf, opened: store::Opened) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            name,
            dir,
            core: opened.core,
            log: Some(opened.log),
            generation: opened.generation,
            log_bytes: opened.log_bytes,
            floor: 0,
            writer: EventWriter::default(),
            waiters: Vec::new(),
            commits: tx,
            commits_rx: Some(rx),
            consumers: BTreeMap::new(),
            by_actor: BTreeMap::new(),
            timer: None,
            failed: None,
        }
    }

    fn time_map(cx: &Context<Self>) -> TimeMap {
        store::time_map(cx.now(), cx.node().clock().wall())
    }

    /// Perform the core's actions, flush if the mailbox is idle, re-arm the
    /// timer, compact if due. Every handler ends here.
    async fn after(&mut self, cx: &mut Context<Self>) {
        self.perform(cx);
        if self.writer.pending_bytes() >= FLUSH_BYTES || cx.myself().mailbox_len() == 0 {
            self.flush(cx).await;
        }
        self.arm_timer(cx);
        let cfg = self.core.config();
        if self.failed.is_none()
            && self.log_bytes >= cfg.compact_min_bytes
            && self.log_bytes > self.core.live_bytes().max(self.floor).saturating_mul(4)
        {
            self.compact(cx).await;
        }
    }

    fn perform(&mut self, cx: &mut Context<Self>) {
        // Read the clock only if something is persisted.
        let mut map: Option<TimeMap> = None;
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Persist(e) => {
                    let m = *map.get_or_insert_with(|| Self::time_map(cx));
                    if let Err(e) = self.writer.push(&e, &m, m.wall_ms) {
                        self.fail(cx, format!("cannot encode a queue event: {e}"));
                    }
                }
                Action::Deliver(grant) => self.deliver(grant, cx),
            }
        }
    }

    fn deliver(&mut self, g: Grant, cx: &mut Context<Self>) {
        let now = cx.now();
        let Some(sink) = self.consumers.get(&g.consumer) else {
            self.core.unsubscribe(g.consumer, "consumer unknown", now);
            return;
        };
        let (consumer, id, lease) = (g.consumer, g.id, g.lease);
        let delivery = Delivery::new(cx.myself().clone(), Arc::clone(&self.name), g);
        match sink.recipient.try_tell(delivery) {
            Ok(()) => {}
            Err(e) if e.is_full() => {
                let was_paused = self.core.is_paused(consumer);
                self.core.refused(consumer, id, lease, now);
                if !was_paused {
                    cx.run_later(RESUME_AFTER, Resume(consumer));
                }
            }
            Err(_) => self.remove_consumer(consumer, "consumer stopped", now),
        }
    }

    fn remove_consumer(&mut self, consumer: ConsumerId, reason: &str, now: Instant) {
        if let Some(sink) = self.consumers.remove(&consumer)
            && let Some(actor) = sink.actor
            && let Some(list) = self.by_actor.get_mut(&actor)
        {
            list.retain(|c| *c != consumer);
            if list.is_empty() {
                self.by_actor.remove(&actor);
            }
        }
        self.core.unsubscribe(consumer, reason, now);
    }

    fn fail(&mut self, cx: &mut Context<Self>, error: String) {
        if self.failed.is_none() {
            tracing::error!(queue = %self.name, %error, "queue storage failed; stopping the queue");
            self.failed = Some(error);
            cx.stop();
        }
    }

    /// Hand staged events to the log and their waiters to the committer.
    async fn flush(&mut self, cx: &mut Context<Self>) {
        let ts = Self::time_map(cx).wall_ms;
        let batch = match self.writer.take(ts) {
            Ok(b) => b,
            Err(e) => {
                self.fail(cx, format!("cannot encode queue events: {e}"));
                crate::storage::Batch::new()
            }
        };
        let waiters = std::mem::take(&mut self.waiters);
        if let Some(e) = &self.failed {
            let res = Err(e.clone());
            for w in waiters {
                w.resolve(&res);
            }
            return;
        }
        if batch.is_empty() && waiters.is_empty() {
            return;
        }
        let ack = if batch.is_empty() {
            None
        } else {
            self.log_bytes += batch.encoded_len() as u64;
            let queued = match self.log.as_ref().map(|log| log.try_append(batch)) {
                Some(Ok(p)) => Ok(p),
                Some(Err(TryAppendError::Full(b))) => match &self.log {
                    Some(log) => log.enqueue(b).await.map_err(|e| e.to_string()),
                    None => Err("the event log is closed".to_owned()),
                },
                _ => Err("the event log is closed".to_owned()),
            };
            match queued {
                Ok(p) => Some(p),
                Err(e) => {
                    self.fail(cx, e.clone());
                    let res = Err(e);
                    for w in waiters {
                        w.resolve(&res);
                    }
                    return;
                }
            }
        };
        let _ = self.commits.send(Commit { ack, waiters });
    }

    /// Flush and wait until everything so far is durable.
    async fn sync(&mut self, cx: &mut Context<Self>) -> Result<(), AckError> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(Waiter::Done(tx));
        self.flush(cx).await;
        rx.await.unwrap_or(Err(AckError::Closed))
    }

    fn arm_timer(&mut self, cx: &mut Context<Self>) {
        let Some(next) = self.core.next_deadline() else {
            return;
        };
        if let Some((id, at)) = self.timer {
            if at <= next {
                return;
            }
            cx.cancel_timer(id);
        }
        let delay = next.saturating_duration_since(cx.now());
        let id = cx.run_later(delay, Tick);
        self.timer = Some((id, next));
    }

    /// Rewrite the live state into a new generation and drop the old one.
    async fn compact(&mut self, cx: &mut Context<Self>) {
        if self.sync(cx).await.is_err() {
            return;
        }
        let map = Self::time_map(cx);
        let snapshot = self.core.snapshot();
        let next = self.generation + 1;
        let cfg = self.core.config().clone();
        match store::write_generation(&self.dir, next, &snapshot, &cfg, &map, map.wall_ms).await {
            Ok((log, bytes)) => {
                let old = self.log.replace(log);
                drop(old);
                let old_gen = std::mem::replace(&mut self.generation, next);
                self.log_bytes = bytes;
                self.floor = bytes;
                if let Err(e) = store::remove_generation(&self.dir, old_gen) {
                    tracing::warn!(queue = %self.name, error = %e, "cannot remove an old queue generation");
                }
                tracing::debug!(queue = %self.name, generation = next, bytes, "queue compacted");
            }
            Err(e) => {
                // The old generation stays authoritative; try again later.
                tracing::warn!(queue = %self.name, error = %e, "queue compaction failed");
                self.log_bytes = self.log_bytes.max(1) * 2;
            }
        }
    }
}

impl Actor for QueueActor {
    async fn started(&mut self, cx: &mut Context<Self>) {
        if let Some(rx) = self.commits_rx.take() {
            tokio::spawn(committer(rx, cx.myself().clone()));
        }
        // Messages that were leased when the queue last closed are ready.
        self.after(cx).await;
    }

    async fn stopping(&mut self, cx: &mut Context<Self>) {
        if self.failed.is_none() {
            let _ = self.sync(cx).await;
        }
    }

    async fn stopped(&mut self, _: &crate::StopReason) {
        // Joins the log's writer thread after it acknowledged everything.
        self.log = None;
    }
}

// ------------------------------------------------------------- messages

pub(crate) struct EnqueueMsg {
    pub messages: Vec<NewMessage>,
    pub reply: Option<oneshot::Sender<Result<Vec<Enqueued>, EnqueueError>>>,
}
impl Message for EnqueueMsg {
    type Reply = ();
}

impl Handler<EnqueueMsg> for QueueActor {
    async fn handle(&mut self, m: EnqueueMsg, cx: &mut Context<Self>) {
        let now = cx.now();
        let checked = m.messages.iter().try_for_each(|msg| self.core.check(msg));
        let res = match checked {
            Err(e) => Err(e),
            Ok(()) => m
                .messages
                .into_iter()
                .map(|msg| self.core.enqueue(msg, now))
                .collect::<Result<Vec<_>, _>>(),
        };
        match (res, m.reply) {
            (Ok(result), Some(tx)) => self.waiters.push(Waiter::Enqueue { tx, result }),
            (Err(e), Some(tx)) => {
                let _ = tx.send(Err(e));
            }
            _ => {}
        }
        self.after(cx).await;
    }
}

pub(crate) struct AckMsg {
    pub id: MessageId,
    pub lease: LeaseId,
    pub reply: Option<oneshot::Sender<Result<(), AckError>>>,
}
impl Message for AckMsg {
    type Reply = ();
}

impl Handler<AckMsg> for QueueActor {
    async fn handle(&mut self, m: AckMsg, cx: &mut Context<Self>) {
        let res = self.core.ack(m.id, m.lease, cx.now());
        match (res, m.reply) {
            (Ok(()), Some(tx)) => self.waiters.push(Waiter::Done(tx)),
            (Err(e), Some(tx)) => {
                let _ = tx.send(Err(e));
            }
            (Err(e), None) => tracing::debug!(queue = %self.name, error = %e, "ack refused"),
            (Ok(()), None) => {}
        }
        self.after(cx).await;
    }
}

pub(crate) struct NackMsg {
    pub id: MessageId,
    pub lease: LeaseId,
    pub nack: Nack,
    pub reply: Option<oneshot::Sender<Result<(), AckError>>>,
}
impl Message for NackMsg {
    type Reply = ();
}

impl Handler<NackMsg> for QueueActor {
    async fn handle(&mut self, m: NackMsg, cx: &mut Context<Self>) {
        let res = self.core.nack(m.id, m.lease, m.nack, cx.now());
        if let Some(tx) = m.reply {
            let _ = tx.send(res);
        }
        self.after(cx).await;
    }
}

pub(crate) struct ExtendMsg {
    pub id: MessageId,
    pub lease: LeaseId,
    pub by: Duration,
}
impl Message for ExtendMsg {
    type Reply = Result<Instant, AckError>;
}

impl Handler<ExtendMsg> for QueueActor {
    async fn handle(&mut self, m: ExtendMsg, cx: &mut Context<Self>) -> Result<Instant, AckError> {
        let res = self.core.extend(m.id, m.lease, m.by, cx.now());
        self.after(cx).await;
        res
    }
}

/// Registers the queue's death watch on a consumer actor.
pub(crate) type WatchFn = Box<dyn FnOnce(&mut Context<QueueActor>) -> ActorId + Send>;

pub(crate) struct SubscribeMsg {
    pub consumer: Recipient<Delivery>,
    pub prefetch: u32,
    pub watch: Option<WatchFn>,
}
impl Message for SubscribeMsg {
    type Reply = ConsumerId;
}

impl Handler<SubscribeMsg> for QueueActor {
    async fn handle(&mut self, m: SubscribeMsg, cx: &mut Context<Self>) -> ConsumerId {
        let actor = m.watch.map(|w| w(cx));
        // Register the sink before the core can deliver to it.
        let id = self.core.next_consumer_id();
        self.consumers.insert(
            id,
            Sink {
                recipient: m.consumer,
                actor,
            },
        );
        if let Some(a) = actor {
            self.by_actor.entry(a).or_default().push(id);
        }
        let got = self.core.subscribe(m.prefetch, cx.now());
        debug_assert_eq!(got, id);
        self.after(cx).await;
        id
    }
}

pub(crate) struct UnsubscribeMsg(pub ConsumerId);
impl Message for UnsubscribeMsg {
    type Reply = bool;
}

impl Handler<UnsubscribeMsg> for QueueActor {
    async fn handle(&mut self, m: UnsubscribeMsg, cx: &mut Context<Self>) -> bool {
        let known = self.consumers.contains_key(&m.0);
        self.remove_consumer(m.0, "consumer unsubscribed", cx.now());
        self.after(cx).await;
        known
    }
}

impl Handler<Terminated> for QueueActor {
    async fn handle(&mut self, t: Terminated, cx: &mut Context<Self>) {
        let now = cx.now();
        let reason = format!("consumer died: {}", t.reason);
        for c in self.by_actor.remove(&t.id).unwrap_or_default() {
            self.consumers.remove(&c);
            self.core.unsubscribe(c, &reason, now);
        }
        self.after(cx).await;
    }
}

pub(crate) struct MetricsMsg;
impl Message for MetricsMsg {
    type Reply = QueueMetrics;
}

impl Handler<MetricsMsg> for QueueActor {
    async fn handle(&mut self, _: MetricsMsg, cx: &mut Context<Self>) -> QueueMetrics {
        self.core.metrics(cx.now())
    }
}

pub(crate) struct StateMsg(pub MessageId);
impl Message for StateMsg {
    type Reply = Option<MessageState>;
}

impl Handler<StateMsg> for QueueActor {
    async fn handle(&mut self, m: StateMsg, _: &mut Context<Self>) -> Option<MessageState> {
        self.core.state_of(m.0)
    }
}

pub(crate) struct DeadLettersMsg(pub usize);
impl Message for DeadLettersMsg {
    type Reply = Vec<DeadLetter>;
}

impl Handler<DeadLettersMsg> for QueueActor {
    async fn handle(&mut self, m: DeadLettersMsg, _: &mut Context<Self>) -> Vec<DeadLetter> {
        self.core.dead_letters(m.0)
    }
}

pub(crate) struct RedriveMsg {
    pub ids: Option<Vec<MessageId>>,
    pub limit: usize,
}
impl Message for RedriveMsg {
    type Reply = usize;
}

impl Handler<RedriveMsg> for QueueActor {
    async fn handle(&mut self, m: RedriveMsg, cx: &mut Context<Self>) -> usize {
        let n = self.core.redrive(m.ids.as_deref(), m.limit, cx.now());
        self.after(cx).await;
        n
    }
}

pub(crate) struct FlushMsg(pub oneshot::Sender<Result<(), AckError>>);
impl Message for FlushMsg {
    type Reply = ();
}

impl Handler<FlushMsg> for QueueActor {
    async fn handle(&mut self, m: FlushMsg, cx: &mut Context<Self>) {
        self.waiters.push(Waiter::Done(m.0));
        self.flush(cx).await;
        self.after(cx).await;
    }
}

struct Tick;
impl Message for Tick {
    type Reply = ();
}

impl Handler<Tick> for QueueActor {
    async fn handle(&mut self, _: Tick, cx: &mut Context<Self>) {
        self.timer = None;
        self.core.tick(cx.now());
        self.after(cx).await;
    }
}

struct Resume(ConsumerId);
impl Message for Resume {
    type Reply = ();
}

impl Handler<Resume> for QueueActor {
    async fn handle(&mut self, m: Resume, cx: &mut Context<Self>) {
        self.core.resume(m.0, cx.now());
        self.after(cx).await;
    }
}

struct StorageFailed(String);
impl Message for StorageFailed {
    type Reply = ();
}

impl Handler<StorageFailed> for QueueActor {
    async fn handle(&mut self, m: StorageFailed, cx: &mut Context<Self>) {
        self.fail(cx, m.0);
    }
}
