//! Shared by the remote tests: message types, actors, and three-node
//! clusters on the simulated network or on real QUIC over loopback.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

/// One `#[tokio::test]` per scenario in [`scenarios`], on `Road::$road`: the
/// simulated link and QUIC run the same list.
#[allow(unused_macros)] // only the two per-road test files use it
macro_rules! every_scenario {
    ($road:ident) => {
        every_scenario!(
            @on $road:
            ask_and_tell_by_name,
            tells_rebind_after_reconnect,
            typed_errors,
            deadline_chain,
            expired_while_queued,
            link_loss_fails_pending_fast,
            cancel_on_drop,
            backpressure,
            server_stream,
            stream_link_loss,
            duplex_stream,
            tell_refusals,
            inbound_call_limit,
            oversized_messages,
            tell_channel_limit,
        );
    };
    (@on $road:ident: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            remote_support::scenarios::$name(remote_support::Road::$road).await;
        }
    )*};
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_codecs::remote_message;
use plexus_runtime::prelude::*;
use plexus_transports::certs::{DevCa, NodeCert};
use plexus_transports::quic::{QuicConfig, QuicEndpoint};
use plexus_transports::remote::Remote;
use plexus_transports::sim::SimNetwork;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Echo(pub String);
remote_message!(Echo, "t.Echo", 1, reply = String);

/// Same name and version as `Echo`, another shape: the peer cannot decode it.
#[derive(Debug, Serialize, Deserialize)]
pub struct EchoBad(pub u64, pub u64);
remote_message!(EchoBad, "t.Echo", 1, reply = String);

#[derive(Debug, Serialize, Deserialize)]
pub struct Slow {
    pub ms: u64,
}
remote_message!(Slow, "t.Slow", 1, reply = u64);

/// What the handler sees: remaining budget (ms) and caller.
#[derive(Debug, Serialize, Deserialize)]
pub struct Budget;
remote_message!(Budget, "t.Budget", 1, reply = (Option<u64>, Option<String>));

/// B's handler asks `to` (C's "budget" actor) and returns both views.
#[derive(Debug, Serialize, Deserialize)]
pub struct Chain {
    pub to: String,
}
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainView {
    pub here_ms: Option<u64>,
    pub here_caller: Option<String>,
    pub there_ms: Option<u64>,
    pub there_caller: Option<String>,
}
remote_message!(Chain, "t.Chain", 1, reply = Result<ChainView, String>);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum MathError {
    DivideByZero,
}
#[derive(Debug, Serialize, Deserialize)]
pub struct Divide(pub i64, pub i64);
remote_message!(Divide, "t.Divide", 1, reply = Result<i64, MathError>);

#[derive(Debug, Serialize, Deserialize)]
pub struct Count(pub u64);
remote_message!(Count, "t.Count", 1, reply = ());

#[derive(Debug, Serialize, Deserialize)]
pub struct PingV1;
remote_message!(PingV1, "t.Ping", 1, reply = ());
#[derive(Debug, Serialize, Deserialize)]
pub struct PingV2;
remote_message!(PingV2, "t.Ping", 2, reply = ());

/// Server streaming: the numbers below `n`, as fast as credit allows;
/// aborted at `abort_at`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Numbers {
    pub n: u64,
    pub abort_at: Option<u64>,
}
remote_message!(Numbers, "t.Numbers", 1, stream = u64);

/// Bidirectional: every input line comes back upper-cased.
#[derive(Debug, Serialize, Deserialize)]
pub struct Shout;
remote_message!(Shout, "t.Shout", 1, input = String, output = String);

/// The producer's local channel in `Numbers` and `Shout` handlers.
pub const PRODUCER_CAPACITY: usize = 4;

/// A reply of `n` bytes (to outgrow the frame limit with a small request).
#[derive(Debug, Serialize, Deserialize)]
pub struct Grow(pub usize);
remote_message!(Grow, "t.Grow", 1, reply = String);

/// A stream of strings of these sizes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Blobs(pub Vec<usize>);
remote_message!(Blobs, "t.Blobs", 1, stream = String);

/// The largest frame the test links carry (both roads), small so that a
/// scenario can exceed it cheaply.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct NotExposed;
remote_message!(NotExposed, "t.NotExposed", 1, reply = ());

/// Counters a test reads while the actor runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub handled: AtomicU64,
    pub started: AtomicU64,
    pub finished: AtomicU64,
    pub dropped_mid_handler: AtomicU64,
    pub seen: Mutex<Vec<u64>>,
    /// Stream items the `Numbers` producer got into its channel.
    pub produced: AtomicU64,
    /// Stream producers that saw their consumer go away.
    pub producer_closed: AtomicU64,
    /// Inputs the `Shout` handler read.
    pub input_read: AtomicU64,
}

pub struct Service {
    pub stats: Arc<Stats>,
    pub remote: Option<Remote>,
    pub count_delay: Duration,
}
impl Actor for Service {}

impl Handler<Echo> for Service {
    async fn handle(&mut self, Echo(s): Echo, _: &mut Context<Self>) -> String {
        self.stats.handled.fetch_add(1, Ordering::SeqCst);
        s
    }
}
impl Handler<Divide> for Service {
    async fn handle(
        &mut self,
        Divide(a, b): Divide,
        _: &mut Context<Self>,
    ) -> Result<i64, MathError> {
        if b == 0 {
            Err(MathError::DivideByZero)
        } else {
            Ok(a / b)
        }
    }
}
impl Handler<PingV2> for Service {
    async fn handle(&mut self, _: PingV2, _: &mut Context<Self>) {}
}

struct DropFlag(Arc<Stats>, bool);
impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped_mid_handler.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Handler<Slow> for Service {
    async fn handle(&mut self, Slow { ms }: Slow, _: &mut Context<Self>) -> u64 {
        self.stats.handled.fetch_add(1, Ordering::SeqCst);
        self.stats.started.fetch_add(1, Ordering::SeqCst);
        let mut flag = DropFlag(Arc::clone(&self.stats), false);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        flag.1 = true;
        self.stats.finished.fetch_add(1, Ordering::SeqCst);
        ms
    }
}
impl Handler<Budget> for Service {
    async fn handle(&mut self, _: Budget, cx: &mut Context<Self>) -> (Option<u64>, Option<String>) {
        (
            cx.remaining().map(|d| d.as_millis() as u64),
            cx.caller().map(str::to_owned),
        )
    }
}
impl Handler<Chain> for Service {
    async fn handle(
        &mut self,
        Chain { to }: Chain,
        cx: &mut Context<Self>,
    ) -> Result<ChainView, String> {
        let here_ms = cx.remaining().map(|d| d.as_millis() as u64);
        let here_caller = cx.caller().map(str::to_owned);
        let remote = self.remote.as_ref().ok_or("no remote")?;
        let budget: Recipient<Budget> = remote.recipient(&to, "svc");
        // No timeout of its own: the inherited deadline applies.
        let (there_ms, there_caller) = budget.ask(Budget).await.map_err(|e| e.to_string())?;
        Ok(ChainView {
            here_ms,
            here_caller,
            there_ms,
            there_caller,
        })
    }
}
impl Handler<Count> for Service {
    async fn handle(&mut self, Count(n): Count, _: &mut Context<Self>) {
        if !self.count_delay.is_zero() {
            tokio::time::sleep(self.count_delay).await;
        }
        self.stats.handled.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut seen) = self.stats.seen.lock() {
            seen.push(n);
        }
    }
}

impl Handler<Numbers> for Service {
    async fn handle(
        &mut self,
        Numbers { n, abort_at }: Numbers,
        _: &mut Context<Self>,
    ) -> ReplyStream<u64> {
        let (tx, items) = ReplyStream::channel(PRODUCER_CAPACITY);
        let stats = Arc::clone(&self.stats);
        tokio::spawn(async move {
            for i in 0..n {
                if abort_at == Some(i) {
                    tx.abort(format!("stopped at {i}"));
                    return;
                }
                if tx.send(i).await.is_err() {
                    stats.producer_closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                stats.produced.fetch_add(1, Ordering::SeqCst);
            }
        });
        items
    }
}

impl Handler<Grow> for Service {
    async fn handle(&mut self, Grow(n): Grow, _: &mut Context<Self>) -> String {
        self.stats.handled.fetch_add(1, Ordering::SeqCst);
        "x".repeat(n)
    }
}

impl Handler<Blobs> for Service {
    async fn handle(&mut self, Blobs(sizes): Blobs, _: &mut Context<Self>) -> ReplyStream<String> {
        let (tx, items) = ReplyStream::channel(PRODUCER_CAPACITY);
        tokio::spawn(async move {
            for n in sizes {
                if tx.send("y".repeat(n)).await.is_err() {
                    return;
                }
            }
        });
        items
    }
}

impl Handler<Duplex<Shout>> for Service {
    async fn handle(&mut self, call: Duplex<Shout>, _: &mut Context<Self>) -> ReplyStream<String> {
        let mut input = call.input;
        let (tx, out) = ReplyStream::channel(PRODUCER_CAPACITY);
        let stats = Arc::clone(&self.stats);
        tokio::spawn(async move {
            while let Some(Ok(line)) = input.next().await {
                stats.input_read.fetch_add(1, Ordering::SeqCst);
                if tx.send(line.to_uppercase()).await.is_err() {
                    stats.producer_closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        });
        out
    }
}

/// One node of a test cluster.
pub struct Member {
    pub node: Node,
    pub remote: Remote,
    pub stats: Arc<Stats>,
    pub quic: Option<QuicEndpoint>,
}

pub const NAMES: [&str; 3] = ["a", "b", "c"];

/// Spawn "svc" (mailbox `capacity`) on each node and expose everything.
/// Calls one member serves for one peer at once (small, so a scenario can
/// reach it).
pub const MAX_INBOUND_CALLS: usize = 8;
/// Tell channels (targets) one member takes per link, small for the same
/// reason.
pub const MAX_TELL_CHANNELS: usize = 8;

pub fn members(capacity: usize, count_delay: Duration) -> Vec<Member> {
    NAMES
        .iter()
        .map(|name| {
            let node = Node::builder().name(*name).seed(7).build();
            let remote = Remote::builder(&node)
                .expose::<Echo>()
                .and_then(|b| b.expose::<Slow>())
                .and_then(|b| b.expose::<Budget>())
                .and_then(|b| b.expose::<Chain>())
                .and_then(|b| b.expose::<Divide>())
                .and_then(|b| b.expose::<Count>())
                .and_then(|b| b.expose::<PingV2>())
                .and_then(|b| b.expose_stream::<Numbers>())
                .and_then(|b| b.expose_duplex::<Shout>())
                .and_then(|b| b.expose::<Grow>())
                .and_then(|b| b.expose_stream::<Blobs>())
                .expect("expose")
                .max_inbound_calls(MAX_INBOUND_CALLS)
                .max_tell_channels(MAX_TELL_CHANNELS)
                .build();
            let stats = Arc::new(Stats::default());
            let svc = node
                .spawn_with(
                    SpawnOptions::new().name("svc").capacity(capacity),
                    Service {
                        stats: Arc::clone(&stats),
                        remote: Some(remote.clone()),
                        count_delay,
                    },
                )
                .expect("spawn");
            svc.expose::<Echo>().unwrap();
            svc.expose::<Slow>().unwrap();
            svc.expose::<Budget>().unwrap();
            svc.expose::<Chain>().unwrap();
            svc.expose::<Divide>().unwrap();
            svc.expose::<Count>().unwrap();
            svc.expose::<PingV2>().unwrap();
            svc.expose::<Numbers>().unwrap();
            svc.expose::<Duplex<Shout>>().unwrap();
            svc.expose::<Grow>().unwrap();
            svc.expose::<Blobs>().unwrap();
            Member {
                node,
                remote,
                stats,
                quic: None,
            }
        })
        .collect()
}

/// Which road a cluster uses.
#[derive(Debug, Clone, Copy)]
pub enum Road {
    Sim,
    Quic,
}

/// Three nodes a, b, c, each pair linked.
pub async fn cluster(
    road: Road,
    capacity: usize,
    count_delay: Duration,
) -> (Vec<Member>, Option<SimNetwork>) {
    let mut ms = members(capacity, count_delay);
    match road {
        Road::Sim => {
            let net = SimNetwork::with_clock(ms[0].node.clock().clone(), 42).max_frame(MAX_FRAME);
            for (i, j) in [(0, 1), (1, 2), (0, 2)] {
                let (x, y) = net.link(NAMES[i], NAMES[j]);
                let (r1, r2) = tokio::join!(ms[i].remote.attach(x), ms[j].remote.attach(y));
                r1.unwrap();
                r2.unwrap();
            }
            (ms, Some(net))
        }
        Road::Quic => {
            let ca = DevCa::generate("test CA").unwrap();
            for m in &mut ms {
                let name = m.node.name().to_owned();
                m.quic = Some(endpoint(&m.remote, &ca.issue(&name).unwrap(), &ca));
            }
            for (i, j) in [(0, 1), (1, 2), (0, 2)] {
                let addr = ms[j].quic.as_ref().unwrap().local_addr().unwrap();
                ms[i]
                    .quic
                    .as_ref()
                    .unwrap()
                    .connect_once(NAMES[j], addr)
                    .await
                    .unwrap();
                tokio::time::timeout(Duration::from_secs(5), ms[j].remote.connected(NAMES[i]))
                    .await
                    .unwrap();
            }
            (ms, None)
        }
    }
}

pub mod scenarios;

/// A QUIC endpoint for `remote`'s node presenting `cert` and trusting `trusted`.
pub fn endpoint(remote: &Remote, cert: &NodeCert, trusted: &DevCa) -> QuicEndpoint {
    let mut config =
        QuicConfig::from_pem(&cert.cert_pem, &cert.key_pem, &trusted.cert_pem).unwrap();
    config.max_frame = MAX_FRAME;
    QuicEndpoint::start(remote, config).unwrap()
}
