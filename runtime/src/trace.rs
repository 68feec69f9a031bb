//! What travels with every message besides its payload: a correlation id,
//! a W3C-style trace context, and the deadline of the request it belongs to.
//!
//! Inside a handler, sends and asks inherit the current message's
//! correlation id, trace and deadline automatically (a task-local set by the
//! actor's loop), so a chain of calls A → B → C shares one trace and one
//! time budget without passing anything by hand.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// A W3C trace context (the parts of `traceparent` plexus keeps).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The 128-bit trace id shared by every span of one request.
    pub trace_id: u128,
    /// The id of the span that sent the message (the parent of the next).
    pub span_id: u64,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl TraceContext {
    /// Formats as a W3C `traceparent` header value.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}/{:016x}", self.trace_id, self.span_id)
    }
}

/// Per-message metadata, carried in the envelope. Kept to four words (the
/// trace context, rare on the hot path, sits behind an `Arc`) so that small
/// messages fit inline in the mailbox.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub(crate) correlation: u64,
    pub(crate) trace: Option<Arc<TraceContext>>,
    pub(crate) deadline: Option<Instant>,
}

thread_local! {
    // The metadata of the message the actor on this thread is handling right
    // now. Set by the actor loop around each handler poll (see `run.rs`), so
    // it is only ever visible to code running inside that handler's poll.
    static CURRENT: Cell<Option<Meta>> = const { Cell::new(None) };
}

/// The metadata of the message being handled on this thread, if any.
pub(crate) fn current() -> Option<Meta> {
    CURRENT.with(|c| {
        let cur = c.take();
        let copy = cur.clone();
        c.set(cur);
        copy
    })
}

/// Runs `f` with `meta` as the current message metadata, restoring the
/// previous value afterwards (handlers may be nested through `block_on`).
pub(crate) fn with_current<R>(meta: Meta, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Meta>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| c.set(prev));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(meta))));
    f()
}

/// SplitMix64: a bijective mixer, used to turn a per-node counter into
/// well-spread ids without a lock.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
