//! Supervision: restarts keep the mailbox and the ref, intensity escalates,
//! all-for-one restarts siblings, death watch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use plexus_runtime::clock::Clock;
use plexus_runtime::prelude::*;
use plexus_runtime::supervision::{Backoff, SupervisionStrategy};
use tokio::sync::Semaphore;

/// Panics on `Boom`, counts `Ok`s in its own (reset-on-restart) state.
struct Fragile {
    handled: u32,
}
impl Actor for Fragile {}

struct Boom;
impl Message for Boom {
    type Reply = ();
}
impl Handler<Boom> for Fragile {
    async fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom");
    }
}

struct Ok_(u32);
impl Message for Ok_ {
    type Reply = (u32, u32);
}
impl Handler<Ok_> for Fragile {
    async fn handle(&mut self, Ok_(n): Ok_, cx: &mut Context<Self>) -> (u32, u32) {
        self.handled += 1;
        (n, cx.restart_count())
    }
}

fn quick(strategy: SupervisionStrategy) -> SupervisionStrategy {
    strategy.backoff(Backoff::none())
}

#[tokio::test]
async fn a_panicking_handler_fails_its_asker_and_the_actor_restarts_with_its_queue() {
    let node = Node::builder()
        .supervision(quick(
            SupervisionStrategy::one_for_one().intensity(10, Duration::from_secs(60)),
        ))
        .build();
    let a = node
        .spawn_factory(SpawnOptions::new().capacity(16), || Fragile { handled: 0 })
        .unwrap();

    // Queue: ok(1), boom, ok(2), ok(3) — all sent before any is handled
    // would need a gate; instead send them concurrently and check each.
    let boom = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Boom).await })
    };
    let err = boom.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, AskError::HandlerPanicked { message, .. } if &**message == "boom"),
        "{err:?}"
    );
    // Same ref, new value, restart counted.
    assert_eq!(a.ask(Ok_(1)).await.unwrap(), (1, 1));
    assert_eq!(a.metrics().restarts, 1);
    assert!(a.is_alive());
}

#[tokio::test]
async fn messages_queued_behind_a_panic_are_kept_across_the_restart() {
    struct Gate {
        gate: Arc<Semaphore>,
        log: flume::Sender<u64>,
    }
    impl Actor for Gate {}
    enum Step {
        Wait,
        Panic,
        Record(u64),
    }
    impl Message for Step {
        type Reply = ();
    }
    impl Handler<Step> for Gate {
        async fn handle(&mut self, s: Step, _: &mut Context<Self>) {
            match s {
                Step::Wait => self.gate.acquire().await.unwrap().forget(),
                Step::Panic => panic!("poison"),
                Step::Record(n) => {
                    let _ = self.log.send(n);
                }
            }
        }
    }
    let node = Node::builder()
        .supervision(quick(
            SupervisionStrategy::one_for_one().intensity(10, Duration::from_secs(60)),
        ))
        .build();
    let gate = Arc::new(Semaphore::new(0));
    let (log_tx, log) = flume::unbounded();
    let g2 = gate.clone();
    let a = node
        .spawn_factory(SpawnOptions::new(), move || Gate {
            gate: g2.clone(),
            log: log_tx.clone(),
        })
        .unwrap();
    a.tell(Step::Wait).await.unwrap();
    a.tell(Step::Record(1)).await.unwrap();
    a.tell(Step::Panic).await.unwrap();
    a.tell(Step::Record(2)).await.unwrap();
    a.tell(Step::Record(3)).await.unwrap();
    // Once the handler holds `Wait`, the other four are queued behind it.
    while a.mailbox_len() != 4 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    let got: Vec<u64> = vec![
        log.recv_async().await.unwrap(),
        log.recv_async().await.unwrap(),
        log.recv_async().await.unwrap(),
    ];
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(a.metrics().restarts, 1);
}

#[tokio::test]
async fn a_value_spawned_actor_that_panics_stops_and_rejects_its_queue() {
    let node = Node::builder().build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);
    struct Explode;
    impl Message for Explode {
        type Reply = ();
    }
    impl Handler<Explode> for Gated {
        async fn handle(&mut self, _: Explode, _: &mut Context<Self>) {
            panic!("kaput");
        }
    }
    a.tell(Work(1)).await.unwrap();
    started.recv_async().await.unwrap();
    let explode = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Explode).await })
    };
    while a.mailbox_len() == 0 {
        tokio::task::yield_now().await;
    }
    let after = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Work(2)).await })
    };
    while a.mailbox_len() < 2 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    assert!(matches!(
        explode.await.unwrap(),
        Err(AskError::HandlerPanicked { .. })
    ));
    assert_eq!(after.await.unwrap(), Err(AskError::Stopped { id: a.id() }));
    assert!(matches!(
        a.terminated().await.reason,
        StopReason::Panicked { .. }
    ));
}

/// A supervisor that spawns two restartable children on start.
struct Parent {
    strategy: SupervisionStrategy,
    kids: Option<(ActorRef<Fragile>, ActorRef<Fragile>)>,
}
impl Actor for Parent {
    async fn started(&mut self, cx: &mut Context<Self>) {
        let _ = &self.strategy;
        let a = cx
            .spawn_child_factory(SpawnOptions::new(), || Fragile { handled: 0 })
            .unwrap();
        let b = cx
            .spawn_child_factory(SpawnOptions::new(), || Fragile { handled: 0 })
            .unwrap();
        self.kids = Some((a, b));
    }
}
struct Kids;
impl Message for Kids {
    type Reply = (ActorRef<Fragile>, ActorRef<Fragile>);
}
impl Handler<Kids> for Parent {
    async fn handle(
        &mut self,
        _: Kids,
        _: &mut Context<Self>,
    ) -> (ActorRef<Fragile>, ActorRef<Fragile>) {
        self.kids.clone().unwrap()
    }
}

fn spawn_parent(node: &Node, strategy: SupervisionStrategy) -> ActorRef<Parent> {
    node.spawn_with(
        SpawnOptions::new().supervise_children(strategy.clone()),
        Parent {
            strategy,
            kids: None,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn all_for_one_restarts_the_siblings() {
    let node = Node::builder().build();
    let parent = spawn_parent(
        &node,
        quick(SupervisionStrategy::all_for_one().intensity(5, Duration::from_secs(60))),
    );
    let (a, b) = parent.ask(Kids).await.unwrap();
    assert_eq!(b.ask(Ok_(0)).await.unwrap(), (0, 0));
    assert!(a.ask(Boom).await.is_err());
    assert_eq!(
        a.ask(Ok_(1)).await.unwrap(),
        (1, 1),
        "the failed child restarted"
    );
    // The sibling's restart is on its priority lane, handled before the ask.
    assert_eq!(
        b.ask(Ok_(2)).await.unwrap(),
        (2, 1),
        "the sibling restarted too"
    );
}

#[tokio::test]
async fn one_for_one_leaves_the_siblings_alone() {
    let node = Node::builder().build();
    let parent = spawn_parent(
        &node,
        quick(SupervisionStrategy::one_for_one().intensity(5, Duration::from_secs(60))),
    );
    let (a, b) = parent.ask(Kids).await.unwrap();
    assert!(a.ask(Boom).await.is_err());
    assert_eq!(a.ask(Ok_(1)).await.unwrap(), (1, 1));
    assert_eq!(b.ask(Ok_(2)).await.unwrap(), (2, 0));
}

#[tokio::test]
async fn exceeding_restart_intensity_escalates_to_the_parent() {
    let node = Node::builder().build();
    let parent = spawn_parent(
        &node,
        quick(SupervisionStrategy::one_for_one().intensity(2, Duration::from_secs(60))),
    );
    let (a, b) = parent.ask(Kids).await.unwrap();
    let parent_down = parent.terminated();
    let a_down = a.terminated();
    let b_down = b.terminated();
    for _ in 0..2 {
        assert!(a.ask(Boom).await.is_err());
        assert!(a.is_alive());
    }
    // The third failure within the window exceeds the intensity.
    assert!(matches!(
        a.ask(Boom).await,
        Err(AskError::HandlerPanicked { .. })
    ));
    assert!(matches!(
        a_down.await.reason,
        StopReason::RestartLimitExceeded { .. }
    ));
    // The parent (not restartable itself) fails in turn and takes b with it.
    let p = parent_down.await;
    assert!(
        matches!(p.reason, StopReason::RestartLimitExceeded { .. }),
        "{p:?}"
    );
    assert_eq!(b_down.await.reason, StopReason::SupervisorStopped);
}

#[tokio::test]
async fn restart_backoff_waits_on_the_node_clock() {
    let clock = plexus_runtime::clock::ManualClock::new();
    let node = Node::builder()
        .clock(clock.clone())
        .supervision(
            SupervisionStrategy::one_for_one()
                .intensity(5, Duration::from_secs(60))
                .backoff(Backoff {
                    jitter: false,
                    ..Backoff::exponential(Duration::from_secs(1), Duration::from_secs(10))
                }),
        )
        .build();
    let a = node
        .spawn_factory(SpawnOptions::new(), || Fragile { handled: 0 })
        .unwrap();
    assert!(a.ask(Boom).timeout(Duration::from_secs(100)).await.is_err());
    let next = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Ok_(7)).timeout(Duration::from_secs(100)).await })
    };
    // The actor sleeps 1 s of node time before restarting.
    while clock
        .next_deadline()
        .is_none_or(|d| d > clock.now() + Duration::from_secs(1))
    {
        tokio::task::yield_now().await;
    }
    assert_eq!(a.metrics().restarts, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(next.await.unwrap().unwrap(), (7, 1));
}

#[tokio::test]
async fn watch_fires_on_stop_on_panic_and_when_already_dead() {
    let node = Node::builder().build();
    let (tx, notices) = flume::unbounded();
    let watcher = node.spawn(Watcher { out: tx });

    let stopping = node.spawn(Idle);
    watcher.ask(WatchThis(stopping.clone())).await.unwrap();
    stopping.stop();
    let t = notices.recv_async().await.unwrap();
    assert_eq!((t.id, t.reason), (stopping.id(), StopReason::Normal));

    let panicking = node.spawn(Fragile { handled: 0 });
    watcher.ask(WatchThis(panicking.clone())).await.unwrap();
    let _ = panicking.ask(Boom).await;
    let t = notices.recv_async().await.unwrap();
    assert_eq!(t.id, panicking.id());
    assert!(matches!(t.reason, StopReason::Panicked { ref message } if &**message == "boom"));

    // Already dead when watched: the notice comes at once.
    watcher.ask(WatchThis(stopping.clone())).await.unwrap();
    let t = notices.recv_async().await.unwrap();
    assert_eq!((t.id, t.reason), (stopping.id(), StopReason::Normal));
}

#[tokio::test]
async fn a_death_notice_is_not_blocked_by_a_full_mailbox() {
    let node = Node::builder().build();
    struct Busy {
        gate: Arc<Semaphore>,
        events: flume::Sender<String>,
    }
    impl Actor for Busy {}
    impl Handler<Terminated> for Busy {
        async fn handle(&mut self, t: Terminated, _: &mut Context<Self>) {
            let _ = self.events.send(format!("notice {}", t.id));
        }
    }
    impl Handler<WatchThis<Idle>> for Busy {
        async fn handle(&mut self, WatchThis(r): WatchThis<Idle>, cx: &mut Context<Self>) {
            cx.watch(&r);
        }
    }
    impl Handler<Work> for Busy {
        async fn handle(&mut self, Work(n): Work, _: &mut Context<Self>) -> u64 {
            let _ = self.events.send(format!("work {n}"));
            self.gate.acquire().await.unwrap().forget();
            n
        }
    }
    let gate = Arc::new(Semaphore::new(0));
    let (tx, events) = flume::unbounded();
    let busy = node
        .spawn_with(
            SpawnOptions::new().capacity(1),
            Busy {
                gate: gate.clone(),
                events: tx,
            },
        )
        .unwrap();
    let target = node.spawn(Idle);
    busy.ask(WatchThis(target.clone())).await.unwrap();
    busy.tell(Work(0)).await.unwrap();
    assert_eq!(events.recv_async().await.unwrap(), "work 0");
    busy.tell(Work(1)).await.unwrap(); // the mailbox (capacity 1) is now full
    assert!(busy.try_tell(Work(2)).unwrap_err().is_full());
    target.stop();
    target.terminated().await;
    gate.add_permits(2);
    assert_eq!(
        events.recv_async().await.unwrap(),
        format!("notice {}", target.id())
    );
    assert_eq!(
        events.recv_async().await.unwrap(),
        "work 1",
        "the notice jumped the full mailbox"
    );
}

#[tokio::test]
async fn restart_hook_runs_with_the_failure() {
    static RESTARTED: AtomicU32 = AtomicU32::new(0);
    struct Hooked;
    impl Actor for Hooked {
        async fn restarted(&mut self, failure: &StopReason, _: &mut Context<Self>) {
            assert!(matches!(failure, StopReason::Panicked { .. }));
            RESTARTED.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Handler<Boom> for Hooked {
        async fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
            panic!("hooked");
        }
    }
    impl Handler<Ping> for Hooked {
        async fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> &'static str {
            "pong"
        }
    }
    let node = Node::builder()
        .supervision(quick(SupervisionStrategy::one_for_one()))
        .build();
    let a = node.spawn_factory(SpawnOptions::new(), || Hooked).unwrap();
    assert!(a.ask(Boom).await.is_err());
    assert_eq!(a.ask(Ping).await.unwrap(), "pong");
    assert_eq!(RESTARTED.load(Ordering::SeqCst), 1);
}
