//! The plexus and floor workloads shared by `benches/local.rs` (root
//! package) and `benches/peers/benches/peers.rs` (peer comparison), included
//! by both with `#[path]` so that the two report the same thing.
//!
//! Every `bench_*` function registers one criterion id. Timing is done with
//! `iter_custom` inside a task spawned on the runtime (not in `block_on`,
//! which would run the producer on the calling thread, outside the two
//! workers); setup (runtime, node, actor) happens outside the timed part.

use std::future::Future;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use plexus::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// Messages per `tell` iteration.
pub(crate) const TELL_N: u64 = 100_000;
/// Sum of `0..TELL_N`: what every consumer must report.
pub(crate) const TELL_SUM: u64 = TELL_N * (TELL_N - 1) / 2;
/// Mailbox / channel capacity everywhere.
pub(crate) const CAP: usize = 1024;
/// Idle actors per `spawn` iteration.
pub(crate) const SPAWN_N: usize = 10_000;

/// The tokio multi-thread runtime of the `tell`, `ask` and `spawn` groups.
pub(crate) fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The runtime of the `tell_ct` group.
pub(crate) fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Group settings: few, long samples, so that a whole run takes minutes.
pub(crate) fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements: u64, long: bool) {
    group.throughput(Throughput::Elements(elements));
    group.warm_up_time(Duration::from_millis(500));
    if long {
        // One iteration is milliseconds: every sample does the same count.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
    } else {
        group.sample_size(30);
        group.measurement_time(Duration::from_secs(2));
    }
}

/// Run `make(iters)` as a task on `rt` and return the time it measured.
pub(crate) fn timed<F, Fut>(rt: &Runtime, iters: u64, make: F) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    let task = rt.spawn(make(iters));
    rt.block_on(task).expect("benchmark task panicked")
}

// ---------------------------------------------------------------- plexus

/// Sums what it is told.
pub(crate) struct Sum(u64);
impl Actor for Sum {}

/// Add to the sum (told).
pub(crate) struct Add(pub(crate) u64);
impl Message for Add {
    type Reply = ();
}
impl Handler<Add> for Sum {
    async fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
        self.0 += n;
    }
}

/// Return the sum and reset it (asked).
pub(crate) struct Take;
impl Message for Take {
    type Reply = u64;
}
impl Handler<Take> for Sum {
    async fn handle(&mut self, _: Take, _: &mut Context<Self>) -> u64 {
        std::mem::take(&mut self.0)
    }
}

/// Answers its argument.
pub(crate) struct Echo;
impl Actor for Echo {}

/// Asked: replies `n`.
pub(crate) struct Ping(pub(crate) u64);
impl Message for Ping {
    type Reply = u64;
}
impl Handler<Ping> for Echo {
    async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n
    }
}

/// Does nothing: the `spawn` workload.
pub(crate) struct Idle;
impl Actor for Idle {}

fn node(rt: &Runtime) -> Node {
    Node::builder()
        .mailbox_capacity(CAP)
        .runtime(rt.handle().clone())
        .build()
}

/// `tell`/`tell_ct` `plexus`: one producer task tells 100,000 `Add` to one
/// actor, then asks for the sum (which waits until all were handled).
pub(crate) fn bench_tell_plexus(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let node = node(rt);
    let sum = node
        .spawn_with(SpawnOptions::new().capacity(CAP), Sum(0))
        .expect("spawn");
    group.bench_function("plexus", |b| {
        b.iter_custom(|iters| {
            let sum = sum.clone();
            timed(rt, iters, move |iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    for i in 0..TELL_N {
                        sum.tell(Add(i)).await.expect("tell");
                    }
                    assert_eq!(sum.ask(Take).await.expect("ask"), TELL_SUM);
                }
                start.elapsed()
            })
        });
    });
    rt.block_on(node.shutdown(Duration::from_secs(5)));
}

/// `tell`/`tell_ct` `flume_floor`: the same over a bare flume bounded(1024)
/// channel to a consumer task, which reports the sum on a oneshot once it has
/// received 100,000. The consumer is spawned per iteration (about a
/// microsecond against milliseconds of sending).
pub(crate) fn bench_tell_flume(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    group.bench_function("flume_floor", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, |iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = flume::bounded::<u64>(CAP);
                    let (done_tx, done_rx) = oneshot::channel();
                    tokio::spawn(async move {
                        let mut sum = 0;
                        for _ in 0..TELL_N {
                            sum += rx.recv_async().await.expect("recv");
                        }
                        let _ = done_tx.send(sum);
                    });
                    for i in 0..TELL_N {
                        tx.send_async(i).await.expect("send");
                    }
                    assert_eq!(done_rx.await.expect("consumer"), TELL_SUM);
                }
                start.elapsed()
            })
        });
    });
}

/// `ask` `plexus`: sequential round trips to one actor.
pub(crate) fn bench_ask_plexus(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let node = node(rt);
    let echo = node
        .spawn_with(SpawnOptions::new().capacity(CAP), Echo)
        .expect("spawn");
    group.bench_function("plexus", |b| {
        b.iter_custom(|iters| {
            let echo = echo.clone();
            timed(rt, iters, move |iters| async move {
                let start = Instant::now();
                for i in 0..iters {
                    assert_eq!(echo.ask(Ping(i)).await.expect("ask"), i);
                }
                start.elapsed()
            })
        });
    });
    rt.block_on(node.shutdown(Duration::from_secs(5)));
}

type Request = (u64, oneshot::Sender<u64>);

/// `ask` `oneshot_floor`: tokio mpsc bounded(1024) to a server task that
/// answers on the request's oneshot.
pub(crate) fn bench_ask_oneshot(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let (tx, mut rx) = mpsc::channel::<Request>(CAP);
    rt.spawn(async move {
        while let Some((n, reply)) = rx.recv().await {
            let _ = reply.send(n);
        }
    });
    group.bench_function("oneshot_floor", |b| {
        b.iter_custom(|iters| {
            let tx = tx.clone();
            timed(rt, iters, move |iters| async move {
                let start = Instant::now();
                for i in 0..iters {
                    let (reply, answer) = oneshot::channel();
                    tx.send((i, reply)).await.expect("send");
                    assert_eq!(answer.await.expect("reply"), i);
                }
                start.elapsed()
            })
        });
    });
}

/// `spawn` `plexus`: spawn 10,000 idle actors on one long-lived node, then
/// stop each and await each `terminated()`. This per-actor stop-and-join is
/// what the floor and the peers do too (drop the sender / stop, then join
/// each); a fresh node with `Node::shutdown` per iteration would add the
/// node's construction and its supervision-tree walk, which no peer pays.
pub(crate) fn bench_spawn_plexus(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    let node = node(rt);
    group.bench_function("plexus", |b| {
        b.iter_custom(|iters| {
            let node = node.clone();
            timed(rt, iters, move |iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let refs: Vec<ActorRef<Idle>> =
                        (0..SPAWN_N).map(|_| node.spawn(Idle)).collect();
                    let dead: Vec<_> = refs
                        .iter()
                        .map(|a| {
                            let t = a.terminated();
                            a.stop();
                            t
                        })
                        .collect();
                    for t in dead {
                        t.await;
                    }
                }
                start.elapsed()
            })
        });
    });
    rt.block_on(node.shutdown(Duration::from_secs(5)));
}

/// `spawn` `tokio_flume_floor`: 10,000 tokio tasks each owning a flume
/// bounded(1024) receiver and awaiting `recv`; dropping the senders stops
/// them; then join each.
pub(crate) fn bench_spawn_floor(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    group.bench_function("tokio_flume_floor", |b| {
        b.iter_custom(|iters| {
            timed(rt, iters, |iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut senders = Vec::with_capacity(SPAWN_N);
                    let mut tasks = Vec::with_capacity(SPAWN_N);
                    for _ in 0..SPAWN_N {
                        let (tx, rx) = flume::bounded::<u64>(CAP);
                        tasks.push(tokio::spawn(async move {
                            while rx.recv_async().await.is_ok() {}
                        }));
                        senders.push(tx);
                    }
                    drop(senders);
                    for t in tasks {
                        t.await.expect("task");
                    }
                }
                start.elapsed()
            })
        });
    });
}
