//! The group coordinator's state machine, sans-IO: membership, heartbeats
//! judged against a `now` given by the caller, generations, assignment and
//! commit fencing. The driver ([`GroupCoordinator`](super::GroupCoordinator))
//! feeds it events and performs the [`GroupAction`]s it returns.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::super::error::GroupError;
use super::assign::{Assignor, assign};

/// A member of a consumer group (the driver uses the member actor's id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

/// Settings of a consumer group: plain struct with `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// A member that sends no heartbeat for this long (on the node's clock)
    /// is removed and its partitions reassigned. Default 10 s.
    pub session_timeout: Duration,
    /// How partitions are spread. Default [`Assignor::Sticky`].
    pub assignor: Assignor,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(10),
            assignor: Assignor::Sticky,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAction {
    /// Tell `member` its partitions in `generation`.
    Assign {
        /// The member.
        member: MemberId,
        /// The new generation.
        generation: u64,
        /// Its partitions, ascending.
        partitions: Vec<u32>,
    },
    /// `member` missed its heartbeats and was removed.
    Expired {
        /// The member.
        member: MemberId,
    },
}

#[derive(Debug, Clone)]
struct Member {
    last_seen: Instant,
    owned: Vec<u32>,
}

/// The coordinator of one group over a topic of `partitions` partitions.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use plexus_runtime::protocols::log::{GroupAction, GroupConfig, GroupCore, MemberId};
/// let mut g = GroupCore::new(4, GroupConfig::default());
/// let t0 = Instant::now();
/// g.join(MemberId(1), t0);
/// g.join(MemberId(2), t0);
/// assert_eq!(g.owner(3), Some(MemberId(2)));
/// // Member 2 stays silent past the session timeout: 1 takes everything.
/// g.heartbeat(MemberId(1), t0 + Duration::from_secs(9)).unwrap();
/// g.tick(t0 + Duration::from_secs(11));
/// assert_eq!(g.owner(3), Some(MemberId(1)));
/// assert!(std::iter::from_fn(|| g.poll_action())
///     .any(|a| a == GroupAction::Expired { member: MemberId(2) }));
/// ```
#[derive(Debug, Clone)]
pub struct GroupCore {
    partitions: u32,
    config: GroupConfig,
    members: BTreeMap<MemberId, Member>,
    generation: u64,
    /// Generation in which each partition's current owner got it.
    since: BTreeMap<u32, u64>,
    actions: VecDeque<GroupAction>,
}

impl GroupCore {
    /// An empty group.
    pub fn new(partitions: u32, config: GroupConfig) -> Self {
        Self {
            partitions,
            config,
            members: BTreeMap::new(),
            generation: 0,
            since: BTreeMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// The current generation (bumped by every rebalance).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Members and their partitions, in member order.
    pub fn assignment(&self) -> BTreeMap<MemberId, Vec<u32>> {
        self.members
            .iter()
            .map(|(id, m)| (*id, m.owned.clone()))
            .collect()
    }

    /// Partitions of `member`, if it is in the group.
    pub fn partitions_of(&self, member: MemberId) -> Option<&[u32]> {
        self.members.get(&member).map(|m| m.owned.as_slice())
    }

    /// The member owning `partition`.
    pub fn owner(&self, partition: u32) -> Option<MemberId> {
        self.members
            .iter()
            .find(|(_, m)| m.owned.contains(&partition))
            .map(|(id, _)| *id)
    }

    /// `member` joins (or rejoins) at `now`. A new member triggers a
    /// rebalance; a known one gets its current assignment again. Returns
    /// the generation.
    pub fn join(&mut self, member: MemberId, now: Instant) -> u64 {
        if let Some(m) = self.members.get_mut(&member) {
            m.last_seen = now;
            let partitions = m.owned.clone();
            self.actions.push_back(GroupAction::Assign {
                member,
                generation: self.generation,
                partitions,
            });
            return self.generation;
        }
        self.members.insert(
            member,
            Member {
                last_seen: now,
                owned: Vec::new(),
            },
        );
        self.rebalance();
        self.generation
    }

    /// A heartbeat from `member` at `now`; returns the current generation
    /// (a member behind it should expect, or ask for, a new assignment).
    ///
    /// # Errors
    /// [`GroupError::UnknownMember`]: join again.
    pub fn heartbeat(&mut self, member: MemberId, now: Instant) -> Result<u64, GroupError> {
        let m = self
            .members
            .get_mut(&member)
            .ok_or(GroupError::UnknownMember(member.0))?;
        m.last_seen = now;
        Ok(self.generation)
    }

    /// `member` leaves (or stopped). Returns whether it was in the group.
    pub fn leave(&mut self, member: MemberId) -> bool {
        if self.members.remove(&member).is_none() {
            return false;
        }
        self.rebalance();
        true
    }

    /// Remove members whose last heartbeat is a session timeout before `now`.
    pub fn tick(&mut self, now: Instant) {
        let timeout = self.config.session_timeout;
        let expired: Vec<MemberId> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in expired {
            self.members.remove(&id);
            self.actions.push_back(GroupAction::Expired { member: id });
        }
        self.rebalance();
    }

    /// When [`tick`](Self::tick) must next run; `None` with no members.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .map(|m| m.last_seen + self.config.session_timeout)
            .min()
    }

    /// May `member`, working in `generation`, commit an offset of `partition`?
    ///
    /// # Errors
    /// [`GroupError::UnknownMember`], [`GroupError::NotOwner`], or
    /// [`GroupError::StaleGeneration`] if the member got the partition
    /// (again) after `generation`: a late commit from an earlier ownership
    /// is fenced off.
    pub fn check_commit(
        &self,
        member: MemberId,
        generation: u64,
        partition: u32,
    ) -> Result<(), GroupError> {
        let m = self
            .members
            .get(&member)
            .ok_or(GroupError::UnknownMember(member.0))?;
        if !m.owned.contains(&partition) {
            return Err(GroupError::NotOwner {
                member: member.0,
                partition,
            });
        }
        let since = self.since.get(&partition).copied().unwrap_or(0);
        if generation < since || generation > self.generation {
            return Err(GroupError::StaleGeneration {
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// The next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<GroupAction> {
        self.actions.pop_front()
    }

    fn rebalance(&mut self) {
        self.generation += 1;
        let current = self.assignment();
        let next = assign(self.config.assignor, self.partitions, &current);
        for (id, parts) in next {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            for p in &parts {
                if !m.owned.contains(p) {
                    self.since.insert(*p, self.generation);
                }
            }
            m.owned.clone_from(&parts);
            self.actions.push_back(GroupAction::Assign {
                member: id,
                generation: self.generation,
                partitions: parts,
            });
        }
    }
}
