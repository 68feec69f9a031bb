//! [`ActorRef`]: the typed handle through which an actor is told, asked,
//! stopped and watched.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::{Duration, Instant};

use crate::actor::{Actor, ActorId, Handler, Message, Terminated};
use crate::cell::{Control, Core, Shared};
use crate::envelope::{Ask, BoxEnvelope, Tell};
use crate::error::{AskError, ExposeError, SendError, TrySendError};
use crate::inbox::{Push, Refused};
use crate::metrics::ActorMetricsSnapshot;
use crate::recipient::Recipient;
use crate::reply::ReplyReceiver;
use crate::trace::{self, Meta, TraceContext};

/// A typed handle to an actor.
///
/// Cheap to clone (one reference count), comparable (two refs are equal when
/// they point at the same actor), and printed as the actor's name and id.
/// It stays valid across restarts; once the actor has stopped, sends fail
/// with `Closed` and hand the message back.
pub struct ActorRef<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

impl<A: Actor> Hash for ActorRef<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = &self.shared.core;
        match &core.name {
            Some(name) => write!(f, "ActorRef({name}{})", core.id),
            None => write!(
                f,
                "ActorRef({}{})",
                short_type(std::any::type_name::<A>()),
                core.id
            ),
        }
    }
}

fn short_type(name: &'static str) -> &'static str {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base)
}

impl<A: Actor> ActorRef<A> {
    pub(crate) fn core(&self) -> &Core {
        &self.shared.core
    }

    /// The actor's id, unique within its node.
    pub fn id(&self) -> ActorId {
        self.shared.core.id
    }

    /// The actor's registered name, if it was spawned with one.
    pub fn name(&self) -> Option<&str> {
        self.shared.core.name.as_deref()
    }

    /// Whether the actor still runs (it may stop right after this returns).
    pub fn is_alive(&self) -> bool {
        !self.shared.core.is_terminated()
    }

    /// Messages waiting in the mailbox now.
    pub fn mailbox_len(&self) -> usize {
        self.shared.inbox.len()
    }

    fn tell_meta(&self) -> Meta {
        match trace::current() {
            Some(cur) => cur.child(None),
            None => Meta::plain(self.shared.core.node.next_correlation()),
        }
    }

    /// Send a one-way message, waiting for mailbox space if the mailbox is
    /// full: that wait is the backpressure a fast producer feels.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] with the message if the actor has stopped or is
    /// stopping.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped while waiting for space, the message is
    /// dropped unsent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::prelude::*;
    /// # struct Log(Vec<String>);
    /// # impl Actor for Log {}
    /// # struct Line(String);
    /// # impl Message for Line { type Reply = (); }
    /// # impl Handler<Line> for Log {
    /// #     async fn handle(&mut self, Line(l): Line, _: &mut Context<Self>) { self.0.push(l) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let node = Node::builder().build();
    /// let log = node.spawn(Log(Vec::new()));
    /// log.tell(Line("hello".into())).await.unwrap();
    /// # }
    /// ```
    pub async fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        let core = &self.shared.core;
        let env: BoxEnvelope<A> = Tell::boxed(msg, self.tell_meta());
        let env = match self.shared.inbox.try_push(env) {
            Ok(()) => return Ok(()),
            Err(Refused::Full(env)) => match self.shared.inbox.push(env).await {
                Ok(()) => return Ok(()),
                Err(env) => env,
            },
            Err(Refused::Closed(env)) => env,
        };
        Err(SendError::Closed {
            msg: recover_tell(env),
            id: core.id,
        })
    }

    /// Send a one-way message if the mailbox has room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], each with the
    /// message.
    pub fn try_tell<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        self.try_tell_with(msg, self.tell_meta())
    }

    /// [`try_tell`](Self::try_tell) of a message carrying `meta`.
    pub(crate) fn try_tell_with<M>(&self, msg: M, meta: Meta) -> Result<(), TrySendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        let core = &self.shared.core;
        let env: BoxEnvelope<A> = Tell::boxed(msg, meta);
        match self.shared.inbox.try_push(env) {
            Ok(()) => Ok(()),
            Err(Refused::Full(env)) => Err(TrySendError::Full {
                msg: recover_tell(env),
                id: core.id,
                capacity: self.shared.inbox.capacity().unwrap_or(usize::MAX),
            }),
            Err(Refused::Closed(env)) => Err(TrySendError::Closed {
                msg: recover_tell(env),
                id: core.id,
            }),
        }
    }

    /// Ask: send `msg` and await the handler's reply.
    ///
    /// The deadline is the node's default ask timeout unless set with
    /// [`AskRequest::timeout`] or [`AskRequest::deadline`]; inside a
    /// handler it is never later than the current message's deadline. The
    /// deadline travels with the message: if it passes while the message is
    /// queued, the message is not handled.
    ///
    /// # Errors
    ///
    /// [`AskError::Timeout`], [`AskError::Closed`], [`AskError::Stopped`],
    /// [`AskError::HandlerPanicked`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the reply arrives abandons the request; if
    /// it was already queued it is still handled, and the late reply is
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::prelude::*;
    /// # use std::time::Duration;
    /// # struct Echo;
    /// # impl Actor for Echo {}
    /// # struct Ping(u32);
    /// # impl Message for Ping { type Reply = u32; }
    /// # impl Handler<Ping> for Echo {
    /// #     async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u32 { n }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
    /// let node = Node::builder().build();
    /// let echo = node.spawn(Echo);
    /// assert_eq!(echo.ask(Ping(7)).await?, 7);
    /// assert_eq!(echo.ask(Ping(8)).timeout(Duration::from_millis(500)).await?, 8);
    ///
    /// // The request borrows the reference (no clone per ask). To ask from
    /// // another task, move a clone there: references are cheap to clone.
    /// let task = tokio::spawn({
    ///     let echo = echo.clone();
    ///     async move { echo.ask(Ping(9)).await }
    /// });
    /// assert_eq!(task.await.expect("task ran")?, 9);
    /// # Ok(()) }
    /// ```
    pub fn ask<M>(&self, msg: M) -> AskRequest<'_, A, M>
    where
        A: Handler<M>,
        M: Message,
    {
        AskRequest {
            target: self,
            msg,
            timeout: None,
            deadline: None,
            trace: None,
        }
    }

    /// A type-erased handle for one message type.
    pub fn recipient<M>(&self) -> Recipient<M>
    where
        A: Handler<M>,
        M: Message,
    {
        Recipient::new(self.clone())
    }

    /// Make this named actor findable as a [`Recipient<M>`] through
    /// [`Node::lookup_recipient`](crate::Node::lookup_recipient).
    ///
    /// # Errors
    ///
    /// [`ExposeError::Unnamed`] if the actor was spawned without a name,
    /// [`ExposeError::Stopped`] if it has stopped.
    pub fn expose<M>(&self) -> Result<(), ExposeError>
    where
        A: Handler<M>,
        M: Message,
    {
        let core = self.core();
        let Some(name) = &core.name else {
            return Err(ExposeError::Unnamed(core.id));
        };
        core.node
            .registry
            .expose(name, core.id, self.recipient::<M>())
    }

    /// Stop gracefully: the mailbox closes at once (later sends fail with
    /// `Closed`), the messages already queued are handled, then the actor's
    /// children stop, then `stopping` and `stopped` run. Returns at once;
    /// await [`terminated`](Self::terminated) to wait for the end.
    pub fn stop(&self) {
        self.shared.close();
        self.shared.push_sys(crate::cell::Sys::Ctl(Control::Stop(
            crate::StopReason::Normal,
        )));
    }

    /// Stop without handling what is queued: the mailbox closes at once,
    /// queued asks fail with [`AskError::Stopped`], queued tells are dropped
    /// and counted in the `dropped` metric. A handler already running
    /// finishes first.
    pub fn kill(&self) {
        self.shared.close();
        self.shared.push_sys(crate::cell::Sys::Ctl(Control::Kill(
            crate::StopReason::Killed,
        )));
    }

    /// Completes with the death notice once the actor has stopped (at once if
    /// it already has).
    pub fn terminated(&self) -> impl Future<Output = Terminated> + Send + 'static {
        // Every way an actor ends (including its task being dropped) runs
        // `Core::die`, which wakes this.
        let shared = Arc::clone(&self.shared);
        std::future::poll_fn(move |cx| shared.core.poll_death(cx))
    }

    /// This actor's metrics now.
    pub fn metrics(&self) -> ActorMetricsSnapshot {
        let core = self.core();
        ActorMetricsSnapshot::read(
            core.id,
            core.name.clone(),
            std::any::type_name::<A>(),
            self.shared.inbox.len(),
            self.shared.inbox.capacity(),
            &core.metrics,
        )
    }
}

fn recover_tell<A: Actor, M: Message>(mut env: BoxEnvelope<A>) -> M {
    match env.take_message().map(|m| m.downcast::<M>()) {
        Some(Ok(msg)) => *msg,
        _ => unreachable!("an envelope built by Tell::boxed::<M> still holds its M"),
    }
}

/// An ask being prepared: set a timeout, a deadline or a trace, then
/// `.await` it. See [`ActorRef::ask`].
#[must_use = "an ask does nothing until awaited"]
pub struct AskRequest<'a, A: Actor, M: Message> {
    target: &'a ActorRef<A>,
    msg: M,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    trace: Option<TraceContext>,
}

impl<A: Actor, M: Message> fmt::Debug for AskRequest<'_, A, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskRequest")
            .field("target", self.target)
            .field("message", &std::any::type_name::<M>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a, A: Actor, M: Message> AskRequest<'a, A, M> {
    /// Give up after `timeout` (from now, on the node's clock).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Give up at `deadline` (an instant of the node's clock).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Carry this trace context (instead of the current handler's).
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
}

/// The deadline of an ask made at `now` with `timeout` (or the explicit
/// deadline `own`) inside a call whose deadline is `inherited` (the
/// earlier wins), and the budget left until it.
#[inline]
pub(crate) fn ask_deadline(
    now: Instant,
    timeout: Duration,
    own: Option<Instant>,
    inherited: Option<Instant>,
) -> (Instant, Duration) {
    match (own, inherited) {
        // The common case: a timeout from now, nothing to compare (and
        // no `Instant` subtraction, which is not free).
        (None, None) => (crate::clock::after(now, timeout), timeout),
        (own, inherited) => {
            let own = own.unwrap_or_else(|| crate::clock::after(now, timeout));
            let deadline = inherited.map_or(own, |i| own.min(i));
            (deadline, deadline.saturating_duration_since(now))
        }
    }
}

/// An ask's metadata: a child of the message being handled (same trace,
/// caller and cancellation), or a fresh correlation id outside one.
#[inline]
pub(crate) fn ask_meta(
    cur: Option<&Meta>,
    deadline: Instant,
    node: &crate::node::NodeInner,
) -> Meta {
    match cur {
        Some(c) => c.child(Some(deadline)),
        None => Meta {
            deadline: Some(deadline),
            ..Meta::plain(node.next_correlation())
        },
    }
}

impl<'a, A, M> IntoFuture for AskRequest<'a, A, M>
where
    A: Handler<M>,
    M: Message,
{
    type Output = Result<M::Reply, AskError>;
    type IntoFuture = AskFuture<'a, A, M::Reply>;

    fn into_future(self) -> Self::IntoFuture {
        let shared = &self.target.shared;
        let core = &shared.core;
        let node = &core.node;
        let now = node.clock.now();
        let cur = trace::current();
        let timeout = self.timeout.unwrap_or(node.ask_timeout);
        let inherited = cur.as_ref().and_then(|c| c.deadline);
        let (deadline, budget) = ask_deadline(now, timeout, self.deadline, inherited);
        // The state is decided first and the future built once (assigning
        // a state over a placeholder would drop the placeholder).
        let state = if budget.is_zero() {
            AskState::Expired
        } else {
            let mut meta = ask_meta(cur.as_ref(), deadline, node);
            if let Some(t) = self.trace {
                meta.set_trace(t);
            }
            let (tx, rx) = crate::reply::channel();
            let env: BoxEnvelope<A> = Ask::boxed(self.msg, meta, tx);
            match shared.inbox.try_push(env) {
                Ok(()) => AskState::Waiting(rx),
                Err(Refused::Full(env)) => {
                    AskState::Sending(Box::new((shared.inbox.push(env), rx)))
                }
                Err(Refused::Closed(_)) => AskState::Closed,
            }
        };
        AskFuture {
            state,
            id: core.id,
            deadline,
            budget,
            node: &core.node,
            timer: None,
        }
    }
}

/// Where an ask is. Two words: an `AskFuture` is moved into the asker's
/// future at every ask (it was 208 bytes, copied with `memcpy` twice per
/// ask).
enum AskState<'a, A: Actor, R> {
    /// Waiting for mailbox space (boxed: the envelope is large and a full
    /// mailbox is the rare case).
    Sending(Box<SendingAsk<'a, A, R>>),
    Waiting(ReplyReceiver<Result<R, AskError>>),
    /// Failed before it was sent: no budget left (`Timeout`), or the
    /// mailbox was closed (`Closed`).
    Expired,
    Closed,
    Done,
}

type SendingAsk<'a, A, R> = (Push<'a, BoxEnvelope<A>>, ReplyReceiver<Result<R, AskError>>);

/// The future of an ask; see [`ActorRef::ask`].
#[must_use = "futures do nothing unless polled"]
pub struct AskFuture<'a, A: Actor, R> {
    state: AskState<'a, A, R>,
    id: ActorId,
    deadline: Instant,
    budget: Duration,
    node: &'a crate::node::NodeInner,
    /// Registration with the node's deadline reaper, made only if the reply
    /// is not there on the first poll.
    timer: Option<crate::deadline::Registration>,
}

// Nothing in an `AskFuture` is ever pinned in place (the timer is boxed), so
// moving it between polls is fine whatever `R` is.
impl<A: Actor, R> Unpin for AskFuture<'_, A, R> {}

impl<A: Actor, R> fmt::Debug for AskFuture<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskFuture")
            .field("id", &self.id)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<A: Actor, R> AskFuture<'_, A, R> {
    /// `Ready` once the deadline has passed; otherwise make sure the
    /// node's reaper wakes this task then.
    fn poll_deadline(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let deadlines = &self.node.deadlines;
        let Some(reg) = &mut self.timer else {
            // First time pending: the budget was checked non-zero when the
            // ask was made, so arm without reading the clock again (clock
            // reads are a visible share of an ask's cost). Usually this takes
            // over the previous ask's entry, without a lock.
            self.timer = Some(deadlines.arm(self.deadline, cx.waker()));
            return Poll::Pending;
        };
        if self.node.clock.now() >= self.deadline {
            if let Some(reg) = self.timer.take() {
                deadlines.remove_registration(reg);
            }
            return Poll::Ready(());
        }
        // Woken early (by a spare taken over, or by chance): stay armed.
        if !deadlines.refresh_registration(reg, cx.waker()) {
            *reg = deadlines.arm(self.deadline, cx.waker());
        }
        Poll::Pending
    }

    fn disarm(&mut self) {
        if let Some(reg) = self.timer.take() {
            crate::deadline::Deadlines::release(&self.node.deadlines, reg);
        }
    }
}

impl<A: Actor, R> Drop for AskFuture<'_, A, R> {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl<A: Actor, R: Send + 'static> Future for AskFuture<'_, A, R> {
    type Output = Result<R, AskError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let out = this.poll_reply(cx);
        if out.is_ready() {
            this.disarm();
        }
        out
    }
}

impl<A: Actor, R: Send + 'static> AskFuture<'_, A, R> {
    #[inline]
    fn poll_reply(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<R, AskError>> {
        let this = self;
        loop {
            match &mut this.state {
                AskState::Sending(sending) => match Pin::new(&mut sending.0).poll(cx) {
                    Poll::Ready(result) => {
                        let AskState::Sending(sending) =
                            std::mem::replace(&mut this.state, AskState::Done)
                        else {
                            unreachable!("state checked above")
                        };
                        let (_, rx) = *sending;
                        if result.is_err() {
                            return Poll::Ready(Err(AskError::Closed { id: this.id }));
                        }
                        this.state = AskState::Waiting(rx);
                    }
                    Poll::Pending => {
                        ready!(this.poll_deadline(cx));
                        this.state = AskState::Done;
                        return Poll::Ready(Err(AskError::Timeout { after: this.budget }));
                    }
                },
                AskState::Waiting(rx) => {
                    let Poll::Ready(got) = Pin::new(rx).poll(cx) else {
                        ready!(this.poll_deadline(cx));
                        this.state = AskState::Done;
                        return Poll::Ready(Err(AskError::Timeout { after: this.budget }));
                    };
                    if let AskState::Waiting(rx) =
                        std::mem::replace(&mut this.state, AskState::Done)
                    {
                        rx.recycle();
                    }
                    return Poll::Ready(match got {
                        Ok(Ok(reply)) => Ok(reply),
                        Ok(Err(AskError::Timeout { .. })) => {
                            Err(AskError::Timeout { after: this.budget })
                        }
                        Ok(Err(e)) => Err(e),
                        // The envelope was dropped unhandled: the actor's task
                        // ended (killed, aborted at shutdown).
                        Err(_) => Err(AskError::Stopped { id: this.id }),
                    });
                }
                AskState::Expired => {
                    this.state = AskState::Done;
                    return Poll::Ready(Err(AskError::Timeout { after: this.budget }));
                }
                AskState::Closed => {
                    this.state = AskState::Done;
                    return Poll::Ready(Err(AskError::Closed { id: this.id }));
                }
                AskState::Done => return Poll::Ready(Err(AskError::Stopped { id: this.id })),
            }
        }
    }
}
