//! 5. A durable work queue: orders go to a queue on disk, two workers
//!    compete for them, one of them dies mid-order and its orders are
//!    delivered to the other, and a poison order ends in the dead-letter
//!    queue after its attempts run out.

use std::time::Duration;

use plexus::prelude::*;
use plexus::protocols::queue::{Delivery, Nack, NewMessage, Queue, QueueConfig};

struct Packer {
    name: &'static str,
    /// Dies (panics) on its first order, like a crashed worker process.
    crash_on_first: bool,
    packed: flume::Sender<String>,
}
impl Actor for Packer {}

impl Handler<Delivery> for Packer {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        let order = String::from_utf8_lossy(d.payload()).into_owned();
        if self.crash_on_first {
            println!(
                "   {} took {order} (attempt {}) and crashes",
                self.name,
                d.attempt()
            );
            panic!("packer crashed");
        }
        if order.contains("poison") {
            println!(
                "   {} cannot parse {order} (attempt {}): nack",
                self.name,
                d.attempt()
            );
            // The nack's reply comes after the queue decided: retry, or
            // (on the last attempt) dead-letter.
            let _ = d.nack(Nack::new("unparseable order")).await;
            let _ = self.packed.send(String::new());
            return;
        }
        if d.ack_durable().await.is_ok() {
            let line = format!("{} packed {order} (attempt {})", self.name, d.attempt());
            let _ = self.packed.send(line);
        }
    }
}

pub(crate) async fn run(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n5. durable work queue: competing workers, redelivery, dead letters");
    let dir = std::env::temp_dir().join(format!(
        "plexus-tour-queue-{}-{}",
        std::process::id(),
        node.random_u64()
    ));
    let result = story(node, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(node: &Node, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let config = QueueConfig {
        max_attempts: 3,
        backoff_initial: Duration::from_millis(5),
        ..QueueConfig::default()
    };
    let orders = Queue::open(node, dir, "orders", config.clone()).await?;
    for n in 1..=6 {
        orders
            .enqueue(NewMessage::new(format!("order-{n}")).dedup_id(format!("order-{n}")))
            .await?;
    }
    // A retried submission with the same dedup id is not stored twice.
    let again = orders
        .enqueue(NewMessage::new("order-3").dedup_id("order-3"))
        .await?;
    println!(
        "   6 orders on disk; resubmitting order-3 is a duplicate: {}",
        again.duplicate
    );
    orders.enqueue(NewMessage::new("order-poison")).await?;

    let (tx, packed) = flume::unbounded();
    let alice = node.spawn(Packer {
        name: "alice",
        crash_on_first: true,
        packed: tx.clone(),
    });
    let bob = node.spawn(Packer {
        name: "bob",
        crash_on_first: false,
        packed: tx,
    });
    // The queue watches each worker: a death returns its orders at once.
    orders.subscribe_actor(&alice, 1).await?;
    orders.subscribe_actor(&bob, 2).await?;
    let t = alice.terminated().await;
    println!(
        "   alice stopped ({}); her order goes back to the queue",
        t.reason
    );

    // Six orders packed and three nacks of the poison order (its last
    // attempt moves it to the dead-letter queue).
    for _ in 0..9 {
        let line = tokio::time::timeout(Duration::from_secs(5), packed.recv_async()).await??;
        if !line.is_empty() {
            println!("   {line}");
        }
    }
    for dl in orders.dead_letters(10).await? {
        println!(
            "   dead letter: {} after {} attempts ({})",
            String::from_utf8_lossy(&dl.body.payload),
            dl.attempts,
            dl.reason
        );
    }
    let m = orders.metrics().await?;
    println!(
        "   metrics: depth {}, in flight {}, acked {}, redeliveries {}, dead letters {}",
        m.depth, m.in_flight, m.acked, m.redeliveries, m.dead_letters
    );
    orders.close().await;
    let reopened = Queue::open(node, dir, "orders", config).await?;
    let m = reopened.metrics().await?;
    println!(
        "   after a restart the dead letter is still there: {} dead, {} waiting",
        m.dead_letters, m.depth
    );
    reopened.close().await;
    bob.stop();
    Ok(())
}
