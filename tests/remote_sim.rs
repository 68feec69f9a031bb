//! The remote scenarios on the simulated link.

#[macro_use]
mod remote_support;

every_scenario!(Sim);

/// Two nodes that dial each other at once keep one link, the same one on
/// both sides (the one opened by the node whose name sorts first), in
/// whatever order the attaches finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_dial_each_other_keep_one_link() {
    use plexus_runtime::Recipient;
    use plexus_transports::remote::AttachError;
    use plexus_transports::sim::SimNetwork;
    use remote_support::{Echo, members};
    use std::time::Duration;

    for a_first in [true, false] {
        let ms = members(8, Duration::ZERO);
        let (a, b) = (&ms[0].remote, &ms[1].remote);
        let net = SimNetwork::with_clock(ms[0].node.clock().clone(), 1);
        let (a_dialed, b_accepted) = net.link("a", "b");
        let (b_dialed, a_accepted) = net.link("b", "a");
        let (kept_at_a, kept_at_b, dup_at_a, dup_at_b) = if a_first {
            let (x, y) = tokio::join!(a.attach(a_dialed), b.attach(b_accepted));
            let (p, q) = tokio::join!(b.attach(b_dialed), a.attach(a_accepted));
            (x, y, q, p)
        } else {
            let (p, q) = tokio::join!(b.attach(b_dialed), a.attach(a_accepted));
            let (x, y) = tokio::join!(a.attach(a_dialed), b.attach(b_accepted));
            (x, y, q, p)
        };
        let (kept_at_a, kept_at_b) = (kept_at_a.unwrap(), kept_at_b.unwrap());
        if a_first {
            // The second link came later and lost on both sides: refused
            // as a duplicate, or closed by the peer that refused it first.
            for dup in [dup_at_a, dup_at_b] {
                assert!(
                    matches!(
                        dup,
                        Err(AttachError::Duplicate { .. } | AttachError::Link(_))
                    ),
                    "{dup:?}"
                );
            }
        } else {
            // It came first and was replaced by the link to keep.
            let (dup_a, dup_b) = (dup_at_a.unwrap(), dup_at_b.unwrap());
            tokio::time::timeout(Duration::from_secs(5), async {
                dup_a.closed().await;
                dup_b.closed().await;
            })
            .await
            .expect("the duplicate closes");
        }
        assert!(kept_at_a.is_alive() && kept_at_b.is_alive());
        assert!(a.connection("b").unwrap().is_alive());
        let echo: Recipient<Echo> = a.recipient("b", "svc");
        for i in 0..20 {
            let s = format!("{i}");
            assert_eq!(echo.ask(Echo(s.clone())).await.unwrap(), s);
        }
        assert!(kept_at_a.is_alive() && kept_at_b.is_alive(), "no flapping");
    }
}

/// The receiver remembers where tells and asks go; when the actor behind
/// the name stops and another takes the name, later tells on the same
/// channel and later asks reach the new actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_and_asks_follow_a_name_to_its_new_actor() {
    use plexus_runtime::prelude::*;
    use plexus_transports::remote::Remote;
    use plexus_transports::sim::SimNetwork;
    use remote_support::{Count, Echo};

    struct Tally(flume::Sender<(u8, u64)>, u8);
    impl Actor for Tally {}
    impl Handler<Count> for Tally {
        async fn handle(&mut self, Count(n): Count, _: &mut Context<Self>) {
            let _ = self.0.send((self.1, n));
        }
    }
    impl Handler<Echo> for Tally {
        async fn handle(&mut self, Echo(s): Echo, _: &mut Context<Self>) -> String {
            format!("{}{s}", self.1)
        }
    }

    let (a, b) = (
        Node::builder().name("a").build(),
        Node::builder().name("b").build(),
    );
    let ra = Remote::builder(&a).build();
    let rb = Remote::builder(&b)
        .expose::<Count>()
        .and_then(|r| r.expose::<Echo>())
        .unwrap()
        .build();
    let (tx, rx) = flume::unbounded();
    let first = b
        .spawn_with(SpawnOptions::new().name("tally"), Tally(tx.clone(), 1))
        .unwrap();
    first.expose::<Count>().unwrap();
    first.expose::<Echo>().unwrap();
    let net = SimNetwork::with_clock(a.clock().clone(), 1);
    let (x, y) = net.link("a", "b");
    let (r1, r2) = tokio::join!(ra.attach(x), rb.attach(y));
    r1.unwrap();
    r2.unwrap();

    let count: Recipient<Count> = ra.recipient("b", "tally");
    let echo: Recipient<Echo> = ra.recipient("b", "tally");
    count.tell(Count(1)).await.unwrap();
    assert_eq!(rx.recv_async().await.unwrap(), (1, 1));
    assert_eq!(echo.ask(Echo("x".into())).await.unwrap(), "1x");
    first.stop();
    first.terminated().await;
    let second = b
        .spawn_with(SpawnOptions::new().name("tally"), Tally(tx, 2))
        .unwrap();
    second.expose::<Count>().unwrap();
    second.expose::<Echo>().unwrap();
    count.tell(Count(2)).await.unwrap();
    assert_eq!(rx.recv_async().await.unwrap(), (2, 2));
    assert_eq!(echo.ask(Echo("y".into())).await.unwrap(), "2y");
}
