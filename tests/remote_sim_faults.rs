//! The simulated network's faults: latency, jitter (reordering), loss and
//! partitions, from a seed.

mod remote_support;

use std::time::{Duration, Instant};

use plexus_runtime::prelude::*;
use plexus_transports::remote::Connection;
use plexus_transports::sim::SimNetwork;
use remote_support::{Echo, Member, Slow, members};

/// A fresh cluster's members, with a and b linked on a simulated network
/// seeded `seed`; a's connection to b.
#[allow(clippy::unwrap_used)] // a test helper: a failed attach fails the test
async fn a_linked_to_b(seed: u64) -> (Vec<Member>, SimNetwork, Connection) {
    let ms = members(64, Duration::ZERO);
    let net = SimNetwork::with_clock(ms[0].node.clock().clone(), seed);
    let (x, y) = net.link("a", "b");
    let (r1, r2) = tokio::join!(ms[0].remote.attach(x), ms[1].remote.attach(y));
    r2.unwrap();
    (ms, net, r1.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_paid_both_ways_and_loss_gives_typed_deadline_errors() {
    let (ms, net, _) = a_linked_to_b(3).await;
    let net = net.latency(Duration::from_millis(20));
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    let start = Instant::now();
    assert_eq!(echo.ask(Echo("x".into())).await.unwrap(), "x");
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "one round trip"
    );

    // Half the frames lost, frames reordered: every ask ends, typed.
    net.set_config({
        let mut c = plexus_transports::sim::SimConfig::default();
        c.latency = Duration::from_millis(1);
        c.jitter = Duration::from_millis(5);
        c.loss = 0.5;
        c
    });
    let slow: Recipient<Slow> = ms[0].remote.recipient("b", "svc");
    let mut ok = 0;
    let mut lost = 0;
    for _ in 0..20 {
        match slow
            .ask(Slow { ms: 0 })
            .timeout(Duration::from_millis(60))
            .await
        {
            Ok(0) => ok += 1,
            Err(AskError::DeadlineExceeded) => lost += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(ok > 0 && lost > 0, "ok {ok}, lost {lost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_closes_the_link_and_a_new_link_heals_it() {
    let (ms, net, conn) = a_linked_to_b(9).await;
    net.partition("a", "b");
    tokio::time::timeout(Duration::from_secs(2), conn.closed())
        .await
        .unwrap();
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert!(matches!(
        echo.ask(Echo("x".into())).await,
        Err(AskError::PeerUnavailable { .. })
    ));
    let (x, y) = net.link("a", "b");
    let (r1, r2) = tokio::join!(ms[0].remote.attach(x), ms[1].remote.attach(y));
    r1.unwrap();
    r2.unwrap();
    assert_eq!(echo.ask(Echo("back".into())).await.unwrap(), "back");
}

/// A node whose handshake names another node than the link's peer is
/// refused: the link's peer is the identity that was checked (over QUIC,
/// against its certificate), and the session must not live under a
/// different name than the one the node claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_naming_another_node_is_refused() {
    let ms = members(64, Duration::ZERO);
    let net = SimNetwork::with_clock(ms[0].node.clock().clone(), 5);
    // Node "c" sits at the end of a link that "a" believes goes to "b".
    let (x, y) = net.link("a", "b");
    let (r1, r2) = tokio::join!(ms[0].remote.attach(x), ms[2].remote.attach(y));
    match r1 {
        Err(plexus_transports::remote::AttachError::Identity { peer, claimed }) => {
            assert_eq!((&*peer, claimed.as_str()), ("b", "c"));
        }
        other => panic!("{other:?}"),
    }
    assert!(ms[0].remote.peers().is_empty());
    // "c" found nothing wrong (the link's peer "a" is who it claims), but
    // the link is gone under it.
    if let Ok(conn) = r2 {
        tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("c's session ends with the link");
    }
}

/// A peer that never answers the handshake is given up after the
/// builder's `handshake_timeout`, on the node's clock.
#[tokio::test]
async fn the_handshake_times_out_on_the_nodes_clock() {
    let clock = plexus_runtime::clock::ManualClock::new();
    let node = Node::builder().name("a").clock(clock.clone()).build();
    let remote = plexus_transports::remote::Remote::builder(&node)
        .handshake_timeout(Duration::from_secs(3))
        .build();
    let net = SimNetwork::with_clock(node.clock().clone(), 1);
    let (x, _silent) = net.link("a", "b");
    let mut attach = Box::pin(remote.attach(x));
    let mut advanced = Duration::ZERO;
    let result = loop {
        tokio::select! {
            biased;
            r = &mut attach => break r,
            () = tokio::task::yield_now() => {}
        }
        assert!(
            advanced < Duration::from_secs(60),
            "no timeout after {advanced:?}"
        );
        clock.advance(Duration::from_secs(1));
        advanced += Duration::from_secs(1);
    };
    assert!(
        matches!(result, Err(plexus_transports::remote::AttachError::Timeout { ref peer }) if &**peer == "b"),
        "{result:?}"
    );
    assert!(
        advanced >= Duration::from_secs(3),
        "gave up after {advanced:?}"
    );
}

/// A session has `MAX_BINDING + 1` bindings for plain tells; a route made
/// after they are all taken sends whole-header frames, which the reader
/// takes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_past_the_last_binding_carry_their_header() {
    use plexus_codecs::envelope::MAX_BINDING;
    use remote_support::{Count, scenarios::eventually};
    use std::sync::atomic::Ordering;
    let (ms, _net, _) = a_linked_to_b(11).await;
    let stats = &ms[1].stats;
    let count: Recipient<Count> = ms[0].remote.recipient("b", "svc");
    count.tell(Count(7)).await.unwrap(); // binding 0
    eventually("the bound tell", Duration::from_secs(5), || {
        stats.seen.lock().unwrap().contains(&7)
    })
    .await;
    let before = stats.handled.load(Ordering::SeqCst);
    // Take every other binding (these targets do not exist on b: refused
    // there, which does not matter here).
    for i in 1..=MAX_BINDING {
        let to: Recipient<Count> = ms[0].remote.recipient("b", &format!("nobody{i}"));
        let _ = to.tell(Count(0)).await;
    }
    // A new route to "svc" (another message type) finds none left.
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    for _ in 0..3 {
        echo.tell(Echo("whole".into())).await.unwrap();
    }
    eventually("whole-header tells", Duration::from_secs(5), || {
        stats.handled.load(Ordering::SeqCst) == before + 3
    })
    .await;
}
