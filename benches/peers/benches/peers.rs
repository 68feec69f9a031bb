//! plexus, its floors, and the peer frameworks on the same four workloads:
//!
//! ```text
//! cargo bench --manifest-path benches/peers/Cargo.toml --bench peers
//! ```
//!
//! Groups `tell`, `tell_ct`, `ask`, `spawn`; ids `plexus`, the floor
//! (`flume_floor`, `oneshot_floor`, `tokio_flume_floor`), `actix`, `ractor`,
//! `kameo`, `xtra`. The plexus and floor workloads are those of
//! `benches/local.rs` (shared through `workloads.rs`).
//!
//! How each peer is driven (as its docs recommend for speed):
//!
//! - actix: its own `System`. `tell`: the actor in its own `Arbiter` (the
//!   second thread, as the two tokio workers), the producer `try_send`s and,
//!   when the 1024-message mailbox is full, parks in `send(..).await` (which
//!   returns once that message is handled; `do_send` would ignore the
//!   capacity, a yield-and-retry loop spins). `tell_ct` and `ask`: actor
//!   and caller on the system arbiter (actix's single-threaded model; a
//!   tokio ping-pong pair also tends to stay on one worker). `spawn`: `Actor::start`, drop the addresses, a
//!   countdown in `stopped` reports when all have stopped (actix has no
//!   per-actor join).
//! - ractor: `cast` / `call`; its mailbox is unbounded (no capacity in
//!   0.16), so its producer never waits: this favours ractor in `tell`.
//!   `spawn`: `Actor::spawn`, `stop`, await each join handle.
//! - kameo: bounded(1024) mailbox, `tell(..).send()`, `ask`. `spawn`:
//!   `spawn_with_mailbox`, `stop_gracefully`, `wait_for_shutdown`.
//! - xtra: bounded(1024) mailbox, `send(..).detach()` (enqueue only) for
//!   tell, `send` for ask. Its 0.6 mailbox is a binary heap by priority and
//!   does not keep send order among equal priorities, so the `Add`s get
//!   priority 1 and the final `Take` 0 to be handled last. `spawn`:
//!   `spawn_tokio`, drop the addresses, await each `join()`.
//!
//! Optional tracing features of ractor and kameo are off.
#![allow(clippy::expect_used, missing_docs)]

use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

#[path = "../workloads.rs"]
mod workloads;

use workloads::*;

type Group<'a> = BenchmarkGroup<'a, WallTime>;

// ------------------------------------------------------------------ actix

mod actix_peer {
    use std::cell::Cell;
    use std::rc::Rc;

    use actix::prelude::*;
    use tokio::sync::oneshot;

    use super::*;

    pub(crate) struct Sum(u64);
    impl Actor for Sum {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    pub(crate) struct Add(u64);
    impl Handler<Add> for Sum {
        type Result = ();
        fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
            self.0 += n;
        }
    }

    #[derive(Message)]
    #[rtype(result = "u64")]
    pub(crate) struct Take;
    impl Handler<Take> for Sum {
        type Result = u64;
        fn handle(&mut self, _: Take, _: &mut Context<Self>) -> u64 {
            std::mem::take(&mut self.0)
        }
    }

    pub(crate) struct Echo;
    impl Actor for Echo {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "u64")]
    pub(crate) struct Ping(u64);
    impl Handler<Ping> for Echo {
        type Result = u64;
        fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
            n
        }
    }

    /// Counts stopped actors down; fires when the last one has stopped.
    pub(crate) struct Latch {
        left: Cell<usize>,
        done: Cell<Option<oneshot::Sender<()>>>,
    }

    pub(crate) struct Idle(Rc<Latch>);
    impl Actor for Idle {
        type Context = Context<Self>;
        fn stopped(&mut self, _: &mut Context<Self>) {
            let left = self.0.left.get() - 1;
            self.0.left.set(left);
            if left == 0 {
                if let Some(done) = self.0.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    fn sum(ctx: &mut Context<Sum>) -> Sum {
        ctx.set_mailbox_capacity(CAP);
        Sum(0)
    }

    /// `own_arbiter`: the actor on a second thread.
    pub(crate) fn tell(group: &mut Group<'_>, own_arbiter: bool) {
        let sys = System::new();
        let (arbiter, addr) = sys.block_on(async {
            if own_arbiter {
                let arbiter = Arbiter::new();
                let addr = Sum::start_in_arbiter(&arbiter.handle(), sum);
                (Some(arbiter), addr)
            } else {
                (None, Sum::create(sum))
            }
        });
        group.bench_function("actix", |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for i in 0..TELL_N {
                            match addr.try_send(Add(i)) {
                                Ok(()) => {}
                                // Full: park until there is room (`send` waits for
                                // room, then for this message's handling).
                                Err(SendError::Full(msg)) => addr.send(msg).await.expect("send"),
                                Err(SendError::Closed(_)) => panic!("actix actor closed"),
                            }
                        }
                        assert_eq!(addr.send(Take).await.expect("ask"), TELL_SUM);
                    }
                    start.elapsed()
                })
            });
        });
        if let Some(arbiter) = arbiter {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }

    pub(crate) fn ask(group: &mut Group<'_>) {
        let sys = System::new();
        let addr = sys.block_on(async {
            Echo::create(|ctx| {
                ctx.set_mailbox_capacity(CAP);
                Echo
            })
        });
        group.bench_function("actix", |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        assert_eq!(addr.send(Ping(i)).await.expect("ask"), i);
                    }
                    start.elapsed()
                })
            });
        });
    }

    pub(crate) fn spawn(group: &mut Group<'_>) {
        let sys = System::new();
        group.bench_function("actix", |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (done, all_stopped) = oneshot::channel();
                        let latch = Rc::new(Latch {
                            left: Cell::new(SPAWN_N),
                            done: Cell::new(Some(done)),
                        });
                        let addrs: Vec<Addr<Idle>> = (0..SPAWN_N)
                            .map(|_| Idle(Rc::clone(&latch)).start())
                            .collect();
                        drop(addrs);
                        all_stopped.await.expect("actix actors stopped");
                    }
                    start.elapsed()
                })
            });
        });
    }
}

// ----------------------------------------------------------------- ractor

mod ractor_peer {
    use ractor::rpc::CallResult;
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::*;

    pub(crate) struct Sum;
    pub(crate) enum SumMsg {
        Add(u64),
        Take(RpcReplyPort<u64>),
    }
    impl Actor for Sum {
        type Msg = SumMsg;
        type State = u64;
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<SumMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }
        async fn handle(
            &self,
            _: ActorRef<SumMsg>,
            msg: SumMsg,
            sum: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                SumMsg::Add(n) => *sum += n,
                SumMsg::Take(reply) => {
                    let _ = reply.send(std::mem::take(sum));
                }
            }
            Ok(())
        }
    }

    pub(crate) struct Echo;
    pub(crate) struct Ping(u64, RpcReplyPort<u64>);
    impl Actor for Echo {
        type Msg = Ping;
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
        async fn handle(
            &self,
            _: ActorRef<Ping>,
            Ping(n, reply): Ping,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = reply.send(n);
            Ok(())
        }
    }

    pub(crate) struct Idle;
    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    fn success<T>(r: CallResult<T>) -> T {
        match r {
            CallResult::Success(v) => v,
            _ => panic!("ractor call failed"),
        }
    }

    pub(crate) fn tell(group: &mut Group<'_>, rt: &Runtime) {
        let (actor, handle) = rt.block_on(Actor::spawn(None, Sum, ())).expect("spawn");
        group.bench_function("ractor", |b| {
            b.iter_custom(|iters| {
                let actor = actor.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for i in 0..TELL_N {
                            actor.cast(SumMsg::Add(i)).expect("cast");
                        }
                        let sum = actor.call(SumMsg::Take, None).await.expect("call");
                        assert_eq!(success(sum), TELL_SUM);
                    }
                    start.elapsed()
                })
            });
        });
        actor.stop(None);
        let _ = rt.block_on(handle);
    }

    pub(crate) fn ask(group: &mut Group<'_>, rt: &Runtime) {
        let (actor, handle) = rt.block_on(Actor::spawn(None, Echo, ())).expect("spawn");
        group.bench_function("ractor", |b| {
            b.iter_custom(|iters| {
                let actor = actor.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        let n = actor.call(|r| Ping(i, r), None).await.expect("call");
                        assert_eq!(success(n), i);
                    }
                    start.elapsed()
                })
            });
        });
        actor.stop(None);
        let _ = rt.block_on(handle);
    }

    pub(crate) fn spawn(group: &mut Group<'_>, rt: &Runtime) {
        group.bench_function("ractor", |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut actors = Vec::with_capacity(SPAWN_N);
                        for _ in 0..SPAWN_N {
                            actors.push(Actor::spawn(None, Idle, ()).await.expect("spawn"));
                        }
                        for (actor, _) in &actors {
                            actor.stop(None);
                        }
                        for (_, handle) in actors {
                            handle.await.expect("join");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
}

// ------------------------------------------------------------------ kameo

mod kameo_peer {
    use kameo::Actor;
    use kameo::actor::{ActorRef, Spawn};
    use kameo::mailbox;
    use kameo::message::{Context, Message};

    use super::*;

    #[derive(Actor)]
    pub(crate) struct Sum(u64);
    pub(crate) struct Add(u64);
    pub(crate) struct Take;
    impl Message<Add> for Sum {
        type Reply = ();
        async fn handle(&mut self, Add(n): Add, _: &mut Context<Self, ()>) {
            self.0 += n;
        }
    }
    impl Message<Take> for Sum {
        type Reply = u64;
        async fn handle(&mut self, _: Take, _: &mut Context<Self, u64>) -> u64 {
            std::mem::take(&mut self.0)
        }
    }

    #[derive(Actor)]
    pub(crate) struct Echo;
    pub(crate) struct Ping(u64);
    impl Message<Ping> for Echo {
        type Reply = u64;
        async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self, u64>) -> u64 {
            n
        }
    }

    #[derive(Actor)]
    pub(crate) struct Idle;

    pub(crate) fn tell(group: &mut Group<'_>, rt: &Runtime) {
        let actor: ActorRef<Sum> =
            rt.block_on(async { Sum::spawn_with_mailbox(Sum(0), mailbox::bounded(CAP)) });
        group.bench_function("kameo", |b| {
            b.iter_custom(|iters| {
                let actor = actor.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for i in 0..TELL_N {
                            actor.tell(Add(i)).send().await.expect("tell");
                        }
                        assert_eq!(actor.ask(Take).send().await.expect("ask"), TELL_SUM);
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(async {
            let _ = actor.stop_gracefully().await;
            actor.wait_for_shutdown().await;
        });
    }

    pub(crate) fn ask(group: &mut Group<'_>, rt: &Runtime) {
        let actor: ActorRef<Echo> =
            rt.block_on(async { Echo::spawn_with_mailbox(Echo, mailbox::bounded(CAP)) });
        group.bench_function("kameo", |b| {
            b.iter_custom(|iters| {
                let actor = actor.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        assert_eq!(actor.ask(Ping(i)).send().await.expect("ask"), i);
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(async {
            let _ = actor.stop_gracefully().await;
            actor.wait_for_shutdown().await;
        });
    }

    pub(crate) fn spawn(group: &mut Group<'_>, rt: &Runtime) {
        group.bench_function("kameo", |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let actors: Vec<ActorRef<Idle>> = (0..SPAWN_N)
                            .map(|_| Idle::spawn_with_mailbox(Idle, mailbox::bounded(CAP)))
                            .collect();
                        for a in &actors {
                            a.stop_gracefully().await.expect("stop");
                        }
                        for a in &actors {
                            a.wait_for_shutdown().await;
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
}

// ------------------------------------------------------------------- xtra

mod xtra_peer {
    use xtra::{Actor, Address, Context, Handler, Mailbox};

    use super::*;

    pub(crate) struct Sum(u64);
    impl Actor for Sum {
        type Stop = ();
        async fn stopped(self) {}
    }
    pub(crate) struct Add(u64);
    pub(crate) struct Take;
    impl Handler<Add> for Sum {
        type Return = ();
        async fn handle(&mut self, Add(n): Add, _: &mut Context<Self>) {
            self.0 += n;
        }
    }
    impl Handler<Take> for Sum {
        type Return = u64;
        async fn handle(&mut self, _: Take, _: &mut Context<Self>) -> u64 {
            std::mem::take(&mut self.0)
        }
    }

    pub(crate) struct Echo;
    impl Actor for Echo {
        type Stop = ();
        async fn stopped(self) {}
    }
    pub(crate) struct Ping(u64);
    impl Handler<Ping> for Echo {
        type Return = u64;
        async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
            n
        }
    }

    pub(crate) struct Idle;
    impl Actor for Idle {
        type Stop = ();
        async fn stopped(self) {}
    }

    pub(crate) fn tell(group: &mut Group<'_>, rt: &Runtime) {
        let addr: Address<Sum> =
            rt.block_on(async { xtra::spawn_tokio(Sum(0), Mailbox::bounded(CAP)) });
        group.bench_function("xtra", |b| {
            b.iter_custom(|iters| {
                let addr = addr.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for i in 0..TELL_N {
                            // Priority 1 (Take has 0): xtra's queue is a binary heap by
                            // priority, not FIFO among equals, so without it `Take`
                            // may overtake queued `Add`s. The receiver of the
                            // (unit) reply is dropped unawaited.
                            drop(addr.send(Add(i)).priority(1).detach().await.expect("send"));
                        }
                        assert_eq!(addr.send(Take).await.expect("ask"), TELL_SUM);
                    }
                    start.elapsed()
                })
            });
        });
    }

    pub(crate) fn ask(group: &mut Group<'_>, rt: &Runtime) {
        let addr: Address<Echo> =
            rt.block_on(async { xtra::spawn_tokio(Echo, Mailbox::bounded(CAP)) });
        group.bench_function("xtra", |b| {
            b.iter_custom(|iters| {
                let addr = addr.clone();
                timed(rt, iters, move |iters| async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        assert_eq!(addr.send(Ping(i)).await.expect("ask"), i);
                    }
                    start.elapsed()
                })
            });
        });
    }

    pub(crate) fn spawn(group: &mut Group<'_>, rt: &Runtime) {
        group.bench_function("xtra", |b| {
            b.iter_custom(|iters| {
                timed(rt, iters, |iters| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let addrs: Vec<Address<Idle>> = (0..SPAWN_N)
                            .map(|_| xtra::spawn_tokio(Idle, Mailbox::bounded(CAP)))
                            .collect();
                        let joins: Vec<_> = addrs.iter().map(Address::join).collect();
                        drop(addrs);
                        for j in joins {
                            j.await;
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
}

// ----------------------------------------------------------------- groups

/// `tell` and `tell_ct` run the same workload; only the runtime differs
/// (actix brings its own system, told whether to use two workers).
fn tell_group(c: &mut Criterion, name: &str, rt: &Runtime, multi: bool) {
    let mut group = c.benchmark_group(name);
    configure(&mut group, TELL_N, true);
    bench_tell_plexus(&mut group, rt);
    bench_tell_flume(&mut group, rt);
    actix_peer::tell(&mut group, multi);
    ractor_peer::tell(&mut group, rt);
    kameo_peer::tell(&mut group, rt);
    xtra_peer::tell(&mut group, rt);
    group.finish();
}

fn tell(c: &mut Criterion) {
    tell_group(c, "tell", &multi_thread(), true);
}

fn tell_ct(c: &mut Criterion) {
    tell_group(c, "tell_ct", &current_thread(), false);
}

fn ask(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("ask");
    configure(&mut group, 1, false);
    bench_ask_plexus(&mut group, &rt);
    bench_ask_oneshot(&mut group, &rt);
    actix_peer::ask(&mut group);
    ractor_peer::ask(&mut group, &rt);
    kameo_peer::ask(&mut group, &rt);
    xtra_peer::ask(&mut group, &rt);
    group.finish();
}

fn spawn(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("spawn");
    configure(&mut group, SPAWN_N as u64, true);
    bench_spawn_plexus(&mut group, &rt);
    bench_spawn_floor(&mut group, &rt);
    actix_peer::spawn(&mut group);
    ractor_peer::spawn(&mut group, &rt);
    kameo_peer::spawn(&mut group, &rt);
    xtra_peer::spawn(&mut group, &rt);
    group.finish();
}

criterion_group!(benches, tell, tell_ct, ask, spawn);
criterion_main!(benches);
