//! Registry, timers on the manual clock, shutdown, metrics, tracing spans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use plexus_runtime::clock::ManualClock;
use plexus_runtime::prelude::*;
use plexus_runtime::{LookupError, TimerId};

#[tokio::test]
async fn registry_finds_by_name_refuses_duplicates_and_forgets_the_dead() {
    let node = Node::builder().build();
    let a = node
        .spawn_with(SpawnOptions::new().name("pinger"), Idle)
        .unwrap();
    assert_eq!(node.lookup::<Idle>("pinger").unwrap(), a);
    assert!(matches!(
        node.lookup::<Gated>("pinger"),
        Err(LookupError::WrongType { .. })
    ));
    assert!(matches!(
        node.lookup::<Idle>("nobody"),
        Err(LookupError::NotFound(_))
    ));
    assert_eq!(
        node.spawn_with(SpawnOptions::new().name("pinger"), Idle)
            .unwrap_err(),
        SpawnError::NameTaken("pinger".into())
    );

    // Recipients only for exposed message types.
    assert!(matches!(
        node.lookup_recipient::<Ping>("pinger"),
        Err(LookupError::NotExposed { .. })
    ));
    a.expose::<Ping>().unwrap();
    let r = node.lookup_recipient::<Ping>("pinger").unwrap();
    assert_eq!(r.ask(Ping).await.unwrap(), "pong");
    assert!(
        node.spawn(Idle).expose::<Ping>().is_err(),
        "unnamed actors cannot be exposed"
    );

    assert_eq!(node.registry().names(), vec![Arc::<str>::from("pinger")]);
    a.stop();
    a.terminated().await;
    assert!(matches!(
        node.lookup::<Idle>("pinger"),
        Err(LookupError::NotFound(_))
    ));
    assert!(node.registry().names().is_empty());
    // The name is free again.
    node.spawn_with(SpawnOptions::new().name("pinger"), Idle)
        .unwrap();
}

struct Ticker {
    ticks: u32,
    once: u32,
    cancel_me: Option<TimerId>,
}
impl Actor for Ticker {
    async fn started(&mut self, cx: &mut Context<Self>) {
        cx.run_interval(Duration::from_secs(1), || Tick);
        cx.run_later(Duration::from_millis(1500), Once);
        self.cancel_me = Some(cx.run_later(Duration::from_secs(2), Once));
    }
}
struct Tick;
impl Message for Tick {
    type Reply = ();
}
struct Once;
impl Message for Once {
    type Reply = ();
}
impl Handler<Tick> for Ticker {
    async fn handle(&mut self, _: Tick, cx: &mut Context<Self>) {
        self.ticks += 1;
        if let Some(id) = self.cancel_me.take() {
            assert!(cx.cancel_timer(id));
        }
    }
}
impl Handler<Once> for Ticker {
    async fn handle(&mut self, _: Once, _: &mut Context<Self>) {
        self.once += 1;
    }
}
struct Count;
impl Message for Count {
    type Reply = (u32, u32);
}
impl Handler<Count> for Ticker {
    async fn handle(&mut self, _: Count, _: &mut Context<Self>) -> (u32, u32) {
        (self.ticks, self.once)
    }
}

#[tokio::test]
async fn the_manual_clock_drives_timers_without_sleeping() {
    let clock = ManualClock::new();
    let node = Node::builder().clock(clock.clone()).build();
    let t = node.spawn(Ticker {
        ticks: 0,
        once: 0,
        cancel_me: None,
    });
    assert_eq!(t.ask(Count).await.unwrap(), (0, 0));
    clock.advance(Duration::from_millis(999));
    assert_eq!(t.ask(Count).await.unwrap(), (0, 0));
    clock.advance(Duration::from_millis(1));
    assert_eq!(t.ask(Count).await.unwrap(), (1, 0));
    // 3.5 s at once: ticks at 2 s and 3 s, the one-shot at 1.5 s; the 2 s
    // one-shot was cancelled by the first tick.
    clock.advance(Duration::from_millis(2500));
    assert_eq!(t.ask(Count).await.unwrap(), (3, 1));
}

#[tokio::test]
async fn shutdown_drains_queued_messages_before_stopping() {
    let node = Node::builder().build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);
    let mut asks = Vec::new();
    for n in 0..5 {
        let a = a.clone();
        asks.push(tokio::spawn(async move { a.ask(Work(n)).await }));
    }
    started.recv_async().await.unwrap();
    while a.mailbox_len() < 4 {
        tokio::task::yield_now().await;
    }
    let shutdown = {
        let node = node.clone();
        tokio::spawn(async move { node.shutdown(Duration::from_secs(30)).await })
    };
    while !node.is_shutting_down() {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        a.tell(Work(99)).await,
        Err(SendError::Closed { .. })
    ));
    gate.add_permits(5);
    let report = shutdown.await.unwrap();
    assert_eq!((report.stopped, report.killed, report.aborted), (1, 0, 0));
    for (n, ask) in asks.into_iter().enumerate() {
        assert_eq!(ask.await.unwrap(), Ok(n as u64));
    }
    assert_eq!(a.terminated().await.reason, StopReason::Shutdown);
    assert_eq!(node.actor_count(), 0);
}

#[tokio::test]
async fn shutdown_kills_then_aborts_what_does_not_finish_in_time() {
    let node = Node::builder()
        .kill_grace(Duration::from_millis(20))
        .build();
    // Never opened: the handler never returns.
    let (g, _never_opened, started) = gated();
    let stuck = node.spawn(g);
    let first = {
        let a = stuck.clone();
        tokio::spawn(async move { a.ask(Work(1)).timeout(Duration::from_secs(60)).await })
    };
    started.recv_async().await.unwrap();
    let queued = {
        let a = stuck.clone();
        tokio::spawn(async move { a.ask(Work(2)).timeout(Duration::from_secs(60)).await })
    };
    while stuck.mailbox_len() == 0 {
        tokio::task::yield_now().await;
    }
    let fine = node.spawn(Idle);
    let report = node.shutdown(Duration::from_millis(20)).await;
    assert_eq!((report.stopped, report.killed, report.aborted), (1, 0, 1));
    assert_eq!(
        first.await.unwrap(),
        Err(AskError::Stopped { id: stuck.id() })
    );
    assert_eq!(
        queued.await.unwrap(),
        Err(AskError::Stopped { id: stuck.id() })
    );
    assert_eq!(stuck.terminated().await.reason, StopReason::Shutdown);
    assert_eq!(fine.terminated().await.reason, StopReason::Shutdown);
}

#[tokio::test]
async fn metrics_count_per_actor_and_per_node() {
    let node = Node::builder().handling_time_sample(4).build();
    let a = node
        .spawn_with(SpawnOptions::new().name("m").capacity(8), Idle)
        .unwrap();
    for _ in 0..10 {
        a.ask(Ping).await.unwrap();
    }
    let m = a.metrics();
    assert_eq!(m.handled, 10);
    assert_eq!(m.mailbox_capacity, Some(8));
    // One in four is timed: messages 0, 4 and 8.
    assert_eq!(m.handling_time.count(), 3);
    assert_eq!(m.name.as_deref(), Some("m"));
    let n = node.metrics();
    assert_eq!(n.actors.len(), 1);
    assert_eq!(n.handled, 10);
    assert_eq!(n.spawned, 1);
}

#[tokio::test]
async fn same_seed_same_random_streams() {
    struct Roll;
    impl Actor for Roll {}
    struct Draw;
    impl Message for Draw {
        type Reply = u64;
    }
    impl Handler<Draw> for Roll {
        async fn handle(&mut self, _: Draw, cx: &mut Context<Self>) -> u64 {
            cx.rng().u64(..)
        }
    }
    async fn draws(seed: u64) -> Vec<u64> {
        let node = Node::builder().seed(seed).build();
        let a = node.spawn(Roll);
        let b = node.spawn(Roll);
        vec![
            a.ask(Draw).await.unwrap(),
            b.ask(Draw).await.unwrap(),
            a.ask(Draw).await.unwrap(),
            node.random_u64(),
        ]
    }
    assert_eq!(draws(7).await, draws(7).await);
    assert_ne!(draws(7).await, draws(8).await);
}

#[tokio::test]
async fn new_traces_come_from_the_seed() {
    let traces = |seed: u64| {
        let node = Node::builder().seed(seed).build();
        [node.new_trace(), node.new_trace()]
    };
    let [a, b] = traces(7);
    assert_eq!([a, b], traces(7));
    assert_ne!(a.trace_id, b.trace_id);
    assert_ne!(traces(8)[0].trace_id, a.trace_id);
    assert!(a.sampled && a.span_id != 0 && b.span_id != 0);
}

/// `Duration::MAX` is how callers say "no limit": every deadline computed
/// from it saturates instead of overflowing `Instant` (which would panic).
#[tokio::test]
async fn durations_meant_as_no_limit_never_overflow() {
    struct Patient;
    impl Actor for Patient {
        async fn started(&mut self, cx: &mut Context<Self>) {
            cx.run_later(Duration::MAX, Once);
            cx.run_interval(Duration::MAX, || Tick);
        }
    }
    impl Handler<Once> for Patient {
        async fn handle(&mut self, _: Once, _: &mut Context<Self>) {
            panic!("a timer set for Duration::MAX fired");
        }
    }
    impl Handler<Tick> for Patient {
        async fn handle(&mut self, _: Tick, _: &mut Context<Self>) {
            panic!("an interval of Duration::MAX ticked");
        }
    }
    impl Handler<Ping> for Patient {
        async fn handle(&mut self, _: Ping, cx: &mut Context<Self>) -> &'static str {
            assert!(
                cx.remaining()
                    .is_some_and(|r| r > Duration::from_secs(86_400 * 365))
            );
            "pong"
        }
    }
    let clock = ManualClock::new();
    let node = Node::builder()
        .clock(clock.clone())
        .ask_timeout(Duration::MAX)
        .kill_grace(Duration::MAX)
        .build();
    let p = node.spawn(Patient);
    assert_eq!(p.ask(Ping).await.unwrap(), "pong");
    assert_eq!(p.ask(Ping).timeout(Duration::MAX).await.unwrap(), "pong");
    clock.advance(Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(p.ask(Ping).await.unwrap(), "pong");
    let report = node.shutdown(Duration::MAX).await;
    assert_eq!((report.stopped, report.killed, report.aborted), (1, 0, 0));
}
