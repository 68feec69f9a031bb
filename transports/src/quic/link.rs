//! A [`Link`] over one QUIC bidirectional stream: length-prefixed frames.
//!
//! Senders write straight into the quinn stream from their own task under a
//! short lock: quinn buffers the bytes and its connection driver coalesces
//! whatever is buffered into packets, so a frame costs no task hop of ours.
//! Only when quinn's flow control refuses bytes do frames wait, in order, in
//! a bounded backlog that one flusher task drains; while the backlog is not
//! empty every new frame joins it, so frames leave in the order sent.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use plexus_codecs::{FrameConfig, FrameDecoder, LEN_PREFIX};
use plexus_runtime::BoxFuture;
use plexus_runtime::remote::{FrameReceiver, FrameSender, Link, LinkError};
use tokio::sync::Notify;

/// Frames waiting for quinn's flow control before `send` waits.
const BACKLOG: usize = 1024;
/// Size of the buffers that frames are length-prefixed into; a frame is a
/// slice of one, so small frames cost no allocation of their own.
const ARENA: usize = 64 * 1024;
/// The largest read taken from quinn at once.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) fn link(
    peer: Arc<str>,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    max_frame: usize,
) -> Link {
    let shared = Arc::new(Shared {
        peer: Arc::clone(&peer),
        conn,
        max_frame,
        state: Mutex::new(WriteState {
            stream: send,
            arena: BytesMut::new(),
            backlog: VecDeque::new(),
            failed: None,
            closing: false,
        }),
        flush: Notify::new(),
        room: Notify::new(),
    });
    tokio::spawn(flusher(Arc::clone(&shared)));
    Link {
        peer: Arc::clone(&peer),
        tx: Arc::new(QuicSender { shared }),
        rx: Box::new(QuicReceiver {
            peer,
            recv,
            decoder: FrameDecoder::new(FrameConfig {
                max_frame,
                ..FrameConfig::default()
            }),
            pending: Bytes::new(),
        }),
    }
}

struct Shared {
    peer: Arc<str>,
    conn: quinn::Connection,
    max_frame: usize,
    state: Mutex<WriteState>,
    /// Wakes the flusher: the backlog got its first frame, or the sender
    /// was dropped.
    flush: Notify,
    /// Wakes senders waiting for backlog room.
    room: Notify,
}

struct WriteState {
    stream: quinn::SendStream,
    /// Where frames get their length prefix; see [`ARENA`].
    arena: BytesMut,
    /// Prefixed frames quinn has not taken yet, oldest first.
    backlog: VecDeque<Bytes>,
    /// Set once a write failed: every later send fails with it.
    failed: Option<Arc<str>>,
    /// The sending half was dropped: the flusher drains and ends.
    closing: bool,
}

/// Why a frame was not written now.
enum NotNow {
    Full,
    Failed(LinkError),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed(&self, failed: Option<&Arc<str>>) -> LinkError {
        let reason = match (self.conn.close_reason(), failed) {
            (Some(r), _) => r.to_string().into(),
            (None, Some(f)) => Arc::clone(f),
            (None, None) => "writer stopped".into(),
        };
        LinkError::Closed {
            peer: Arc::clone(&self.peer),
            reason,
        }
    }

    /// Write `frame` now (into quinn, or behind the backlog if there is one).
    fn try_write(&self, frame: &[u8]) -> Result<(), NotNow> {
        if frame.len() > self.max_frame {
            return Err(NotNow::Failed(LinkError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            }));
        }
        let mut st = self.state();
        if st.failed.is_some() || st.closing {
            return Err(NotNow::Failed(self.closed(st.failed.as_ref())));
        }
        if st.backlog.len() >= BACKLOG {
            return Err(NotNow::Full);
        }
        let st = &mut *st;
        let need = LEN_PREFIX + frame.len();
        if st.arena.capacity() < need {
            // The old arena lives on in the frames quinn still holds.
            st.arena = BytesMut::with_capacity(ARENA.max(need));
        }
        // Frame sizes were checked against `max_frame` (≤ u32::MAX) above.
        st.arena
            .put_u32(u32::try_from(frame.len()).unwrap_or(u32::MAX));
        st.arena.extend_from_slice(frame);
        let chunk = st.arena.split().freeze();
        if !st.backlog.is_empty() {
            st.backlog.push_back(chunk);
            return Ok(());
        }
        let mut bufs = [chunk];
        // Nothing is queued, so nobody else has a waker registered with
        // quinn for this stream: a refused write goes to the backlog and
        // the flusher registers its own waker when it retries.
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(st.stream.write_chunks(&mut bufs)).poll(&mut cx) {
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => {
                let reason: Arc<str> = e.to_string().into();
                tracing::debug!(peer = %self.peer, error = %reason, "quic write failed");
                st.failed = Some(Arc::clone(&reason));
                return Err(NotNow::Failed(self.closed(Some(&reason))));
            }
            Poll::Pending => {}
        }
        let [rest] = bufs;
        if !rest.is_empty() {
            st.backlog.push_back(rest);
            self.flush.notify_one();
        }
        Ok(())
    }

    /// Hand the backlog to quinn as its flow control allows.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state();
        let st = &mut *st;
        while !st.backlog.is_empty() {
            if st.failed.is_some() {
                st.backlog.clear();
                break;
            }
            let polled = {
                let bufs = st.backlog.make_contiguous();
                pin!(st.stream.write_chunks(bufs)).poll(cx)
            };
            match polled {
                Poll::Ready(Ok(written)) => {
                    st.backlog.drain(..written.chunks);
                    self.room.notify_waiters();
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "quic write failed");
                    st.failed = Some(e.to_string().into());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.room.notify_waiters();
        Poll::Ready(())
    }
}

/// Drains the backlog whenever quinn refused bytes; ends once the sending
/// half is dropped and nothing is left to write (dropping the stream then
/// finishes it).
async fn flusher(shared: Arc<Shared>) {
    loop {
        std::future::poll_fn(|cx| shared.poll_drain(cx)).await;
        {
            let st = shared.state();
            if st.failed.is_some() || (st.closing && st.backlog.is_empty()) {
                return;
            }
        }
        shared.flush.notified().await;
    }
}

struct QuicSender {
    shared: Arc<Shared>,
}

impl Drop for QuicSender {
    fn drop(&mut self) {
        self.shared.state().closing = true;
        self.shared.flush.notify_one();
    }
}

impl FrameSender for QuicSender {
    fn send(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(async move {
            loop {
                let room = self.shared.room.notified();
                let mut room = pin!(room);
                room.as_mut().enable();
                match self.shared.try_write(&frame) {
                    Ok(()) => return Ok(()),
                    Err(NotNow::Failed(e)) => return Err(e),
                    Err(NotNow::Full) => room.await,
                }
            }
        })
    }

    fn try_send(&self, frame: Bytes) -> Result<(), LinkError> {
        self.shared.try_write(&frame).map_err(|e| match e {
            NotNow::Full => LinkError::Full {
                peer: Arc::clone(&self.shared.peer),
            },
            NotNow::Failed(e) => e,
        })
    }

    fn close(&self) {
        self.shared.conn.close(0u32.into(), b"closed");
    }
}

struct QuicReceiver {
    peer: Arc<str>,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    /// Bytes read but not yet taken by the decoder.
    pending: Bytes,
}

impl QuicReceiver {
    fn closed(&self, reason: impl std::fmt::Display) -> LinkError {
        LinkError::Closed {
            peer: Arc::clone(&self.peer),
            reason: reason.to_string().into(),
        }
    }
}

impl FrameReceiver for QuicReceiver {
    fn recv(&mut self) -> BoxFuture<'_, Result<Bytes, LinkError>> {
        Box::pin(async move {
            loop {
                match self.decoder.next_frame() {
                    Ok(Some(frame)) => return Ok(frame),
                    Ok(None) => {}
                    Err(e) => return Err(self.closed(e)),
                }
                if !self.pending.is_empty() {
                    let taken = self.decoder.push(&self.pending);
                    let _ = self.pending.split_to(taken);
                    if taken > 0 {
                        continue;
                    }
                    return Err(self.closed("frame decoder stalled"));
                }
                match self.recv.read_chunk(READ_CHUNK, true).await {
                    Ok(Some(chunk)) => self.pending = chunk.bytes,
                    Ok(None) => return Err(self.closed("stream finished")),
                    Err(e) => return Err(self.closed(e)),
                }
            }
        })
    }
}
