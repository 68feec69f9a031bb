//! [`RemoteSink`]: the [`MessageSink`] behind a remote [`Recipient`](plexus_runtime::Recipient).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_codecs::{Codec, Kind, RemoteMessage, WireError, WireStr};
use plexus_runtime::remote::current_call;
use plexus_runtime::trace::TraceContext;
use plexus_runtime::{ActorId, AskError, BoxFuture, MessageSink, SendError, TrySendError};
use tokio::sync::{TryAcquireError, oneshot};

use super::RemoteInner;
use super::inbound::from_wire;
use super::session::{Session, TELL_WINDOW, TellChannel, hex, lock, to_traceparent};

pub(crate) struct RemoteSink<M> {
    remote: Arc<RemoteInner>,
    peer: Arc<str>,
    target: WireStr,
    /// The live session to `peer` and its tell channel to `target`, kept
    /// while the session lives (saves two table lookups per tell).
    route: Mutex<Option<(Arc<Session>, Arc<TellChannel>)>>,
    _message: PhantomData<fn(M)>,
}

impl<M> RemoteSink<M> {
    pub(crate) fn new(remote: Arc<RemoteInner>, peer: Arc<str>, target: WireStr) -> Self {
        Self {
            remote,
            peer,
            target,
            route: Mutex::new(None),
            _message: PhantomData,
        }
    }

    /// The live session to the peer and the tell channel to the target.
    fn route(&self) -> Option<(Arc<Session>, Arc<TellChannel>)> {
        let mut route = lock(&self.route);
        if let Some((s, ch)) = route.as_ref()
            && s.is_alive()
        {
            return Some((Arc::clone(s), Arc::clone(ch)));
        }
        let s = self.remote.session(&self.peer)?;
        let ch = s.channel(&self.target);
        *route = Some((Arc::clone(&s), Arc::clone(&ch)));
        Some((s, ch))
    }

    fn unavailable(&self) -> AskError {
        AskError::PeerUnavailable {
            peer: Arc::clone(&self.peer),
        }
    }
}

/// Sends a cancel for an ask whose future is dropped before its answer.
struct CancelOnDrop<'a> {
    session: &'a Arc<Session>,
    corr: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.session.pending).take(self.corr);
            self.session.send_cancel(self.corr);
        }
    }
}

impl<M: RemoteMessage> MessageSink<M> for RemoteSink<M> {
    fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        let id = ActorId::REMOTE;
        let Some((s, ch)) = self.route() else {
            return Err(TrySendError::Closed { msg, id });
        };
        match ch.credits.try_acquire() {
            Ok(p) => p.forget(),
            Err(TryAcquireError::NoPermits) => {
                return Err(TrySendError::Full {
                    msg,
                    id,
                    capacity: TELL_WINDOW,
                });
            }
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed { msg, id }),
        }
        let frame = match s.encode_request(Kind::Tell, ch.id, &self.target, &msg, None, None) {
            Ok(f) => f,
            Err(e) => {
                ch.credits.add_permits(1);
                tracing::error!(error = %e, message = M::NAME, "tell not encodable; not sent");
                return Err(TrySendError::Closed { msg, id });
            }
        };
        match s.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(plexus_runtime::remote::LinkError::Full { .. }) => {
                ch.credits.add_permits(1);
                Err(TrySendError::Full {
                    msg,
                    id,
                    capacity: TELL_WINDOW,
                })
            }
            Err(_) => Err(TrySendError::Closed { msg, id }),
        }
    }

    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        let trace = current_call().and_then(|c| c.trace);
        Box::pin(async move {
            let id = ActorId::REMOTE;
            let Some((s, ch)) = self.route() else {
                return Err(SendError::Closed { msg, id });
            };
            match ch.credits.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => return Err(SendError::Closed { msg, id }),
            }
            let tp = trace.and_then(to_traceparent);
            let frame = match s.encode_request(Kind::Tell, ch.id, &self.target, &msg, None, tp) {
                Ok(f) => f,
                Err(e) => {
                    ch.credits.add_permits(1);
                    tracing::error!(error = %e, message = M::NAME, "tell not encodable; not sent");
                    return Err(SendError::Closed { msg, id });
                }
            };
            match s.tx.send(frame).await {
                Ok(()) => Ok(()),
                Err(_) => Err(SendError::Closed { msg, id }),
            }
        })
    }

    fn ask(&self, msg: M, timeout: Option<Duration>) -> BoxFuture<'_, Result<M::Reply, AskError>> {
        let call = current_call();
        let node = &self.remote.node;
        let trace = call
            .as_ref()
            .and_then(|c| c.trace)
            .unwrap_or_else(|| TraceContext {
                trace_id: (u128::from(node.random_u64()) << 64) | u128::from(node.random_u64()),
                span_id: node.random_u64() | 1,
                sampled: true,
            });
        let span = tracing::debug_span!(
            "rpc.call",
            peer = %self.peer,
            message = M::NAME,
            trace_id = %hex(&trace.trace_id.to_be_bytes()),
        );
        Box::pin(tracing::Instrument::instrument(
            async move {
                let now = node.now();
                let mut deadline = now + timeout.unwrap_or_else(|| node.ask_timeout());
                if let Some(inherited) = call.as_ref().and_then(|c| c.deadline) {
                    deadline = deadline.min(inherited);
                }
                let budget = deadline.saturating_duration_since(now);
                if budget.is_zero() {
                    return Err(AskError::DeadlineExceeded);
                }
                let s = self
                    .remote
                    .session(&self.peer)
                    .ok_or_else(|| self.unavailable())?;
                s.agreed
                    .check_call(M::NAME, M::VERSION)
                    .map_err(|e| from_wire(e, &self.peer))?;
                let (tx, rx) = oneshot::channel();
                let corr = lock(&s.pending).insert(tx);
                let mut guard = CancelOnDrop {
                    session: &s,
                    corr,
                    armed: true,
                };
                let frame = s
                    .encode_request(
                        Kind::Ask,
                        corr,
                        &self.target,
                        &msg,
                        Some(budget),
                        to_traceparent(trace),
                    )
                    .map_err(|e| from_wire(e, &self.peer))?;
                drop(msg);
                if s.tx.send(frame).await.is_err() {
                    guard.armed = false;
                    lock(&s.pending).take(corr);
                    return Err(self.unavailable());
                }
                let sleep = plexus_runtime::remote::deadline(node, deadline);
                let answer = tokio::select! {
                    biased;
                    r = rx => r,
                    () = sleep => return Err(AskError::DeadlineExceeded),
                };
                guard.armed = false;
                let env = match answer {
                    Ok(Ok(env)) => env,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(self.unavailable()),
                };
                match env.kind {
                    Kind::Reply => s
                        .agreed
                        .decode_with
                        .decode::<M::Reply>(&env.payload)
                        .map_err(|e| from_wire(WireError::from(e), &self.peer)),
                    Kind::Error => match env.wire_error() {
                        Some(Ok(e)) => Err(from_wire(e, &self.peer)),
                        _ => Err(AskError::BadPayload {
                            reason: "undecodable error payload".into(),
                        }),
                    },
                    other => Err(AskError::BadPayload {
                        reason: format!("unexpected answer kind {other:?}").into(),
                    }),
                }
            },
            span,
        ))
    }

    fn describe(&self) -> String {
        format!("{}@{}", self.target, self.peer)
    }
}
