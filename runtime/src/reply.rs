//! The reply slot of an ask: one value from the actor to one waiting asker.
//!
//! A plain mutex-guarded cell shared by the two halves. Compared with
//! `tokio::sync::oneshot` it does less per ask (no sender-side close
//! notification, no atomic state machine with separate waker cells): the
//! asker needs only "here is the reply" or "the envelope was dropped
//! unanswered". A slot made by [`then`] has no asker: the reply goes to a
//! callback where it is produced (`Recipient::ask_then`).

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::cell::lock;

struct Slot<R> {
    state: Mutex<State<R>>,
}

/// Takes a reply where it is produced, instead of a waiting receiver;
/// `None` if the request was dropped unanswered.
pub(crate) type Then<R> = Box<dyn FnOnce(Option<R>) + Send>;

struct State<R> {
    value: Option<R>,
    /// The sending half is gone (sent or dropped).
    done: bool,
    waker: Option<Waker>,
    /// Instead of a receiver: where the reply (`None`: dropped unsent) is
    /// handed, from wherever it is produced. Only its one owner, the
    /// sender, touches it (through `get_mut`, no locking). It lives here,
    /// not beside the `Arc` in the sender, so that the sender stays one
    /// word: a wider one no longer fits a small ask inline in the mailbox
    /// and costs every local ask an allocation (measured: +190
    /// instructions per ask).
    then: Option<Then<R>>,
}

thread_local! {
    /// A finished slot, kept for the next ask made on this thread (most
    /// asks come one after another from the same task): its allocation
    /// and freeing were about 150 instructions of every ask. One per
    /// thread, of whichever reply type was asked last; `Any` tells the
    /// types apart.
    static SPARE: Cell<Option<Arc<dyn Any + Send + Sync>>> = const { Cell::new(None) };
}

/// A reply slot's two halves; the slot is this thread's spare if it has
/// one of this type.
pub(crate) fn channel<R: Send + 'static>() -> (ReplySender<R>, ReplyReceiver<R>) {
    let spare = SPARE
        .try_with(Cell::take)
        .ok()
        .flatten()
        .and_then(|s| s.downcast::<Slot<R>>().ok());
    let slot = spare.unwrap_or_else(|| {
        Arc::new(Slot {
            state: Mutex::new(State {
                value: None,
                done: false,
                waker: None,
                then: None,
            }),
        })
    });
    (ReplySender(Some(Arc::clone(&slot))), ReplyReceiver(slot))
}

/// A sender whose reply goes to `then` (no receiver, nothing to wake).
pub(crate) fn then<R>(then: Then<R>) -> ReplySender<R> {
    ReplySender(Some(Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            done: false,
            waker: None,
            then: Some(then),
        }),
    })))
}

/// The actor's half. Dropping it unsent tells the asker the request was
/// dropped unanswered.
pub(crate) struct ReplySender<R>(Option<Arc<Slot<R>>>);

impl<R> ReplySender<R> {
    /// Hand the reply over. If the asker has given up, the value is
    /// dropped here.
    pub(crate) fn send(mut self, value: R) {
        if let Some(slot) = self.0.take() {
            finish(slot, Some(value));
        }
    }
}

impl<R> Drop for ReplySender<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            finish(slot, None);
        }
    }
}

fn finish<R>(mut slot: Arc<Slot<R>>, value: Option<R>) {
    if Arc::strong_count(&slot) == 1 {
        // No receiver: a `then` slot, or the asker is gone. (The count is
        // read first: `get_mut` costs an atomic exchange, which a reply to
        // a waiting asker should not pay.)
        if let Some(only) = Arc::get_mut(&mut slot) {
            let st = only.state.get_mut().unwrap_or_else(PoisonError::into_inner);
            if let Some(then) = st.then.take() {
                then(value);
            }
        }
        return;
    }
    let waker = {
        let mut st = lock(&slot.state);
        st.value = value;
        st.done = true;
        st.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// The asker's half: `Err(Dropped)` if the sender went away unsent.
pub(crate) struct ReplyReceiver<R>(Arc<Slot<R>>);

impl<R: Send + 'static> ReplyReceiver<R> {
    /// The asker is done with the slot: if the sender is gone too, keep
    /// the slot, reset, as this thread's spare for its next ask.
    pub(crate) fn recycle(self) {
        let mut slot = self.0;
        // The sender drops its half right after handing the reply over;
        // on another thread it may not have yet: then the slot is freed
        // as usual. (The count is read first: `get_mut` costs an atomic
        // exchange.)
        if Arc::strong_count(&slot) != 1 {
            return;
        }
        let Some(only) = Arc::get_mut(&mut slot) else {
            return;
        };
        // Nothing of this use may reach the next: only a slot the reply
        // was taken from (and whose sender took the waker) is kept.
        let st = only.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if st.value.is_some() || st.waker.is_some() || st.then.is_some() {
            return;
        }
        st.done = false;
        // Replacing the spare drops the previous one (of another type).
        let _ = SPARE.try_with(|s| s.set(Some(slot)));
    }
}

/// The sending half was dropped without a reply.
#[derive(Debug)]
pub(crate) struct Dropped;

impl<R> Future for ReplyReceiver<R> {
    type Output = Result<R, Dropped>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.0.state);
        if let Some(v) = st.value.take() {
            return Poll::Ready(Ok(v));
        }
        if st.done {
            return Poll::Ready(Err(Dropped));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll<R>(rx: &mut ReplyReceiver<R>) -> Poll<Result<R, Dropped>> {
        Pin::new(rx).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_sent_value_arrives_once_pending_or_not() {
        let (tx, mut rx) = channel();
        assert!(poll(&mut rx).is_pending());
        tx.send(7);
        assert!(matches!(poll(&mut rx), Poll::Ready(Ok(7))));
        let (tx, mut rx) = channel();
        tx.send(8);
        assert!(matches!(poll(&mut rx), Poll::Ready(Ok(8))));
    }

    #[test]
    fn a_then_slot_is_handed_the_reply_or_the_drop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |seen: &Arc<Mutex<Vec<Option<u8>>>>| {
            let seen = Arc::clone(seen);
            then(Box::new(move |v| seen.lock().unwrap().push(v)))
        };
        record(&seen).send(7);
        drop(record(&seen));
        assert_eq!(*seen.lock().unwrap(), [Some(7), None]);
    }

    #[test]
    fn a_finished_slot_is_reused_with_nothing_of_its_last_use() {
        let (tx, mut rx) = channel::<u8>();
        let first = Arc::as_ptr(&rx.0);
        assert!(poll(&mut rx).is_pending());
        tx.send(1);
        assert!(matches!(poll(&mut rx), Poll::Ready(Ok(1))));
        rx.recycle();
        let (tx, mut rx) = channel::<u8>();
        assert_eq!(Arc::as_ptr(&rx.0), first, "the finished slot is reused");
        assert!(poll(&mut rx).is_pending(), "no reply of the last use");
        drop(tx);
        assert!(matches!(poll(&mut rx), Poll::Ready(Err(Dropped))));
        rx.recycle();

        // A spare of another type is not taken (it is freed).
        let (tx, mut rx) = channel::<u16>();
        assert!(poll(&mut rx).is_pending());
        tx.send(2);
        assert!(matches!(poll(&mut rx), Poll::Ready(Ok(2))));

        // Not kept: a slot whose sender still holds it, or whose reply was
        // never taken.
        let (tx, rx) = channel::<u32>();
        let held = Arc::as_ptr(&rx.0);
        rx.recycle();
        let (_tx, rx) = channel::<u32>();
        assert_ne!(Arc::as_ptr(&rx.0), held);
        tx.send(3);
        let (tx, rx) = channel::<u32>();
        tx.send(4);
        rx.recycle();
        let (_tx, mut rx) = channel::<u32>();
        assert!(poll(&mut rx).is_pending(), "the unread reply is gone");
    }

    #[test]
    fn a_dropped_sender_is_reported_and_a_gone_receiver_is_harmless() {
        let (tx, mut rx) = channel::<u8>();
        drop(tx);
        assert!(matches!(poll(&mut rx), Poll::Ready(Err(Dropped))));
        let (tx, rx) = channel::<String>();
        drop(rx);
        tx.send("late".into());
    }
}
