//! [`GroupConsumer`]: a consumer-group member that pushes its partitions'
//! records to a recipient and commits what was handled.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Actor, ActorRef, Context, Handler, Message, Recipient};

use super::super::error::GroupError;
use super::super::group::{
    Assignment, CommitOffsets, GroupCoordinator, Heartbeat, JoinGroup, LeaveGroup, MemberId,
};
use super::super::topic::Topic;
use super::feeder::{ConsumerConfig, Delivered, Delivery, Feeder, Wake};

/// Ask a consumer for its acknowledged positions: per partition, the next
/// offset to process (everything before it was handled).
#[derive(Debug, Clone, Copy)]
pub struct Positions;

impl Message for Positions {
    type Reply = BTreeMap<u32, u64>;
}

#[derive(Debug, Clone, Copy)]
struct HeartbeatTick;

impl Message for HeartbeatTick {
    type Reply = ();
}

/// A member of a consumer group. On start it joins the group through the
/// [`GroupCoordinator`], then, for the partitions assigned to it, reads
/// from the committed offsets and pushes [`Delivery`]s to its recipient
/// (bounded in flight, see [`ConsumerConfig`]). When the recipient has
/// handled a delivery, the member commits past it. It heartbeats on the
/// node's clock; if it stops, dies or goes silent, the coordinator gives
/// its partitions to the other members, which resume from the last
/// committed offsets: at-least-once, nothing skipped.
///
/// # Examples
///
/// ```
/// use plexus_runtime::prelude::*;
/// use plexus_runtime::protocols::log::{
///     ConsumerConfig, Delivery, GroupConfig, GroupConsumer, GroupCoordinator, ProducerRecord,
///     Topic, TopicConfig,
/// };
/// struct Sink(tokio::sync::mpsc::UnboundedSender<u64>);
/// impl Actor for Sink {}
/// impl Handler<Delivery> for Sink {
///     async fn handle(&mut self, d: Delivery, _: &mut Context<Self>) {
///         for r in d.records { let _ = self.0.send(r.offset); }
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let node = Node::builder().build();
/// let topic = Topic::open(tmp.path().join("t"), TopicConfig::default(), node.clock().clone())?;
/// topic.append(ProducerRecord::new("a")).await?;
/// let coordinator = node.spawn(GroupCoordinator::open(&topic, "g", GroupConfig::default())?);
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let sink = node.spawn(Sink(tx));
/// node.spawn(GroupConsumer::new(&topic, coordinator, sink.recipient(), ConsumerConfig::default()));
/// assert_eq!(rx.recv().await, Some(0));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupConsumer {
    feeder: Feeder,
    coordinator: ActorRef<GroupCoordinator>,
    member: Option<MemberId>,
    generation: u64,
}

impl GroupConsumer {
    /// A member of the group that `coordinator` runs, delivering to `target`.
    pub fn new(
        topic: &Topic,
        coordinator: ActorRef<GroupCoordinator>,
        target: Recipient<Delivery>,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            feeder: Feeder::new(topic.clone(), config, target),
            coordinator,
            member: None,
            generation: 0,
        }
    }

    async fn join(&mut self, cx: &mut Context<Self>) {
        self.feeder.clear();
        self.generation = 0;
        let join = JoinGroup {
            member: cx.myself().clone(),
        };
        match self.coordinator.ask(join).await {
            Ok(ack) => self.member = Some(ack.member),
            Err(e) => {
                tracing::error!(error = %e, "cannot join the consumer group");
                cx.stop();
            }
        }
    }
}

impl Actor for GroupConsumer {
    async fn started(&mut self, cx: &mut Context<Self>) {
        self.feeder.back = Some((cx.myself().recipient(), cx.myself().recipient()));
        let every = self.feeder.config.heartbeat_interval;
        cx.run_interval(every, || HeartbeatTick);
        self.join(cx).await;
    }

    async fn stopping(&mut self, _: &mut Context<Self>) {
        if let Some(member) = self.member {
            let _ = self.coordinator.try_tell(LeaveGroup { member });
        }
    }
}

impl Handler<Assignment> for GroupConsumer {
    async fn handle(&mut self, a: Assignment, _: &mut Context<Self>) {
        if a.generation < self.generation {
            return;
        }
        self.generation = a.generation;
        let keep: BTreeSet<u32> = a.partitions.iter().map(|(p, _)| *p).collect();
        let current: Vec<u32> = self.feeder.positions().into_keys().collect();
        for p in current {
            if !keep.contains(&p) {
                self.feeder.remove(p);
            }
        }
        for (p, offset) in a.partitions {
            // A partition kept across a rebalance continues where it is.
            if !self.feeder.has(p) {
                self.feeder.add(p, offset);
            }
        }
        tracing::debug!(generation = a.generation, partitions = ?keep, "assigned");
        self.feeder.fill();
    }
}

impl Handler<Delivered> for GroupConsumer {
    async fn handle(&mut self, d: Delivered, _: &mut Context<Self>) {
        let partition = d.partition;
        if let (Some(position), Some(member)) = (self.feeder.delivered(d), self.member) {
            let commit = CommitOffsets {
                member,
                generation: self.generation,
                offsets: vec![(partition, position)],
            };
            match self.coordinator.ask(commit).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, partition, "commit refused"),
                Err(e) => tracing::warn!(error = %e, partition, "commit failed"),
            }
        }
        self.feeder.fill();
    }
}

impl Handler<Wake> for GroupConsumer {
    async fn handle(&mut self, w: Wake, _: &mut Context<Self>) {
        self.feeder.woke(w);
        self.feeder.fill();
    }
}

impl Handler<HeartbeatTick> for GroupConsumer {
    async fn handle(&mut self, _: HeartbeatTick, cx: &mut Context<Self>) {
        let Some(member) = self.member else {
            return self.join(cx).await;
        };
        let beat = Heartbeat {
            member,
            generation: self.generation,
        };
        match self.coordinator.ask(beat).await {
            Ok(Ok(_)) => {}
            Ok(Err(GroupError::UnknownMember(_))) => {
                tracing::warn!(member = member.0, "dropped from the group; rejoining");
                self.join(cx).await;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat refused"),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

impl Handler<Positions> for GroupConsumer {
    async fn handle(&mut self, _: Positions, _: &mut Context<Self>) -> BTreeMap<u32, u64> {
        self.feeder.positions()
    }
}
