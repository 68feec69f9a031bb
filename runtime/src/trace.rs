//! What travels with every message besides its payload: a correlation id,
//! a W3C-style trace context, and the deadline of the request it belongs to.
//!
//! Inside a handler, sends and asks inherit the current message's
//! correlation id, trace and deadline automatically (a task-local set by the
//! actor's loop), so a chain of calls A → B → C shares one trace and one
//! time budget without passing anything by hand.

use std::cell::{Cell, RefCell};
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

/// Per-message metadata, carried in the envelope. Kept to four words so
/// that small messages fit inline in the mailbox: what most messages do not
/// carry (a trace context, a remote caller's identity, a cancel token) sits
/// behind one optional `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub(crate) correlation: u64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) extra: Option<Arc<Extra>>,
}

/// The rarely present parts of [`Meta`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    pub(crate) trace: Option<TraceContext>,
    /// The authenticated name of the remote node that sent the request
    /// (set only for requests that arrived over a link).
    pub(crate) caller: Option<Arc<str>>,
    /// Fired when the remote caller gives up: the handler is dropped.
    pub(crate) cancel: Option<CancelToken>,
    /// Set by [`crate::remote::CallScope::enter`]: sends made in the scope
    /// take `caller` and `cancel` too (a handler's own sends do not).
    pub(crate) inbound: bool,
    /// For an inbound scope: what a message sent in it carries (the same,
    /// not inbound), made once rather than per send.
    sent: Option<Arc<Self>>,
}

impl Extra {
    fn new(
        trace: Option<TraceContext>,
        caller: Option<Arc<str>>,
        cancel: Option<CancelToken>,
        inbound: bool,
    ) -> Self {
        let sent = inbound.then(|| {
            Arc::new(Self {
                trace,
                caller: caller.clone(),
                cancel: cancel.clone(),
                inbound: false,
                sent: None,
            })
        });
        Self {
            trace,
            caller,
            cancel,
            inbound,
            sent,
        }
    }
}

impl Meta {
    pub(crate) const fn plain(correlation: u64) -> Self {
        Self {
            correlation,
            deadline: None,
            extra: None,
        }
    }

    /// Metadata from its parts; the `Arc` is made only if one is present.
    pub(crate) fn new(
        correlation: u64,
        deadline: Option<Instant>,
        trace: Option<TraceContext>,
        caller: Option<Arc<str>>,
        cancel: Option<CancelToken>,
        inbound: bool,
    ) -> Self {
        let extra = (trace.is_some() || caller.is_some() || cancel.is_some() || inbound)
            .then(|| Arc::new(Extra::new(trace, caller, cancel, inbound)));
        Self {
            correlation,
            deadline,
            extra,
        }
    }

    pub(crate) fn trace(&self) -> Option<TraceContext> {
        self.extra.as_ref().and_then(|e| e.trace)
    }

    pub(crate) fn caller(&self) -> Option<&Arc<str>> {
        self.extra.as_ref().and_then(|e| e.caller.as_ref())
    }

    pub(crate) fn cancel(&self) -> Option<&CancelToken> {
        self.extra.as_ref().and_then(|e| e.cancel.as_ref())
    }

    /// Replace the trace context.
    pub(crate) fn set_trace(&mut self, trace: TraceContext) {
        let extra = match self.extra.as_deref() {
            Some(e) => Extra::new(Some(trace), e.caller.clone(), e.cancel.clone(), e.inbound),
            None => Extra::new(Some(trace), None, None, false),
        };
        self.extra = Some(Arc::new(extra));
    }

    /// What a message sent now, from code running under `self`, carries.
    pub(crate) fn child(&self, deadline: Option<Instant>) -> Self {
        let extra = match &self.extra {
            None => None,
            // Inside a call scope: the whole context travels on.
            Some(e) if e.inbound => Some(e.sent.clone().unwrap_or_else(|| {
                Arc::new(Extra {
                    inbound: false,
                    ..Extra::clone(e)
                })
            })),
            // A handler's own sends keep only the trace.
            Some(e) => e.trace.map(|t| {
                Arc::new(Extra {
                    trace: Some(t),
                    ..Extra::default()
                })
            }),
        };
        Self {
            correlation: self.correlation,
            deadline,
            extra,
        }
    }
}

/// The plain part of the current [`Meta`]: `Copy`, so its thread-local has
/// no destructor to register and costs a plain load and store per access.
#[derive(Clone, Copy)]
struct Plain {
    correlation: u64,
    deadline: Option<Instant>,
    /// Whether `CURRENT_EXTRA` holds this message's `Extra`.
    extra: bool,
}

thread_local! {
    // The metadata of the message the actor on this thread is handling right
    // now. Set by the actor loop around each handler poll (see `run.rs`), so
    // it is only ever visible to code running inside that handler's poll.
    // Split so that the common message (no trace, caller or cancel token)
    // never touches the `Arc` cell.
    static CURRENT: Cell<Option<Plain>> = const { Cell::new(None) };
    static CURRENT_EXTRA: RefCell<Option<Arc<Extra>>> = const { RefCell::new(None) };
}

/// The metadata of the message being handled on this thread, if any.
pub(crate) fn current() -> Option<Meta> {
    let plain = CURRENT.with(Cell::get)?;
    let extra = if plain.extra {
        CURRENT_EXTRA.with(|c| c.borrow().clone())
    } else {
        None
    };
    Some(Meta {
        correlation: plain.correlation,
        deadline: plain.deadline,
        extra,
    })
}

/// Runs `f` with `meta` as the current message metadata, restoring the
/// previous value afterwards (handlers may be nested through `block_on`).
pub(crate) fn with_current<R>(meta: &Meta, f: impl FnOnce() -> R) -> R {
    struct Restore {
        plain: Option<Plain>,
        /// `Some` = the extra cell was replaced: put this back.
        extra: Option<Option<Arc<Extra>>>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.plain));
            if let Some(prev) = self.extra.take() {
                CURRENT_EXTRA.with(|c| *c.borrow_mut() = prev);
            }
        }
    }
    let plain = Plain {
        correlation: meta.correlation,
        deadline: meta.deadline,
        extra: meta.extra.is_some(),
    };
    let prev = CURRENT.with(|c| c.replace(Some(plain)));
    // The extra cell is only read when `CURRENT` says so: it need not be
    // touched unless this message carries an `Extra`.
    let extra = meta
        .extra
        .as_ref()
        .map(|e| CURRENT_EXTRA.with(|c| c.borrow_mut().replace(Arc::clone(e))));
    let _restore = Restore { plain: prev, extra };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(correlation: u64, span_id: u64) -> Meta {
        let mut m = Meta::plain(correlation);
        m.set_trace(TraceContext {
            trace_id: 1,
            span_id,
            sampled: true,
        });
        m
    }

    fn seen() -> Option<(u64, Option<u64>)> {
        current().map(|m| (m.correlation, m.trace().map(|t| t.span_id)))
    }

    /// The split thread-local (plain part, extra part) nests like one value:
    /// an inner message without `Extra` hides the outer one's, and every
    /// level is restored on the way out.
    #[test]
    fn nested_current_metadata_is_restored_level_by_level() {
        assert_eq!(seen(), None);
        with_current(&traced(1, 10), || {
            assert_eq!(seen(), Some((1, Some(10))));
            with_current(&Meta::plain(2), || {
                assert_eq!(seen(), Some((2, None)));
                with_current(&traced(3, 30), || assert_eq!(seen(), Some((3, Some(30)))));
                assert_eq!(seen(), Some((2, None)));
            });
            assert_eq!(seen(), Some((1, Some(10))));
        });
        assert_eq!(seen(), None);
    }
}
