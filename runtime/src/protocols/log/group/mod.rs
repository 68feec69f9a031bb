//! Consumer groups: a coordinator actor per (topic, group) that assigns
//! partitions to members, watches them (death watch and heartbeats on the
//! node's clock) and stores committed offsets durably.

mod assign;
mod core;
mod driver;

pub use self::assign::{Assignor, assign};
pub use self::core::{GroupAction, GroupConfig, GroupCore, MemberId};
pub use self::driver::{
    Assignment, CommitOffsets, FetchOffsets, GroupCoordinator, GroupSnapshot, Heartbeat, JoinAck,
    JoinGroup, LeaveGroup, Snapshot,
};
