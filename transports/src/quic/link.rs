//! A [`Link`] over one QUIC bidirectional stream: length-prefixed frames,
//! written in batches by one writer task.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use plexus_codecs::{FrameConfig, FrameDecoder, LEN_PREFIX};
use plexus_runtime::BoxFuture;
use plexus_runtime::remote::{FrameReceiver, FrameSender, Link, LinkError};

/// Frames queued for the writer before `send` waits.
const WRITE_QUEUE: usize = 1024;
/// The writer coalesces queued frames up to this many bytes per write.
const WRITE_BATCH: usize = 64 * 1024;

pub(crate) fn link(
    peer: Arc<str>,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    max_frame: usize,
) -> Link {
    let (tx, rx) = flume::bounded::<Bytes>(WRITE_QUEUE);
    tokio::spawn(write_loop(send, rx, Arc::clone(&peer)));
    Link {
        peer: Arc::clone(&peer),
        tx: Arc::new(QuicSender {
            peer: Arc::clone(&peer),
            conn,
            tx,
            max_frame,
        }),
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

async fn write_loop(mut send: quinn::SendStream, rx: flume::Receiver<Bytes>, peer: Arc<str>) {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH);
    while let Ok(first) = rx.recv_async().await {
        buf.clear();
        put_frame(&mut buf, &first);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => put_frame(&mut buf, &f),
                Err(_) => break,
            }
        }
        if let Err(e) = send.write_all(&buf).await {
            tracing::debug!(peer = %peer, error = %e, "quic write failed");
            break;
        }
    }
    let _ = send.finish();
}

fn put_frame(buf: &mut BytesMut, frame: &[u8]) {
    // Frame sizes are checked against `max_frame` (≤ u32::MAX) in `send`.
    buf.put_u32(u32::try_from(frame.len()).unwrap_or(u32::MAX));
    buf.extend_from_slice(frame);
}

struct QuicSender {
    peer: Arc<str>,
    conn: quinn::Connection,
    tx: flume::Sender<Bytes>,
    max_frame: usize,
}

impl QuicSender {
    fn closed(&self) -> LinkError {
        LinkError::Closed {
            peer: Arc::clone(&self.peer),
            reason: self
                .conn
                .close_reason()
                .map_or_else(|| "writer stopped".into(), |r| r.to_string().into()),
        }
    }

    fn check(&self, frame: &Bytes) -> Result<(), LinkError> {
        if frame.len() > self.max_frame {
            return Err(LinkError::TooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

impl FrameSender for QuicSender {
    fn send(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(async move {
            self.check(&frame)?;
            self.tx.send_async(frame).await.map_err(|_| self.closed())
        })
    }

    fn try_send(&self, frame: Bytes) -> Result<(), LinkError> {
        self.check(&frame)?;
        self.tx.try_send(frame).map_err(|e| match e {
            flume::TrySendError::Full(_) => LinkError::Full {
                peer: Arc::clone(&self.peer),
            },
            flume::TrySendError::Disconnected(_) => self.closed(),
        })
    }

    fn close(&self) {
        self.conn.close(0u32.into(), b"closed");
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
                match self.recv.read_chunk(WRITE_BATCH + LEN_PREFIX, true).await {
                    Ok(Some(chunk)) => self.pending = chunk.bytes,
                    Ok(None) => return Err(self.closed("stream finished")),
                    Err(e) => return Err(self.closed(e)),
                }
            }
        })
    }
}
