//! [`SimNetwork`]: an in-process network of [`Link`]s with latency, jitter
//! (which reorders frames), loss and partitions, driven by a node's clock
//! and a seed — so multi-node tests run in one process, repeatably.
//!
//! Faults are per frame: a lost frame is gone (stricter than QUIC, which
//! retransmits), a jittered frame may overtake an earlier one (QUIC keeps
//! order within a stream). A partition closes every link between the two
//! sides, as a QUIC idle timeout would: both ends see the link close and
//! pending asks fail with `PeerUnavailable`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_runtime::BoxFuture;
use plexus_runtime::clock::Clock;
use plexus_runtime::remote::{FrameReceiver, FrameSender, Link, LinkError};

/// How many frames one direction of a link buffers before `send` waits:
/// the simulated link's own flow control.
pub const SIM_LINK_CAPACITY: usize = 1024;

/// Fault settings of a [`SimNetwork`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SimConfig {
    /// One-way delay of every frame.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, per frame; frames may reorder.
    pub jitter: Duration,
    /// Probability (0.0–1.0) that a frame is dropped.
    ///
    /// The rpc protocol assumes what QUIC gives it: a reliable, ordered
    /// link. A dropped frame is therefore a fault it does not repair: an
    /// ask whose request or reply is lost ends at its deadline
    /// (`DeadlineExceeded`), a lost tell is gone and so is its credit, and
    /// a lost bind frame makes the route's later tells unknown to the
    /// receiver until the link is made anew. Use loss (and jitter, which
    /// reorders) to test deadlines and retries; use partitions to test
    /// link failure and recovery.
    pub loss: f64,
    /// Largest frame a link carries, as the QUIC link's `max_frame`: a
    /// larger one is refused with [`LinkError::TooLarge`]. Default 1 MiB.
    pub max_frame: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            max_frame: plexus_codecs::FrameConfig::DEFAULT_MAX_FRAME,
        }
    }
}

/// A simulated network. Cheap to clone; clones share it.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use plexus_runtime::clock::SystemClock;
/// # use plexus_transports::sim::SimNetwork;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let net = SimNetwork::new(SystemClock, 7).latency(Duration::from_millis(1));
/// let (mut a_to_b, mut b_to_a) = net.link("a", "b");
/// a_to_b.tx.send(bytes::Bytes::from_static(b"hi")).await?;
/// assert_eq!(&b_to_a.rx.recv().await?[..], b"hi");
/// net.partition("a", "b");
/// assert!(b_to_a.rx.recv().await.is_err());
/// # let _ = &mut a_to_b;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SimNetwork {
    inner: Arc<Net>,
}

struct Net {
    clock: Arc<dyn Clock>,
    config: Mutex<SimConfig>,
    rng: Mutex<fastrand::Rng>,
    pairs: Mutex<HashMap<PairKey, Vec<Arc<PairState>>>>,
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNetwork")
            .field("config", &*lock(&self.inner.config))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared by the two ends of one link.
struct PairState {
    down: AtomicBool,
    kill: [flume::Sender<()>; 2],
}

impl PairState {
    fn close(&self) {
        self.down.store(true, Ordering::Release);
        for k in &self.kill {
            let _ = k.try_send(());
        }
    }
}

/// Two node names, in order.
type PairKey = (Arc<str>, Arc<str>);

fn key(a: &str, b: &str) -> PairKey {
    if a <= b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

impl SimNetwork {
    /// A network on `clock` (use the nodes' clock) with faults drawn from
    /// `seed`; no latency, jitter or loss until set.
    pub fn new(clock: impl Clock, seed: u64) -> Self {
        Self::with_clock(Arc::new(clock), seed)
    }

    /// As [`new`](Self::new), sharing a node's clock handle
    /// (`node.clock().clone()`).
    pub fn with_clock(clock: Arc<dyn Clock>, seed: u64) -> Self {
        Self {
            inner: Arc::new(Net {
                clock,
                config: Mutex::new(SimConfig::default()),
                rng: Mutex::new(fastrand::Rng::with_seed(seed)),
                pairs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets the one-way latency of frames sent from now on.
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        lock(&self.inner.config).latency = latency;
        self
    }

    /// Sets the jitter (and so reordering) of frames sent from now on.
    #[must_use]
    pub fn jitter(self, jitter: Duration) -> Self {
        lock(&self.inner.config).jitter = jitter;
        self
    }

    /// Sets the loss probability of frames sent from now on.
    #[must_use]
    pub fn loss(self, loss: f64) -> Self {
        lock(&self.inner.config).loss = loss.clamp(0.0, 1.0);
        self
    }

    /// Sets the largest frame the links carry (see [`SimConfig::max_frame`]).
    #[must_use]
    pub fn max_frame(self, max_frame: usize) -> Self {
        lock(&self.inner.config).max_frame = max_frame;
        self
    }

    /// Changes the faults of a running network.
    pub fn set_config(&self, config: SimConfig) {
        *lock(&self.inner.config) = config;
    }

    /// A connected pair of links: the first is `a`'s link to `b` (its peer
    /// is `b`; `a` opened it), the second `b`'s link to `a`.
    pub fn link(&self, a: &str, b: &str) -> (Link, Link) {
        let (kill_a_tx, kill_a_rx) = flume::bounded(1);
        let (kill_b_tx, kill_b_rx) = flume::bounded(1);
        let state = Arc::new(PairState {
            down: AtomicBool::new(false),
            kill: [kill_a_tx, kill_b_tx],
        });
        lock(&self.inner.pairs)
            .entry(key(a, b))
            .or_default()
            .push(Arc::clone(&state));
        let (a_tx, a_rx) = self.direction(b, &state, kill_b_rx);
        let (b_tx, b_rx) = self.direction(a, &state, kill_a_rx);
        (
            Link {
                peer: b.into(),
                tx: a_tx,
                rx: b_rx,
                opened_here: true,
            },
            Link {
                peer: a.into(),
                tx: b_tx,
                rx: a_rx,
                opened_here: false,
            },
        )
    }

    /// One direction: the sender and the receiver at the far end (`to`).
    fn direction(
        &self,
        to: &str,
        state: &Arc<PairState>,
        kill: flume::Receiver<()>,
    ) -> (Arc<dyn FrameSender>, Box<dyn FrameReceiver>) {
        let (tx, rx) = flume::bounded(SIM_LINK_CAPACITY);
        let sender = SimSender {
            net: Arc::clone(&self.inner),
            to: to.into(),
            state: Arc::clone(state),
            tx,
        };
        let receiver = SimReceiver {
            net: Arc::clone(&self.inner),
            peer: to.into(),
            state: Arc::clone(state),
            rx,
            kill,
            heap: BinaryHeap::new(),
            seq: 0,
        };
        (Arc::new(sender), Box::new(receiver))
    }

    /// Cut every link between `a` and `b` (both ends see them close).
    /// New links made with [`link`](Self::link) afterwards work: that is a
    /// heal followed by a reconnect.
    pub fn partition(&self, a: &str, b: &str) {
        if let Some(states) = lock(&self.inner.pairs).remove(&key(a, b)) {
            for s in states {
                s.close();
            }
        }
    }
}

struct SimSender {
    net: Arc<Net>,
    to: Arc<str>,
    state: Arc<PairState>,
    tx: flume::Sender<(Instant, Bytes)>,
}

impl SimSender {
    fn closed(&self) -> LinkError {
        LinkError::Closed {
            peer: Arc::clone(&self.to),
            reason: "simulated partition".into(),
        }
    }
}

impl SimSender {
    /// When a frame of `len` bytes sent now arrives (latency and jitter),
    /// or `None` if the simulated network loses it; `send` and `try_send`
    /// alike.
    fn deliver_at(&self, len: usize) -> Result<Option<Instant>, LinkError> {
        if self.state.down.load(Ordering::Acquire) {
            return Err(self.closed());
        }
        let config = *lock(&self.net.config);
        if len > config.max_frame {
            return Err(LinkError::TooLarge {
                len,
                max: config.max_frame,
            });
        }
        if config.loss <= 0.0 && config.jitter.is_zero() {
            return Ok(Some(plexus_runtime::clock::after(
                self.net.clock.now(),
                config.latency,
            )));
        }
        let (lost, extra) = {
            let mut rng = lock(&self.net.rng);
            let lost = config.loss > 0.0 && rng.f64() < config.loss;
            let extra = if config.jitter.is_zero() {
                Duration::ZERO
            } else {
                config.jitter.mul_f64(rng.f64())
            };
            (lost, extra)
        };
        if lost {
            tracing::trace!(to = %self.to, "simulated loss");
            return Ok(None);
        }
        Ok(Some(plexus_runtime::clock::after(
            self.net.clock.now(),
            config.latency.saturating_add(extra),
        )))
    }
}

impl FrameSender for SimSender {
    fn send(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(async move {
            let Some(at) = self.deliver_at(frame.len())? else {
                return Ok(());
            };
            self.tx
                .send_async((at, frame))
                .await
                .map_err(|_| self.closed())
        })
    }

    fn try_send(&self, frame: Bytes) -> Result<(), LinkError> {
        // Rolled before the room check: a frame that finds no room is
        // retried with `send`, which rolls again, as a resent packet would.
        let Some(at) = self.deliver_at(frame.len())? else {
            return Ok(());
        };
        self.tx.try_send((at, frame)).map_err(|e| match e {
            flume::TrySendError::Full(_) => LinkError::Full {
                peer: Arc::clone(&self.to),
            },
            flume::TrySendError::Disconnected(_) => self.closed(),
        })
    }

    fn close(&self) {
        self.state.close();
    }
}

struct SimReceiver {
    net: Arc<Net>,
    peer: Arc<str>,
    state: Arc<PairState>,
    rx: flume::Receiver<(Instant, Bytes)>,
    kill: flume::Receiver<()>,
    /// Frames taken off the channel, by delivery time then arrival order.
    heap: BinaryHeap<Reverse<(Instant, u64, Bytes)>>,
    seq: u64,
}

impl SimReceiver {
    fn push(&mut self, at: Instant, frame: Bytes) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, frame)));
    }
}

impl FrameReceiver for SimReceiver {
    fn try_recv(&mut self) -> Option<Bytes> {
        if self.state.down.load(Ordering::Acquire) {
            return None;
        }
        while let Ok((at, frame)) = self.rx.try_recv() {
            self.push(at, frame);
        }
        let Reverse((at, _, _)) = self.heap.peek()?;
        if *at > self.net.clock.now() {
            return None;
        }
        self.heap.pop().map(|Reverse((_, _, frame))| frame)
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Bytes, LinkError>> {
        Box::pin(async move {
            loop {
                if self.state.down.load(Ordering::Acquire) {
                    return Err(LinkError::Closed {
                        peer: Arc::clone(&self.peer),
                        reason: "simulated partition".into(),
                    });
                }
                while let Ok((at, frame)) = self.rx.try_recv() {
                    self.push(at, frame);
                }
                let now = self.net.clock.now();
                if let Some(at) = self.heap.peek().map(|Reverse((at, _, _))| *at) {
                    if at <= now
                        && let Some(Reverse((_, _, frame))) = self.heap.pop()
                    {
                        return Ok(frame);
                    }
                    let sleep = self.net.clock.sleep_until(at);
                    tokio::select! {
                        biased;
                        _ = self.kill.recv_async() => {}
                        () = sleep => {}
                        r = self.rx.recv_async() => if let Ok((at, frame)) = r { self.push(at, frame) },
                    }
                    continue;
                }
                tokio::select! {
                    biased;
                    _ = self.kill.recv_async() => {}
                    r = self.rx.recv_async() => match r {
                        Ok((at, frame)) => self.push(at, frame),
                        Err(_) => return Err(LinkError::Closed {
                            peer: Arc::clone(&self.peer),
                            reason: "peer dropped the link".into(),
                        }),
                    },
                }
            }
        })
    }
}
