//! Streams over a session: the receiving end ([`RemoteItems`], a
//! [`StreamSource`] fed by frames and granting credit as its consumer takes
//! items) and the sending end ([`pump`], which sends a local stream's items
//! only as far as the peer's credit allows).
//!
//! A stream belongs to one call (its correlation id) and one direction: the
//! callee's reply stream (frames marked `from_callee`) or the caller's input
//! stream of a duplex call (frames not so marked). Each direction starts
//! with [`STREAM_WINDOW`] credits; the receiver grants more in batches as
//! its consumer reads, so at most a window of items is ever buffered on
//! either node.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use plexus_codecs::{Codec, CodecKind, Envelope, Kind, WireError};
use plexus_runtime::AskError;
use plexus_runtime::protocols::rpc::RecvWindow;
use plexus_runtime::remote::LinkError;
use plexus_runtime::stream::{ReplyStream, StreamSource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};

use super::inbound::{from_wire, to_wire};
use super::session::{Session, encode};

/// Items one side of a stream may have sent beyond what the receiver's
/// consumer has read (a protocol constant both sides assume).
pub const STREAM_WINDOW: usize = 32;

/// Where the session puts a stream's frames: the sending half of a
/// [`RemoteItems`]. Bounded by the window: a peer that sends past its
/// credit breaks the protocol and its stream is failed.
pub(crate) struct Feed {
    tx: mpsc::Sender<Bytes>,
    end: Arc<Mutex<Option<AskError>>>,
}

impl Feed {
    /// One item's payload. `false` if the peer exceeded its credit (the
    /// stream is then failed; the caller drops the feed).
    pub(crate) fn item(&self, payload: Bytes) -> bool {
        match self.tx.try_send(payload) {
            Ok(()) => true,
            // The consumer dropped the stream: its drop already cancelled
            // the call, so items still in flight are simply discarded.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.fail(AskError::BadPayload {
                    reason: "peer sent stream items beyond its credit".into(),
                });
                false
            }
        }
    }

    /// End the stream with `error` once the buffered items are read (the
    /// caller then drops the feed).
    pub(crate) fn fail(&self, error: AskError) {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        end.get_or_insert(error);
    }
}

/// A stream of `T` fed by frames from the peer.
pub(crate) struct RemoteItems<T> {
    rx: mpsc::Receiver<Bytes>,
    end: Arc<Mutex<Option<AskError>>>,
    session: Arc<Session>,
    corr: u64,
    /// Whether the items come from the callee (a reply stream) or from the
    /// caller (a duplex input).
    from_callee: bool,
    codec: CodecKind,
    window: RecvWindow,
    finished: bool,
    _item: PhantomData<fn() -> T>,
}

/// A new stream for call `corr`, direction `from_callee`, and its feed.
pub(crate) fn remote_items<T>(
    session: &Arc<Session>,
    corr: u64,
    from_callee: bool,
) -> (Feed, RemoteItems<T>) {
    let (tx, rx) = mpsc::channel(STREAM_WINDOW);
    let end = Arc::new(Mutex::new(None));
    (
        Feed {
            tx,
            end: Arc::clone(&end),
        },
        RemoteItems {
            rx,
            end,
            session: Arc::clone(session),
            corr,
            from_callee,
            codec: session.agreed.decode_with,
            window: RecvWindow::new(STREAM_WINDOW as u64),
            finished: false,
            _item: PhantomData,
        },
    )
}

impl<T> RemoteItems<T> {
    /// Credit and cancel frames travel the other way: the sender of this
    /// stream's items is the callee iff `from_callee`, so our frames are
    /// marked as from the callee iff they are not.
    fn control(&self, kind: Kind) -> Envelope {
        let env = Envelope::new(kind, self.corr);
        if self.from_callee {
            env
        } else {
            env.from_callee()
        }
    }

    /// The call failed before its stream opened: nothing to cancel.
    pub(crate) fn disarm(&mut self) {
        self.finished = true;
    }

    fn end(&mut self) -> Option<AskError> {
        self.finished = true;
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl<T: DeserializeOwned + Send + 'static> StreamSource<T> for RemoteItems<T> {
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<T, AskError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let payload = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(self.end().map(Err)),
            Poll::Ready(Some(p)) => p,
        };
        match self.codec.decode::<T>(&payload) {
            Ok(item) => {
                if let Some(n) = self.window.accepted(self.rx.is_empty()) {
                    let mut credit = Envelope::credit(self.corr, n);
                    credit.from_callee = !self.from_callee;
                    self.session.send_soon(encode(&credit));
                }
                Poll::Ready(Some(Ok(item)))
            }
            Err(e) => {
                // Stop the sender: nothing after an undecodable item is
                // trustworthy.
                self.session.send_soon(encode(&self.control(Kind::Cancel)));
                self.session.forget_stream(self.corr, self.from_callee);
                self.finished = true;
                Poll::Ready(Some(Err(AskError::BadPayload {
                    reason: WireError::from(e).to_string().into(),
                })))
            }
        }
    }
}

impl<T> Drop for RemoteItems<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The consumer gave up before the end: tell the sender to stop.
        self.session.forget_stream(self.corr, self.from_callee);
        if self.session.is_alive() {
            self.session.send_soon(encode(&self.control(Kind::Cancel)));
        }
    }
}

/// A local stream of `T` as encoded payloads.
pub(crate) struct Encoded<T> {
    inner: ReplyStream<T>,
    codec: CodecKind,
}

impl<T> Encoded<T> {
    pub(crate) fn new(inner: ReplyStream<T>, codec: CodecKind) -> Self {
        Self { inner, codec }
    }
}

impl<T: Serialize + Send + 'static> StreamSource<Bytes> for Encoded<T> {
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Bytes, AskError>>> {
        self.inner.poll_next(cx).map(|item| {
            item.map(|r| {
                r.and_then(|item| {
                    let mut buf = BytesMut::with_capacity(64);
                    self.codec
                        .encode(&item, &mut buf)
                        .map(|()| buf.freeze())
                        .map_err(|e| AskError::BadPayload {
                            reason: WireError::from(e).to_string().into(),
                        })
                })
            })
        })
    }
}

/// Sends `items` as stream frames of call `corr`, one per credit: waits for
/// a credit before taking each item, so the local producer is held back by
/// the remote consumer. Ends with `StreamEnd`, or an `Error` if the stream
/// failed. Returns when done or when the link or the credits close.
pub(crate) async fn pump(
    session: &Session,
    corr: u64,
    from_callee: bool,
    mut items: ReplyStream<Bytes>,
    credits: &Semaphore,
) {
    let mark = |env: Envelope| if from_callee { env.from_callee() } else { env };
    loop {
        match credits.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return, // the call was cancelled or the link closed
        }
        let frame = match items.next().await {
            Some(Ok(payload)) => {
                encode(&mark(Envelope::new(Kind::StreamItem, corr)).with_payload(payload))
            }
            Some(Err(e)) => {
                let mut env = Envelope::error(corr, &to_wire(e));
                env.from_callee = from_callee;
                let _ = session.send(encode(&env)).await;
                return;
            }
            None => {
                let _ = session
                    .tx
                    .send(encode(&mark(Envelope::new(Kind::StreamEnd, corr))))
                    .await;
                return;
            }
        };
        match session.send(frame).await {
            Ok(()) => {}
            Err(LinkError::TooLarge { len, max }) => {
                session.send_too_large(corr, len, max, from_callee);
                return;
            }
            Err(_) => return,
        }
    }
}

/// A failure the peer reported for a stream, as the consumer sees it.
pub(crate) fn stream_error(env: &Envelope, peer: &str) -> AskError {
    match env.wire_error() {
        Some(Ok(e)) => from_wire(e, peer),
        _ => AskError::BadPayload {
            reason: "undecodable error payload".into(),
        },
    }
}
