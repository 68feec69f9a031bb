//! What travels with every message besides its payload: a correlation id,
//! a W3C-style trace context, and the deadline of the request it belongs to.
//!
//! Inside a handler, sends and asks inherit the current message's
//! correlation id, trace and deadline automatically (a task-local set by the
//! actor's loop), so a chain of calls A → B → C shares one trace and one
//! time budget without passing anything by hand.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::remote::CancelToken;

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

/// Per-message metadata, carried in the envelope.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub(crate) correlation: u64,
    pub(crate) trace: Option<TraceContext>,
    pub(crate) deadline: Option<Instant>,
    /// The authenticated name of the remote node that sent the request
    /// (set only for requests that arrived over a link).
    pub(crate) caller: Option<Arc<str>>,
    /// Fired when the remote caller gives up: the handler is dropped.
    pub(crate) cancel: Option<CancelToken>,
    /// Set by [`crate::remote::CallScope::enter`]: sends made in the scope
    /// take `caller` and `cancel` too (a handler's own sends do not).
    pub(crate) inbound: bool,
}

impl Meta {
    pub(crate) const fn plain(correlation: u64) -> Self {
        Self {
            correlation,
            trace: None,
            deadline: None,
            caller: None,
            cancel: None,
            inbound: false,
        }
    }

    /// What a message sent now, from code running under `self`, carries.
    pub(crate) fn child(&self, deadline: Option<Instant>) -> Self {
        let (caller, cancel) = if self.inbound {
            (self.caller.clone(), self.cancel.clone())
        } else {
            (None, None)
        };
        Self {
            correlation: self.correlation,
            trace: self.trace,
            deadline,
            caller,
            cancel,
            inbound: false,
        }
    }
}

thread_local! {
    // The metadata of the message the actor on this thread is handling right
    // now. Set by the actor loop around each handler poll (see `run.rs`), so
    // it is only ever visible to code running inside that handler's poll.
    static CURRENT: RefCell<Option<Meta>> = const { RefCell::new(None) };
}

/// The metadata of the message being handled on this thread, if any.
pub(crate) fn current() -> Option<Meta> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `meta` as the current message metadata, restoring the
/// previous value afterwards (handlers may be nested through `block_on`).
pub(crate) fn with_current<R>(meta: Meta, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Meta>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(meta)));
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
