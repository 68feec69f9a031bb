//! [`FileLog`]: a [`SegmentLog`] driven by a writer thread that commits
//! appends in groups (one write and one `fdatasync` for everything queued).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::compaction::CompactionReport;
use super::config::{LogConfig, OpenOptions, ReadLimits};
use super::error::{
    AppendError, CompactionError, OpenError, ReadError, RetentionError, TryAppendError,
};
use super::log::{AppendAck, LogReader, RetentionReport, SegmentLog};
use super::read_batch::ReadBatch;
use super::reader::OffsetBounds;
use super::record::Batch;

type AckSender = oneshot::Sender<Result<AppendAck, AppendError>>;

enum Command {
    Append {
        batch: Batch,
        reply: AckSender,
    },
    Retain {
        now_millis: u64,
        reply: oneshot::Sender<Result<RetentionReport, RetentionError>>,
    },
    Compact {
        tombstone_cutoff: u64,
        reply: oneshot::Sender<Result<CompactionReport, CompactionError>>,
    },
    Close,
}

/// A durable, group-committed log of one partition, backed by segment
/// files. Cheap to clone; all clones share one writer thread, which exits
/// when the last clone is dropped (after acknowledging what was queued).
///
/// Appends from any number of producers queue up while the writer is
/// writing or syncing, and then go to disk together in one write and one
/// `fdatasync`. Reads run on the caller's thread, concurrently with
/// appends, and see acknowledged records only.
#[derive(Debug, Clone)]
pub struct FileLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: flume::Sender<Command>,
    reader: LogReader,
    /// The high-water mark, updated by the writer after each commit.
    commits: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer acknowledges everything queued before `Close`.
        let _ = self.tx.send(Command::Close);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Append { batch, .. } => write!(f, "Append({} records)", batch.len()),
            Self::Retain { now_millis, .. } => write!(f, "Retain({now_millis})"),
            Self::Compact { .. } => f.write_str("Compact"),
            Self::Close => f.write_str("Close"),
        }
    }
}

impl FileLog {
    /// Open (or create) the log in `dir` and start its writer thread.
    ///
    /// # Errors
    /// As [`SegmentLog::open`]; [`OpenError::Io`] if the thread cannot start.
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        options: OpenOptions,
    ) -> Result<Self, OpenError> {
        let log = SegmentLog::open(dir.as_ref(), config, options)?;
        let reader = log.reader();
        let (tx, rx) = flume::bounded(log.config().queue_capacity);
        let (hwm_tx, commits) = watch::channel(log.bounds().next);
        let thread = thread::Builder::new()
            .name("plexus-log-writer".into())
            .spawn(move || run(log, &rx, &hwm_tx))
            .map_err(|source| OpenError::Io {
                path: dir.as_ref().to_path_buf(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                reader,
                commits,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Append `batch`; resolves once it is durable per the log's
    /// [`Durability`](super::Durability), with its offsets.
    ///
    /// # Errors
    /// See [`AppendError`].
    ///
    /// # Cancel safety
    /// Dropping the future before it resolves may or may not append the
    /// batch; either way it was not acknowledged.
    pub async fn append(&self, batch: Batch) -> Result<AppendAck, AppendError> {
        self.enqueue(batch).await?.await
    }

    /// Queue `batch`, waiting only for room in the queue, and return the
    /// pending acknowledgement. Lets one task keep many appends in flight.
    ///
    /// # Errors
    /// [`AppendError::Closed`] if the writer has stopped.
    ///
    /// # Cancel safety
    /// If dropped while waiting for room, the batch is not appended.
    pub async fn enqueue(&self, batch: Batch) -> Result<PendingAck, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send_async(Command::Append { batch, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        Ok(PendingAck { rx })
    }

    /// Queue `batch` without waiting.
    ///
    /// # Errors
    /// [`TryAppendError::Full`] or [`TryAppendError::Closed`], handing the
    /// batch back.
    pub fn try_append(&self, batch: Batch) -> Result<PendingAck, TryAppendError> {
        let (reply, rx) = oneshot::channel();
        match self.inner.tx.try_send(Command::Append { batch, reply }) {
            Ok(()) => Ok(PendingAck { rx }),
            Err(flume::TrySendError::Full(Command::Append { batch, .. })) => {
                Err(TryAppendError::Full(batch))
            }
            Err(flume::TrySendError::Disconnected(Command::Append { batch, .. })) => {
                Err(TryAppendError::Closed(batch))
            }
            Err(_) => Err(TryAppendError::Closed(Batch::new())),
        }
    }

    /// Queue `batch`, blocking the thread while the queue is full. For
    /// producer threads outside an async runtime; do not call it from async
    /// code (use [`enqueue`](Self::enqueue)).
    ///
    /// # Errors
    /// [`AppendError::Closed`] if the writer has stopped.
    pub fn append_blocking(&self, batch: Batch) -> Result<PendingAck, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Append { batch, reply })
            .map_err(|_| AppendError::Closed)?;
        Ok(PendingAck { rx })
    }

    /// See [`LogReader::read`].
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<ReadBatch, ReadError> {
        self.inner.reader.read(from, limits)
    }

    /// See [`LogReader::offset_for_timestamp`].
    ///
    /// # Errors
    /// As [`LogReader::read`].
    pub fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, ReadError> {
        self.inner.reader.offset_for_timestamp(ts)
    }

    /// Earliest stored and next offsets.
    pub fn bounds(&self) -> OffsetBounds {
        self.inner.reader.bounds()
    }

    /// A receiver of the high-water mark (the next offset), updated after
    /// every commit. Lets a reader wait for new records instead of polling;
    /// `changed()` fails once the writer has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::storage::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let log = FileLog::open(tmp.path(), LogConfig::default(), OpenOptions::default())?;
    /// let mut commits = log.watch_commits();
    /// let mut batch = Batch::new();
    /// batch.push(1, None, b"x")?;
    /// log.append(batch).await?;
    /// commits.changed().await?;
    /// assert_eq!(*commits.borrow(), 1);
    /// # Ok(()) }
    /// ```
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.inner.commits.clone()
    }

    /// A read-only handle that does not keep the writer alive.
    pub fn reader(&self) -> LogReader {
        self.inner.reader.clone()
    }

    /// Apply retention (see [`SegmentLog::enforce_retention`]) on the writer
    /// thread, after the appends queued before it.
    ///
    /// # Errors
    /// See [`RetentionError`].
    pub async fn enforce_retention(
        &self,
        now_millis: u64,
    ) -> Result<RetentionReport, RetentionError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send_async(Command::Retain { now_millis, reply })
            .await
            .map_err(|_| RetentionError::Closed)?;
        rx.await.map_err(|_| RetentionError::Closed)?
    }
}

impl FileLog {
    /// Compact the sealed segments (see [`SegmentLog::compact`]) on the
    /// writer thread, after the appends queued before it. Appends wait
    /// while it runs.
    ///
    /// # Errors
    /// See [`CompactionError`].
    pub async fn compact(
        &self,
        tombstone_cutoff: u64,
    ) -> Result<CompactionReport, CompactionError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send_async(Command::Compact {
                tombstone_cutoff,
                reply,
            })
            .await
            .map_err(|_| CompactionError::Closed)?;
        rx.await.map_err(|_| CompactionError::Closed)?
    }
}

/// An append that was queued; resolves (as a future, or through
/// [`wait`](Self::wait)) to its offsets once durable.
#[derive(Debug)]
#[must_use = "an append is acknowledged only through its PendingAck"]
pub struct PendingAck {
    rx: oneshot::Receiver<Result<AppendAck, AppendError>>,
}

impl PendingAck {
    /// Block the thread until the acknowledgement arrives. Do not call from
    /// async code: await the `PendingAck` instead.
    ///
    /// # Errors
    /// See [`AppendError`].
    pub fn wait(self) -> Result<AppendAck, AppendError> {
        block_on(self)
    }
}

impl Future for PendingAck {
    type Output = Result<AppendAck, AppendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(AppendError::Closed)))
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Minimal executor for one future on the current thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// The writer thread: collect a group, stage it, commit once, acknowledge.
fn run(mut log: SegmentLog, rx: &flume::Receiver<Command>, hwm: &watch::Sender<u64>) {
    let linger = log.config().linger;
    let max_group = log.config().max_group_bytes;
    let mut pending: Vec<(Result<AppendAck, AppendError>, AckSender)> = Vec::new();
    let mut carry: Option<Command> = None;
    loop {
        let first = match carry.take() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        let deadline = (!linger.is_zero()).then(|| crate::clock::after(Instant::now(), linger));
        let mut next = Some(first);
        let mut bytes = 0usize;
        // Collect appends until the queue is empty (and linger is over),
        // the group is big enough, or another command needs ordering.
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append { batch, reply } => {
                    bytes += batch.encoded_len();
                    pending.push((log.stage(&batch), reply));
                }
                other => {
                    if pending.is_empty() {
                        if !handle_control(&mut log, other) {
                            return;
                        }
                    } else {
                        carry = Some(other);
                        break;
                    }
                }
            }
            if bytes >= max_group {
                break;
            }
            next = collect_more(rx, deadline);
        }
        commit_and_ack(&mut log, &mut pending);
        let next = log.bounds().next;
        hwm.send_if_modified(|v| {
            let moved = *v != next;
            *v = next;
            moved
        });
    }
}

fn collect_more(rx: &flume::Receiver<Command>, deadline: Option<Instant>) -> Option<Command> {
    match rx.try_recv() {
        Ok(c) => Some(c),
        Err(flume::TryRecvError::Disconnected) => None,
        Err(flume::TryRecvError::Empty) => deadline.and_then(|d| rx.recv_deadline(d).ok()),
    }
}

/// Returns false when the writer must stop.
fn handle_control(log: &mut SegmentLog, cmd: Command) -> bool {
    match cmd {
        Command::Retain { now_millis, reply } => {
            let _ = reply.send(log.enforce_retention(now_millis));
            true
        }
        Command::Compact {
            tombstone_cutoff,
            reply,
        } => {
            let _ = reply.send(log.compact(tombstone_cutoff));
            true
        }
        Command::Close => false,
        Command::Append { .. } => true,
    }
}

fn commit_and_ack(
    log: &mut SegmentLog,
    pending: &mut Vec<(Result<AppendAck, AppendError>, AckSender)>,
) {
    if pending.is_empty() {
        return;
    }
    let staged = pending.iter().any(|(r, _)| r.is_ok());
    let commit = if staged {
        log.commit().map(|_| ())
    } else {
        Ok(())
    };
    if let Err(e) = &commit {
        tracing::error!(error = %e, "log commit failed; unacknowledged appends may be lost");
    }
    for (res, reply) in pending.drain(..) {
        let out = match (res, &commit) {
            (Ok(ack), Ok(())) => Ok(ack),
            (Ok(_), Err(e)) => Err(e.clone()),
            (Err(e), _) => Err(e),
        };
        let _ = reply.send(out);
    }
}
