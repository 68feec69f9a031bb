//! 7. Event log: every order becomes an event on a durable, partitioned
//!    topic; an analytics consumer group replays it from the start, and
//!    takes over when one of its members stops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus::prelude::*;
use plexus::protocols::log::{
    ConsumerConfig, Delivery, FetchOffsets, GroupConfig, GroupConsumer, GroupCoordinator, MemberId,
    Positions, ProducerId, ProducerRecord, Snapshot, Topic, TopicConfig,
};
use tokio::sync::watch;

/// Removes the tour's data directory, also on early return.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Revenue per customer, as seen by one analytics member.
struct Analytics {
    name: &'static str,
    revenue: Arc<Mutex<BTreeMap<String, u64>>>,
    seen: watch::Sender<usize>,
}
impl Actor for Analytics {}
impl Handler<Delivery> for Analytics {
    async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
        let mut revenue = self.revenue.lock().unwrap_or_else(|p| p.into_inner());
        for r in &d.records {
            let customer =
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let amount: u64 = std::str::from_utf8(&r.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            *revenue.entry(customer).or_default() += amount;
        }
        println!(
            "   {} got partition {} offsets {}..={}",
            self.name,
            d.partition,
            d.records.first().map_or(0, |r| r.offset),
            d.records.last().map_or(0, |r| r.offset)
        );
        self.seen.send_modify(|n| *n += d.records.len());
    }
}

async fn place_orders(topic: &Topic, from: u64, to: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut batch = topic.batch();
    for i in from..to {
        let customer = ["ada", "bob", "cy", "dee"][(i % 4) as usize];
        batch.push(
            ProducerRecord::keyed(customer, format!("{}", 10 + i)).header("kind", "order-placed"),
        )?;
    }
    topic.send(batch).await?;
    Ok(())
}

pub(crate) async fn run() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n7. event log: orders become events; an analytics group replays them");
    let dir = TempDir(std::env::temp_dir().join(format!("plexus-tour-log-{}", std::process::id())));
    let node = Node::builder().name("tour-log").seed(2026).build();
    let config = TopicConfig {
        partitions: 3,
        ..TopicConfig::default()
    };
    let topic = Topic::open(dir.0.join("orders"), config, node.clock().clone())?;
    for customer in ["ada", "bob", "cy"] {
        let at = topic
            .append(ProducerRecord::keyed(customer, "10").header("kind", "order-placed"))
            .await?;
        println!(
            "   order for {customer} -> partition {} offset {} (same key, same partition, every run)",
            at.partition, at.offset
        );
    }
    place_orders(&topic, 3, 12).await?;

    // An idempotent producer: a retry after a timeout does not duplicate.
    let checkout = ProducerId(1);
    let seq = topic.next_sequence(checkout);
    let send = || {
        let mut b = topic.idempotent_batch(checkout, seq);
        b.push(ProducerRecord::keyed("dee", "99").header("kind", "order-placed"))
            .map(|_| b)
    };
    let first = topic.send(send()?).await?;
    let retry = topic.send(send()?).await?;
    println!(
        "   idempotent producer: batch {seq} sent twice, stored once at {:?} (retry answered {:?})",
        first[0], retry[0]
    );

    let coordinator = node.spawn(GroupCoordinator::open(
        &topic,
        "analytics",
        GroupConfig::default(),
    )?);
    let revenue = Arc::new(Mutex::new(BTreeMap::new()));
    let consumer_config = ConsumerConfig {
        max_batch: 4,
        max_in_flight: 2,
        ..ConsumerConfig::default()
    };
    let mut members = Vec::new();
    let mut counters = Vec::new();
    for name in ["analytics-1", "analytics-2"] {
        let (tx, rx) = watch::channel(0);
        let sink = node.spawn(Analytics {
            name,
            revenue: revenue.clone(),
            seen: tx,
        });
        members.push(node.spawn(GroupConsumer::new(
            &topic,
            coordinator.clone(),
            sink.recipient(),
            consumer_config,
        )));
        counters.push(rx);
    }
    let total = |t: &Topic| {
        (0..t.partitions())
            .map(|p| t.bounds(p).map_or(0, |b| b.next))
            .sum::<u64>()
    };
    // Wait until the group has replayed everything (at least once).
    let wait_all = |members: Vec<ActorRef<GroupConsumer>>, want: u64| async move {
        for _ in 0..100_000 {
            let mut done = 0;
            for m in &members {
                done += m
                    .ask(Positions)
                    .await
                    .map(|p| p.values().sum::<u64>())
                    .unwrap_or(0);
            }
            if done >= want {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    wait_all(members.clone(), total(&topic)).await;
    let snap = coordinator.ask(Snapshot).await?;
    for (i, m) in members.iter().enumerate() {
        let parts = snap
            .assignment
            .get(&MemberId(m.id().get()))
            .cloned()
            .unwrap_or_default();
        println!(
            "   analytics-{} owns partitions {parts:?} (generation {})",
            i + 1,
            snap.generation
        );
    }
    println!(
        "   revenue so far: {:?}",
        revenue.lock().unwrap_or_else(|p| p.into_inner())
    );

    println!("   analytics-1 stops; analytics-2 takes over from the committed offsets");
    members[0].stop();
    members[0].terminated().await;
    place_orders(&topic, 12, 20).await?;
    wait_all(vec![members[1].clone()], total(&topic)).await;
    let snap = coordinator.ask(Snapshot).await?;
    println!(
        "   after the rebalance: {:?}",
        snap.assignment.values().collect::<Vec<_>>()
    );
    println!(
        "   committed offsets: {:?}",
        coordinator.ask(FetchOffsets).await?
    );
    println!(
        "   revenue: {:?}",
        revenue.lock().unwrap_or_else(|p| p.into_inner())
    );
    let _ = counters;
    node.shutdown(Duration::from_secs(2)).await;
    drop(topic);
    Ok(())
}
