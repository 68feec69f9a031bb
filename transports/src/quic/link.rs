//! A [`Link`] over one QUIC bidirectional stream: length-prefixed frames.
//!
//! Senders write into the quinn stream from their own task under a short
//! lock, combining writes: the first frame of a burst goes to quinn at once
//! (no task hop on the latency path) and wakes the flusher task; frames sent
//! before the flusher runs are appended to one buffer, which the flusher
//! hands to quinn as a single chunk. quinn then packs whole batches into
//! packets instead of one stream frame per message. When quinn's flow
//! control refuses bytes they wait, in order, in a bounded backlog that the
//! flusher drains; frames sent meanwhile queue behind it, so frames leave in
//! the order sent.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use plexus_codecs::{FrameConfig, FrameDecoder, LEN_PREFIX};
use plexus_runtime::BoxFuture;
use plexus_runtime::remote::{FrameReceiver, FrameSender, Link, LinkError};
use tokio::sync::Notify;

/// Bytes written but not yet taken by quinn before `send` waits.
const MAX_UNSENT: usize = 1024 * 1024;
/// A combined batch this large goes to quinn without waiting for the
/// flusher.
const FLUSH_AT: usize = 32 * 1024;
/// Capacity of the buffer frames are combined in.
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
            open: BytesMut::new(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            flush_pending: false,
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
        opened_here: false,
    }
}

struct Shared {
    peer: Arc<str>,
    conn: quinn::Connection,
    max_frame: usize,
    state: Mutex<WriteState>,
    /// Wakes the flusher: frames are waiting, or the sender was dropped.
    flush: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

struct WriteState {
    stream: quinn::SendStream,
    /// Prefixed frames not yet handed to quinn, combined into one buffer.
    open: BytesMut,
    /// Chunks quinn refused (flow control), oldest first; `open` goes
    /// after them.
    backlog: VecDeque<Bytes>,
    backlog_bytes: usize,
    /// The flusher has been woken and has not yet run: frames are combined
    /// in `open` for it.
    flush_pending: bool,
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

/// What handing a chunk to quinn did.
enum Handed {
    /// All of it taken.
    All,
    /// Part or none of it taken: the rest.
    Rest(Bytes),
    Failed(Arc<str>),
}

impl WriteState {
    /// Offer `chunk` to quinn. Only called while the backlog is empty, so
    /// no other waker is registered with quinn for this stream and the
    /// caller's may be a no-op one (the flusher retries with its own).
    fn hand(&mut self, chunk: Bytes, cx: &mut Context<'_>) -> Handed {
        let mut bufs = [chunk];
        match pin!(self.stream.write_chunks(&mut bufs)).poll(cx) {
            Poll::Ready(Ok(_)) | Poll::Pending => {}
            Poll::Ready(Err(e)) => return Handed::Failed(e.to_string().into()),
        }
        let [rest] = bufs;
        if rest.is_empty() {
            Handed::All
        } else {
            Handed::Rest(rest)
        }
    }

    fn defer(&mut self, rest: Bytes) {
        self.backlog_bytes += rest.len();
        self.backlog.push_back(rest);
    }
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

    fn fail(&self, st: &mut WriteState, reason: Arc<str>) -> LinkError {
        tracing::debug!(peer = %self.peer, error = %reason, "quic write failed");
        st.failed = Some(Arc::clone(&reason));
        st.backlog.clear();
        st.backlog_bytes = 0;
        st.open.clear();
        self.room.notify_waiters();
        self.closed(Some(&reason))
    }

    /// Write `frame` now: into quinn, or into the combined batch that the
    /// flusher hands over.
    fn try_write(&self, frame: &[u8]) -> Result<(), NotNow> {
        if frame.len() > self.max_frame {
            return Err(NotNow::Failed(LinkError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            }));
        }
        let mut guard = self.state();
        let st = &mut *guard;
        if st.failed.is_some() || st.closing {
            return Err(NotNow::Failed(self.closed(st.failed.as_ref())));
        }
        if st.open.len() + st.backlog_bytes >= MAX_UNSENT {
            return Err(NotNow::Full);
        }
        let need = LEN_PREFIX + frame.len();
        if st.open.capacity() - st.open.len() < need && st.open.is_empty() {
            // The old buffer lives on in the chunks quinn still holds.
            st.open = BytesMut::with_capacity(ARENA.max(need));
        }
        // Frame sizes were checked against `max_frame` (≤ u32::MAX) above.
        st.open
            .put_u32(u32::try_from(frame.len()).unwrap_or(u32::MAX));
        st.open.extend_from_slice(frame);
        let first_of_burst = !st.flush_pending;
        if !st.backlog.is_empty() || !(first_of_burst || st.open.len() >= FLUSH_AT) {
            // Behind refused bytes, or combined for the flusher.
            return Ok(());
        }
        if first_of_burst {
            // Wake the flusher before quinn's driver: on a tokio worker the
            // task woken last runs next, and that should be the driver.
            st.flush_pending = true;
            self.flush.notify_one();
        }
        let chunk = st.open.split().freeze();
        match st.hand(chunk, &mut Context::from_waker(Waker::noop())) {
            Handed::All => {}
            Handed::Rest(rest) => st.defer(rest),
            Handed::Failed(reason) => return Err(NotNow::Failed(self.fail(st, reason))),
        }
        Ok(())
    }

    /// Hand the backlog, then the combined batch, to quinn as its flow
    /// control allows.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut guard = self.state();
        let st = &mut *guard;
        loop {
            if st.failed.is_some() {
                break;
            }
            if st.backlog.is_empty() {
                if st.open.is_empty() {
                    break;
                }
                let chunk = st.open.split().freeze();
                st.defer(chunk);
            }
            let polled = {
                let bufs = st.backlog.make_contiguous();
                pin!(st.stream.write_chunks(bufs)).poll(cx)
            };
            match polled {
                Poll::Ready(Ok(written)) => {
                    st.backlog.drain(..written.chunks);
                    st.backlog_bytes -= written.bytes;
                    self.room.notify_waiters();
                }
                Poll::Ready(Err(e)) => {
                    self.fail(st, e.to_string().into());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        st.flush_pending = false;
        self.room.notify_waiters();
        Poll::Ready(())
    }
}

/// Hands combined frames and refused bytes to quinn; ends once the
/// sending half is dropped and nothing is left to write (dropping the
/// stream then finishes it).
async fn flusher(shared: Arc<Shared>) {
    loop {
        shared.flush.notified().await;
        std::future::poll_fn(|cx| shared.poll_drain(cx)).await;
        let st = shared.state();
        if st.failed.is_some() || (st.closing && st.backlog.is_empty() && st.open.is_empty()) {
            return;
        }
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
            match self.shared.try_write(&frame) {
                Ok(()) => return Ok(()),
                Err(NotNow::Failed(e)) => return Err(e),
                Err(NotNow::Full) => {}
            }
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
        // Sends fail from now on, not once quinn reports the close.
        self.shared.state().closing = true;
        self.shared.conn.close(0u32.into(), b"closed");
        self.shared.flush.notify_one();
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
    fn try_recv(&mut self) -> Option<Bytes> {
        loop {
            if let Ok(Some(frame)) = self.decoder.next_frame() {
                return Some(frame);
            }
            // Whole frames are sliced out of the chunk read, not copied.
            // A decoder error is reported by `recv`.
            match self.decoder.next_frame_from(&mut self.pending) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(_) => return None,
            }
            if self.pending.is_empty() {
                return None;
            }
            let taken = self.decoder.push(&self.pending);
            let _ = self.pending.split_to(taken);
            if taken == 0 {
                return None;
            }
        }
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Bytes, LinkError>> {
        Box::pin(async move {
            loop {
                match self.decoder.next_frame() {
                    Ok(Some(frame)) => return Ok(frame),
                    Ok(None) => {}
                    Err(e) => return Err(self.closed(e)),
                }
                match self.decoder.next_frame_from(&mut self.pending) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::DevCa;
    use crate::quic::QuicConfig;
    use std::net::SocketAddr;

    /// Two links over a real loopback QUIC connection: (client end, server end).
    async fn pair() -> (Link, Link, (quinn::Endpoint, quinn::Endpoint)) {
        let ca = DevCa::generate("test").unwrap();
        let mk = |n: &str| {
            let c = ca.issue(n).unwrap();
            QuicConfig::from_pem(&c.cert_pem, &c.key_pem, &ca.cert_pem).unwrap()
        };
        let (ca_cfg, cb_cfg) = (mk("a"), mk("b"));
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = quinn::Endpoint::server(cb_cfg.server_config().unwrap(), any).unwrap();
        let mut client = quinn::Endpoint::client(any).unwrap();
        client.set_default_client_config(ca_cfg.client_config().unwrap());
        let addr = server.local_addr().unwrap();
        let accept = tokio::spawn({
            let server = server.clone();
            async move {
                let conn = server.accept().await.unwrap().await.unwrap();
                let (send, recv) = conn.accept_bi().await.unwrap();
                link("a".into(), conn, send, recv, 1 << 20)
            }
        });
        let conn = client.connect(addr, "b").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        let a = link("b".into(), conn, send, recv, 1 << 20);
        // quinn announces a stream with its first bytes.
        a.tx.send(Bytes::from_static(b"hello")).await.unwrap();
        let mut b = accept.await.unwrap();
        assert_eq!(&b.rx.recv().await.unwrap()[..], b"hello");
        (a, b, (server, client))
    }

    fn frame(i: u32, len: usize) -> Bytes {
        let mut f = vec![(i % 251) as u8; len];
        f[..4].copy_from_slice(&i.to_be_bytes());
        Bytes::from(f)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arrive_whole_and_in_order_through_bursts_and_flow_control() {
        let (a, mut b, _eps) = pair().await;
        // Far more than quinn's stream window (1.25 MB) and MAX_UNSENT while
        // nobody reads: quinn refuses bytes, the backlog fills, try_send says
        // Full and send waits, all without losing or reordering a frame.
        const N: u32 = 6_000;
        const LEN: usize = 1_000;
        let tx = Arc::clone(&a.tx);
        let writer = tokio::spawn(async move {
            let mut full = 0;
            for i in 0..N {
                match tx.try_send(frame(i, LEN)) {
                    Ok(()) => {}
                    Err(LinkError::Full { .. }) => {
                        full += 1;
                        tx.send(frame(i, LEN)).await.unwrap();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            full
        });
        let mut seen = 0;
        while seen < N {
            let f = b.rx.recv().await.unwrap();
            assert_eq!(f, frame(seen, LEN), "frame {seen}");
            seen += 1;
        }
        assert!(writer.await.unwrap() > 0, "the writer was held back");
        // Small frames in one burst are combined and still arrive in order.
        for i in 0..1_000 {
            a.tx.try_send(frame(i, 16)).unwrap();
        }
        for i in 0..1_000 {
            assert_eq!(b.rx.recv().await.unwrap(), frame(i, 16));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_frames_are_refused_and_a_closed_link_fails_sends() {
        let (a, _b, _eps) = pair().await;
        let err = a.tx.try_send(Bytes::from(vec![0u8; (1 << 20) + 1]));
        assert!(matches!(err, Err(LinkError::TooLarge { .. })), "{err:?}");
        a.tx.close();
        // Closed at once, not once quinn reports it.
        let sent = a.tx.send(Bytes::from_static(b"x")).await;
        assert!(matches!(sent, Err(LinkError::Closed { .. })), "{sent:?}");
        let sent = a.tx.try_send(Bytes::from_static(b"x"));
        assert!(matches!(sent, Err(LinkError::Closed { .. })), "{sent:?}");
    }
}
