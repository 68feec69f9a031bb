//! Remote benchmarks: plexus over QUIC loopback (mutual TLS) and over the
//! simulated link, against raw quinn floors. Payload 64 bytes; both nodes in
//! one process on a 2-worker tokio runtime.
//!
//! Run with: `cargo bench --bench remote`
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plexus_codecs::remote_message;
use plexus_runtime::prelude::*;
use plexus_transports::certs::DevCa;
use plexus_transports::quic::{QuicConfig, QuicEndpoint};
use plexus_transports::remote::Remote;
use plexus_transports::sim::SimNetwork;
use serde::{Deserialize, Serialize};

const PAYLOAD: usize = 64;

#[derive(Serialize, Deserialize)]
struct Ping(Bytes);
remote_message!(Ping, "bench.Ping", 1, reply = Bytes);

#[derive(Serialize, Deserialize)]
struct Note(Bytes);
remote_message!(Note, "bench.Note", 1, reply = ());

struct Svc(Arc<AtomicU64>);
impl Actor for Svc {}
impl Handler<Ping> for Svc {
    async fn handle(&mut self, Ping(b): Ping, _: &mut Context<Self>) -> Bytes {
        b
    }
}
impl Handler<Note> for Svc {
    async fn handle(&mut self, _: Note, _: &mut Context<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct Pair {
    ping: Recipient<Ping>,
    note: Recipient<Note>,
    notes: Arc<AtomicU64>,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

fn configs() -> (QuicConfig, QuicConfig) {
    let ca = DevCa::generate("bench").unwrap();
    let mk = |n: &str| {
        let c = ca.issue(n).unwrap();
        QuicConfig::from_pem(&c.cert_pem, &c.key_pem, &ca.cert_pem).unwrap()
    };
    (mk("a"), mk("b"))
}

async fn pair(quic: bool) -> Pair {
    let a = Node::builder().name("a").build();
    let b = Node::builder().name("b").build();
    let notes = Arc::new(AtomicU64::new(0));
    let svc = b
        .spawn_with(SpawnOptions::new().name("svc"), Svc(Arc::clone(&notes)))
        .unwrap();
    svc.expose::<Ping>().unwrap();
    svc.expose::<Note>().unwrap();
    let ra = Remote::builder(&a).build();
    let rb = Remote::builder(&b)
        .expose::<Ping>()
        .unwrap()
        .expose::<Note>()
        .unwrap()
        .build();
    // A Remote that is dropped ends its sessions: keep both alive.
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = vec![
        Box::new(a.clone()),
        Box::new(b.clone()),
        Box::new(ra.clone()),
        Box::new(rb.clone()),
    ];
    if quic {
        let (ca, cb) = configs();
        let ea = QuicEndpoint::start(&ra, ca).unwrap();
        let eb = QuicEndpoint::start(&rb, cb).unwrap();
        ea.connect_once("b", eb.local_addr().unwrap())
            .await
            .unwrap();
        rb.connected("a").await;
        keep.push(Box::new(ea));
        keep.push(Box::new(eb));
    } else {
        let net = SimNetwork::with_clock(a.clock().clone(), 1);
        let (x, y) = net.link("a", "b");
        let (r1, r2) = tokio::join!(ra.attach(x), rb.attach(y));
        r1.unwrap();
        r2.unwrap();
        keep.push(Box::new(net));
    }
    Pair {
        ping: ra.recipient("b", "svc"),
        note: ra.recipient("b", "svc"),
        notes,
        _keep: keep,
    }
}

/// Raw quinn with the same TLS configs: an echo server, one bidirectional
/// stream per request; and a sink counting length-prefixed frames on one
/// unidirectional stream.
struct Floor {
    conn: quinn::Connection,
    frames: Arc<AtomicU64>,
    _eps: (quinn::Endpoint, quinn::Endpoint),
}

async fn floor() -> Floor {
    let (ca, cb) = configs();
    let server = quinn::Endpoint::server(
        cb.server_config().unwrap(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .unwrap();
    let mut client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    client.set_default_client_config(ca.client_config().unwrap());
    let frames = Arc::new(AtomicU64::new(0));
    let addr = server.local_addr().unwrap();
    let srv = server.clone();
    let counted = Arc::clone(&frames);
    tokio::spawn(async move {
        let conn = srv.accept().await.unwrap().await.unwrap();
        let c2 = conn.clone();
        tokio::spawn(async move {
            let mut uni = c2.accept_uni().await.unwrap();
            let mut buf = Vec::new();
            while let Ok(Some(chunk)) = uni.read_chunk(64 * 1024, true).await {
                buf.extend_from_slice(&chunk.bytes);
                let mut at = 0;
                let mut n = 0;
                while buf.len() - at >= 4 {
                    let len = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                    if buf.len() - at - 4 < len {
                        break;
                    }
                    at += 4 + len;
                    n += 1;
                }
                buf.drain(..at);
                counted.fetch_add(n, Ordering::Relaxed);
            }
        });
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                let req = recv.read_to_end(1024).await.unwrap();
                send.write_all(&req).await.unwrap();
                let _ = send.finish();
            });
        }
    });
    let conn = client.connect(addr, "b").unwrap().await.unwrap();
    Floor {
        conn,
        frames,
        _eps: (server, client),
    }
}

async fn floor_ask(conn: &quinn::Connection, payload: &[u8]) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(payload).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1024).await.unwrap();
    assert_eq!(reply.len(), PAYLOAD);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = rt();
    let payload = Bytes::from(vec![7u8; PAYLOAD]);
    let quic = rt.block_on(pair(true));
    let sim = rt.block_on(pair(false));
    let fl = rt.block_on(floor());

    let mut g = c.benchmark_group("remote_ask_seq");
    g.bench_function("plexus_quic", |b| {
        b.to_async(&rt)
            .iter(|| async { quic.ping.ask(Ping(payload.clone())).await.unwrap() })
    });
    g.bench_function("quinn_floor", |b| {
        b.to_async(&rt).iter(|| floor_ask(&fl.conn, &payload))
    });
    g.bench_function("plexus_sim", |b| {
        b.to_async(&rt)
            .iter(|| async { sim.ping.ask(Ping(payload.clone())).await.unwrap() })
    });
    g.finish();

    let mut g = c.benchmark_group("remote_ask_64");
    g.throughput(Throughput::Elements(64));
    for (id, p) in [("plexus_quic", &quic), ("plexus_sim", &sim)] {
        let ping = p.ping.clone();
        let payload = payload.clone();
        g.bench_function(id, |b| {
            b.to_async(&rt).iter(|| {
                let ping = ping.clone();
                let payload = payload.clone();
                async move {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..64 {
                        let ping = ping.clone();
                        let p = payload.clone();
                        set.spawn(async move { ping.ask(Ping(p)).await.unwrap() });
                    }
                    while set.join_next().await.is_some() {}
                }
            })
        });
    }
    let conn = fl.conn.clone();
    g.bench_function("quinn_floor", |b| {
        b.to_async(&rt).iter(|| {
            let conn = conn.clone();
            let payload = payload.clone();
            async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..64 {
                    let conn = conn.clone();
                    let p = payload.clone();
                    set.spawn(async move { floor_ask(&conn, &p).await });
                }
                while set.join_next().await.is_some() {}
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("remote_tell_stream");
    g.throughput(Throughput::Elements(1));
    g.bench_function("plexus_quic", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let note = quic.note.clone();
            let notes = Arc::clone(&quic.notes);
            let payload = payload.clone();
            async move {
                let target = notes.load(Ordering::Relaxed) + iters;
                let start = Instant::now();
                for _ in 0..iters {
                    note.tell(Note(payload.clone())).await.unwrap();
                }
                while notes.load(Ordering::Relaxed) < target {
                    tokio::task::yield_now().await;
                }
                start.elapsed()
            }
        })
    });
    let mut uni = rt.block_on(fl.conn.open_uni()).unwrap();
    let frames = Arc::clone(&fl.frames);
    g.bench_function("quinn_framed_floor", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let target = frames.load(Ordering::Relaxed) + iters;
                let start = Instant::now();
                let mut batch = Vec::with_capacity(64 * 1024);
                for i in 0..iters {
                    batch.extend_from_slice(&(PAYLOAD as u32).to_be_bytes());
                    batch.extend_from_slice(&payload);
                    if batch.len() >= 60 * 1024 || i + 1 == iters {
                        uni.write_all(&batch).await.unwrap();
                        batch.clear();
                    }
                }
                while frames.load(Ordering::Relaxed) < target {
                    tokio::task::yield_now().await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = remote;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(remote);
