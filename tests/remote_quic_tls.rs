//! QUIC specifics: untrusted peers are refused at the TLS handshake and
//! reach no actor; links reconnect after a drop; traceparent is shared by
//! the spans of both nodes.

mod remote_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use plexus_runtime::prelude::*;
use plexus_transports::certs::DevCa;
use remote_support::{Echo, endpoint, members, scenarios::eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_signed_by_another_ca_is_refused_and_reaches_no_actor() {
    let ms = members(16, Duration::ZERO);
    let ca = DevCa::generate("trusted").unwrap();
    let rogue_ca = DevCa::generate("rogue").unwrap();
    let b_cert = ca.issue("b").unwrap();
    let b = endpoint(&ms[1].remote, &b_cert, &ca);
    // "a" presents a certificate for the right name from the wrong CA (and
    // trusts the right CA, so only the server side can refuse it).
    let a_cert = rogue_ca.issue("a").unwrap();
    let a = endpoint(&ms[0].remote, &a_cert, &ca);
    let r = a.connect_once("b", b.local_addr().unwrap()).await;
    assert!(r.is_err(), "refused: {r:?}");
    eventually("b refuses a", Duration::from_secs(5), || {
        b.stats().refused == 1
    })
    .await;
    assert_eq!(b.stats().accepted, 0);
    assert!(ms[1].remote.peers().is_empty(), "no session on b");
    assert_eq!(ms[1].stats.handled.load(Ordering::SeqCst), 0);
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert!(matches!(
        echo.ask(Echo("x".into())).await,
        Err(AskError::PeerUnavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_another_name_is_refused() {
    let ms = members(16, Duration::ZERO);
    let ca = DevCa::generate("trusted").unwrap();
    let b_cert = ca.issue("b").unwrap();
    let b = endpoint(&ms[1].remote, &b_cert, &ca);
    // A valid certificate for "c", but the node says it is "a".
    let c_cert = ca.issue("c").unwrap();
    let liar = endpoint(&ms[0].remote, &c_cert, &ca);
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        liar.connect_once("b", b.local_addr().unwrap()),
    )
    .await;
    eventually("b refuses the liar", Duration::from_secs(5), || {
        b.stats().refused == 1
    })
    .await;
    assert_eq!(b.stats().accepted, 0);
    assert!(ms[1].remote.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_reconnects_after_the_link_drops() {
    let ms = members(16, Duration::ZERO);
    let ca = DevCa::generate("trusted").unwrap();
    let mut eps = Vec::new();
    for (m, name) in ms.iter().zip(["a", "b"]) {
        eps.push(endpoint(&m.remote, &ca.issue(name).unwrap(), &ca));
    }
    eps[0].connect("b", eps[1].local_addr().unwrap());
    tokio::time::timeout(Duration::from_secs(5), ms[0].remote.connected("b"))
        .await
        .unwrap();
    let echo: Recipient<Echo> = ms[0].remote.recipient("b", "svc");
    assert_eq!(echo.ask(Echo("1".into())).await.unwrap(), "1");
    ms[1].remote.disconnect("a");
    eventually("reconnected", Duration::from_secs(10), || {
        ms[0].remote.is_connected("b") && ms[1].remote.is_connected("a")
    })
    .await;
    eventually("b accepted a twice", Duration::from_secs(5), || {
        eps[1].stats().accepted == 2
    })
    .await;
    assert_eq!(eps[1].stats().refused, 0);
    let mut ok = false;
    for _ in 0..50 {
        if echo.ask(Echo("2".into())).await.as_deref() == Ok("2") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "asks work again after reconnecting");
    eps[0].close();
}

/// A peer with a valid certificate that connects and then says nothing
/// (no stream, no name) is dropped after the handshake timeout, although
/// its keepalives would keep the connection itself up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_peer_that_never_speaks_is_dropped() {
    use plexus_transports::quic::QuicConfig;
    use plexus_transports::remote::Remote;
    let node = Node::builder().name("b").build();
    let remote = Remote::builder(&node)
        .handshake_timeout(Duration::from_millis(300))
        .build();
    let ca = DevCa::generate("trusted").unwrap();
    let b = endpoint(&remote, &ca.issue("b").unwrap(), &ca);
    let a_cert = ca.issue("a").unwrap();
    let a = QuicConfig::from_pem(&a_cert.cert_pem, &a_cert.key_pem, &ca.cert_pem).unwrap();
    let mut client =
        quinn::Endpoint::client(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    client.set_default_client_config(a.client_config().unwrap());
    let conn = client
        .connect(b.local_addr().unwrap(), "b")
        .unwrap()
        .await
        .expect("the TLS handshake succeeds: the certificate is valid");
    eventually(
        "b gives up on the silent peer",
        Duration::from_secs(10),
        || b.stats().refused == 1,
    )
    .await;
    assert_eq!(b.stats().accepted, 0);
    assert!(remote.peers().is_empty());
    drop(conn);
}

/// A dialer that does not trust the peer's certificate refuses it in its
/// own TLS handshake, and says so with a typed error it can match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_refusing_the_peers_certificate_gets_a_tls_error() {
    let ms = members(16, Duration::ZERO);
    let ca = DevCa::generate("trusted").unwrap();
    let rogue_ca = DevCa::generate("rogue").unwrap();
    // "b" is signed by a CA that "a" does not trust.
    let b = endpoint(&ms[1].remote, &rogue_ca.issue("b").unwrap(), &ca);
    let a = endpoint(&ms[0].remote, &ca.issue("a").unwrap(), &ca);
    let r = a.connect_once("b", b.local_addr().unwrap()).await;
    assert!(
        matches!(&r, Err(plexus_transports::quic::QuicError::Tls { peer, .. }) if peer == "b"),
        "{r:?}"
    );
    assert!(ms[0].remote.peers().is_empty());
}
