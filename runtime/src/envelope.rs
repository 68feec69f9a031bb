//! The type-erased unit a mailbox holds: one message plus its metadata and,
//! for an ask, the reply slot. The actor loop only sees `dyn Envelope<A>`.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use smallbox::space::S8;
use smallbox::{SmallBox, smallbox};
use tokio_util::sync::ReusableBoxFuture;

use crate::actor::{Actor, ActorId, Handler, Message};
use crate::context::Context;
use crate::error::AskError;
use crate::remote::CancelToken;
use crate::trace::Meta;

/// What the handler future hands back: the actor and its context (moved
/// into the future for the handler's duration), and how handling ended.
pub(crate) type Handled<A> = (Box<Held<A>>, Outcome);

/// The actor value and its context, moved as one pointer into each handler
/// future so the future is `'static` and its allocation can be reused.
pub(crate) struct Held<A: Actor> {
    pub(crate) actor: A,
    pub(crate) cx: Context<A>,
}

/// One reusable allocation for the handler futures of one actor: handling a
/// message of the same type as the last one allocates nothing.
pub(crate) type Slot<A> = ReusableBoxFuture<'static, Handled<A>>;

/// Put `fut` in the slot, reusing its allocation when the layout matches.
pub(crate) fn place<A: Actor, F>(slot: &mut Option<Slot<A>>, fut: F)
where
    F: Future<Output = Handled<A>> + Send + 'static,
{
    match slot {
        Some(s) => s.set(fut),
        None => *slot = Some(ReusableBoxFuture::new(fut)),
    }
}

/// How handling one message ended.
pub(crate) enum Outcome {
    Done,
    /// The remote caller cancelled; the handler future was dropped.
    Cancelled,
    Panicked(Arc<str>),
}

/// Why a queued message is not handled.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reject {
    /// Its deadline passed while it was queued.
    Expired,
    /// The actor stopped first.
    Stopped,
}

pub(crate) trait Envelope<A: Actor>: Send + 'static {
    fn meta(&self) -> &Meta;
    fn message_type(&self) -> &'static str;
    fn is_ask(&self) -> bool;
    /// Move the message and `held` into a handler future placed in `slot`.
    /// Returns `held` back if the message was already taken.
    fn start(&mut self, held: Box<Held<A>>, slot: &mut Option<Slot<A>>)
    -> Result<(), Box<Held<A>>>;
    /// Answer the asker (if any) with the matching error instead of handling.
    fn reject(&mut self, why: Reject, id: ActorId);
    /// The message, boxed, if it was not taken (for handing it back on a
    /// failed send).
    fn take_message(&mut self) -> Option<Box<dyn Any + Send>>;
}

/// The unit a mailbox holds: small envelopes are stored inline (no
/// allocation per message), larger ones on the heap.
pub(crate) type BoxEnvelope<A> = SmallBox<dyn Envelope<A>, S8>;

/// A one-way message.
pub(crate) struct Tell<M> {
    pub(crate) msg: Option<M>,
    pub(crate) meta: Meta,
}

impl<M: Message> Tell<M> {
    pub(crate) fn boxed<A: Handler<M>>(msg: M, meta: Meta) -> BoxEnvelope<A> {
        smallbox!(Self {
            msg: Some(msg),
            meta
        })
    }
}

impl<A, M> Envelope<A> for Tell<M>
where
    A: Handler<M>,
    M: Message,
{
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn is_ask(&self) -> bool {
        false
    }

    fn start(
        &mut self,
        mut held: Box<Held<A>>,
        slot: &mut Option<Slot<A>>,
    ) -> Result<(), Box<Held<A>>> {
        let Some(msg) = self.msg.take() else {
            return Err(held);
        };
        let cancel = self.meta.cancel().cloned();
        place(slot, async move {
            let h = &mut *held;
            let outcome = {
                let fut = std::pin::pin!(h.actor.handle(msg, &mut h.cx));
                match Guarded::new(fut, cancel).await {
                    Ended::Value(_) => Outcome::Done,
                    Ended::Panicked(message) => Outcome::Panicked(message),
                    Ended::Cancelled => Outcome::Cancelled,
                }
            };
            (held, outcome)
        });
        Ok(())
    }

    fn reject(&mut self, _why: Reject, _id: ActorId) {}

    fn take_message(&mut self) -> Option<Box<dyn Any + Send>> {
        self.msg.take().map(|m| Box::new(m) as Box<dyn Any + Send>)
    }
}

/// The reply slot of an ask.
pub(crate) type ReplyTx<R> = crate::reply::ReplySender<Result<R, AskError>>;

/// A request that wants a reply.
pub(crate) struct Ask<M: Message> {
    pub(crate) msg: Option<M>,
    pub(crate) meta: Meta,
    pub(crate) reply: Option<ReplyTx<M::Reply>>,
}

impl<M: Message> Ask<M> {
    pub(crate) fn boxed<A: Handler<M>>(
        msg: M,
        meta: Meta,
        reply: ReplyTx<M::Reply>,
    ) -> BoxEnvelope<A> {
        smallbox!(Self {
            msg: Some(msg),
            meta,
            reply: Some(reply),
        })
    }
}

impl<A, M> Envelope<A> for Ask<M>
where
    A: Handler<M>,
    M: Message,
{
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn is_ask(&self) -> bool {
        true
    }

    fn start(
        &mut self,
        mut held: Box<Held<A>>,
        slot: &mut Option<Slot<A>>,
    ) -> Result<(), Box<Held<A>>> {
        let (Some(msg), Some(reply)) = (self.msg.take(), self.reply.take()) else {
            return Err(held);
        };
        let cancel = self.meta.cancel().cloned();
        place(slot, async move {
            let h = &mut *held;
            let id = h.cx.id();
            let outcome = {
                let fut = std::pin::pin!(h.actor.handle(msg, &mut h.cx));
                match Guarded::new(fut, cancel).await {
                    // The caller gave up; nobody waits for this reply.
                    Ended::Cancelled => Outcome::Cancelled,
                    Ended::Value(value) => {
                        // The asker may have given up (timeout, dropped
                        // future): the late reply is dropped here.
                        reply.send(Ok(value));
                        Outcome::Done
                    }
                    Ended::Panicked(message) => {
                        reply.send(Err(AskError::HandlerPanicked {
                            id,
                            message: message.clone(),
                        }));
                        Outcome::Panicked(message)
                    }
                }
            };
            (held, outcome)
        });
        Ok(())
    }

    fn reject(&mut self, why: Reject, id: ActorId) {
        let err = match why {
            // The asker's own timer reports the budget; this only stops the
            // request from being handled late.
            Reject::Expired => AskError::Timeout {
                after: std::time::Duration::ZERO,
            },
            Reject::Stopped => AskError::Stopped { id },
        };
        if let Some(reply) = self.reply.take() {
            reply.send(Err(err));
        }
    }

    fn take_message(&mut self) -> Option<Box<dyn Any + Send>> {
        self.msg.take().map(|m| Box::new(m) as Box<dyn Any + Send>)
    }
}

/// How a guarded handler future ended.
pub(crate) enum Ended<T> {
    Value(T),
    Panicked(Arc<str>),
    Cancelled,
}

/// A handler future that ends early when its remote caller cancels, and
/// turns a panic into `Ended::Panicked`. The actor and its context are
/// outside it, so either way they come back to the loop.
pub(crate) struct Guarded<F> {
    fut: CatchUnwind<F>,
    cancel: Option<CancelToken>,
}

impl<F> Guarded<F> {
    pub(crate) fn new(fut: F, cancel: Option<CancelToken>) -> Self {
        Self {
            fut: CatchUnwind(fut),
            cancel,
        }
    }
}

impl<F: Future + Unpin> Future for Guarded<F> {
    type Output = Ended<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if let Some(c) = &self.cancel
            && c.poll_cancelled(cx).is_ready()
        {
            return Poll::Ready(Ended::Cancelled);
        }
        match Pin::new(&mut self.fut).poll(cx) {
            Poll::Ready(Ok(v)) => Poll::Ready(Ended::Value(v)),
            Poll::Ready(Err(m)) => Poll::Ready(Ended::Panicked(m)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs a future, turning a panic while polling it into an error with the
/// panic message.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Arc<str>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(fut).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("non-string panic payload")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small messages must fit the inline space of `BoxEnvelope` (S8 = 64
    /// bytes), or every send allocates.
    struct Small(#[allow(dead_code)] u64);
    impl Message for Small {
        type Reply = u64;
    }

    #[test]
    fn small_envelopes_fit_inline() {
        assert!(
            std::mem::size_of::<Meta>() <= 32,
            "{}",
            std::mem::size_of::<Meta>()
        );
        assert!(std::mem::size_of::<Tell<u64>>() <= 64);
        assert!(std::mem::size_of::<Ask<Small>>() <= 64);
        assert!(std::mem::size_of::<Tell<[u64; 2]>>() <= 64);
    }
}
