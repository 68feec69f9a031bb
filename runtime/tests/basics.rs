//! tell, try_tell, ask, backpressure, deadlines, stop and kill.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use plexus_runtime::clock::ManualClock;
use plexus_runtime::prelude::*;
use tokio::sync::Semaphore;

#[tokio::test]
async fn try_tell_returns_full_with_the_message_and_tell_waits_for_space() {
    let node = Node::builder().build();
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, started) = flume::unbounded();
    let mut actor = Gated::new(gate.clone());
    actor.started = Some(started_tx);
    let a = node
        .spawn_with(SpawnOptions::new().capacity(2), actor)
        .unwrap();

    a.tell(Work(0)).await.unwrap();
    // The handler holds message 0; the mailbox (capacity 2) takes 1 and 2.
    assert_eq!(started.recv_async().await.unwrap(), 0);
    a.try_tell(Work(1)).unwrap();
    a.try_tell(Work(2)).unwrap();
    match a.try_tell(Work(3)) {
        Err(TrySendError::Full {
            msg: Work(n),
            capacity,
            ..
        }) => {
            assert_eq!(n, 3);
            assert_eq!(capacity, 2);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(a.mailbox_len(), 2);

    // `tell` waits while full: the producer is slowed, memory stays bounded.
    let mut blocked = Box::pin(a.tell(Work(3)));
    assert!(poll_once(blocked.as_mut()).is_pending());
    assert_eq!(a.mailbox_len(), 2);

    gate.add_permits(4);
    blocked.await.unwrap();
    assert_eq!(a.ask(Seen).await.unwrap(), vec![0, 1, 2, 3]);
}

/// An ask to a full mailbox waits for space, its deadline running: it is
/// sent and answered once there is room, times out if its deadline comes
/// first, and fails with `Closed` if the actor stops first.
#[tokio::test]
async fn an_ask_waits_for_mailbox_space_within_its_deadline() {
    let clock = ManualClock::new();
    let node = Node::builder().clock(clock.clone()).build();
    let (g, gate, started) = gated();
    let a = node.spawn_with(SpawnOptions::new().capacity(1), g).unwrap();
    a.tell(Work(0)).await.unwrap();
    assert_eq!(started.recv_async().await.unwrap(), 0);
    a.try_tell(Work(1)).unwrap();

    let mut late = Box::pin(
        a.ask(Work(8))
            .timeout(Duration::from_millis(10))
            .into_future(),
    );
    assert!(poll_once(late.as_mut()).is_pending());
    let mut waiting = Box::pin(a.ask(Work(2)).into_future());
    assert!(poll_once(waiting.as_mut()).is_pending());
    clock.advance(Duration::from_millis(20));
    assert_eq!(
        late.await,
        Err(AskError::Timeout {
            after: Duration::from_millis(10)
        })
    );
    gate.add_permits(3);
    assert_eq!(waiting.await, Ok(2));

    // Full again, then stopped while an ask waits for space.
    a.tell(Work(3)).await.unwrap();
    for n in [1, 2, 3] {
        assert_eq!(started.recv_async().await.unwrap(), n);
    }
    a.try_tell(Work(4)).unwrap();
    let mut closed = Box::pin(a.ask(Work(5)).into_future());
    assert!(poll_once(closed.as_mut()).is_pending());
    a.stop();
    assert_eq!(closed.await, Err(AskError::Closed { id: a.id() }));
    gate.add_permits(2);
    a.terminated().await;
}

#[tokio::test]
async fn ask_times_out_on_the_node_clock_and_the_late_reply_is_dropped() {
    let clock = ManualClock::new();
    let node = Node::builder().clock(clock.clone()).build();

    struct Slow {
        gate: Arc<Semaphore>,
        started: flume::Sender<()>,
    }
    impl Actor for Slow {}
    struct Get(Arc<()>);
    impl Message for Get {
        type Reply = Arc<()>;
    }
    impl Handler<Get> for Slow {
        async fn handle(&mut self, Get(token): Get, _: &mut Context<Self>) -> Arc<()> {
            let _ = self.started.send(());
            self.gate.acquire().await.unwrap().forget();
            token
        }
    }

    let gate = Arc::new(Semaphore::new(0));
    let (tx, started) = flume::unbounded();
    let slow = node.spawn(Slow {
        gate: gate.clone(),
        started: tx,
    });
    let token = Arc::new(());

    let asker = {
        let slow = slow.clone();
        let token = token.clone();
        tokio::spawn(async move { slow.ask(Get(token)).timeout(Duration::from_secs(1)).await })
    };
    started.recv_async().await.unwrap();
    // The asker's first poll sent the message and armed its timer.
    clock.advance(Duration::from_secs(2));
    let err = asker.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        AskError::Timeout {
            after: Duration::from_secs(1)
        }
    );
    assert!(err.is_timeout());

    // The handler finishes later; its reply has nowhere to go and is freed.
    gate.add_permits(1);
    slow.stop();
    slow.terminated().await;
    assert_eq!(Arc::strong_count(&token), 1, "late reply leaked");
}

#[tokio::test]
async fn an_ask_whose_deadline_passes_in_the_queue_is_not_handled() {
    let clock = ManualClock::new();
    let node = Node::builder().clock(clock.clone()).build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);

    a.tell(Work(1)).await.unwrap();
    started.recv_async().await.unwrap();
    let late = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Work(2)).timeout(Duration::from_millis(10)).await })
    };
    // Wait until the ask is queued behind the blocked handler.
    while a.mailbox_len() == 0 {
        tokio::task::yield_now().await;
    }
    clock.advance(Duration::from_millis(20));
    assert!(matches!(late.await.unwrap(), Err(AskError::Timeout { .. })));
    gate.add_permits(2);
    assert_eq!(
        a.ask(Seen).await.unwrap(),
        vec![1],
        "expired ask was handled"
    );
    assert_eq!(a.metrics().expired, 1);
    assert_eq!(node.metrics().expired, 1, "the node's total");
}

/// A task's finished ask leaves its deadline entry for the task's next ask,
/// which is then woken at the earlier deadline: it must re-arm for its own,
/// neither timing out early nor missing its deadline.
#[tokio::test]
async fn an_ask_after_a_quick_one_times_out_at_its_own_deadline() {
    let clock = ManualClock::new();
    let node = Node::builder().clock(clock.clone()).build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let (a, done) = (a.clone(), done.clone());
        tokio::spawn(async move {
            let quick = a.ask(Seen).timeout(Duration::from_secs(1)).await;
            assert_eq!(quick.unwrap(), Vec::<u64>::new());
            let slow = a.ask(Work(1)).timeout(Duration::from_secs(3)).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            slow
        })
    };
    started.recv_async().await.unwrap();
    // The quick ask's entry fires: the slow ask is woken early and re-arms.
    clock.advance(Duration::from_secs(1));
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert!(
        !done.load(std::sync::atomic::Ordering::SeqCst),
        "timed out early"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        asker.await.unwrap().unwrap_err(),
        AskError::Timeout {
            after: Duration::from_secs(3)
        }
    );
    gate.add_permits(1);
}

#[tokio::test]
async fn tell_after_stop_is_closed_with_the_message_and_queued_work_is_handled() {
    let node = Node::builder().build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);

    let first = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Work(1)).await })
    };
    started.recv_async().await.unwrap();
    let queued = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Work(2)).await })
    };
    while a.mailbox_len() == 0 {
        tokio::task::yield_now().await;
    }
    a.stop();
    match a.tell(Work(3)).await {
        Err(SendError::Closed { msg: Work(3), id }) => assert_eq!(id, a.id()),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(a.ask(Work(4)).await, Err(AskError::Closed { .. })));
    gate.add_permits(2);
    assert_eq!(first.await.unwrap(), Ok(1));
    assert_eq!(
        queued.await.unwrap(),
        Ok(2),
        "a message queued before stop must be handled"
    );
    assert_eq!(a.terminated().await.reason, StopReason::Normal);
    assert!(!a.is_alive());
}

#[tokio::test]
async fn kill_rejects_queued_asks_with_stopped() {
    let node = Node::builder().build();
    let (g, gate, started) = gated();
    let a = node.spawn(g);

    let running = {
        let a = a.clone();
        tokio::spawn(async move { a.ask(Work(1)).await })
    };
    started.recv_async().await.unwrap();
    let mut queued = Vec::new();
    for n in 2..5 {
        let a2 = a.clone();
        queued.push(tokio::spawn(async move { a2.ask(Work(n)).await }));
    }
    a.tell(Work(9)).await.unwrap();
    while a.mailbox_len() < 4 {
        tokio::task::yield_now().await;
    }
    a.kill();
    gate.add_permits(1);
    assert_eq!(
        running.await.unwrap(),
        Ok(1),
        "the running handler finishes"
    );
    for q in queued {
        assert_eq!(q.await.unwrap(), Err(AskError::Stopped { id: a.id() }));
    }
    let t = a.terminated().await;
    assert_eq!(t.reason, StopReason::Killed);
    let m = a.metrics();
    assert_eq!((m.rejected, m.dropped), (3, 1));
}

#[tokio::test]
async fn recipient_hides_the_actor_type() {
    let node = Node::builder().build();
    let a = node.spawn(Idle);
    let r: Recipient<Ping> = a.recipient();
    assert_eq!(r.ask(Ping).await.unwrap(), "pong");
    r.tell(Ping).await.unwrap();
    r.try_tell(Ping).unwrap();
    assert_eq!(
        r.ask(Ping).timeout(Duration::from_secs(1)).await.unwrap(),
        "pong"
    );
    assert!(format!("{r:?}").contains("Idle#"));
    a.stop();
    a.terminated().await;
    assert!(matches!(r.tell(Ping).await, Err(SendError::Closed { .. })));
}

#[tokio::test]
async fn refs_compare_and_print_name_and_id() {
    let node = Node::builder().build();
    let a = node
        .spawn_with(SpawnOptions::new().name("alpha"), Idle)
        .unwrap();
    let b = node.spawn(Idle);
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    assert_eq!(format!("{a:?}"), format!("ActorRef(alpha{})", a.id()));
    assert_eq!(format!("{b:?}"), format!("ActorRef(Idle{})", b.id()));
}

#[tokio::test]
async fn deadline_and_correlation_are_inherited_by_asks_inside_a_handler() {
    let node = Node::builder().build();

    struct Inner;
    impl Actor for Inner {}
    struct Probe;
    impl Message for Probe {
        type Reply = (Option<std::time::Instant>, Option<u64>);
    }
    impl Handler<Probe> for Inner {
        async fn handle(
            &mut self,
            _: Probe,
            cx: &mut Context<Self>,
        ) -> (Option<std::time::Instant>, Option<u64>) {
            (cx.deadline(), cx.correlation_id())
        }
    }

    struct Outer(ActorRef<Inner>);
    impl Actor for Outer {}
    struct Call;
    impl Message for Call {
        type Reply = (
            Option<std::time::Instant>,
            Option<u64>,
            Option<std::time::Instant>,
            Option<u64>,
        );
    }
    impl Handler<Call> for Outer {
        async fn handle(
            &mut self,
            _: Call,
            cx: &mut Context<Self>,
        ) -> (
            Option<std::time::Instant>,
            Option<u64>,
            Option<std::time::Instant>,
            Option<u64>,
        ) {
            // Asks for a longer budget than the caller gave: capped.
            let (d, c) = self
                .0
                .ask(Probe)
                .timeout(Duration::from_secs(60))
                .await
                .unwrap();
            (cx.deadline(), cx.correlation_id(), d, c)
        }
    }

    let inner = node.spawn(Inner);
    let outer = node.spawn(Outer(inner));
    let (outer_deadline, outer_corr, inner_deadline, inner_corr) = outer
        .ask(Call)
        .timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert!(outer_deadline.is_some());
    assert_eq!(
        inner_deadline, outer_deadline,
        "the inner ask inherits the caller's deadline"
    );
    assert_eq!(inner_corr, outer_corr);
}

#[tokio::test]
async fn spawn_on_a_node_that_shut_down_gives_a_closed_ref() {
    let node = Node::builder().build();
    node.shutdown(Duration::from_secs(1)).await;
    let a = node.spawn(Idle);
    assert!(matches!(a.tell(Ping).await, Err(SendError::Closed { .. })));
    assert!(matches!(
        node.spawn_with(SpawnOptions::new(), Idle),
        Err(SpawnError::ShuttingDown)
    ));
    assert_eq!(a.terminated().await.reason, StopReason::Shutdown);
}
