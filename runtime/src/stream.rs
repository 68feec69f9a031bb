//! Streams between actors: server streaming and bidirectional streams.
//!
//! - **Server streaming**: a message whose reply is a [`ReplyStream<T>`].
//!   The handler makes a bounded channel with [`ReplyStream::channel`],
//!   hands the producing half ([`StreamSender`]) to whatever produces the
//!   items (a task, or the actor's own state for a subscription) and returns
//!   the stream. The asker gets the stream as the ask's reply and reads it
//!   with [`ReplyStream::next`] (it is also a `futures_core::Stream`).
//! - **Bidirectional**: a [`Duplex<O>`] message carries an opening request
//!   `O` and a stream of inputs; its reply is the stream of outputs. Each
//!   side reads and writes at its own pace.
//!
//! # Flow control
//!
//! Every stream is bounded: [`StreamSender::send`] waits while the
//! consumer has not taken the items already buffered (at most the channel's
//! capacity), so a slow consumer makes the producer wait and nothing grows
//! without bound. Across nodes the same holds by credit: the receiving node
//! grants the sending node more items as its consumer takes them (see
//! [`protocols::rpc`](crate::protocols::rpc)).
//!
//! # Ends
//!
//! The stream ends (`next` returns `None`) when every sender is dropped. A
//! producer that cannot finish calls [`StreamSender::abort`]: the consumer
//! reads the items sent so far, then `Err(AskError::StreamAborted)`, then
//! `None`. A sender dropped while its thread panics aborts the same way, so
//! a crashed producer is never mistaken for a finished one. A consumer that
//! drops its stream makes the producer's next `send` fail with
//! [`StreamSendError::Closed`] (and [`StreamSender::closed`] resolve), which
//! is how a producer learns to stop; across nodes, dropping the stream
//! cancels the remote call.
//!
//! # Examples
//!
//! A handler that answers with a stream of the numbers below `n`:
//!
//! ```
//! # use plexus_runtime::prelude::*;
//! use plexus_runtime::stream::ReplyStream;
//!
//! struct Counter;
//! impl Actor for Counter {}
//!
//! struct CountTo(u32);
//! impl Message for CountTo { type Reply = ReplyStream<u32>; }
//!
//! impl Handler<CountTo> for Counter {
//!     async fn handle(&mut self, CountTo(n): CountTo, _: &mut Context<Self>) -> ReplyStream<u32> {
//!         let (tx, stream) = ReplyStream::channel(4);
//!         tokio::spawn(async move {
//!             for i in 0..n {
//!                 // Waits while 4 items are unread: backpressure.
//!                 if tx.send(i).await.is_err() {
//!                     return; // the consumer went away
//!                 }
//!             }
//!         });
//!         stream
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
//! let node = Node::builder().build();
//! let counter = node.spawn(Counter);
//! let mut numbers = counter.ask(CountTo(10)).await?;
//! let mut sum = 0;
//! while let Some(n) = numbers.next().await {
//!     sum += n?;
//! }
//! assert_eq!(sum, 45);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::mpsc;

use crate::actor::Message;
use crate::error::AskError;

/// The largest channel capacity [`ReplyStream::channel`] accepts; larger
/// requests are clamped to it.
pub const MAX_CAPACITY: usize = 1 << 20;

/// Where a [`ReplyStream`] gets its items from, for streams that are not a
/// local channel (a transport implements it to feed a stream from frames
/// that arrive over a link).
pub trait StreamSource<T>: Send + 'static {
    /// The next item; `Ready(None)` at the end. After an `Err` item the
    /// [`ReplyStream`] ends without polling again.
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<T, AskError>>>;
}

/// How a local stream ended, when it did not simply finish.
#[derive(Default)]
struct EndSlot(Mutex<Option<AskError>>);

impl EndSlot {
    fn set(&self, error: AskError) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(error);
    }

    fn take(&self) -> Option<AskError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

enum Source<T> {
    Local {
        rx: mpsc::Receiver<T>,
        end: Arc<EndSlot>,
    },
    Ready(VecDeque<T>),
    Custom(Box<dyn StreamSource<T>>),
    Done,
}

/// A bounded stream of items of type `T`: the reply of a streaming ask, or
/// the input of a [`Duplex`] call. See the [module docs](self).
///
/// Dropping it tells the producer to stop (its next `send` fails); across
/// nodes it cancels the remote call.
pub struct ReplyStream<T> {
    source: Source<T>,
}

// Items are only ever moved in and out by value, never pinned in place.
impl<T> Unpin for ReplyStream<T> {}

impl<T> fmt::Debug for ReplyStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::Local { rx, .. } => format!("local, {} buffered", rx.len()),
            Source::Ready(items) => format!("ready, {} left", items.len()),
            Source::Custom(_) => "remote".to_owned(),
            Source::Done => "ended".to_owned(),
        };
        write!(f, "ReplyStream<{}>({kind})", std::any::type_name::<T>())
    }
}

impl<T: Send + 'static> ReplyStream<T> {
    /// A bounded channel: the [`StreamSender`] waits once `capacity` items
    /// are unread (`capacity` is at least 1 and at most [`MAX_CAPACITY`]).
    pub fn channel(capacity: usize) -> (StreamSender<T>, Self) {
        let (tx, rx) = mpsc::channel(capacity.clamp(1, MAX_CAPACITY));
        let end = Arc::new(EndSlot::default());
        (
            StreamSender {
                tx,
                end: Arc::clone(&end),
            },
            Self {
                source: Source::Local { rx, end },
            },
        )
    }

    /// A stream fed by `source` (used by transports).
    pub fn from_source(source: impl StreamSource<T>) -> Self {
        Self {
            source: Source::Custom(Box::new(source)),
        }
    }

    /// A stream that has already ended with `error`.
    pub fn failed(error: AskError) -> Self {
        let end = Arc::new(EndSlot::default());
        end.set(error);
        let (_, rx) = mpsc::channel(1);
        Self {
            source: Source::Local { rx, end },
        }
    }

    /// Polls for the next item; see [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<T, AskError>>> {
        let polled = match &mut self.source {
            Source::Local { rx, end } => match rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => return Poll::Ready(Some(Ok(item))),
                Poll::Ready(None) => end.take().map(Err),
                Poll::Pending => return Poll::Pending,
            },
            Source::Ready(items) => items.pop_front().map(Ok),
            Source::Custom(source) => match source.poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => return Poll::Ready(Some(Ok(item))),
                Poll::Ready(other) => other,
                Poll::Pending => return Poll::Pending,
            },
            Source::Done => None,
        };
        if !matches!(polled, Some(Ok(_))) {
            self.source = Source::Done;
        }
        Poll::Ready(polled)
    }

    /// The next item; `None` once the stream has ended. An `Err` (the
    /// producer aborted, the peer went away, the item did not decode) is
    /// the last item.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future loses no item.
    pub async fn next(&mut self) -> Option<Result<T, AskError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Reads the whole stream into a vector.
    ///
    /// # Errors
    ///
    /// The stream's error, if it ended with one (the items before it are
    /// dropped; read with [`next`](Self::next) to keep them).
    pub async fn collect_all(mut self) -> Result<Vec<T>, AskError> {
        let mut items = Vec::new();
        while let Some(item) = self.next().await {
            items.push(item?);
        }
        Ok(items)
    }
}

impl<T: Send + 'static> FromIterator<T> for ReplyStream<T> {
    /// A stream of items that are all ready now.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self {
            source: Source::Ready(iter.into_iter().collect()),
        }
    }
}

impl<T: Send + 'static> futures_core::Stream for ReplyStream<T> {
    type Item = Result<T, AskError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        Self::poll_next(self.get_mut(), cx)
    }
}

/// Why [`StreamSender::send`] or [`try_send`](StreamSender::try_send) did
/// not queue an item; the item is handed back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSendError<T> {
    /// `try_send` only: `capacity` items are unread. Use `send`, which waits.
    #[error("stream is full")]
    Full(T),
    /// The consumer dropped the stream: stop producing.
    #[error("stream consumer is gone")]
    Closed(T),
}

impl<T> StreamSendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for StreamSendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// The producing half of a local [`ReplyStream`]. Cloning gives another
/// producer of the same stream; the stream ends when all are dropped.
pub struct StreamSender<T> {
    tx: mpsc::Sender<T>,
    end: Arc<EndSlot>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            end: Arc::clone(&self.end),
        }
    }
}

impl<T> fmt::Debug for StreamSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("closed", &self.tx.is_closed())
            .field("room", &self.tx.capacity())
            .finish()
    }
}

impl<T: Send + 'static> StreamSender<T> {
    /// Queue `item`, waiting while the stream is full (backpressure).
    ///
    /// # Errors
    ///
    /// [`StreamSendError::Closed`] with the item once the consumer is gone.
    ///
    /// # Cancel safety
    ///
    /// Dropped while waiting for room, the item is dropped unsent.
    pub async fn send(&self, item: T) -> Result<(), StreamSendError<T>> {
        self.tx
            .send(item)
            .await
            .map_err(|e| StreamSendError::Closed(e.0))
    }

    /// Queue `item` if there is room now.
    ///
    /// # Errors
    ///
    /// [`StreamSendError::Full`] or [`StreamSendError::Closed`], with the item.
    pub fn try_send(&self, item: T) -> Result<(), StreamSendError<T>> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(item) => StreamSendError::Full(item),
            mpsc::error::TrySendError::Closed(item) => StreamSendError::Closed(item),
        })
    }

    /// End the stream early: the consumer reads what was sent, then
    /// `Err(AskError::StreamAborted { reason })`. Other clones of this
    /// sender can still send until they are dropped.
    pub fn abort(self, reason: impl Into<Arc<str>>) {
        self.end.set(AskError::StreamAborted {
            reason: reason.into(),
        });
    }

    /// Whether the consumer has dropped the stream.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the consumer has dropped the stream.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl<T> Drop for StreamSender<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.end.set(AskError::StreamAborted {
                reason: "the producer panicked".into(),
            });
        }
    }
}

/// The opening message of a bidirectional stream: `In` flows from the
/// caller, `Out` back to it. The message itself is [`Duplex<Self>`].
pub trait DuplexMessage: Send + 'static {
    /// What the caller streams in.
    type In: Send + 'static;
    /// What the handler streams back.
    type Out: Send + 'static;
}

/// A bidirectional stream call: the opening request and the caller's
/// stream of inputs. The reply is the stream of outputs.
///
/// # Examples
///
/// An echo that upper-cases every line it is sent:
///
/// ```
/// # use plexus_runtime::prelude::*;
/// use plexus_runtime::stream::{Duplex, DuplexMessage, ReplyStream};
///
/// struct Shout;
/// impl DuplexMessage for Shout { type In = String; type Out = String; }
///
/// struct Echo;
/// impl Actor for Echo {}
/// impl Handler<Duplex<Shout>> for Echo {
///     async fn handle(&mut self, call: Duplex<Shout>, _: &mut Context<Self>) -> ReplyStream<String> {
///         let mut input = call.input;
///         let (tx, out) = ReplyStream::channel(4);
///         tokio::spawn(async move {
///             while let Some(Ok(line)) = input.next().await {
///                 if tx.send(line.to_uppercase()).await.is_err() {
///                     return;
///                 }
///             }
///         });
///         out
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
/// let node = Node::builder().build();
/// let echo = node.spawn(Echo);
/// let (lines, input) = ReplyStream::channel(4);
/// let mut out = echo.ask(Duplex::new(Shout, input)).await?;
/// lines.send("hi".to_owned()).await.ok();
/// assert_eq!(out.next().await.transpose()?.as_deref(), Some("HI"));
/// drop(lines); // end of input: the echo ends its output
/// assert!(out.next().await.is_none());
/// # Ok(()) }
/// ```
pub struct Duplex<O: DuplexMessage> {
    /// The opening request.
    pub open: O,
    /// The caller's stream of inputs.
    pub input: ReplyStream<O::In>,
}

impl<O: DuplexMessage> Duplex<O> {
    /// A call opened with `open`, streaming `input`.
    pub fn new(open: O, input: ReplyStream<O::In>) -> Self {
        Self { open, input }
    }
}

impl<O: DuplexMessage + fmt::Debug> fmt::Debug for Duplex<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Duplex")
            .field("open", &self.open)
            .field("input", &self.input)
            .finish()
    }
}

impl<O: DuplexMessage> Message for Duplex<O> {
    type Reply = ReplyStream<O::Out>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_stream_makes_the_producer_wait_until_the_consumer_reads() {
        let (tx, mut rx) = ReplyStream::channel(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        assert!(matches!(tx.try_send(3), Err(StreamSendError::Full(3))));
        let producer = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await }
        });
        assert_eq!(rx.next().await.unwrap().unwrap(), 1);
        producer.await.unwrap().unwrap();
        drop(tx);
        assert_eq!(rx.collect_all().await.unwrap(), vec![2, 3]);
    }

    #[tokio::test]
    async fn abort_delivers_the_items_then_the_error_then_the_end() {
        let (tx, mut rx) = ReplyStream::channel(4);
        tx.send("a").await.unwrap();
        tx.abort("disk gone");
        assert_eq!(rx.next().await.unwrap().unwrap(), "a");
        let Some(Err(AskError::StreamAborted { reason })) = rx.next().await else {
            panic!("expected the abort");
        };
        assert_eq!(&*reason, "disk gone");
        assert!(rx.next().await.is_none());
        assert!(rx.next().await.is_none(), "fused");
    }

    #[tokio::test]
    async fn a_producer_that_panics_aborts_the_stream() {
        let (tx, mut rx) = ReplyStream::<u8>::channel(4);
        let joined = tokio::spawn(async move {
            tx.send(1).await.unwrap();
            panic!("producer bug");
        })
        .await;
        assert!(joined.is_err());
        assert_eq!(rx.next().await.unwrap().unwrap(), 1);
        assert!(matches!(
            rx.next().await,
            Some(Err(AskError::StreamAborted { .. }))
        ));
    }

    #[tokio::test]
    async fn dropping_the_stream_closes_the_producer() {
        let (tx, rx) = ReplyStream::channel(1);
        drop(rx);
        tx.closed().await;
        assert!(tx.is_closed());
        assert!(matches!(tx.send(5).await, Err(StreamSendError::Closed(5))));
    }

    #[tokio::test]
    async fn ready_and_failed_streams() {
        let s: ReplyStream<u8> = [1, 2, 3].into_iter().collect();
        assert_eq!(s.collect_all().await.unwrap(), vec![1, 2, 3]);
        let mut f = ReplyStream::<u8>::failed(AskError::DeadlineExceeded);
        assert!(matches!(
            f.next().await,
            Some(Err(AskError::DeadlineExceeded))
        ));
        assert!(f.next().await.is_none());
    }

    #[test]
    fn zero_capacity_is_clamped_not_a_panic() {
        let (tx, _rx) = ReplyStream::channel(0);
        tx.try_send(1u8).unwrap();
        assert!(matches!(tx.try_send(2), Err(StreamSendError::Full(2))));
    }
}
