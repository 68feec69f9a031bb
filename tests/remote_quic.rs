//! The remote scenarios on the real QUIC over loopback with mutual TLS.

#[macro_use]
mod remote_support;

every_scenario!(Quic);

/// Both nodes list each other as peers and dial at once: they settle on one
/// link and calls keep working (no session replacing the other in a loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_dial_each_other_settle_on_one_link() {
    use plexus_runtime::Recipient;
    use plexus_transports::certs::DevCa;
    use plexus_transports::quic::QuicEndpoint;
    use plexus_transports::remote::Remote;
    use remote_support::{Echo, members};
    use std::time::Duration;

    let ms = members(8, Duration::ZERO);
    let ca = DevCa::generate("test CA").unwrap();
    let endpoints: Vec<QuicEndpoint> = ms[..2]
        .iter()
        .map(|m| {
            let name = m.node.name();
            remote_support::endpoint(&m.remote, &ca.issue(name).unwrap(), &ca)
        })
        .collect();
    endpoints[0].connect("b", endpoints[1].local_addr().unwrap());
    endpoints[1].connect("a", endpoints[0].local_addr().unwrap());
    let (a, b) = (&ms[0].remote, &ms[1].remote);
    tokio::time::timeout(Duration::from_secs(10), async {
        a.connected("b").await;
        b.connected("a").await;
    })
    .await
    .expect("connected");
    // While the two dials settle a call may meet the link being dropped
    // (PeerUnavailable, then retried once the kept link is up); after the
    // first few calls every call must go through on the first try.
    async fn call(to: &Recipient<Echo>, via: &Remote, peer: &str, i: usize) -> String {
        let s = format!("{i}");
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match to.ask(Echo(s.clone())).await {
                    Err(plexus_runtime::AskError::PeerUnavailable { .. }) => {
                        assert!(i < 20, "link flapping at call {i}");
                        via.connected(peer).await;
                    }
                    other => return other.unwrap(),
                }
            }
        })
        .await
        .expect("answered")
    }
    let echo: Recipient<Echo> = a.recipient("b", "svc");
    let back: Recipient<Echo> = b.recipient("a", "svc");
    for i in 0..200 {
        assert_eq!(call(&echo, a, "b", i).await, format!("{i}"));
        assert_eq!(call(&back, b, "a", i).await, format!("{i}"));
    }
    for e in &endpoints {
        e.close();
    }
}
