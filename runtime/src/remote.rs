//! The seam between the core and the roads out of the process.
//!
//! The core knows no sockets and no serialization. A transport (the QUIC and
//! simulated links of `plexus-transports`) hands the rpc driver a [`Link`]:
//! an ordered, flow-controlled carrier of opaque frames to one peer node,
//! labelled with the peer's authenticated name. What travels in the frames
//! (envelopes, codecs) is decided above the core.
//!
//! For the receiving side of a remote call, [`CallScope::enter`] runs code
//! as if it were inside a handler of a message that carried the remote
//! call's deadline, trace, caller identity and [`CancelToken`]: an ask made
//! there inherits all of them, so the local handler sees them through
//! [`Context`](crate::Context). For the sending side, [`current_call`] tells
//! a remote proxy what the current handler's call carries (its deadline
//! becomes the remaining budget on the wire).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;

use crate::recipient::BoxFuture;
use crate::trace::{self, Meta, TraceContext};

/// Fired when the remote caller of a request gives up (it dropped its ask
/// future, or the link went down). A handler running for that request is
/// dropped at its next `.await`; a request still queued is not handled.
///
/// Cheap to clone; clones share the flag.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::remote::CancelToken;
/// let token = CancelToken::new();
/// let seen_by_handler = token.clone();
/// token.cancel();
/// assert!(seen_by_handler.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Default)]
struct CancelInner {
    fired: AtomicBool,
    /// The handler's waker, then the serving code's ([`CancelToken::poll_served`]).
    wakers: Mutex<[Option<Waker>; 2]>,
}

/// Which of a token's two waiters polls it.
#[derive(Clone, Copy)]
enum Waiter {
    Handler = 0,
    Server = 1,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelToken")
            .field(&self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fire the token (idempotent) and wake the handler and the serving
    /// code waiting on it.
    pub fn cancel(&self) {
        self.0.fired.store(true, Ordering::Release);
        let wakers = {
            let mut slots = match self.0.wakers.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            slots.each_mut().map(Option::take)
        };
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.0.fired.load(Ordering::Acquire)
    }

    /// `Ready` once fired; otherwise remembers the handler's waker.
    pub(crate) fn poll_cancelled(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.poll_as(Waiter::Handler, cx)
    }

    /// `Ready` once fired; otherwise the task of `cx` is woken when it
    /// fires. For the code serving the remote call (a transport's task
    /// that waits for the handler's reply): the handler waits on the token
    /// separately, and `cancel` wakes both, so one token is all a served
    /// call needs to be dropped on both sides.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::remote::CancelToken;
    /// # use std::task::{Context, Waker};
    /// let token = CancelToken::new();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(token.poll_served(&mut cx).is_pending());
    /// token.cancel();
    /// assert!(token.poll_served(&mut cx).is_ready());
    /// ```
    pub fn poll_served(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.poll_as(Waiter::Server, cx)
    }

    fn poll_as(&self, who: Waiter, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.is_cancelled() {
            return Poll::Ready(());
        }
        let mut slots = match self.0.wakers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let slot = &mut slots[who as usize];
        match slot.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        drop(slots);
        if self.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What a request that arrived over a link carries, for [`CallScope::enter`];
/// and what the current handler's request carries, from [`current_call`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallScope {
    /// Correlation id shared by everything sent for this request (0: a fresh one).
    pub correlation: u64,
    /// The deadline, on this node's clock (the wire budget added to the
    /// arrival time).
    pub deadline: Option<Instant>,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
    /// The authenticated name of the calling node.
    pub caller: Option<Arc<str>>,
    /// Fired when the caller gives up.
    pub cancel: Option<CancelToken>,
}

impl CallScope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the trace context.
    #[must_use]
    pub fn trace(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }

    /// Sets the caller identity.
    #[must_use]
    pub fn caller(mut self, caller: Arc<str>) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Sets the cancel token.
    #[must_use]
    pub fn cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation(mut self, correlation: u64) -> Self {
        self.correlation = correlation;
        self
    }

    /// Run `f` with this scope as the current request: tells and asks
    /// *created* inside `f` (an ask's future is created by `into_future`,
    /// i.e. when `.await`ed or by an explicit call) carry its deadline,
    /// trace, correlation, caller and cancel token to the receiving actor.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::prelude::*;
    /// # use plexus_runtime::remote::CallScope;
    /// # use std::future::IntoFuture;
    /// # use std::time::Duration;
    /// struct Who;
    /// impl Actor for Who {}
    /// struct Ask;
    /// impl Message for Ask { type Reply = Option<String>; }
    /// impl Handler<Ask> for Who {
    ///     async fn handle(&mut self, _: Ask, cx: &mut Context<Self>) -> Option<String> {
    ///         cx.caller().map(str::to_owned)
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
    /// let node = Node::builder().build();
    /// let who = node.spawn(Who);
    /// let scope = CallScope::new()
    ///     .caller("node-b".into())
    ///     .deadline(node.now() + Duration::from_secs(1));
    /// let fut = scope.enter(|| who.ask(Ask).into_future());
    /// assert_eq!(fut.await?.as_deref(), Some("node-b"));
    /// # Ok(()) }
    /// ```
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        trace::with_current(&self.meta(), f)
    }

    /// This scope, built once to be entered many times: a receiver keeps
    /// one per session for the requests that carry only the caller's
    /// identity, and one per served call that it polls again and again.
    pub fn share(&self) -> SharedScope {
        SharedScope(self.meta())
    }

    fn meta(&self) -> Meta {
        Meta::new(
            self.correlation,
            self.deadline,
            self.trace,
            self.caller.clone(),
            self.cancel.clone(),
            true,
        )
    }
}

/// A [`CallScope`] made ready to enter: entering it (or cloning it) costs
/// a reference-count increment, where [`CallScope::enter`] allocates each
/// time.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use plexus_runtime::remote::CallScope;
/// # use std::future::IntoFuture;
/// struct Who;
/// impl Actor for Who {}
/// struct Ask;
/// impl Message for Ask { type Reply = (Option<String>, Option<u64>); }
/// impl Handler<Ask> for Who {
///     async fn handle(&mut self, _: Ask, cx: &mut Context<Self>) -> (Option<String>, Option<u64>) {
///         (cx.caller().map(str::to_owned), cx.correlation_id())
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
/// let node = Node::builder().build();
/// let who = node.spawn(Who);
/// let from_b = CallScope::new().caller("node-b".into()).share();
/// for corr in [7, 8] {
///     let fut = from_b.with_correlation(corr).enter(|| who.ask(Ask).into_future());
///     assert_eq!(fut.await?, (Some("node-b".to_owned()), Some(corr)));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SharedScope(Meta);

impl SharedScope {
    /// Run `f` with this scope as the current request, as
    /// [`CallScope::enter`] does.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        trace::with_current(&self.0, f)
    }

    /// The same scope under another correlation id.
    #[must_use]
    pub fn with_correlation(&self, correlation: u64) -> Self {
        Self(Meta {
            correlation,
            ..self.0.clone()
        })
    }

    /// What a tell sent inside this scope carries, as
    /// [`ActorRef::try_tell`](crate::ActorRef::try_tell) would read it
    /// from inside [`enter`](Self::enter).
    pub(crate) fn tell_meta(&self) -> Meta {
        self.0.child(None)
    }
}

/// What the request being handled on this thread carries (deadline, trace,
/// correlation), if code runs inside a handler or a [`CallScope`]. A remote
/// proxy sends `deadline - now` as the budget of its own request.
pub fn current_call() -> Option<CallScope> {
    trace::current().map(|m| CallScope {
        correlation: m.correlation,
        deadline: m.deadline,
        trace: m.trace(),
        caller: m.caller().cloned(),
        cancel: None,
    })
}

/// Resolves once `node`'s clock reaches `at`, for a proxy that bounds a
/// remote call by its deadline. It shares the node's one deadline timer
/// with local asks instead of arming a timer of its own, and registers
/// only when first polled.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # use plexus_runtime::clock::ManualClock;
/// # use plexus_runtime::remote::deadline;
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = ManualClock::new();
/// let node = Node::builder().clock(clock.clone()).build();
/// let at = node.now() + Duration::from_secs(5);
/// let waiting = tokio::spawn({
///     let node = node.clone();
///     async move { deadline(&node, at).await }
/// });
/// tokio::task::yield_now().await;
/// clock.advance(Duration::from_secs(5));
/// waiting.await.unwrap();
/// # }
/// ```
pub fn deadline(node: &crate::Node, at: Instant) -> Deadline<'_> {
    Deadline {
        node: &node.inner,
        at,
        key: None,
    }
}

/// The future of [`deadline`].
#[must_use = "futures do nothing unless polled"]
pub struct Deadline<'a> {
    node: &'a crate::node::NodeInner,
    at: Instant,
    key: Option<crate::deadline::Key>,
}

impl fmt::Debug for Deadline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline").field("at", &self.at).finish()
    }
}

impl Future for Deadline<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(key) = this.key else {
            // First poll: register without reading the clock; the reaper
            // wakes this task at once if `at` has already passed.
            this.key = Some(this.node.deadlines.register(this.at, cx.waker()));
            return Poll::Pending;
        };
        if this.node.clock.now() >= this.at {
            this.node.deadlines.remove(key);
            this.key = None;
            return Poll::Ready(());
        }
        this.node.deadlines.refresh(key, cx.waker());
        Poll::Pending
    }
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.node.deadlines.remove(key);
        }
    }
}

/// Why a link could not carry a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The link is closed (the peer went away, a partition, or shutdown).
    /// Reconnecting gives a new link.
    #[error("link to {peer} is closed: {reason}")]
    Closed {
        /// The peer's name.
        peer: Arc<str>,
        /// What closed it.
        reason: Arc<str>,
    },
    /// `try_send` only: the link's buffer is full right now. Use `send`,
    /// which waits.
    #[error("link to {peer} is full")]
    Full {
        /// The peer's name.
        peer: Arc<str>,
    },
    /// The frame is larger than the link accepts.
    #[error("frame of {len} bytes exceeds the link's limit of {max}")]
    TooLarge {
        /// The frame's size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The sending half of a [`Link`]. Frames arrive in the order sent.
pub trait FrameSender: Send + Sync + 'static {
    /// Queue one frame, waiting while the link's own flow control says no.
    ///
    /// # Errors
    ///
    /// [`LinkError::Closed`] once the link is down.
    fn send(&self, frame: Bytes) -> BoxFuture<'_, Result<(), LinkError>>;

    /// Queue one frame if the link has room now.
    ///
    /// # Errors
    ///
    /// [`LinkError::Full`] or [`LinkError::Closed`].
    fn try_send(&self, frame: Bytes) -> Result<(), LinkError>;

    /// Close the link: this side's sends fail with [`LinkError::Closed`]
    /// from now on, and the peer's receiver ends.
    fn close(&self);
}

/// The receiving half of a [`Link`].
pub trait FrameReceiver: Send + 'static {
    /// The next frame from the peer.
    ///
    /// # Errors
    ///
    /// [`LinkError::Closed`] once the link is down and drained.
    fn recv(&mut self) -> BoxFuture<'_, Result<Bytes, LinkError>>;

    /// The next frame if one is ready now, without waiting: a reader takes
    /// a burst with one [`recv`](Self::recv) future instead of one per
    /// frame. `None` when nothing is ready, and also when the link has
    /// failed or closed (`recv` then reports it). The default never has a
    /// frame ready.
    fn try_recv(&mut self) -> Option<Bytes> {
        None
    }
}

/// An established, authenticated connection to one peer node, as a
/// transport hands it to the rpc driver.
pub struct Link {
    /// The peer's authenticated name (its certificate name on QUIC).
    pub peer: Arc<str>,
    /// Where frames to the peer go.
    pub tx: Arc<dyn FrameSender>,
    /// Where the peer's frames come from.
    pub rx: Box<dyn FrameReceiver>,
    /// Whether this node opened (dialed) the link. When two nodes dial each
    /// other at once, both keep the link opened by the node whose name
    /// sorts first, so they agree without a round of negotiation.
    pub opened_here: bool,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("opened_here", &self.opened_here)
            .finish_non_exhaustive()
    }
}
