//! Scenarios that run on both roads.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use plexus_runtime::prelude::*;

use super::*;

/// Bounded poll of a condition on the wall clock (loopback I/O is real).
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn ask_and_tell_by_name(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert_eq!(echo.ask(Echo("hi".into())).await.unwrap(), "hi");
    // The same function works on a local and a remote recipient.
    async fn twice(r: &Recipient<Echo>) -> String {
        r.ask(Echo("x".into())).await.unwrap() + &r.ask(Echo("y".into())).await.unwrap()
    }
    let local: Recipient<Echo> = ms[0].node.lookup_recipient("svc").unwrap();
    assert_eq!(twice(&local).await, twice(&echo).await);

    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    for n in 0..100 {
        count.tell(Count(n)).await.unwrap();
    }
    count.try_tell(Count(100)).unwrap();
    let stats = &ms[1].stats;
    eventually("tells", Duration::from_secs(5), || {
        stats.seen.lock().unwrap().len() >= 101
    })
    .await;
    let seen = stats.seen.lock().unwrap().clone();
    assert_eq!(seen, (0..=100).collect::<Vec<_>>(), "tells arrive in order");
}

/// A tell recipient keeps delivering, in order, across a reconnect: the
/// new session binds its tells afresh (the peer's new reader knows none
/// of the old session's bindings).
pub async fn tells_rebind_after_reconnect(road: Road) {
    let (ms, net) = cluster(road, 64, Duration::ZERO).await;
    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    for n in 0..20 {
        count.tell(Count(n)).await.unwrap();
    }
    let stats = &ms[1].stats;
    eventually("tells before the reconnect", Duration::from_secs(5), || {
        stats.handled.load(Ordering::SeqCst) == 20
    })
    .await;
    let conn = ms[0].remote.connection("b").unwrap();
    match &net {
        Some(net) => net.partition("a", "b"),
        None => ms[1].remote.disconnect("a"),
    }
    tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    match &net {
        Some(net) => {
            let (x, y) = net.link("a", "b");
            let (r1, r2) = tokio::join!(ms[0].remote.attach(x), ms[1].remote.attach(y));
            r1.unwrap();
            r2.unwrap();
        }
        None => {
            let addr = ms[1].quic.as_ref().unwrap().local_addr().unwrap();
            let a = ms[0].quic.as_ref().unwrap();
            a.connect_once("b", addr).await.unwrap();
            tokio::time::timeout(Duration::from_secs(5), ms[1].remote.connected("a"))
                .await
                .unwrap();
        }
    }
    for n in 20..40 {
        count.tell(Count(n)).await.unwrap();
    }
    eventually("tells after the reconnect", Duration::from_secs(5), || {
        stats.handled.load(Ordering::SeqCst) == 40
    })
    .await;
    let seen = stats.seen.lock().unwrap().clone();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
}

pub async fn typed_errors(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let a = &ms[0].remote;
    // The handler's own error type, matched directly.
    let div: Recipient<Divide> = a.recipient("b", "svc");
    assert_eq!(div.ask(Divide(7, 2)).await.unwrap(), Ok(3));
    assert_eq!(
        div.ask(Divide(1, 0)).await.unwrap(),
        Err(MathError::DivideByZero)
    );

    let unknown: Recipient<NotExposed> = a.recipient("b", "svc");
    match unknown.ask(NotExposed).await {
        Err(AskError::UnknownMessage { name }) => assert_eq!(&*name, "t.NotExposed"),
        other => panic!("{other:?}"),
    }
    let v1: Recipient<PingV1> = a.recipient("b", "svc");
    match v1.ask(PingV1).await {
        Err(AskError::IncompatibleVersion {
            name,
            expected: 2,
            got: 1,
        }) => assert_eq!(&*name, "t.Ping"),
        other => panic!("{other:?}"),
    }
    let bad: Recipient<EchoBad> = a.recipient("b", "svc");
    assert!(
        matches!(
            bad.ask(EchoBad(u64::MAX, 1)).await,
            Err(AskError::BadPayload { .. })
        ),
        "bad payload"
    );
    let nobody: Recipient<Echo> = a.recipient("b", "nobody");
    match nobody.ask(Echo("?".into())).await {
        Err(AskError::UnknownTarget { target }) => assert_eq!(&*target, "nobody"),
        other => panic!("{other:?}"),
    }
    let nowhere: Recipient<Echo> = a.recipient("zz", "svc");
    assert!(matches!(
        nowhere.ask(Echo("?".into())).await,
        Err(AskError::PeerUnavailable { .. })
    ));
    // The node still serves.
    let echo: Recipient<Echo> = a.recipient("b", "svc");
    assert_eq!(echo.ask(Echo("still up".into())).await.unwrap(), "still up");
}

pub async fn deadline_chain(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let chain: Recipient<Chain> = ms[0].remote.recipient("b", "svc");
    let view = chain
        .ask(Chain { to: "c".into() })
        .timeout(Duration::from_millis(800))
        .await
        .unwrap()
        .unwrap();
    let here = view.here_ms.unwrap();
    let there = view.there_ms.unwrap();
    assert!(here <= 800 && here > 300, "B sees A's budget: {view:?}");
    assert!(there <= here && there > 200, "C inherits B's: {view:?}");
    assert_eq!(view.here_caller.as_deref(), Some("a"), "B's caller is A");
    assert_eq!(view.there_caller.as_deref(), Some("b"), "C's caller is B");
}

pub async fn expired_while_queued(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let slow: Recipient<Slow> = ms[0].remote.recipient("b", "svc");
    let busy = slow.clone();
    let blocker = tokio::spawn(async move {
        busy.ask(Slow { ms: 300 })
            .timeout(Duration::from_secs(5))
            .await
    });
    let stats = &ms[1].stats;
    eventually("blocker started", Duration::from_secs(5), || {
        stats.started.load(Ordering::SeqCst) == 1
    })
    .await;
    // Queued behind 300 ms of work with a 50 ms budget: never handled.
    let start = Instant::now();
    let r = slow
        .ask(Slow { ms: 0 })
        .timeout(Duration::from_millis(50))
        .await;
    assert_eq!(r, Err(AskError::DeadlineExceeded));
    assert!(
        r.unwrap_err().is_timeout(),
        "local and remote timeouts read alike"
    );
    assert!(start.elapsed() < Duration::from_millis(250));
    assert_eq!(blocker.await.unwrap(), Ok(300));
    // The echo queues behind the expired ask in the same mailbox: once it
    // is answered, the expired one has had its turn.
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert_eq!(echo.ask(Echo("up".into())).await.unwrap(), "up");
    assert_eq!(
        stats.handled.load(Ordering::SeqCst),
        2,
        "the blocker and the echo were handled, the expired ask was not"
    );
}

pub async fn link_loss_fails_pending_fast(road: Road) {
    let (ms, net) = cluster(road, 64, Duration::ZERO).await;
    let slow: Recipient<Slow> = ms[0].remote.recipient("b", "svc");
    let pending = tokio::spawn(async move {
        let start = Instant::now();
        let r = slow
            .ask(Slow { ms: 10_000 })
            .timeout(Duration::from_secs(20))
            .await;
        (r, start.elapsed())
    });
    let stats = &ms[1].stats;
    eventually("handler started", Duration::from_secs(5), || {
        stats.started.load(Ordering::SeqCst) == 1
    })
    .await;
    match net {
        Some(net) => net.partition("a", "b"),
        None => ms[1].remote.disconnect("a"),
    }
    let (r, took) = pending.await.unwrap();
    assert!(
        matches!(r, Err(AskError::PeerUnavailable { ref peer }) if &**peer == "b"),
        "{r:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "failed fast, not at the deadline: {took:?}"
    );
    // Tells are refused (no outbox), handing the message back.
    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    match count.tell(Count(1)).await {
        Err(SendError::Rejected {
            msg: Count(1),
            error: AskError::PeerUnavailable { peer },
        }) => assert_eq!(&*peer, "b"),
        other => panic!("{other:?}"),
    }
    match count.try_tell(Count(2)) {
        Err(TrySendError::Rejected {
            msg: Count(2),
            error: AskError::PeerUnavailable { .. },
        }) => {}
        other => panic!("{other:?}"),
    }
    // The running handler on B was cancelled with the link.
    eventually("handler dropped", Duration::from_secs(5), || {
        stats.dropped_mid_handler.load(Ordering::SeqCst) == 1
    })
    .await;
}

pub async fn cancel_on_drop(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let slow: Recipient<Slow> = ms[0].remote.recipient("b", "svc");
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        slow.ask(Slow { ms: 5_000 })
            .timeout(Duration::from_secs(10)),
    )
    .await;
    assert!(r.is_err(), "the caller gave up");
    let stats = &ms[1].stats;
    eventually("remote handler dropped", Duration::from_secs(3), || {
        stats.dropped_mid_handler.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(stats.finished.load(Ordering::SeqCst), 0);
    // The actor is free again at once (not after 5 s).
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert_eq!(
        echo.ask(Echo("free".into()))
            .timeout(Duration::from_millis(500))
            .await
            .unwrap(),
        "free"
    );
}

/// Producer ≥10× faster than the consumer (1 ms per message): the producer
/// waits, and what is queued anywhere stays within mailbox + credit window.
pub async fn backpressure(road: Road) {
    const CAPACITY: usize = 8;
    const N: u64 = 700;
    let (ms, _net) = cluster(road, CAPACITY, Duration::from_millis(1)).await;
    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent2 = std::sync::Arc::clone(&sent);
    let producer = tokio::spawn(async move {
        for n in 0..N {
            count.tell(Count(n)).await.unwrap();
            sent2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let stats = std::sync::Arc::clone(&ms[1].stats);
    let bound = (CAPACITY + plexus_transports::remote::TELL_WINDOW + 2) as u64;
    let mut max_gap = 0;
    let mut waited = false;
    let start = Instant::now();
    while stats.handled.load(Ordering::SeqCst) < N {
        assert!(start.elapsed() < Duration::from_secs(30), "stuck");
        let s = sent.load(Ordering::SeqCst);
        let h = stats.handled.load(Ordering::SeqCst);
        let gap = s.saturating_sub(h);
        max_gap = max_gap.max(gap);
        if s < N && gap > 0 {
            waited = true;
        }
        assert!(gap <= bound, "in flight {gap} exceeds {bound}");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    producer.await.unwrap();
    assert!(waited, "the producer had to wait");
    assert!(max_gap >= CAPACITY as u64, "the window filled: {max_gap}");
    let seen = stats.seen.lock().unwrap().clone();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}

/// Server streaming: every item in order, then the end; a slow consumer
/// holds the producer back (what it produced stays within the consumer's
/// reads + the credit window + its channel); an abort and a dropped stream
/// each reach the other side.
pub async fn server_stream(road: Road) {
    use plexus_transports::remote::STREAM_WINDOW;
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let numbers: Recipient<Numbers> = ms[0].remote.stream_recipient("b", "svc");
    let all = numbers
        .ask(Numbers {
            n: 100,
            abort_at: None,
        })
        .await
        .unwrap();
    assert_eq!(
        all.collect_all().await.unwrap(),
        (0..100).collect::<Vec<_>>()
    );

    // A consumer far slower than the producer.
    let stats = &ms[1].stats;
    let n = 10 * STREAM_WINDOW as u64;
    let base = stats.produced.load(Ordering::SeqCst);
    let mut slow = numbers.ask(Numbers { n, abort_at: None }).await.unwrap();
    let bound = (STREAM_WINDOW + PRODUCER_CAPACITY + 1) as u64;
    let (mut read, mut max_ahead) = (0, 0);
    while let Some(item) = slow.next().await {
        assert_eq!(item.unwrap(), read);
        read += 1;
        let ahead = (stats.produced.load(Ordering::SeqCst) - base).saturating_sub(read);
        assert!(
            ahead <= bound,
            "producer ran {ahead} items ahead (bound {bound})"
        );
        max_ahead = max_ahead.max(ahead);
        tokio::time::sleep(Duration::from_millis(1)).await; // the slow consumer
    }
    assert_eq!(read, n);
    assert!(
        max_ahead >= STREAM_WINDOW as u64 / 2,
        "the producer got ahead, so it was held back: {max_ahead}"
    );

    // The producer's abort crosses the wire after its items.
    let mut aborted = numbers
        .ask(Numbers {
            n: 10,
            abort_at: Some(3),
        })
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(aborted.next().await.unwrap().unwrap(), i);
    }
    match aborted.next().await {
        Some(Err(AskError::StreamAborted { reason })) => assert_eq!(&*reason, "stopped at 3"),
        other => panic!("{other:?}"),
    }
    assert!(aborted.next().await.is_none());

    // Dropping the stream stops the remote producer.
    let endless = endless(&numbers).await;
    drop(endless);
    eventually("producer told to stop", Duration::from_secs(5), || {
        stats.producer_closed.load(Ordering::SeqCst) == 1
    })
    .await;

    // Unknown stream names are typed errors, as for asks.
    let nobody: Recipient<Numbers> = ms[0].remote.stream_recipient("b", "nobody");
    match nobody
        .ask(Numbers {
            n: 1,
            abort_at: None,
        })
        .await
    {
        Err(AskError::UnknownTarget { target }) => assert_eq!(&*target, "nobody"),
        other => panic!("{other:?}"),
    }
    // An empty stream opens and ends.
    let mut empty = numbers
        .ask(Numbers {
            n: 0,
            abort_at: None,
        })
        .await
        .unwrap();
    assert!(empty.next().await.is_none());
}

/// A stream that never ends by itself, its first item read.
async fn endless(numbers: &Recipient<Numbers>) -> ReplyStream<u64> {
    let ask = Numbers {
        n: u64::MAX,
        abort_at: None,
    };
    let mut stream = numbers.ask(ask).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), 0);
    stream
}

/// A stream whose link goes down ends with `PeerUnavailable`, and the
/// remote producer is stopped.
pub async fn stream_link_loss(road: Road) {
    let (ms, net) = cluster(road, 64, Duration::ZERO).await;
    let numbers: Recipient<Numbers> = ms[0].remote.stream_recipient("b", "svc");
    let mut endless = endless(&numbers).await;
    match net {
        Some(net) => net.partition("a", "b"),
        None => ms[1].remote.disconnect("a"),
    }
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match endless.next().await {
                Some(Ok(_)) => continue, // items already buffered
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ended");
    assert!(
        matches!(end, Some(Err(AskError::PeerUnavailable { ref peer })) if &**peer == "b"),
        "{end:?}"
    );
    assert!(endless.next().await.is_none());
    let stats = &ms[1].stats;
    eventually("producer stopped", Duration::from_secs(5), || {
        stats.producer_closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

/// Bidirectional streams: inputs and outputs interleave; the end of the
/// input ends the output; a caller that does not read the output holds
/// back the handler, which holds back the caller's input producer.
pub async fn duplex_stream(road: Road) {
    use plexus_transports::remote::STREAM_WINDOW;
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let shout: Recipient<Duplex<Shout>> = ms[0].remote.duplex_recipient("b", "svc");
    let (lines, input) = ReplyStream::channel(PRODUCER_CAPACITY);
    let mut out = shout.ask(Duplex::new(Shout, input)).await.unwrap();
    for i in 0..50 {
        lines.send(format!("line {i}")).await.unwrap();
        assert_eq!(out.next().await.unwrap().unwrap(), format!("LINE {i}"));
    }
    drop(lines);
    assert!(out.next().await.is_none(), "input end ends the output");

    // Nobody reads the output for a while.
    let n = 10 * STREAM_WINDOW as u64;
    let stats = &ms[1].stats;
    // The first call's handler has finished: its output ended.
    let base = stats.input_read.load(Ordering::SeqCst);
    let (lines, input) = ReplyStream::channel(PRODUCER_CAPACITY);
    let mut out = shout.ask(Duplex::new(Shout, input)).await.unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            for i in 0..n {
                lines.send(format!("l{i}")).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    // The handler fills its output channel and the output window, then
    // stops reading input.
    let stalled = (STREAM_WINDOW + PRODUCER_CAPACITY + 1) as u64;
    eventually("the handler stalls", Duration::from_secs(5), || {
        stats.input_read.load(Ordering::SeqCst) - base >= stalled
    })
    .await;
    let bound = 2 * (STREAM_WINDOW + PRODUCER_CAPACITY + 1) as u64;
    let s = sent.load(Ordering::SeqCst);
    assert!(s <= bound, "caller sent {s} inputs, bound {bound}");
    assert!(!producer.is_finished(), "the input producer waits");
    for i in 0..n {
        assert_eq!(out.next().await.unwrap().unwrap(), format!("L{i}"));
    }
    producer.await.unwrap();
    assert!(out.next().await.is_none());
}

/// Tells the peer cannot take are refused with a typed error: a message it
/// does not expose (or not at this version) at once, an unknown actor on
/// the next tell after the peer reports it. The node keeps serving.
pub async fn tell_refusals(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let a = &ms[0].remote;
    let unknown: Recipient<NotExposed> = a.recipient("b", "svc");
    match unknown.tell(NotExposed).await {
        Err(SendError::Rejected {
            error: AskError::UnknownMessage { name },
            ..
        }) => assert_eq!(&*name, "t.NotExposed"),
        other => panic!("{other:?}"),
    }
    let v1: Recipient<PingV1> = a.recipient("b", "svc");
    assert!(matches!(
        v1.try_tell(PingV1),
        Err(TrySendError::Rejected {
            error: AskError::IncompatibleVersion {
                expected: 2,
                got: 1,
                ..
            },
            ..
        })
    ));

    let nobody: Recipient<Count> = a.recipient("b", "nobody");
    let start = Instant::now();
    let mut n = 0;
    let refused = loop {
        assert!(start.elapsed() < Duration::from_secs(5), "never refused");
        match nobody.tell(Count(n)).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(e) => break e,
        }
        n += 1;
    };
    match refused {
        SendError::Rejected {
            msg: Count(m),
            error: AskError::UnknownTarget { target },
        } => {
            assert_eq!(&*target, "nobody");
            assert_eq!(m, n, "the refused tell hands its message back");
        }
        other => panic!("{other:?}"),
    }
    // Reported once: the next tell is tried again.
    assert!(nobody.tell(Count(0)).await.is_ok());
    let echo: Recipient<Echo> = a.recipient("b", "svc");
    assert_eq!(echo.ask(Echo("still up".into())).await.unwrap(), "still up");
}

/// A node serves at most `MAX_INBOUND_CALLS` calls from one peer at once;
/// one more is refused at once with `Full`, and the slots come back when
/// calls end.
pub async fn inbound_call_limit(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let slow: Recipient<Slow> = ms[0].remote.recipient("b", "svc");
    let mut calls: Vec<_> = (0..MAX_INBOUND_CALLS)
        .map(|_| {
            Box::pin(
                slow.ask(Slow { ms: 10_000 })
                    .timeout(Duration::from_secs(30))
                    .into_future(),
            )
        })
        .collect();
    // Poll each once: the requests go out in order on the one link, ahead
    // of the next one.
    std::future::poll_fn(|cx| {
        for c in &mut calls {
            assert!(c.as_mut().poll(cx).is_pending());
        }
        std::task::Poll::Ready(())
    })
    .await;
    let r = slow
        .ask(Slow { ms: 0 })
        .timeout(Duration::from_secs(5))
        .await;
    assert!(matches!(r, Err(AskError::Full { .. })), "{r:?}");
    // Dropping the calls cancels them and frees their slots (the cancels
    // may trail a new request by a little: ask until one is served).
    drop(calls);
    let mut served = None;
    for _ in 0..1_000 {
        match slow
            .ask(Slow { ms: 0 })
            .timeout(Duration::from_secs(5))
            .await
        {
            Err(AskError::Full { .. }) => tokio::task::yield_now().await,
            other => {
                served = Some(other);
                break;
            }
        }
    }
    assert_eq!(served, Some(Ok(0)));
}

/// A request, a reply, a stream item or a tell larger than the link's
/// frame limit is a typed error at once, costs no tell credit, and leaves
/// the link serving.
pub async fn oversized_messages(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let too_large = |r: &AskError| matches!(r, AskError::TooLarge { len, max } if *len > MAX_FRAME && *max == MAX_FRAME);
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    let big = "z".repeat(MAX_FRAME + 1);
    let r = echo
        .ask(Echo(big.clone()))
        .timeout(Duration::from_secs(30))
        .await;
    assert!(r.as_ref().is_err_and(too_large), "{r:?}");

    // The handler ran; its reply could not go: the caller hears it now,
    // not at its 30 s deadline.
    let grow: Recipient<Grow> = ms[0].remote.recipient("b", "svc");
    let r = grow
        .ask(Grow(MAX_FRAME + 1))
        .timeout(Duration::from_secs(30))
        .await;
    assert!(r.as_ref().is_err_and(too_large), "{r:?}");
    assert_eq!(grow.ask(Grow(3)).await.unwrap(), "xxx");

    // A stream delivers the items before the oversized one, then its error.
    let blobs: Recipient<Blobs> = ms[0].remote.stream_recipient("b", "svc");
    let mut items = blobs
        .ask(Blobs(vec![1, 2, MAX_FRAME + 1, 4]))
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(items.next().await.unwrap().unwrap(), "y");
    assert_eq!(items.next().await.unwrap().unwrap(), "yy");
    let r = items.next().await.unwrap();
    assert!(r.as_ref().is_err_and(too_large), "{r:?}");

    // Tells: refused with the message back, and more of them than the
    // channel's credit window, so a leaked credit would wedge the channel.
    for _ in 0..2 * plexus_transports::remote::TELL_WINDOW {
        match echo.tell(Echo(big.clone())).await {
            Err(SendError::Rejected { msg, error }) => {
                assert!(too_large(&error), "{error:?}");
                assert_eq!(msg.0.len(), big.len());
            }
            other => panic!("{other:?}"),
        }
        match echo.try_tell(Echo(big.clone())) {
            Err(TrySendError::Rejected { error, .. }) => assert!(too_large(&error), "{error:?}"),
            other => panic!("{other:?}"),
        }
    }
    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    for n in 0..10 {
        count.tell(Count(n)).await.unwrap();
    }
    let stats = &ms[1].stats;
    eventually(
        "small tells after refused ones",
        Duration::from_secs(5),
        || stats.seen.lock().unwrap().len() >= 10,
    )
    .await;
    assert_eq!(echo.ask(Echo("still up".into())).await.unwrap(), "still up");
}

/// The first refusal of tells to `to`: tell until one comes back (a
/// refusal is reported by the tell after the refused one), within 5 s.
async fn first_refusal(to: &Recipient<Count>) -> AskError {
    let start = Instant::now();
    for n in 0.. {
        assert!(start.elapsed() < Duration::from_secs(5), "never refused");
        match to.tell(Count(n)).await {
            Ok(()) => tokio::task::yield_now().await,
            Err(SendError::Rejected { error, .. }) => return error,
            Err(other) => panic!("{other:?}"),
        }
    }
    unreachable!()
}

/// A peer can open at most `MAX_TELL_CHANNELS` tell channels (targets)
/// per link: one more is refused with a reason, the channels it has keep
/// working, and its refused tells cost no credit.
pub async fn tell_channel_limit(road: Road) {
    let (ms, _net) = cluster(road, 64, Duration::ZERO).await;
    let a = &ms[0].remote;
    let svc: Recipient<Count> = a.recipient("b", "svc");
    svc.tell(Count(1_000)).await.unwrap();
    // Fill the limit with targets b does not have (each refused as such).
    for i in 1..MAX_TELL_CHANNELS {
        let to: Recipient<Count> = a.recipient("b", &format!("nobody{i}"));
        match first_refusal(&to).await {
            AskError::UnknownTarget { target } => assert_eq!(&*target, format!("nobody{i}")),
            other => panic!("{other:?}"),
        }
    }
    let one_more: Recipient<Count> = a.recipient("b", "one-more");
    match first_refusal(&one_more).await {
        AskError::Remote { reason } => {
            assert!(
                reason.contains(&format!("at most {MAX_TELL_CHANNELS} targets")),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // More refused tells than the credit window: none keeps its credit
    // (a leak would leave the last ones waiting for credit for ever).
    tokio::time::timeout(Duration::from_secs(10), async {
        for _ in 0..plexus_transports::remote::TELL_WINDOW + 10 {
            let _ = one_more.tell(Count(0)).await;
        }
    })
    .await
    .expect("refused tells gave their credit back");
    // The channel b already has still carries tells.
    svc.tell(Count(1_001)).await.unwrap();
    let stats = &ms[1].stats;
    eventually(
        "tells on an existing channel",
        Duration::from_secs(5),
        || stats.seen.lock().unwrap().contains(&1_001),
    )
    .await;
}
