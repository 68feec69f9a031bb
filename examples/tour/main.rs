//! A tour of plexus: one short story per capability, printed as it happens.
//!
//! Run with: `cargo run --release --example tour`
//!
//! 1. An order service asks an inventory actor (request/response).
//! 2. A worker panics; its supervisor restarts it; its reference keeps
//!    working and the messages queued behind the failure are kept.
//! 3. A fast producer meets a full mailbox and is slowed (backpressure)
//!    instead of growing memory.
//! 4. A watch fires when an actor stops.
//! 5. A durable work queue: competing workers, redelivery after a crash,
//!    a poison message in the dead-letter queue (`queue.rs`).
//! 6. The node shuts down gracefully.
//! 7. Event log: orders become events on a partitioned topic; an analytics
//!    consumer group replays them and takes over when a member stops
//!    (`log.rs`).
//! 8. Two nodes talk over QUIC with mutual TLS (`remote.rs`).

mod log;
mod queue;
mod remote;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use plexus::prelude::*;
use plexus::supervision::{Backoff, SupervisionStrategy};

// ---------------------------------------------------------------- inventory

struct Inventory {
    stock: BTreeMap<&'static str, u32>,
}
impl Actor for Inventory {}

/// Reserve `qty` of `sku`; replies with what is left, or an error.
struct Reserve {
    sku: &'static str,
    qty: u32,
}
impl Message for Reserve {
    type Reply = Result<u32, OutOfStock>;
}

#[derive(Debug)]
struct OutOfStock {
    sku: &'static str,
    available: u32,
}

impl Handler<Reserve> for Inventory {
    async fn handle(&mut self, r: Reserve, _: &mut Context<Self>) -> Result<u32, OutOfStock> {
        let left = self.stock.entry(r.sku).or_default();
        if *left < r.qty {
            return Err(OutOfStock {
                sku: r.sku,
                available: *left,
            });
        }
        *left -= r.qty;
        Ok(*left)
    }
}

// ------------------------------------------------------------------- orders

struct Orders {
    inventory: ActorRef<Inventory>,
    placed: u32,
}
impl Actor for Orders {}

struct PlaceOrder {
    sku: &'static str,
    qty: u32,
}
impl Message for PlaceOrder {
    type Reply = String;
}

impl Handler<PlaceOrder> for Orders {
    async fn handle(&mut self, o: PlaceOrder, cx: &mut Context<Self>) -> String {
        // The ask inherits this message's deadline and correlation id.
        match self
            .inventory
            .ask(Reserve {
                sku: o.sku,
                qty: o.qty,
            })
            .await
        {
            Ok(Ok(left)) => {
                self.placed += 1;
                format!(
                    "order #{} for {} x{}: confirmed, {left} left (budget left {:?})",
                    self.placed,
                    o.sku,
                    o.qty,
                    cx.remaining().unwrap_or_default()
                )
            }
            Ok(Err(e)) => format!(
                "order for {} x{}: refused, only {} in stock",
                e.sku, o.qty, e.available
            ),
            Err(e) => format!("order for {}: inventory unavailable ({e})", o.sku),
        }
    }
}

// ------------------------------------------------------------------- worker

struct Worker {
    done: u32,
}
impl Actor for Worker {
    async fn restarted(&mut self, failure: &StopReason, cx: &mut Context<Self>) {
        println!(
            "   worker {} restarted (restart #{}) after: {failure}",
            cx.id(),
            cx.restart_count()
        );
    }
}

enum Job {
    Resize(u32),
    Corrupt,
}
impl Message for Job {
    type Reply = String;
}

impl Handler<Job> for Worker {
    async fn handle(&mut self, job: Job, _: &mut Context<Self>) -> String {
        match job {
            Job::Resize(n) => {
                self.done += 1;
                format!(
                    "resized image {n} (jobs done by this instance: {})",
                    self.done
                )
            }
            Job::Corrupt => panic!("corrupt input"),
        }
    }
}

// ----------------------------------------------------------------- consumer

struct SlowSink {
    received: u64,
}
impl Actor for SlowSink {}

struct Item(#[allow(dead_code)] u64);
impl Message for Item {
    type Reply = ();
}

impl Handler<Item> for SlowSink {
    async fn handle(&mut self, _: Item, _: &mut Context<Self>) {
        self.received += 1;
        // A slow consumer: a little work per item.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

struct Received;
impl Message for Received {
    type Reply = u64;
}
impl Handler<Received> for SlowSink {
    async fn handle(&mut self, _: Received, _: &mut Context<Self>) -> u64 {
        self.received
    }
}

// ------------------------------------------------------------------ watcher

struct Undertaker;
impl Actor for Undertaker {}

impl Handler<Terminated> for Undertaker {
    async fn handle(&mut self, t: Terminated, _: &mut Context<Self>) {
        println!(
            "   watch fired: {} ({}) stopped: {}",
            t.name.as_deref().unwrap_or("?"),
            t.id,
            t.reason
        );
    }
}

/// Answered after every death notice already delivered (notices travel on
/// the priority lane, ahead of mailbox messages).
struct Flush;
impl Message for Flush {
    type Reply = ();
}
impl Handler<Flush> for Undertaker {
    async fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
}

struct Watch(ActorRef<Orders>);
impl Message for Watch {
    type Reply = ();
}
impl Handler<Watch> for Undertaker {
    async fn handle(&mut self, Watch(who): Watch, cx: &mut Context<Self>) {
        cx.watch(&who);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Handler panics are caught by the runtime; print them as one line
    // instead of the default report with a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or("(non-string panic)");
        println!("   !! a handler panicked: {msg}");
    }));
    let node = Node::builder()
        .name("tour")
        .seed(2026)
        .ask_timeout(Duration::from_secs(2))
        .supervision(
            SupervisionStrategy::one_for_one()
                .intensity(3, Duration::from_secs(10))
                .backoff(Backoff::exponential(
                    Duration::from_millis(5),
                    Duration::from_millis(100),
                )),
        )
        .build();
    println!(
        "plexus tour — node {:?}, seed {}\n",
        node.name(),
        node.seed()
    );

    // 1 ------------------------------------------------------------------
    println!("1. request/response: orders asks inventory");
    let inventory = node.spawn_with(
        SpawnOptions::new().name("inventory"),
        Inventory {
            stock: BTreeMap::from([("widget", 5), ("gadget", 1)]),
        },
    )?;
    let orders = node.spawn_with(
        SpawnOptions::new().name("orders"),
        Orders {
            inventory: inventory.clone(),
            placed: 0,
        },
    )?;
    orders.expose::<PlaceOrder>()?;
    // Code that only knows the message type finds the service by name.
    let place: Recipient<PlaceOrder> = node.lookup_recipient("orders")?;
    for (sku, qty) in [("widget", 2), ("gadget", 1), ("gadget", 1), ("widget", 3)] {
        let reply = place
            .ask(PlaceOrder { sku, qty })
            .timeout(Duration::from_millis(500))
            .await?;
        println!("   {reply}");
    }

    // 2 ------------------------------------------------------------------
    println!("\n2. supervision: a worker panics and is restarted; its ref keeps working");
    let worker = node.spawn_factory(SpawnOptions::new().name("worker"), || Worker { done: 0 })?;
    println!("   {}", worker.ask(Job::Resize(1)).await?);
    // Queue a poison job and a good one behind it: `into_future` sends at
    // once, in this order.
    let poison = worker.ask(Job::Corrupt).into_future();
    let after = worker.ask(Job::Resize(2)).into_future();
    let (poison, after) = tokio::join!(poison, after);
    match poison {
        Err(AskError::HandlerPanicked { message, .. }) => {
            println!("   the poison job's asker got HandlerPanicked: {message}")
        }
        other => println!("   unexpected: {other:?}"),
    }
    println!("   queued behind it: {}", after?);
    println!(
        "   same ref, new instance: {}",
        worker.ask(Job::Resize(3)).await?
    );
    println!("   restarts so far: {}", worker.metrics().restarts);

    // 3 ------------------------------------------------------------------
    println!("\n3. backpressure: a fast producer meets a full mailbox (capacity 16)");
    let sink = node.spawn_with(
        SpawnOptions::new().name("sink").capacity(16),
        SlowSink { received: 0 },
    )?;
    let mut full = 0u32;
    let mut max_depth = 0usize;
    let started = Instant::now();
    for i in 0..200u64 {
        // try_tell shows the refusal; tell then waits for room.
        if let Err(e) = sink.try_tell(Item(i)) {
            if e.is_full() {
                full += 1;
            }
            sink.tell(e.into_inner()).await?;
        }
        max_depth = max_depth.max(sink.mailbox_len());
    }
    let produced_in = started.elapsed();
    let received = sink.ask(Received).await?;
    println!(
        "   200 items sent in {produced_in:.1?}; the producer found the mailbox full {full} times and waited"
    );
    println!(
        "   deepest the mailbox got: {max_depth} (never above its capacity); consumer got {received}"
    );

    // 4 ------------------------------------------------------------------
    println!("\n4. death watch");
    let undertaker = node.spawn(Undertaker);
    undertaker.ask(Watch(orders.clone())).await?;
    orders.stop();
    let t = orders.terminated().await;
    undertaker.ask(Flush).await?;
    match orders
        .tell(PlaceOrder {
            sku: "widget",
            qty: 1,
        })
        .await
    {
        Err(SendError::Closed { msg, .. }) => println!(
            "   after stop, tell hands the message back: Closed({} x{})",
            msg.sku, msg.qty
        ),
        other => println!("   unexpected: {other:?}"),
    }
    println!("   orders ended with: {}", t.reason);
    // Watching an actor that is already dead fires at once.
    println!("   watching orders again, after its death:");
    undertaker.ask(Watch(orders.clone())).await?;
    undertaker.ask(Flush).await?;

    // 5 ------------------------------------------------------------------
    queue::run(&node).await?;

    // 6 ------------------------------------------------------------------
    println!("\n6. graceful shutdown");
    let m = node.metrics();
    println!(
        "   before: {} live actors, {} messages handled, {} restarts, p99 handling time {:?}",
        m.actors.len(),
        m.handled,
        m.restarts,
        m.handling_time.quantile(0.99)
    );
    let report = node.shutdown(Duration::from_secs(2)).await;
    println!(
        "   shutdown: {} stopped gracefully, {} killed, {} aborted; {} actors left",
        report.stopped,
        report.killed,
        report.aborted,
        node.actor_count()
    );

    // 7 ------------------------------------------------------------------
    log::run().await?;

    // 8 ------------------------------------------------------------------
    remote::run().await?;
    Ok(())
}
