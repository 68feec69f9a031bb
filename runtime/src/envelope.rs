//! The type-erased unit a mailbox holds: one message plus its metadata and,
//! for an ask, the reply slot. The actor loop only sees `dyn Envelope<A>`.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;

use crate::actor::{Actor, ActorId, Handler, Message};
use crate::context::Context;
use crate::error::AskError;
use crate::trace::Meta;

/// The future of one handled message.
pub(crate) type HandleFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

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
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, cx: &'a mut Context<A>) -> HandleFuture<'a>;
    /// Answer the asker (if any) with the matching error instead of handling.
    fn reject(self: Box<Self>, why: Reject, id: ActorId);
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

pub(crate) type BoxEnvelope<A> = Box<dyn Envelope<A>>;

/// A one-way message.
pub(crate) struct Tell<M> {
    pub(crate) msg: M,
    pub(crate) meta: Meta,
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

    fn handle<'a>(self: Box<Self>, actor: &'a mut A, cx: &'a mut Context<A>) -> HandleFuture<'a> {
        let msg = self.msg;
        Box::pin(async move {
            let fut = std::pin::pin!(actor.handle(msg, cx));
            match CatchUnwind(fut).await {
                Ok(_) => Outcome::Done,
                Err(message) => Outcome::Panicked(message),
            }
        })
    }

    fn reject(self: Box<Self>, _why: Reject, _id: ActorId) {}

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// The reply slot of an ask.
pub(crate) type ReplyTx<R> = oneshot::Sender<Result<R, AskError>>;

/// A request that wants a reply.
pub(crate) struct Ask<M: Message> {
    pub(crate) msg: M,
    pub(crate) meta: Meta,
    pub(crate) reply: ReplyTx<M::Reply>,
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

    fn handle<'a>(self: Box<Self>, actor: &'a mut A, cx: &'a mut Context<A>) -> HandleFuture<'a> {
        let Self { msg, reply, .. } = *self;
        Box::pin(async move {
            let id = cx.id();
            let fut = std::pin::pin!(actor.handle(msg, cx));
            match CatchUnwind(fut).await {
                Ok(value) => {
                    // The asker may have given up (timeout, dropped future):
                    // the late reply is dropped here, nothing is kept.
                    let _ = reply.send(Ok(value));
                    Outcome::Done
                }
                Err(message) => {
                    let _ = reply.send(Err(AskError::HandlerPanicked {
                        id,
                        message: message.clone(),
                    }));
                    Outcome::Panicked(message)
                }
            }
        })
    }

    fn reject(self: Box<Self>, why: Reject, id: ActorId) {
        let err = match why {
            // The asker's own timer reports the budget; this only stops the
            // request from being handled late.
            Reject::Expired => AskError::Timeout {
                after: std::time::Duration::ZERO,
            },
            Reject::Stopped => AskError::Stopped { id },
        };
        let _ = self.reply.send(Err(err));
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
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
