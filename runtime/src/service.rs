//! `tower::Service` for actors: an [`ActorRef<A>`] or a [`Recipient<M>`] is a
//! service from `M` to `M::Reply`, so tower's middleware — timeouts,
//! retries, concurrency limits, load shedding, rate limits — wraps actors
//! unchanged. plexus does not grow a second middleware stack.
//!
//! Each call is one [`ask`](ActorRef::ask) with the node's default
//! deadline; the service's error is [`AskError`]. `poll_ready` is ready
//! while the actor is alive (a stopped actor answers `AskError::Closed`);
//! the mailbox's own backpressure applies inside the call. A full mailbox
//! therefore does not make the service unready: to shed load, put
//! `load_shed` outside a `concurrency_limit`, which is what turns "too
//! many calls in flight" into not ready.
//!
//! # Examples
//!
//! A concurrency limit and a timeout in front of an actor:
//!
//! ```
//! # use plexus_runtime::prelude::*;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! struct Double;
//! impl Actor for Double {}
//! struct N(u64);
//! impl Message for N { type Reply = u64; }
//! impl Handler<N> for Double {
//!     async fn handle(&mut self, N(n): N, _: &mut Context<Self>) -> u64 { n * 2 }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let node = Node::builder().build();
//! let svc = ServiceBuilder::new()
//!     .concurrency_limit(8)
//!     .timeout(Duration::from_millis(100))
//!     .service(node.spawn(Double).recipient::<N>());
//! assert_eq!(svc.oneshot(N(21)).await?, 42);
//! # Ok(()) }
//! ```

use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use crate::actor::{Handler, Message};
use crate::actor_ref::ActorRef;
use crate::error::AskError;
use crate::recipient::{BoxFuture, Recipient};

impl<A, M> Service<M> for ActorRef<A>
where
    A: Handler<M>,
    M: Message,
{
    type Response = M::Reply;
    type Error = AskError;
    type Future = BoxFuture<'static, Result<M::Reply, AskError>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), AskError>> {
        Poll::Ready(if self.is_alive() {
            Ok(())
        } else {
            Err(AskError::Closed { id: self.id() })
        })
    }

    fn call(&mut self, msg: M) -> Self::Future {
        let to = self.clone();
        Box::pin(async move { to.ask(msg).await })
    }
}

impl<M: Message> Service<M> for Recipient<M> {
    type Response = M::Reply;
    type Error = AskError;
    type Future = BoxFuture<'static, Result<M::Reply, AskError>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), AskError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, msg: M) -> Self::Future {
        let to = self.clone();
        Box::pin(async move { to.ask(msg).await })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{Service, ServiceBuilder, ServiceExt};

    use crate::prelude::*;

    struct Sleepy;
    impl Actor for Sleepy {}
    struct Nap(u64);
    impl Message for Nap {
        type Reply = u64;
    }
    impl Handler<Nap> for Sleepy {
        async fn handle(&mut self, Nap(ms): Nap, _: &mut Context<Self>) -> u64 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tower_timeout_wraps_an_actor() {
        let node = Node::builder().build();
        let actor = node.spawn(Sleepy);
        let mut svc = ServiceBuilder::new()
            .timeout(Duration::from_millis(50))
            .service(actor.clone());
        assert_eq!(svc.ready().await.unwrap().call(Nap(10)).await.unwrap(), 10);
        let late = svc.ready().await.unwrap().call(Nap(500)).await;
        assert!(late.unwrap_err().is::<tower::timeout::error::Elapsed>());
    }

    /// As the module docs say: `load_shed` over `concurrency_limit` refuses
    /// a call while the limit's one slot is taken, and serves once it is free.
    #[tokio::test(start_paused = true)]
    async fn load_shed_over_a_concurrency_limit_sheds() {
        let node = Node::builder().build();
        let mut svc = ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1)
            .service(node.spawn(Sleepy).recipient::<Nap>());
        let busy = svc.ready().await.unwrap().call(Nap(100));
        let shed = svc.ready().await.unwrap().call(Nap(1)).await;
        assert!(
            shed.unwrap_err()
                .is::<tower::load_shed::error::Overloaded>()
        );
        assert_eq!(busy.await.unwrap(), 100);
        assert_eq!(svc.ready().await.unwrap().call(Nap(1)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_stopped_actor_is_not_ready() {
        let node = Node::builder().build();
        let mut actor = node.spawn(Sleepy);
        actor.stop();
        actor.terminated().await;
        let err = ServiceExt::<Nap>::ready(&mut actor).await.err();
        assert!(matches!(err, Some(AskError::Closed { .. })), "{err:?}");
    }
}
