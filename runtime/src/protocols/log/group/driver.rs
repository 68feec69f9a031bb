//! [`GroupCoordinator`]: the actor that drives a [`GroupCore`], tells
//! members their assignments and stores committed offsets in a
//! [`KvStore`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::storage::{KvOp, KvOptions, KvStore};
use crate::{Actor, ActorRef, Context, Handler, Message, Recipient, Terminated, TimerId};

use super::super::error::GroupError;
use super::super::record::StartAt;
use super::super::topic::Topic;
use super::core::{GroupAction, GroupConfig, GroupCore, MemberId};

/// The partitions a member owns in a generation, each with the offset to
/// start reading from (the committed offset, or the group's reset policy
/// when nothing was committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The generation; ignore an assignment older than one already seen.
    pub generation: u64,
    /// `(partition, start offset)`, ascending.
    pub partitions: Vec<(u32, u64)>,
}

impl Message for Assignment {
    type Reply = ();
}

/// Join the group. The coordinator watches `member` (its death leaves the
/// group) and tells it [`Assignment`]s.
#[derive(Debug)]
pub struct JoinGroup<B: Actor> {
    /// The joining actor.
    pub member: ActorRef<B>,
}

/// Reply to [`JoinGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAck {
    /// The member's id in the group.
    pub member: MemberId,
    /// The generation after joining.
    pub generation: u64,
}

impl<B: Actor> Message for JoinGroup<B> {
    type Reply = JoinAck;
}

/// A member is alive. Replies with the current generation; a member whose
/// `generation` is behind is sent its assignment again.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// The member.
    pub member: MemberId,
    /// The generation the member works in.
    pub generation: u64,
}

impl Message for Heartbeat {
    type Reply = Result<u64, GroupError>;
}

/// Leave the group now (partitions are reassigned at once).
#[derive(Debug, Clone, Copy)]
pub struct LeaveGroup {
    /// The member.
    pub member: MemberId,
}

impl Message for LeaveGroup {
    type Reply = ();
}

/// Commit offsets: for each partition, the offset of the next record to
/// process (everything before it is done). Stored durably before the reply.
#[derive(Debug, Clone)]
pub struct CommitOffsets {
    /// The member.
    pub member: MemberId,
    /// The generation the member works in (fencing).
    pub generation: u64,
    /// `(partition, next offset)`.
    pub offsets: Vec<(u32, u64)>,
}

impl Message for CommitOffsets {
    type Reply = Result<(), GroupError>;
}

/// The committed offsets, by partition.
#[derive(Debug, Clone, Copy)]
pub struct FetchOffsets;

impl Message for FetchOffsets {
    type Reply = BTreeMap<u32, u64>;
}

/// Ask for a [`GroupSnapshot`].
#[derive(Debug, Clone, Copy)]
pub struct Snapshot;

/// The group's state: generation and who owns what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Current generation.
    pub generation: u64,
    /// Members and their partitions.
    pub assignment: BTreeMap<MemberId, Vec<u32>>,
}

impl Message for Snapshot {
    type Reply = GroupSnapshot;
}

#[derive(Debug, Clone, Copy)]
struct Tick;

impl Message for Tick {
    type Reply = ();
}

/// Coordinates one consumer group over one [`Topic`]: spawn one per
/// (topic, group), e.g. named `"<topic>/<group>"`. Committed offsets live
/// in `<topic dir>/groups/<group>.offsets`.
///
/// # Examples
///
/// ```
/// use plexus_runtime::prelude::*;
/// use plexus_runtime::protocols::log::{
///     CommitOffsets, FetchOffsets, GroupConfig, GroupCoordinator, JoinGroup, Topic, TopicConfig,
///     Assignment,
/// };
/// struct Member;
/// impl Actor for Member {}
/// impl Handler<Assignment> for Member {
///     async fn handle(&mut self, _: Assignment, _: &mut Context<Self>) {}
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let node = Node::builder().build();
/// let topic = Topic::open(tmp.path().join("t"), TopicConfig::default(), node.clock().clone())?;
/// let coordinator = node.spawn(GroupCoordinator::open(&topic, "billing", GroupConfig::default())?);
/// let member = node.spawn(Member);
/// let ack = coordinator.ask(JoinGroup { member }).await?;
/// let commit = CommitOffsets { member: ack.member, generation: ack.generation, offsets: vec![(0, 0)] };
/// coordinator.ask(commit).await??;
/// assert_eq!(coordinator.ask(FetchOffsets).await?.get(&0), Some(&0));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupCoordinator {
    core: GroupCore,
    topic: Topic,
    /// Shared with the blocking pool, where commits are written.
    offsets: Arc<Mutex<Offsets>>,
    members: BTreeMap<MemberId, Recipient<Assignment>>,
    reset: StartAt,
    tick_every: Duration,
    timer: Option<TimerId>,
}

/// The offset store and what it holds, read back.
#[derive(Debug)]
struct Offsets {
    store: KvStore,
    committed: BTreeMap<u32, u64>,
}

/// Lock the offsets; their data stays consistent even if a writer
/// panicked (the map is updated only after the store accepted the write).
fn lock(m: &Mutex<Offsets>) -> MutexGuard<'_, Offsets> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GroupCoordinator {
    fn offsets(&self) -> MutexGuard<'_, Offsets> {
        lock(&self.offsets)
    }

    /// A coordinator of `group` on `topic`, loading committed offsets.
    /// Partitions with no committed offset start at the earliest record.
    ///
    /// # Errors
    /// [`GroupError::Storage`] if the offset store cannot be opened.
    pub fn open(topic: &Topic, group: &str, config: GroupConfig) -> Result<Self, GroupError> {
        let dir = topic.dir().join("groups");
        std::fs::create_dir_all(&dir).map_err(|e| GroupError::Storage(e.to_string()))?;
        let path: PathBuf = dir.join(format!("{group}.offsets"));
        let offsets = KvStore::open(&path, KvOptions::default())?;
        let committed: BTreeMap<u32, u64> = offsets
            .iter()
            .filter_map(|(k, v)| {
                let p = u32::from_be_bytes(k.try_into().ok()?);
                let o = u64::from_le_bytes(v.try_into().ok()?);
                Some((p, o))
            })
            .collect();
        let tick_every = (config.session_timeout / 4).max(Duration::from_millis(1));
        Ok(Self {
            core: GroupCore::new(topic.partitions(), config),
            topic: topic.clone(),
            offsets: Arc::new(Mutex::new(Offsets {
                store: offsets,
                committed,
            })),
            members: BTreeMap::new(),
            reset: StartAt::Earliest,
            tick_every,
            timer: None,
        })
    }

    /// Where partitions without a committed offset start (default
    /// [`StartAt::Earliest`]).
    pub fn reset_to(mut self, at: StartAt) -> Self {
        self.reset = at;
        self
    }

    fn start_offset(&self, partition: u32) -> u64 {
        let bounds = self.topic.bounds(partition).ok();
        let committed = self.offsets().committed.get(&partition).copied();
        match (committed, bounds) {
            // Retention may have deleted past the committed offset.
            (Some(o), Some(b)) => o.clamp(b.earliest, b.next),
            (Some(o), None) => o,
            (None, _) => self.topic.resolve(partition, self.reset).unwrap_or(0),
        }
    }

    fn drain(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                GroupAction::Assign {
                    member,
                    generation,
                    partitions,
                } => {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| (p, self.start_offset(p)))
                        .collect();
                    tracing::debug!(member = member.0, generation, "assign");
                    if let Some(r) = self.members.get(&member) {
                        send(
                            r,
                            Assignment {
                                generation,
                                partitions,
                            },
                        );
                    }
                }
                GroupAction::Expired { member } => {
                    tracing::warn!(member = member.0, "group member missed its heartbeats");
                    self.members.remove(&member);
                }
            }
        }
    }
}

/// Deliver without ever blocking the coordinator on a member's mailbox.
fn send(r: &Recipient<Assignment>, a: Assignment) {
    match r.try_tell(a) {
        Ok(()) => {}
        Err(e) if e.is_full() => {
            let r = r.clone();
            let a = e.into_inner();
            tokio::spawn(async move {
                let _ = r.tell(a).await;
            });
        }
        // A stopped member leaves through its death notice.
        Err(_) => {}
    }
}

impl Actor for GroupCoordinator {
    async fn started(&mut self, cx: &mut Context<Self>) {
        self.timer = Some(cx.run_interval(self.tick_every, || Tick));
    }
}

impl<B> Handler<JoinGroup<B>> for GroupCoordinator
where
    B: Actor + Handler<Assignment>,
{
    async fn handle(&mut self, msg: JoinGroup<B>, cx: &mut Context<Self>) -> JoinAck {
        let member = MemberId(msg.member.id().get());
        cx.watch(&msg.member);
        self.members.insert(member, msg.member.recipient());
        let generation = self.core.join(member, cx.now());
        self.drain();
        JoinAck { member, generation }
    }
}

impl Handler<Heartbeat> for GroupCoordinator {
    async fn handle(&mut self, msg: Heartbeat, cx: &mut Context<Self>) -> Result<u64, GroupError> {
        let generation = self.core.heartbeat(msg.member, cx.now())?;
        if msg.generation < generation
            && let (Some(parts), Some(r)) = (
                self.core.partitions_of(msg.member),
                self.members.get(&msg.member),
            )
        {
            let partitions = parts.iter().map(|p| (*p, self.start_offset(*p))).collect();
            send(
                r,
                Assignment {
                    generation,
                    partitions,
                },
            );
        }
        Ok(generation)
    }
}

impl Handler<LeaveGroup> for GroupCoordinator {
    async fn handle(&mut self, msg: LeaveGroup, _: &mut Context<Self>) {
        self.members.remove(&msg.member);
        if self.core.leave(msg.member) {
            self.drain();
        }
    }
}

impl Handler<Terminated> for GroupCoordinator {
    async fn handle(&mut self, t: Terminated, _: &mut Context<Self>) {
        let member = MemberId(t.id.get());
        self.members.remove(&member);
        if self.core.leave(member) {
            tracing::debug!(member = member.0, reason = %t.reason, "group member stopped");
            self.drain();
        }
    }
}

impl Handler<CommitOffsets> for GroupCoordinator {
    async fn handle(
        &mut self,
        msg: CommitOffsets,
        _: &mut Context<Self>,
    ) -> Result<(), GroupError> {
        for (p, _) in &msg.offsets {
            self.core.check_commit(msg.member, msg.generation, *p)?;
        }
        let keys: Vec<([u8; 4], [u8; 8])> = msg
            .offsets
            .iter()
            .map(|(p, o)| (p.to_be_bytes(), o.to_le_bytes()))
            .collect();
        let offsets = Arc::clone(&self.offsets);
        // The write ends in an fdatasync: it runs on the blocking pool, not
        // on a worker that also runs other actors. It finishes (and the
        // committed map follows the file) even if this handler is dropped
        // meanwhile, e.g. because a remote caller cancelled.
        tokio::task::spawn_blocking(move || {
            let mut offsets = lock(&offsets);
            let ops: Vec<KvOp<'_>> = keys.iter().map(|(k, v)| KvOp::Put(k, v)).collect();
            offsets.store.apply(&ops)?;
            offsets.committed.extend(msg.offsets);
            Ok(())
        })
        .await
        .map_err(|e| GroupError::Storage(format!("the offset write did not finish: {e}")))?
    }
}

impl Handler<FetchOffsets> for GroupCoordinator {
    async fn handle(&mut self, _: FetchOffsets, _: &mut Context<Self>) -> BTreeMap<u32, u64> {
        self.offsets().committed.clone()
    }
}

impl Handler<Snapshot> for GroupCoordinator {
    async fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> GroupSnapshot {
        GroupSnapshot {
            generation: self.core.generation(),
            assignment: self.core.assignment(),
        }
    }
}

impl Handler<Tick> for GroupCoordinator {
    async fn handle(&mut self, _: Tick, cx: &mut Context<Self>) {
        self.core.tick(cx.now());
        self.drain();
    }
}
