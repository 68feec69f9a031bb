//! [`Subscription`]: push chosen partitions to a recipient, no group.

use crate::{Actor, Context, Handler, Recipient};

use super::super::record::StartAt;
use super::super::topic::Topic;
use super::feeder::{ConsumerConfig, Delivered, Delivery, Feeder, Wake};
use super::group_consumer::Positions;

/// A live subscription: reads the chosen partitions from their start
/// positions and pushes new records to a [`Recipient<Delivery>`] as they
/// are appended, with at most
/// [`max_in_flight`](ConsumerConfig::max_in_flight) deliveries unanswered
/// (a slow subscriber slows the subscription; memory stays bounded).
/// Per partition, deliveries arrive in offset order. Positions are not
/// stored: use a [`GroupConsumer`](super::GroupConsumer) for that.
///
/// # Examples
///
/// ```
/// use plexus_runtime::prelude::*;
/// use plexus_runtime::protocols::log::{
///     ConsumerConfig, Delivery, ProducerRecord, StartAt, Subscription, Topic, TopicConfig,
/// };
/// struct Printer(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);
/// impl Actor for Printer {}
/// impl Handler<Delivery> for Printer {
///     async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
///         for r in d.records { let _ = self.0.send(r.value); }
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let node = Node::builder().build();
/// let topic = Topic::open(tmp.path().join("t"), TopicConfig::default(), node.clock().clone())?;
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let printer = node.spawn(Printer(tx));
/// let sub = Subscription::all(&topic, StartAt::Latest, printer.recipient(), ConsumerConfig::default());
/// node.spawn(sub);
/// topic.append(ProducerRecord::new("hello")).await?;
/// assert_eq!(rx.recv().await, Some(b"hello".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    feeder: Feeder,
    start: Vec<(u32, StartAt)>,
}

impl Subscription {
    /// Subscribe to `partitions`, each from its [`StartAt`].
    pub fn new(
        topic: &Topic,
        partitions: impl IntoIterator<Item = (u32, StartAt)>,
        target: Recipient<Delivery>,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            feeder: Feeder::new(topic.clone(), config, target),
            start: partitions.into_iter().collect(),
        }
    }

    /// Subscribe to every partition from `at`.
    pub fn all(
        topic: &Topic,
        at: StartAt,
        target: Recipient<Delivery>,
        config: ConsumerConfig,
    ) -> Self {
        Self::new(
            topic,
            (0..topic.partitions()).map(|p| (p, at)),
            target,
            config,
        )
    }
}

impl Actor for Subscription {
    async fn started(&mut self, cx: &mut Context<Self>) {
        self.feeder.back = Some((cx.myself().recipient(), cx.myself().recipient()));
        for (p, at) in std::mem::take(&mut self.start) {
            match self.feeder.topic.resolve(p, at) {
                Ok(offset) => self.feeder.add(p, offset),
                Err(e) => tracing::error!(partition = p, error = %e, "cannot subscribe"),
            }
        }
        self.feeder.fill();
    }
}

impl Handler<Delivered> for Subscription {
    async fn handle(&mut self, d: Delivered, _: &mut Context<Self>) {
        self.feeder.delivered(d);
        self.feeder.fill();
    }
}

impl Handler<Wake> for Subscription {
    async fn handle(&mut self, w: Wake, _: &mut Context<Self>) {
        self.feeder.woke(w);
        self.feeder.fill();
    }
}

impl Handler<Positions> for Subscription {
    async fn handle(
        &mut self,
        _: Positions,
        _: &mut Context<Self>,
    ) -> std::collections::BTreeMap<u32, u64> {
        self.feeder.positions()
    }
}
