//! Credit windows: the sender's [`SendWindow`] and the receiver's
//! [`RecvWindow`].

/// The sender's side of a credit window: how many more items it may send.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::rpc::SendWindow;
/// let mut w = SendWindow::new(2);
/// assert!(w.try_take());
/// assert!(w.try_take());
/// assert!(!w.try_take()); // wait for a grant
/// w.grant(1);
/// assert!(w.try_take());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    available: u64,
}

impl SendWindow {
    /// A window that starts with `initial` credits.
    pub const fn new(initial: u64) -> Self {
        Self { available: initial }
    }

    /// Spend one credit if there is one.
    pub fn try_take(&mut self) -> bool {
        if self.available == 0 {
            return false;
        }
        self.available -= 1;
        true
    }

    /// The receiver granted `n` more.
    pub fn grant(&mut self, n: u64) {
        self.available = self.available.saturating_add(n);
    }

    /// Credits left.
    pub const fn available(&self) -> u64 {
        self.available
    }
}

/// The receiver's side: counts items the target accepted and says when to
/// grant them back (in batches of half the window, or when idle).
///
/// # Examples
///
/// ```
/// # use plexus_runtime::protocols::rpc::RecvWindow;
/// let mut w = RecvWindow::new(4);
/// assert_eq!(w.accepted(false), None); // 1 of 2: batch more
/// assert_eq!(w.accepted(false), Some(2)); // half the window: grant
/// assert_eq!(w.accepted(true), Some(1)); // idle: grant what we have
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvWindow {
    window: u64,
    owed: u64,
}

impl RecvWindow {
    /// A receiver of a `window`-sized credit window.
    pub const fn new(window: u64) -> Self {
        Self { window, owed: 0 }
    }

    /// One item was accepted by its target; `idle` says nothing else is
    /// queued. Returns the credits to grant now, if any.
    pub fn accepted(&mut self, idle: bool) -> Option<u64> {
        self.owed += 1;
        if idle || self.owed * 2 >= self.window {
            let n = self.owed;
            self.owed = 0;
            Some(n)
        } else {
            None
        }
    }

    /// The window size.
    pub const fn window(&self) -> u64 {
        self.window
    }
}
