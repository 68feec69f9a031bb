//! [`Pending`]: requests awaiting an answer, by correlation id.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crate::counter_hash::CounterHasher;
use crate::trace::mix64;

/// Hashes correlation ids a peer picked (the calls a node serves) cheaply:
/// one keyed mix (two multiplications) instead of SipHash, which cost
/// about 140 instructions per lookup, several per ask. The key is random
/// per table, so a peer cannot aim its ids at one bucket.
///
/// # Examples
///
/// ```
/// # use std::collections::HashMap;
/// # use plexus_runtime::protocols::rpc::IdHasher;
/// let mut calls: HashMap<u64, &str, IdHasher> = HashMap::default();
/// calls.insert(7, "call");
/// assert_eq!(calls.get(&7), Some(&"call"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct IdHasher {
    key: u64,
}

impl Default for IdHasher {
    /// A fresh random key (from the standard library's per-process seed).
    fn default() -> Self {
        Self {
            key: RandomState::new().hash_one(0x5EED_u64),
        }
    }
}

impl BuildHasher for IdHasher {
    type Hasher = CorrelationHasher;

    fn build_hasher(&self) -> CorrelationHasher {
        CorrelationHasher(self.key)
    }
}

/// The [`Hasher`] of [`IdHasher`]: SplitMix64's mixer over the key and
/// the id, so sequential ids spread over a table's buckets and its control
/// bits alike.
#[derive(Debug, Clone, Copy)]
pub struct CorrelationHasher(u64);

impl Hasher for CorrelationHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix64(self.0 ^ n);
    }
}

/// The caller's table of requests awaiting an answer, keyed by correlation
/// id; `W` is whatever wakes the caller (a oneshot sender in the driver).
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::rpc::Pending;
/// let mut pending = Pending::new();
/// let id = pending.insert("waiter");
/// assert_eq!(pending.take(id), Some("waiter"));
/// assert_eq!(pending.take(id), None);
/// ```
#[derive(Debug)]
pub struct Pending<W> {
    next: u64,
    waiting: HashMap<u64, W, BuildHasherDefault<CounterHasher>>,
}

impl<W> Default for Pending<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W> Pending<W> {
    /// An empty table; ids start at 1 (0 means "none" on the wire).
    pub fn new() -> Self {
        Self {
            next: 1,
            waiting: HashMap::default(),
        }
    }

    /// Register a waiter under a fresh correlation id.
    pub fn insert(&mut self, waiter: W) -> u64 {
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.waiting.insert(id, waiter);
        id
    }

    /// The waiter of `id`, removed; `None` for an unknown or answered id (a
    /// late or duplicate answer, which the driver ignores).
    pub fn take(&mut self, id: u64) -> Option<W> {
        self.waiting.remove(&id)
    }

    /// The waiter of `id`, kept (for streams that get several answers).
    pub fn get(&self, id: u64) -> Option<&W> {
        self.waiting.get(&id)
    }

    /// The waiter of `id`, kept, to update in place (a reply slot that
    /// the answer is written into).
    pub fn get_mut(&mut self, id: u64) -> Option<&mut W> {
        self.waiting.get_mut(&id)
    }

    /// Every waiter, removed, in id order (the order the requests were
    /// made, so failing them all is reproducible): the link went down.
    pub fn drain(&mut self) -> impl Iterator<Item = W> + use<W> {
        let mut all: Vec<_> = self.waiting.drain().collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, w)| w)
    }

    /// Requests awaiting an answer.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
