//! Shared test actors and helpers.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use plexus_runtime::prelude::*;
use tokio::sync::Semaphore;

/// Poll a future once with a no-op waker.
pub fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let mut cx = TaskContext::from_waker(Waker::noop());
    f.poll(&mut cx)
}

/// An actor whose `Work` handler waits for a permit from a gate the test
/// controls, then records the value.
pub struct Gated {
    pub gate: Arc<Semaphore>,
    pub seen: Vec<u64>,
    pub started: Option<flume::Sender<u64>>,
}

impl Gated {
    pub fn new(gate: Arc<Semaphore>) -> Self {
        Self {
            gate,
            seen: Vec::new(),
            started: None,
        }
    }
}

impl Actor for Gated {}

pub struct Work(pub u64);
impl Message for Work {
    type Reply = u64;
}

impl Handler<Work> for Gated {
    async fn handle(&mut self, Work(n): Work, _: &mut Context<Self>) -> u64 {
        if let Some(tx) = &self.started {
            let _ = tx.send(n);
        }
        self.gate.acquire().await.expect("gate open").forget();
        self.seen.push(n);
        n
    }
}

pub struct Seen;
impl Message for Seen {
    type Reply = Vec<u64>;
}

impl Handler<Seen> for Gated {
    async fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Vec<u64> {
        self.seen.clone()
    }
}

/// Forwards every death notice to a channel.
pub struct Watcher {
    pub out: flume::Sender<Terminated>,
}

impl Actor for Watcher {}

impl Handler<Terminated> for Watcher {
    async fn handle(&mut self, t: Terminated, _: &mut Context<Self>) {
        let _ = self.out.send(t);
    }
}

pub struct WatchThis<A: Actor>(pub ActorRef<A>);
impl<A: Actor> Message for WatchThis<A> {
    type Reply = ();
}

impl<A: Actor> Handler<WatchThis<A>> for Watcher {
    async fn handle(&mut self, WatchThis(r): WatchThis<A>, cx: &mut Context<Self>) {
        cx.watch(&r);
    }
}

/// A do-nothing actor.
pub struct Idle;
impl Actor for Idle {}

pub struct Ping;
impl Message for Ping {
    type Reply = &'static str;
}
impl Handler<Ping> for Idle {
    async fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> &'static str {
        "pong"
    }
}

/// A `Gated` actor whose handler reports each `Work` it starts on the
/// returned channel and then waits for a permit from the returned gate.
pub fn gated() -> (Gated, Arc<Semaphore>, flume::Receiver<u64>) {
    let gate = Arc::new(Semaphore::new(0));
    let (tx, started) = flume::unbounded();
    let mut g = Gated::new(gate.clone());
    g.started = Some(tx);
    (g, gate, started)
}
