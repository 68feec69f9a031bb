//! Two OS processes on loopback: `orders` runs in a server process, a
//! client process calls it over QUIC with mutual TLS — a normal ask, a
//! deadline that expires, and a handler error — then follows an order's
//! progress as a server stream, and sends a stream of tells that the
//! server's small mailbox slows down (backpressure).
//!
//! Run with: `cargo run --example two_nodes`
//!
//! With no argument the example writes a development CA and certificates
//! into a temporary folder, starts the server as a second process (itself,
//! with `server DIR`), reads the port it prints, and acts as the client.
//! To run the two sides by hand:
//!
//! ```text
//! cargo run -- certs --dir /tmp/plexus-certs --nodes server,client
//! cargo run --example two_nodes -- server /tmp/plexus-certs      # prints "listening PORT"
//! cargo run --example two_nodes -- client /tmp/plexus-certs PORT
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plexus::codecs::remote_message;
use plexus::prelude::*;
use plexus::transports::quic::{QuicConfig, QuicEndpoint};
use plexus::transports::remote::Remote;
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, Serialize, Deserialize)]
struct PlaceOrder {
    sku: String,
    qty: u32,
    /// How long the handler works (to show a deadline expiring).
    work_ms: u64,
}
#[derive(Debug, Serialize, Deserialize)]
enum OrderError {
    OutOfStock { sku: String },
}
remote_message!(PlaceOrder, "orders.PlaceOrder", 1, reply = Result<u64, OrderError>);

#[derive(Debug, Serialize, Deserialize)]
struct Audit(u64);
remote_message!(Audit, "orders.Audit", 1, reply = ());

/// Server streaming: the progress of an order, as it happens.
#[derive(Debug, Serialize, Deserialize)]
struct Track(u64);
remote_message!(Track, "orders.Track", 1, stream = String);

struct Orders {
    next: u64,
    audited: u64,
}
impl Actor for Orders {}
impl Handler<PlaceOrder> for Orders {
    async fn handle(&mut self, o: PlaceOrder, cx: &mut Context<Self>) -> Result<u64, OrderError> {
        println!(
            "[server] {} x{} from {:?}, budget {:?}",
            o.sku,
            o.qty,
            cx.caller(),
            cx.remaining()
        );
        tokio::time::sleep(Duration::from_millis(o.work_ms)).await;
        if o.sku == "unobtainium" {
            return Err(OrderError::OutOfStock { sku: o.sku });
        }
        self.next += 1;
        Ok(self.next)
    }
}
impl Handler<Track> for Orders {
    async fn handle(&mut self, Track(id): Track, _: &mut Context<Self>) -> ReplyStream<String> {
        let (tx, progress) = ReplyStream::channel(4);
        tokio::spawn(async move {
            for step in ["accepted", "packed", "shipped"] {
                tokio::time::sleep(Duration::from_millis(20)).await; // the warehouse at work
                if tx.send(format!("order #{id} {step}")).await.is_err() {
                    return;
                }
            }
        });
        progress
    }
}
impl Handler<Audit> for Orders {
    async fn handle(&mut self, Audit(n): Audit, _: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.audited += 1;
        if self.audited.is_multiple_of(100) {
            println!("[server] audited {} (last #{n})", self.audited);
        }
    }
}

async fn server(dir: &Path) -> Result<(), BoxError> {
    let node = Node::builder().name("server").build();
    let orders = node.spawn_with(
        SpawnOptions::new().name("orders").capacity(8),
        Orders {
            next: 0,
            audited: 0,
        },
    )?;
    orders.expose::<PlaceOrder>()?;
    orders.expose::<Audit>()?;
    orders.expose::<Track>()?;
    let remote = Remote::builder(&node)
        .expose::<PlaceOrder>()?
        .expose::<Audit>()?
        .expose_stream::<Track>()?
        .build();
    let quic = QuicEndpoint::start(&remote, QuicConfig::from_dir(dir, "server")?)?;
    println!("listening {}", quic.local_addr()?.port());
    // Serve until the client goes away (or a minute passes).
    tokio::time::timeout(Duration::from_secs(5), remote.connected("client")).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while remote.is_connected("client") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("[server] client gone; bye");
    Ok(())
}

async fn client(dir: &Path, port: u16) -> Result<(), BoxError> {
    let node = Node::builder().name("client").build();
    let remote = Remote::builder(&node).build();
    let quic = QuicEndpoint::start(&remote, QuicConfig::from_dir(dir, "client")?)?;
    quic.connect("server", ([127, 0, 0, 1], port).into());
    tokio::time::timeout(Duration::from_secs(5), remote.connected("server")).await?;

    let orders: Recipient<PlaceOrder> = remote.recipient("server", "orders");
    let order = |sku: &str, work_ms| PlaceOrder {
        sku: sku.into(),
        qty: 2,
        work_ms,
    };
    let placed = orders.ask(order("apple", 0)).await?;
    println!("[client] order: {placed:?}");
    println!(
        "[client] out of stock: {:?}",
        orders.ask(order("unobtainium", 0)).await?
    );
    let r = orders
        .ask(order("slow-apple", 1_000))
        .timeout(Duration::from_millis(100))
        .await;
    println!("[client] 100 ms deadline on a 1 s handler: {r:?}");

    let track: Recipient<Track> = remote.stream_recipient("server", "orders");
    let mut progress = track.ask(Track(placed.unwrap_or_default())).await?;
    while let Some(step) = progress.next().await {
        println!("[client] streamed: {}", step?);
    }

    let audit: Recipient<Audit> = remote.recipient("server", "orders");
    let start = Instant::now();
    for n in 0..500 {
        audit.tell(Audit(n)).await?;
    }
    println!(
        "[client] streamed 500 tells in {:?} (the server handles one per ms: the client waited)",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    quic.close();
    Ok(())
}

fn spawn_both() -> Result<(), BoxError> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("plexus-two-nodes-{}", std::process::id()));
    plexus::transports::certs::write_dev_certs(&dir, &["server", "client"])?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("server")
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().ok_or("server printed nothing")??;
    let port: u16 = first.trim_start_matches("listening ").parse()?;
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(client(&dir, port));
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match args.first().map(String::as_str) {
        None => spawn_both(),
        Some("server") => rt()?.block_on(server(Path::new(args.get(1).ok_or("server DIR")?))),
        Some("client") => {
            let dir = args.get(1).ok_or("client DIR PORT")?;
            let port = args.get(2).ok_or("client DIR PORT")?.parse()?;
            rt()?.block_on(client(Path::new(dir), port))
        }
        Some(other) => Err(format!("unknown mode {other:?}; use server or client").into()),
    }
}
