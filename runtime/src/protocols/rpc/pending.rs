//! [`Pending`]: requests awaiting an answer, by correlation id.

use std::collections::HashMap;

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
    waiting: HashMap<u64, W>,
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
            waiting: HashMap::new(),
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

    /// Every waiter, removed: the link went down.
    pub fn drain(&mut self) -> impl Iterator<Item = W> + '_ {
        self.waiting.drain().map(|(_, w)| w)
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
