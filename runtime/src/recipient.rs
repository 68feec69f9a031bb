//! [`Recipient<M>`]: anything that accepts messages of type `M`, whatever is
//! behind it.
//!
//! A local actor is one kind of recipient. The [`MessageSink`] extension
//! trait is the seam for the others: a proxy to an actor on another node, a
//! WebSocket session, a queue consumer. Code written against `Recipient<M>`
//! cannot tell them apart.
//!
//! Two differences show only in failures. A local ask that runs out of time
//! fails with [`AskError::Timeout`], a remote one with
//! [`AskError::DeadlineExceeded`]: match [`AskError::is_timeout`] to treat
//! them alike. And dropping an ask's future abandons a local request (it
//! is still handled once queued; the reply is dropped) but cancels a remote
//! one (its handler is dropped at its next `.await`, or never runs).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::{Actor, Handler, Message};
use crate::actor_ref::ActorRef;
use crate::error::{AskError, SendError, TrySendError};
use crate::remote::SharedScope;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where [`Recipient::ask_then`] hands an ask's outcome: `Some` with the
/// reply or the error, `None` if the request was dropped unanswered (the
/// actor's task ended, or the remote caller cancelled it).
pub type ReplyFn<R> = Box<dyn FnOnce(Option<Result<R, AskError>>) + Send>;

/// What a [`Recipient<M>`] can stand for. Implement it to make a new kind of
/// endpoint (a remote proxy, a socket session) usable wherever a recipient is.
pub trait MessageSink<M: Message>: Send + Sync + 'static {
    /// Send without waiting; see [`ActorRef::try_tell`].
    fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>>;

    /// Send, waiting for room; see [`ActorRef::tell`].
    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>>;

    /// The part of [`tell`](Self::tell) that needs no waiting: send now if
    /// there is room, or hand the message back in
    /// [`TrySendError::Full`] for `tell`. Unlike
    /// [`try_tell`](Self::try_tell), a message sent here must be sent
    /// exactly as `tell` would send it. [`Recipient::tell`] calls this
    /// first, so a tell that finds room costs no boxed future. The default
    /// hands every message back.
    fn tell_now(&self, msg: M) -> Result<(), TrySendError<M>> {
        Err(TrySendError::Full {
            msg,
            id: crate::ActorId::REMOTE,
            capacity: 0,
        })
    }

    /// Send and await the reply within `timeout` (or the endpoint's default);
    /// see [`ActorRef::ask`].
    fn ask(&self, msg: M, timeout: Option<Duration>) -> BoxFuture<'_, Result<M::Reply, AskError>>;

    /// Ask without a future: the outcome goes to `then` from wherever it
    /// is produced; see [`Recipient::ask_then`]. The default hands both
    /// back (`Err`), for the caller to [`ask`](Self::ask) instead.
    ///
    /// # Errors
    ///
    /// The message and `then`, untouched, if this endpoint cannot.
    #[allow(clippy::type_complexity)]
    fn ask_then(&self, msg: M, then: ReplyFn<M::Reply>) -> Result<(), (M, ReplyFn<M::Reply>)> {
        Err((msg, then))
    }

    /// [`try_tell`](Self::try_tell) made inside `scope`, as a remote
    /// node's reader delivers every tell. The default
    /// [enters](SharedScope::enter) the scope; a local actor reads the
    /// message's metadata from it directly.
    fn try_tell_in(&self, msg: M, scope: &SharedScope) -> Result<(), TrySendError<M>> {
        scope.enter(|| self.try_tell(msg))
    }

    /// A short description for logs and `Debug` (e.g. `inventory#3`).
    fn describe(&self) -> String;
}

impl<A, M> MessageSink<M> for ActorRef<A>
where
    A: Handler<M>,
    M: Message,
{
    fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        Self::try_tell(self, msg)
    }

    /// No thread-local round trip: the metadata is the scope's.
    fn try_tell_in(&self, msg: M, scope: &SharedScope) -> Result<(), TrySendError<M>> {
        self.try_tell_with(msg, scope.tell_meta())
    }

    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        Box::pin(Self::tell(self, msg))
    }

    /// A local tell that finds room is exactly a `try_tell`.
    fn tell_now(&self, msg: M) -> Result<(), TrySendError<M>> {
        Self::try_tell(self, msg)
    }

    fn ask(&self, msg: M, timeout: Option<Duration>) -> BoxFuture<'_, Result<M::Reply, AskError>> {
        let req = Self::ask(self, msg);
        match timeout {
            Some(t) => Box::pin(req.timeout(t).into_future()),
            None => Box::pin(req.into_future()),
        }
    }

    /// The reply goes to `then` from the actor's task as the handler
    /// returns. The deadline is the current call's (or the node's ask
    /// timeout); the actor does not handle the request once it has passed.
    /// A full mailbox is waited on by a task; a stopped actor answers
    /// `AskError::Stopped` at once.
    fn ask_then(&self, msg: M, then: ReplyFn<M::Reply>) -> Result<(), (M, ReplyFn<M::Reply>)> {
        let shared = &self.shared;
        let node = &shared.core.node;
        let cur = crate::trace::current();
        let inherited = cur.as_ref().and_then(|c| c.deadline);
        let (deadline, _) =
            crate::actor_ref::ask_deadline(node.clock.now(), node.ask_timeout, None, inherited);
        let meta = crate::actor_ref::ask_meta(cur.as_ref(), deadline, node);
        let env: crate::envelope::BoxEnvelope<A> =
            crate::envelope::Ask::boxed(msg, meta, crate::reply::then(then));
        match shared.inbox.try_push(env) {
            Ok(()) => {}
            Err(crate::inbox::Refused::Full(env)) => {
                let to = self.clone();
                // Closed meanwhile: the envelope is dropped, `then` told.
                node.handle.spawn(async move {
                    let _ = to.shared.inbox.push(env).await;
                });
            }
            Err(crate::inbox::Refused::Closed(mut env)) => {
                env.reject(crate::envelope::Reject::Stopped, shared.core.id);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

/// A type-erased handle that accepts `M`.
///
/// # Examples
///
/// ```
/// # use plexus_runtime::prelude::*;
/// # struct Orders;
/// # impl Actor for Orders {}
/// struct Place(u32);
/// impl Message for Place { type Reply = bool; }
/// # impl Handler<Place> for Orders {
/// #     async fn handle(&mut self, Place(n): Place, _: &mut Context<Self>) -> bool { n < 10 }
/// # }
/// async fn place_all(to: &Recipient<Place>) -> Result<(), AskError> {
///     for n in 0..3 {
///         assert!(to.ask(Place(n)).await?);
///     }
///     Ok(())
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), AskError> {
/// let node = Node::builder().build();
/// let orders = node.spawn(Orders);
/// place_all(&orders.recipient()).await
/// # }
/// ```
pub struct Recipient<M: Message> {
    sink: Arc<dyn MessageSink<M>>,
}

impl<M: Message> Clone for Recipient<M> {
    fn clone(&self) -> Self {
        Self {
            sink: Arc::clone(&self.sink),
        }
    }
}

impl<M: Message> fmt::Debug for Recipient<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Recipient<{}>({})",
            std::any::type_name::<M>(),
            self.sink.describe()
        )
    }
}

impl<M: Message> PartialEq for Recipient<M> {
    /// Two recipients are equal when they share the same endpoint handle.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sink, &other.sink)
    }
}

impl<M: Message> Recipient<M> {
    /// Wrap any endpoint.
    pub fn new(sink: impl MessageSink<M>) -> Self {
        Self {
            sink: Arc::new(sink),
        }
    }

    /// Send without waiting.
    ///
    /// # Errors
    ///
    /// `Full` or `Closed`, each with the message; for a remote recipient
    /// also `Rejected` (the peer refused this kind of tell, or the message
    /// is too large for the link).
    pub fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.sink.try_tell(msg)
    }

    /// [`try_tell`](Self::try_tell) as if made inside `scope`
    /// ([`SharedScope::enter`]), without entering it where the recipient
    /// can help it: the message carries the scope's caller, correlation
    /// and trace.
    ///
    /// # Errors
    ///
    /// As [`try_tell`](Self::try_tell).
    pub fn try_tell_in(&self, msg: M, scope: &SharedScope) -> Result<(), TrySendError<M>> {
        self.sink.try_tell_in(msg, scope)
    }

    /// Send, waiting for room (backpressure).
    ///
    /// # Errors
    ///
    /// `Closed` with the message; for a remote recipient also `Rejected`
    /// (see [`SendError::Rejected`]).
    ///
    /// # Cancel safety
    ///
    /// Dropped while waiting for room, the message is dropped unsent.
    pub async fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        match self.sink.tell_now(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full { msg, .. }) => self.sink.tell(msg).await,
            Err(TrySendError::Closed { msg, id }) => Err(SendError::Closed { msg, id }),
            Err(TrySendError::Rejected { msg, error }) => Err(SendError::Rejected { msg, error }),
        }
    }

    /// Ask and await the reply; `.timeout(d)` sets the time budget.
    pub fn ask(&self, msg: M) -> RecipientAsk<'_, M> {
        RecipientAsk {
            sink: &*self.sink,
            msg,
            timeout: None,
        }
    }

    /// Ask without a future to poll: the outcome goes to `then` from
    /// wherever it is produced (for a local actor: its task, as the
    /// handler returns), so a server answering many asks needs no task or
    /// future per ask. The deadline is the current call's (see
    /// [`CallScope`](crate::remote::CallScope)), else the node's ask
    /// timeout; a request whose deadline passes while queued is not
    /// handled (`then` gets `AskError::Timeout`). `then` runs exactly
    /// once, possibly before this returns; it must not block.
    ///
    /// # Errors
    ///
    /// The message and `then`, untouched, if the endpoint cannot (a remote
    /// or custom [`MessageSink`]): use [`ask`](Self::ask).
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::prelude::*;
    /// # struct Echo;
    /// # impl Actor for Echo {}
    /// # struct Ping(u32);
    /// # impl Message for Ping { type Reply = u32; }
    /// # impl Handler<Ping> for Echo {
    /// #     async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u32 { n }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let node = Node::builder().build();
    /// let echo: Recipient<Ping> = node.spawn(Echo).recipient();
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let sent = echo.ask_then(Ping(7), Box::new(move |outcome| {
    ///     let _ = tx.send(outcome);
    /// }));
    /// assert!(sent.is_ok());
    /// assert!(matches!(rx.await, Ok(Some(Ok(7)))));
    /// # }
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn ask_then(&self, msg: M, then: ReplyFn<M::Reply>) -> Result<(), (M, ReplyFn<M::Reply>)> {
        self.sink.ask_then(msg, then)
    }
}

impl<A, M> From<ActorRef<A>> for Recipient<M>
where
    A: Handler<M> + Actor,
    M: Message,
{
    fn from(r: ActorRef<A>) -> Self {
        Self::new(r)
    }
}

/// An ask through a [`Recipient`]; `.await` it.
#[must_use = "an ask does nothing until awaited"]
pub struct RecipientAsk<'a, M: Message> {
    sink: &'a dyn MessageSink<M>,
    msg: M,
    timeout: Option<Duration>,
}

impl<M: Message> fmt::Debug for RecipientAsk<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientAsk")
            .field("to", &self.sink.describe())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<M: Message> RecipientAsk<'_, M> {
    /// Give up after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a, M: Message> IntoFuture for RecipientAsk<'a, M> {
    type Output = Result<M::Reply, AskError>;
    type IntoFuture = BoxFuture<'a, Result<M::Reply, AskError>>;

    fn into_future(self) -> Self::IntoFuture {
        self.sink.ask(self.msg, self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{Semaphore, oneshot};

    use crate::prelude::*;

    use super::{BoxFuture, MessageSink, ReplyFn};

    struct Gate(Arc<Semaphore>);
    impl Actor for Gate {}
    struct Wait(u32);
    impl Message for Wait {
        type Reply = u32;
    }
    impl Handler<Wait> for Gate {
        async fn handle(&mut self, Wait(n): Wait, _: &mut Context<Self>) -> u32 {
            if let Ok(p) = self.0.acquire().await {
                p.forget();
            }
            n
        }
    }

    type Outcome = Option<Result<u32, AskError>>;

    fn then() -> (ReplyFn<u32>, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let f: ReplyFn<u32> = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        (f, rx)
    }

    /// Behind a full mailbox the request waits for room (it is not
    /// refused), and every reply reaches its `then`; a stopped actor
    /// answers `Stopped` at once.
    #[tokio::test(flavor = "current_thread")]
    async fn ask_then_waits_for_room_and_reports_a_stopped_actor() {
        let node = Node::builder().build();
        let open = Arc::new(Semaphore::new(0));
        let gate = node
            .spawn_with(SpawnOptions::new().capacity(1), Gate(Arc::clone(&open)))
            .unwrap();
        let to: Recipient<Wait> = gate.recipient();
        let mut replies = Vec::new();
        for n in 0..4 {
            let (f, rx) = then();
            assert!(to.ask_then(Wait(n), f).is_ok());
            replies.push(rx);
        }
        assert_eq!(gate.mailbox_len(), 1, "the others wait for room");
        // Three asks found the mailbox full (the actor had not run yet):
        // once the handlers may finish, every reply still arrives.
        open.add_permits(4);
        for (n, rx) in (0..).zip(replies) {
            assert!(matches!(rx.await, Ok(Some(Ok(m))) if m == n));
        }
        gate.stop();
        let _ = tokio::time::timeout(Duration::from_secs(5), gate.terminated()).await;
        let (f, rx) = then();
        assert!(to.ask_then(Wait(9), f).is_ok());
        assert!(matches!(rx.await, Ok(Some(Err(AskError::Stopped { .. })))));
    }

    /// What a handler sees of a tell: its caller, correlation id and trace.
    struct Seen(
        Vec<(
            Option<String>,
            Option<u64>,
            Option<crate::trace::TraceContext>,
        )>,
    );
    impl Actor for Seen {}
    struct Note;
    impl Message for Note {
        type Reply = ();
    }
    impl Handler<Note> for Seen {
        async fn handle(&mut self, _: Note, cx: &mut Context<Self>) {
            self.0.push((
                cx.caller().map(str::to_owned),
                cx.correlation_id(),
                cx.trace(),
            ));
        }
    }
    struct Take;
    impl Message for Take {
        type Reply = Vec<(
            Option<String>,
            Option<u64>,
            Option<crate::trace::TraceContext>,
        )>;
    }
    impl Handler<Take> for Seen {
        async fn handle(&mut self, _: Take, _: &mut Context<Self>) -> <Take as Message>::Reply {
            std::mem::take(&mut self.0)
        }
    }

    /// A tell made with `try_tell_in` reaches the handler exactly as one
    /// made inside the scope, for a local actor (direct) and for a sink
    /// that only has the default (which enters the scope).
    #[tokio::test(flavor = "current_thread")]
    async fn try_tell_in_carries_the_scope_as_entering_it_does() {
        use crate::remote::CallScope;
        use crate::trace::TraceContext;

        struct Forward(ActorRef<Seen>);
        impl MessageSink<Note> for Forward {
            fn try_tell(&self, msg: Note) -> Result<(), TrySendError<Note>> {
                self.0.try_tell(msg)
            }
            fn tell(&self, msg: Note) -> BoxFuture<'_, Result<(), SendError<Note>>> {
                Box::pin(self.0.tell(msg))
            }
            fn ask(&self, _: Note, _: Option<Duration>) -> BoxFuture<'_, Result<(), AskError>> {
                Box::pin(std::future::ready(Ok(())))
            }
            fn describe(&self) -> String {
                "forward".to_owned()
            }
        }

        let node = Node::builder().build();
        let seen = node.spawn(Seen(Vec::new()));
        let trace = TraceContext {
            trace_id: 0xabc,
            span_id: 0xdef,
            sampled: true,
        };
        let scopes = [
            CallScope::new().caller("node-b".into()).share(),
            CallScope::new()
                .caller("node-c".into())
                .trace(Some(trace))
                .share()
                .with_correlation(42),
        ];
        let direct: Recipient<Note> = seen.recipient();
        let forwarded = Recipient::new(Forward(seen.clone()));
        for scope in &scopes {
            for to in [&direct, &forwarded] {
                scope.enter(|| to.try_tell(Note)).unwrap();
                to.try_tell_in(Note, scope).unwrap();
            }
        }
        let got = seen.ask(Take).await.unwrap();
        assert_eq!(got.len(), 8);
        for pair in got.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert_eq!(got[0].0.as_deref(), Some("node-b"));
        assert_eq!((got[4].0.as_deref(), got[4].1), (Some("node-c"), Some(42)));
        assert_eq!(got[4].2.map(|t| t.trace_id), Some(0xabc));
    }
}
