//! An actor's mailbox queue: many senders, one receiver (the actor's task),
//! bounded, closable.
//!
//! Why not a general channel: the closed flag lives under the same lock as
//! the queue, so after [`Inbox::close`] returns no send can land and "handle
//! (or reject) everything queued" is exact without senders announcing
//! themselves on a shared counter around every send. And the receiver takes
//! the whole queue in one lock acquisition ([`Batch`]) instead of one per
//! message, so a busy actor and its producers rarely meet on the lock.
//!
//! The capacity counts the messages in the queue plus those the receiver has
//! taken in its current batch and not yet started: a full mailbox holds
//! `capacity` messages, as if every message were taken one by one.
//! Producers waiting for space are woken when the receiver is half-way
//! through a batch and whenever it comes back to the queue, and all of them
//! when the inbox closes.
//!
//! Memory: the queue and the batch swap buffers, so an actor that has been
//! busy keeps two buffers (each up to its capacity); an idle actor that
//! never received anything has allocated neither.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, lock};

pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Messages of the receiver's current batch not yet taken by the
    /// actor. Written only by the receiver.
    batched: AtomicUsize,
    /// A producer waits for space (a hint; checked again under the lock).
    senders_waiting: AtomicBool,
}

struct State<T> {
    queue: VecDeque<T>,
    closed: bool,
    receiver: Option<Waker>,
    /// Producers waiting for room; boxed, as most mailboxes never fill
    /// (`Some` only while non-empty).
    #[allow(clippy::box_collection)] // one word instead of three per mailbox
    senders: Option<Box<Vec<Waker>>>,
}

/// Why [`Inbox::try_push`] did not enqueue; the message comes back.
pub(crate) enum Refused<T> {
    Full(T),
    Closed(T),
}

/// The receiver's side: the messages taken from the queue in one go.
pub(crate) struct Batch<T> {
    local: VecDeque<T>,
    /// When `local` is down to this many, wake waiting producers.
    wake_at: usize,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self {
            local: VecDeque::new(),
            wake_at: usize::MAX,
        }
    }
}

impl<T> Inbox<T> {
    /// A bounded inbox (`None` = unbounded). A capacity of 0 is treated as 1.
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                receiver: None,
                senders: None,
            }),
            capacity: capacity.map_or(usize::MAX, |c| c.max(1)),
            batched: AtomicUsize::new(0),
            senders_waiting: AtomicBool::new(false),
        }
    }

    /// `None` = unbounded.
    pub(crate) fn capacity(&self) -> Option<usize> {
        (self.capacity != usize::MAX).then_some(self.capacity)
    }

    /// Messages queued and not yet taken by the actor.
    pub(crate) fn len(&self) -> usize {
        let st = lock(&self.state);
        st.queue.len() + self.batched.load(Ordering::Acquire)
    }

    /// Enqueue `msg` if there is room and the inbox is open.
    #[inline]
    pub(crate) fn try_push(&self, msg: T) -> Result<(), Refused<T>> {
        let mut st = lock(&self.state);
        let receiver = self.push_locked(&mut st, msg)?;
        drop(st);
        if let Some(w) = receiver {
            w.wake();
        }
        Ok(())
    }

    /// Enqueue `msg`, waiting for room. Fails (handing `msg` back) once the
    /// inbox is closed.
    pub(crate) fn push(&self, msg: T) -> Push<'_, T> {
        Push {
            inbox: self,
            msg: Some(msg),
        }
    }

    fn poll_push(&self, msg: &mut Option<T>, cx: &mut Context<'_>) -> Poll<Result<(), T>> {
        let Some(m) = msg.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut st = lock(&self.state);
        match self.push_locked(&mut st, m) {
            Ok(receiver) => {
                drop(st);
                if let Some(w) = receiver {
                    w.wake();
                }
                Poll::Ready(Ok(()))
            }
            Err(Refused::Closed(m)) => Poll::Ready(Err(m)),
            Err(Refused::Full(m)) => {
                *msg = Some(m);
                let senders = st.senders.get_or_insert_with(Box::default);
                if !senders.iter().any(|w| w.will_wake(cx.waker())) {
                    senders.push(cx.waker().clone());
                }
                self.senders_waiting.store(true, Ordering::Relaxed);
                Poll::Pending
            }
        }
    }

    /// Push under the lock; on success, the receiver's waker to wake once
    /// the lock is released.
    #[inline]
    fn push_locked(&self, st: &mut State<T>, msg: T) -> Result<Option<Waker>, Refused<T>> {
        if st.closed {
            return Err(Refused::Closed(msg));
        }
        // `batched` is only ever stale upwards (the receiver lowers it
        // between refills, which happen under this lock): a stale read can
        // only report full early, and the refill that follows wakes us.
        if st.queue.len() + self.batched.load(Ordering::Relaxed) >= self.capacity {
            return Err(Refused::Full(msg));
        }
        st.queue.push_back(msg);
        Ok(st.receiver.take())
    }

    /// Wake the receiver if it waits (for work that is not in this queue;
    /// see `Shared::push_sys`).
    pub(crate) fn wake_receiver(&self) {
        let receiver = lock(&self.state).receiver.take();
        if let Some(w) = receiver {
            w.wake();
        }
    }

    /// Refuse every later push and wake the producers waiting for room (they
    /// get their messages back). Returns whether it was open.
    pub(crate) fn close(&self) -> bool {
        let (was_open, senders) = {
            let mut st = lock(&self.state);
            let was_open = !std::mem::replace(&mut st.closed, true);
            (was_open, st.senders.take())
        };
        if let Some(senders) = senders {
            wake_all(*senders);
        }
        was_open
    }

    /// The next message, without waiting.
    #[inline]
    pub(crate) fn try_pop(&self, batch: &mut Batch<T>) -> Option<T> {
        if let Some(m) = self.pop_local(batch) {
            return Some(m);
        }
        self.refill(batch, None)
    }

    /// The next message, or `Pending` with the receiver's waker registered.
    #[inline]
    pub(crate) fn poll_pop(&self, batch: &mut Batch<T>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(m) = self.pop_local(batch) {
            return Poll::Ready(m);
        }
        match self.refill(batch, Some(cx)) {
            Some(m) => Poll::Ready(m),
            None => Poll::Pending,
        }
    }

    #[inline]
    fn pop_local(&self, batch: &mut Batch<T>) -> Option<T> {
        let m = batch.local.pop_front()?;
        let left = batch.local.len();
        self.batched.store(left, Ordering::Relaxed);
        if left == batch.wake_at {
            batch.wake_at = usize::MAX;
            if self.senders_waiting.load(Ordering::Relaxed) {
                let senders = take_senders(&self.senders_waiting, &mut lock(&self.state));
                wake_all(senders);
            }
        }
        Some(m)
    }

    /// Take the whole queue as the next batch and return its first message;
    /// `None` if the queue is empty (then register `cx`'s waker, if given).
    /// Waiting producers are woken either way: this is where they are sure
    /// to hear of the room the last batch made.
    #[inline]
    fn refill(&self, batch: &mut Batch<T>, cx: Option<&mut Context<'_>>) -> Option<T> {
        let mut st = lock(&self.state);
        // `batch.local` is empty here. One message (a request/response
        // exchange) is simply taken; more become the next batch.
        let first = if st.queue.len() <= 1 {
            st.queue.pop_front()
        } else {
            std::mem::swap(&mut st.queue, &mut batch.local);
            let first = batch.local.pop_front();
            let left = batch.local.len();
            batch.wake_at = left / 2;
            first
        };
        self.batched.store(batch.local.len(), Ordering::Relaxed);
        if first.is_none()
            && let Some(cx) = cx
        {
            match &st.receiver {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.receiver = Some(cx.waker().clone()),
            }
        }
        if st.senders.is_none() {
            return first;
        }
        let senders = take_senders(&self.senders_waiting, &mut st);
        drop(st);
        wake_all(senders);
        first
    }

    /// Hand back every message still queued or batched (for rejecting them
    /// once the inbox is closed).
    pub(crate) fn drain(&self, batch: &mut Batch<T>) -> impl Iterator<Item = T> {
        let queued = std::mem::take(&mut lock(&self.state).queue);
        self.batched.store(0, Ordering::Relaxed);
        batch.wake_at = usize::MAX;
        std::mem::take(&mut batch.local).into_iter().chain(queued)
    }
}

fn take_senders<T>(waiting: &AtomicBool, st: &mut State<T>) -> Vec<Waker> {
    let Some(senders) = st.senders.take() else {
        return Vec::new();
    };
    waiting.store(false, Ordering::Relaxed);
    *senders
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

/// The future of [`Inbox::push`]: `Err` hands the message back when the
/// inbox closed first. Dropping it drops the message unsent.
pub(crate) struct Push<'a, T> {
    inbox: &'a Inbox<T>,
    msg: Option<T>,
}

// The message is never pinned in place: moving a `Push` between polls is fine.
impl<T> Unpin for Push<'_, T> {}

impl<T> Future for Push<'_, T> {
    type Output = Result<(), T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.inbox.poll_push(&mut this.msg, cx)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![any::<u32>().prop_map(Op::Push), Just(Op::Pop)]
    }

    proptest! {
        /// Batching is invisible: the inbox behaves as a bounded FIFO of
        /// `cap` messages, and `len` counts the batch's untaken messages.
        #[test]
        fn inbox_matches_vecdeque(cap in 1usize..8, ops in vec(op(), 0..256)) {
            let (inbox, mut batch, mut model) = (Inbox::new(Some(cap)), Batch::default(), VecDeque::new());
            for op in ops {
                match op {
                    Op::Push(x) => {
                        let fits = model.len() < cap;
                        prop_assert_eq!(inbox.try_push(x).is_ok(), fits);
                        if fits { model.push_back(x) }
                    }
                    Op::Pop => prop_assert_eq!(inbox.try_pop(&mut batch), model.pop_front()),
                }
                prop_assert_eq!(inbox.len(), model.len());
            }
        }
    }

    #[test]
    fn nothing_lands_after_close_and_drain_returns_all_in_order() {
        let inbox = Inbox::new(Some(4));
        let mut batch = Batch::default();
        for i in 0..4 {
            assert!(inbox.try_push(i).is_ok());
        }
        assert_eq!(inbox.try_pop(&mut batch), Some(0));
        assert!(inbox.try_push(4).is_ok());
        assert!(inbox.close());
        assert!(!inbox.close());
        assert!(matches!(inbox.try_push(5), Err(Refused::Closed(5))));
        assert_eq!(inbox.drain(&mut batch).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(inbox.len(), 0);
    }

    #[test]
    fn a_waiting_producer_is_woken_by_room_and_by_close() {
        let inbox = Inbox::new(Some(2));
        let mut batch = Batch::default();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        inbox.try_push(1).ok();
        inbox.try_push(2).ok();
        let mut push = inbox.push(3);
        assert!(Pin::new(&mut push).poll(&mut cx).is_pending());
        // Taking a message refills the batch: the producer hears of it.
        assert_eq!(inbox.try_pop(&mut batch), Some(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut push).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        let mut push = inbox.push(4);
        assert!(Pin::new(&mut push).poll(&mut cx).is_pending());
        inbox.close();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(matches!(
            Pin::new(&mut push).poll(&mut cx),
            Poll::Ready(Err(4))
        ));
    }

    #[test]
    fn producers_are_woken_half_way_through_a_batch() {
        let inbox = Inbox::new(Some(8));
        let mut batch = Batch::default();
        for i in 0..8 {
            inbox.try_push(i).ok();
        }
        assert_eq!(inbox.try_pop(&mut batch), Some(0));
        // The taken message made room for one.
        assert!(inbox.try_push(8).is_ok());
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut push = inbox.push(9);
        assert!(Pin::new(&mut push).poll(&mut cx).is_pending());
        // 7 batched; the wake comes when 3 are left.
        for i in 1..4 {
            assert_eq!(inbox.try_pop(&mut batch), Some(i));
            assert_eq!(count.0.load(Ordering::SeqCst), 0);
        }
        assert_eq!(inbox.try_pop(&mut batch), Some(4));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut push).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn the_receiver_is_woken_by_a_push() {
        let inbox = Inbox::new(None);
        let mut batch = Batch::default();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        assert!(inbox.poll_pop(&mut batch, &mut cx).is_pending());
        inbox.try_push(7u8).ok();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(inbox.poll_pop(&mut batch, &mut cx), Poll::Ready(7));
    }
}

/// Model-checked with loom: every interleaving (up to loom's preemption
/// bound) of a few threads on a tiny inbox. Run with
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p plexus-runtime --lib --release loom`.
/// A producer or receiver that is never woken shows up as a loom deadlock.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::thread;
    use std::future::poll_fn;

    /// `loom::model` with at most two preemptions unless
    /// `LOOM_MAX_PREEMPTIONS` says otherwise: the two-producer model is
    /// ~15 s in release at 2 and does not finish in minutes unbounded.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound.get_or_insert(2);
        b.check(f);
    }

    fn pop<T>(inbox: &Inbox<T>, batch: &mut Batch<T>) -> T {
        block_on(poll_fn(|cx| inbox.poll_pop(batch, cx)))
    }

    /// Two producers (two messages and one) into a capacity-1 inbox while
    /// the receiver pops: all three arrive exactly once, each producer's in
    /// order, and no producer waits forever for room.
    #[test]
    fn loom_two_producers_capacity_one() {
        model(|| {
            let inbox = Arc::new(Inbox::new(Some(1)));
            let a = {
                let inbox = inbox.clone();
                thread::spawn(move || {
                    for m in [10, 11] {
                        assert!(block_on(inbox.push(m)).is_ok());
                    }
                })
            };
            let b = {
                let inbox = inbox.clone();
                thread::spawn(move || assert!(block_on(inbox.push(20)).is_ok()))
            };
            let mut batch = Batch::default();
            let got: Vec<u32> = (0..3).map(|_| pop(&inbox, &mut batch)).collect();
            a.join().unwrap();
            b.join().unwrap();
            let from_a: Vec<_> = got.iter().copied().filter(|m| *m < 20).collect();
            let from_b: Vec<_> = got.iter().copied().filter(|m| *m >= 20).collect();
            assert_eq!(from_a, [10, 11], "got {got:?}");
            assert_eq!(from_b, [20], "got {got:?}");
            assert_eq!(inbox.len(), 0);
        });
    }

    /// A push racing with close on an inbox with room: the push is either
    /// refused with its message handed back or the message is drained.
    #[test]
    fn loom_close_races_push() {
        model(|| {
            let inbox = Arc::new(Inbox::new(Some(1)));
            let p = {
                let inbox = inbox.clone();
                thread::spawn(move || inbox.try_push(1u32))
            };
            assert!(inbox.close());
            let pushed = p.join().unwrap();
            let drained: Vec<_> = inbox.drain(&mut Batch::default()).collect();
            match pushed {
                Ok(()) => assert_eq!(drained, [1]),
                Err(Refused::Closed(m)) => {
                    assert_eq!(m, 1);
                    assert!(drained.is_empty());
                }
                Err(Refused::Full(_)) => panic!("refused as full with room"),
            }
            assert!(matches!(inbox.try_push(2), Err(Refused::Closed(2))));
        });
    }

    /// A producer blocked on a full inbox while the receiver takes a
    /// message and closes: the producer is woken (by the room or by the
    /// close) and its message either lands and is drained, or comes back.
    #[test]
    fn loom_close_races_waiting_producer() {
        model(|| {
            let inbox = Arc::new(Inbox::new(Some(1)));
            assert!(inbox.try_push(0u32).is_ok());
            let p = {
                let inbox = inbox.clone();
                thread::spawn(move || block_on(inbox.push(1)))
            };
            let mut batch = Batch::default();
            assert_eq!(inbox.try_pop(&mut batch), Some(0));
            assert!(inbox.close());
            let drained: Vec<_> = inbox.drain(&mut batch).collect();
            match p.join().unwrap() {
                Ok(()) => assert_eq!(drained, [1]),
                Err(m) => {
                    assert_eq!(m, 1);
                    assert!(drained.is_empty());
                }
            }
        });
    }

    /// A push racing with the receiver parking: the receiver is woken.
    #[test]
    fn loom_push_wakes_parking_receiver() {
        model(|| {
            let inbox = Arc::new(Inbox::new(None));
            let p = {
                let inbox = inbox.clone();
                thread::spawn(move || assert!(inbox.try_push(7u32).is_ok()))
            };
            let mut batch = Batch::default();
            assert_eq!(pop(&inbox, &mut batch), 7);
            p.join().unwrap();
        });
    }

    /// The same with a batch in flight: two messages queued become a batch
    /// (`batched` > 0) and a third push races with the receiver draining
    /// the batch and parking.
    #[test]
    fn loom_push_wakes_receiver_after_batch() {
        model(|| {
            let inbox = Arc::new(Inbox::new(Some(3)));
            assert!(inbox.try_push(1u32).is_ok());
            assert!(inbox.try_push(2).is_ok());
            let p = {
                let inbox = inbox.clone();
                thread::spawn(move || assert!(block_on(inbox.push(3)).is_ok()))
            };
            let mut batch = Batch::default();
            let got: Vec<_> = (0..3).map(|_| pop(&inbox, &mut batch)).collect();
            assert_eq!(got, [1, 2, 3]);
            p.join().unwrap();
        });
    }
}
