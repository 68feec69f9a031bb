//! Partition assignment strategies: pure functions of the partition count
//! and the members' current ownership. Deterministic: members are visited
//! in id order (a `BTreeMap`), never in hash order.

use std::collections::{BTreeMap, BTreeSet};

use super::core::MemberId;

/// How partitions are spread over a group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Balanced (counts differ by at most one) and sticky: a member keeps
    /// as many of its partitions as balance allows, so a rebalance moves
    /// only the partitions it must.
    #[default]
    Sticky,
    /// Contiguous ranges in member-id order, like Kafka's range assignor.
    Range,
}

/// Assign `partitions` partitions to the members of `current` (member →
/// partitions it owns now). Every partition goes to exactly one member;
/// with no members, nothing is assigned.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use plexus_runtime::protocols::log::{Assignor, MemberId, assign};
/// let current = BTreeMap::from([(MemberId(1), vec![0, 1, 2, 3]), (MemberId(2), vec![])]);
/// let next = assign(Assignor::Sticky, 4, &current);
/// assert_eq!(next[&MemberId(1)], vec![0, 1]); // keeps what it can
/// assert_eq!(next[&MemberId(2)], vec![2, 3]);
/// ```
pub fn assign(
    assignor: Assignor,
    partitions: u32,
    current: &BTreeMap<MemberId, Vec<u32>>,
) -> BTreeMap<MemberId, Vec<u32>> {
    let m = current.len() as u32;
    let mut out: BTreeMap<MemberId, Vec<u32>> =
        current.keys().map(|id| (*id, Vec::new())).collect();
    if m == 0 {
        return out;
    }
    let base = partitions / m;
    let extra = partitions % m;
    match assignor {
        Assignor::Range => {
            let mut next = 0;
            for (i, parts) in (0u32..).zip(out.values_mut()) {
                let size = base + u32::from(i < extra);
                parts.extend(next..next + size);
                next += size;
            }
        }
        Assignor::Sticky => {
            // Members owning the most get the larger quotas first (ties by id).
            let mut order: Vec<(MemberId, usize)> = current
                .iter()
                .map(|(id, owned)| (*id, owned.len()))
                .collect();
            order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let quota: BTreeMap<MemberId, usize> = (0u32..)
                .zip(&order)
                .map(|(i, (id, _))| (*id, (base + u32::from(i < extra)) as usize))
                .collect();
            let mut taken = BTreeSet::new();
            for (id, owned) in current {
                let q = quota.get(id).copied().unwrap_or(0);
                let mut mine: Vec<u32> =
                    owned.iter().copied().filter(|p| *p < partitions).collect();
                mine.sort_unstable();
                mine.dedup();
                let Some(slot) = out.get_mut(id) else {
                    continue;
                };
                for p in mine {
                    if slot.len() >= q {
                        break;
                    }
                    if taken.insert(p) {
                        slot.push(p);
                    }
                }
            }
            let mut free = (0..partitions).filter(|p| !taken.contains(p));
            for (id, slot) in &mut out {
                let q = quota.get(id).copied().unwrap_or(0);
                while slot.len() < q {
                    let Some(p) = free.next() else { break };
                    slot.push(p);
                }
                slot.sort_unstable();
            }
        }
    }
    out
}
