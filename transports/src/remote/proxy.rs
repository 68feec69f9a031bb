//! [`RemoteSink`]: the [`MessageSink`] behind a remote [`Recipient`](plexus_runtime::Recipient).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use plexus_codecs::{
    BoundTell, Codec, Envelope, Kind, MessageId, RemoteDuplex, RemoteMessage, RemoteStream,
    StreamReply, Target, WireError, WireMessage, WireStr,
};
use plexus_runtime::remote::{LinkError, current_call};
use plexus_runtime::stream::{Duplex, ReplyStream};
use plexus_runtime::trace::TraceContext;
use plexus_runtime::{ActorId, AskError, BoxFuture, Message, MessageSink, SendError, TrySendError};
use tokio::sync::TryAcquireError;

use super::RemoteInner;
use super::inbound::from_wire;
use super::session::{
    Answer, ReplySlot, Session, TELL_WINDOW, TellChannel, build_frame, hex, lock, to_traceparent,
};
use super::stream::{self, Encoded, remote_items};

pub(crate) struct RemoteSink<M> {
    remote: Arc<RemoteInner>,
    peer: Arc<str>,
    target: WireStr,
    /// The live session to `peer`, kept while the session lives (saves
    /// the table lookups and the handshake check of every call).
    route: Mutex<Option<Arc<Route>>>,
    _message: PhantomData<fn(M)>,
}

/// How calls of one sink reach the peer over one session.
struct Route {
    session: Arc<Session>,
    /// The tell channel to the target.
    channel: Arc<TellChannel>,
    /// Why the peer takes no `M` (it does not expose it, or not at this
    /// version), from the handshake.
    refused: Option<WireError>,
    /// How a tell without deadline or trace is framed: its header, encoded
    /// once, then the payload.
    plain: PlainTell,
}

/// The header of a plain tell (no deadline or trace) on one route.
enum PlainTell {
    /// Bound to a short number ([`BoundTell`]): the first tell binds it,
    /// later ones carry only the number.
    Bound {
        /// A bind frame has been handed to the link, so every later frame
        /// reaches the peer after it: tells may go lean.
        sent: AtomicBool,
        /// Bind frame tag and binding, then the whole envelope header.
        bind: Bytes,
        /// Lean frame tag and binding.
        lean: Bytes,
    },
    /// The session's bindings are all taken: every tell carries its
    /// envelope header.
    Whole(Bytes),
}

impl PlainTell {
    /// The header of the next plain tell, and whether it binds.
    fn header(&self) -> (&[u8], bool) {
        match self {
            Self::Bound { sent, bind, lean } => {
                if sent.load(Ordering::Acquire) {
                    (lean, false)
                } else {
                    (bind, true)
                }
            }
            Self::Whole(header) => (header, false),
        }
    }

    /// A bind frame was handed to the link.
    fn bind_sent(&self) {
        if let Self::Bound { sent, .. } = self {
            sent.store(true, Ordering::Release);
        }
    }
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

    fn describe_wire(&self) -> String {
        format!("{}@{}", self.target, self.peer)
    }

    /// The route over the live session to the peer, for the sink's
    /// message type (`name`, `version`).
    fn route(&self, name: &'static str, version: u32) -> Option<Arc<Route>> {
        let mut route = lock(&self.route);
        if let Some(r) = route.as_ref()
            && r.session.is_alive()
        {
            return Some(Arc::clone(r));
        }
        let session = self.remote.session(&self.peer)?;
        let channel = session.channel(&self.target);
        let header = Envelope::new(Kind::Tell, channel.id)
            .with_message(MessageId::new(name, version))
            .with_target(Target::Name(self.target.clone()));
        let plain = match session.binding(&self.target, name, version) {
            Some(binding) => {
                let mut bind = BytesMut::new();
                BoundTell::encode_bind_prefix(binding, &mut bind);
                header.encode_header(&mut bind);
                let mut lean = BytesMut::new();
                BoundTell::encode_lean_header(binding, &mut lean);
                PlainTell::Bound {
                    sent: AtomicBool::new(false),
                    bind: bind.freeze(),
                    lean: lean.freeze(),
                }
            }
            None => {
                let mut whole = BytesMut::new();
                header.encode_header(&mut whole);
                PlainTell::Whole(whole.freeze())
            }
        };
        let fresh = Arc::new(Route {
            channel,
            refused: session.agreed.check_call(name, version).err(),
            session,
            plain,
        });
        *route = Some(Arc::clone(&fresh));
        Some(fresh)
    }

    /// The route, if the peer is connected and takes the message.
    fn checked_route(&self, name: &'static str, version: u32) -> Result<Arc<Route>, AskError> {
        let route = self
            .route(name, version)
            .ok_or_else(|| self.unavailable())?;
        match &route.refused {
            None => Ok(route),
            Some(e) => Err(from_wire(e.clone(), &self.peer)),
        }
    }

    fn unavailable(&self) -> AskError {
        AskError::PeerUnavailable {
            peer: Arc::clone(&self.peer),
        }
    }

    /// Why a frame the link refused was not sent: too large for it, or the
    /// link is down (it reconnects on its own).
    fn link_failed(&self, e: LinkError) -> AskError {
        match e {
            LinkError::TooLarge { len, max } => AskError::TooLarge { len, max },
            _ => self.unavailable(),
        }
    }

    /// What an ask needs before its future runs: the caller's call scope
    /// (read now, on the caller's thread), its trace and span.
    fn prepare<W: WireMessage>(&self, timeout: Option<Duration>) -> Prepared {
        let call = current_call();
        let node = &self.remote.node;
        let trace = call
            .as_ref()
            .and_then(|c| c.trace)
            .unwrap_or_else(|| node.new_trace());
        let span = tracing::debug_span!(
            "rpc.call",
            peer = %self.peer,
            message = W::NAME,
            trace_id = %hex(&trace.trace_id.to_be_bytes()),
        );
        Prepared {
            inherited: call.and_then(|c| c.deadline),
            trace,
            timeout,
            span,
        }
    }

    /// Send `msg` as an ask and wait for its first answer (a `Reply` or an
    /// `Error` envelope) within the deadline. `registered` runs once the
    /// call has its correlation id, before the ask is sent (to route its
    /// stream); `sent` runs once it is sent (to start streaming input).
    /// Dropping the future cancels the call.
    async fn call<W: WireMessage>(
        &self,
        prepared: Prepared,
        msg: W,
        registered: impl FnOnce(&Arc<Session>, u64),
        sent: impl FnOnce(&Arc<Session>, u64),
    ) -> Result<(Arc<Session>, Answer), AskError> {
        let node = &self.remote.node;
        let now = node.now();
        let mut deadline = plexus_runtime::clock::after(
            now,
            prepared.timeout.unwrap_or_else(|| node.ask_timeout()),
        );
        if let Some(inherited) = prepared.inherited {
            deadline = deadline.min(inherited);
        }
        let budget = deadline.saturating_duration_since(now);
        if budget.is_zero() {
            return Err(AskError::DeadlineExceeded);
        }
        let route = self.checked_route(W::NAME, W::VERSION)?;
        let s = &route.session;
        let corr = lock(&s.pending).insert(ReplySlot::Waiting(None));
        let mut guard = CancelOnDrop {
            session: s,
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
                to_traceparent(prepared.trace),
            )
            .map_err(|e| from_wire(e, &self.peer))?;
        drop(msg);
        registered(s, corr);
        if let Err(e) = s.send(frame).await {
            guard.armed = false;
            lock(&s.pending).take(corr);
            s.forget_stream(corr, true);
            return Err(self.link_failed(e));
        }
        sent(s, corr);
        let sleep = plexus_runtime::remote::deadline(node, deadline);
        let answer = std::future::poll_fn(|cx| s.poll_answer(corr, cx));
        let answer = tokio::select! {
            biased;
            r = answer => r,
            () = sleep => return Err(AskError::DeadlineExceeded),
        };
        match answer {
            Ok(answer) => {
                guard.armed = false;
                if answer.kind != Kind::Reply {
                    s.forget_stream(corr, true);
                }
                drop(guard);
                Ok((Arc::clone(s), answer))
            }
            Err(e) => Err(e),
        }
    }
}

impl<M> RemoteSink<M> {
    /// [`call`](Self::call) for an ask answered by a stream of `T`: the
    /// stream is routed before the ask is sent, and returned once the
    /// callee has opened it.
    async fn call_stream<W: WireMessage, T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        prepared: Prepared,
        msg: W,
        sent: impl FnOnce(&Arc<Session>, u64),
    ) -> Result<ReplyStream<T>, AskError> {
        let mut items = None;
        let registered = |s: &Arc<Session>, corr| {
            let (feed, rx) = remote_items(s, corr, true);
            s.open_feed(corr, true, feed);
            items = Some(rx);
        };
        let (_, answer) = self.call(prepared, msg, registered, sent).await?;
        match (answer.kind, items) {
            (Kind::Reply, Some(items)) => Ok(ReplyStream::from_source(items)),
            (_, items) => {
                if let Some(mut items) = items {
                    items.disarm();
                }
                Err(answer.error(&self.peer))
            }
        }
    }
}

/// The caller-side state of an ask, read when it is made.
struct Prepared {
    inherited: Option<std::time::Instant>,
    trace: TraceContext,
    timeout: Option<Duration>,
    span: tracing::Span,
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
            self.session.forget_stream(self.corr, true);
            self.session.send_cancel(self.corr);
        }
    }
}

impl<M: WireMessage + Message> RemoteSink<M> {
    /// Why this tell must be refused: the peer does not expose `M` at this
    /// version (from the handshake), or it refused an earlier tell of this
    /// channel (reported once).
    fn refusal(&self, route: &Route) -> Option<AskError> {
        if let Some(e) = &route.refused {
            return Some(from_wire(e.clone(), &self.peer));
        }
        route.channel.take_refusal()
    }

    /// The frame of a tell on `route`: its cached header (bound, once the
    /// binding is sent) and the payload, or, with a trace to carry, the
    /// whole envelope; and whether the frame binds.
    fn tell_frame(
        &self,
        route: &Route,
        msg: &M,
        trace: Option<TraceContext>,
    ) -> Result<(Bytes, bool), WireError> {
        let s = &route.session;
        match trace.and_then(to_traceparent) {
            None => {
                let (header, binds) = route.plain.header();
                let frame = build_frame(|buf| {
                    buf.extend_from_slice(header);
                    s.codec().encode(msg, buf)?;
                    Ok::<_, WireError>(())
                })?;
                Ok((frame, binds))
            }
            tp => s
                .encode_request(Kind::Tell, route.channel.id, &self.target, msg, None, tp)
                .map(|frame| (frame, false)),
        }
    }

    /// Send a tell now if there is credit and room on the link (no future,
    /// no waiting); `Full` hands it back.
    fn tell_wire_now(&self, msg: M, trace: Option<TraceContext>) -> Result<(), TrySendError<M>> {
        let rejected = |msg, error| TrySendError::Rejected { msg, error };
        let Some(route) = self.route(M::NAME, M::VERSION) else {
            return Err(rejected(msg, self.unavailable()));
        };
        let (s, ch) = (&route.session, &route.channel);
        if let Some(error) = self.refusal(&route) {
            return Err(rejected(msg, error));
        }
        let full = |msg| TrySendError::Full {
            msg,
            id: ActorId::REMOTE,
            capacity: TELL_WINDOW,
        };
        match ch.credits.try_acquire() {
            Ok(p) => p.forget(),
            Err(TryAcquireError::NoPermits) => return Err(full(msg)),
            Err(TryAcquireError::Closed) => return Err(rejected(msg, self.unavailable())),
        }
        let (frame, binds) = match self.tell_frame(&route, &msg, trace) {
            Ok(f) => f,
            Err(e) => {
                ch.credits.add_permits(1);
                return Err(rejected(msg, self.not_encodable(e)));
            }
        };
        match s.tx.try_send(frame) {
            Ok(()) => {
                if binds {
                    route.plain.bind_sent();
                }
                Ok(())
            }
            Err(LinkError::Full { .. }) => {
                ch.credits.add_permits(1);
                Err(full(msg))
            }
            Err(e) => {
                ch.credits.add_permits(1);
                Err(rejected(msg, self.link_failed(e)))
            }
        }
    }

    fn tell_wire(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        let trace = current_call().and_then(|c| c.trace);
        Box::pin(async move {
            let rejected = |msg, error| SendError::Rejected { msg, error };
            let Some(route) = self.route(M::NAME, M::VERSION) else {
                return Err(rejected(msg, self.unavailable()));
            };
            let (s, ch) = (&route.session, &route.channel);
            if let Some(error) = self.refusal(&route) {
                return Err(rejected(msg, error));
            }
            // Credit is usually there: no acquire future then.
            let credit = match ch.credits.try_acquire() {
                Ok(p) => Ok(p),
                Err(TryAcquireError::NoPermits) => ch.credits.acquire().await,
                Err(TryAcquireError::Closed) => return Err(rejected(msg, self.unavailable())),
            };
            match credit {
                Ok(p) => p.forget(),
                Err(_) => return Err(rejected(msg, self.unavailable())),
            }
            let (frame, binds) = match self.tell_frame(&route, &msg, trace) {
                Ok(f) => f,
                Err(e) => {
                    ch.credits.add_permits(1);
                    return Err(rejected(msg, self.not_encodable(e)));
                }
            };
            match s.tx.send(frame).await {
                Ok(()) => {
                    if binds {
                        route.plain.bind_sent();
                    }
                    Ok(())
                }
                Err(e) => {
                    ch.credits.add_permits(1);
                    Err(rejected(msg, self.link_failed(e)))
                }
            }
        })
    }

    /// A message that did not encode: a bug in its serde impl, not a
    /// transient failure.
    fn not_encodable(&self, e: WireError) -> AskError {
        tracing::error!(error = %e, message = M::NAME, "tell not encodable; not sent");
        from_wire(e, &self.peer)
    }
}

impl<M: RemoteMessage> MessageSink<M> for RemoteSink<M> {
    fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.tell_wire_now(msg, None)
    }

    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        self.tell_wire(msg)
    }

    fn tell_now(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.tell_wire_now(msg, current_call().and_then(|c| c.trace))
    }

    fn ask(&self, msg: M, timeout: Option<Duration>) -> BoxFuture<'_, Result<M::Reply, AskError>> {
        let call = self.prepare::<M>(timeout);
        let span = call.span.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let (s, answer) = self.call(call, msg, |_, _| {}, |_, _| {}).await?;
                match answer.kind {
                    Kind::Reply => s
                        .agreed
                        .decode_with
                        .decode::<M::Reply>(&answer.payload)
                        .map_err(|e| from_wire(WireError::from(e), &self.peer)),
                    _ => Err(answer.error(&self.peer)),
                }
            },
            span,
        ))
    }

    fn describe(&self) -> String {
        self.describe_wire()
    }
}

/// The sink behind a remote [`Recipient`](plexus_runtime::Recipient) of a
/// streaming message: the ask's reply is the stream of the callee's items.
pub(crate) struct RemoteStreamSink<M>(pub(crate) RemoteSink<M>);

impl<M: RemoteStream> MessageSink<M> for RemoteStreamSink<M> {
    fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.0.tell_wire_now(msg, None)
    }

    fn tell(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        self.0.tell_wire(msg)
    }

    fn tell_now(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.0
            .tell_wire_now(msg, current_call().and_then(|c| c.trace))
    }

    fn ask(&self, msg: M, timeout: Option<Duration>) -> BoxFuture<'_, Result<M::Reply, AskError>> {
        let sink = &self.0;
        let prepared = sink.prepare::<M>(timeout);
        let span = prepared.span.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let items = sink.call_stream(prepared, msg, |_, _| {}).await?;
                Ok(M::Reply::from_stream(items))
            },
            span,
        ))
    }

    fn describe(&self) -> String {
        self.0.describe_wire()
    }
}

/// The sink behind a remote [`Recipient`](plexus_runtime::Recipient) of a
/// bidirectional stream: the ask sends the opening message, then streams
/// the input while the callee's output streams back.
pub(crate) struct RemoteDuplexSink<O>(pub(crate) RemoteSink<O>);

impl<O: RemoteDuplex> MessageSink<Duplex<O>> for RemoteDuplexSink<O> {
    /// Refused: a bidirectional stream must be asked (its output is the
    /// reply). The message is handed back.
    fn try_tell(&self, msg: Duplex<O>) -> Result<(), TrySendError<Duplex<O>>> {
        tracing::error!(
            message = O::NAME,
            "a bidirectional stream cannot be told; ask it"
        );
        Err(TrySendError::Closed {
            msg,
            id: ActorId::REMOTE,
        })
    }

    /// Refused, as [`try_tell`](Self::try_tell).
    fn tell(&self, msg: Duplex<O>) -> BoxFuture<'_, Result<(), SendError<Duplex<O>>>> {
        tracing::error!(
            message = O::NAME,
            "a bidirectional stream cannot be told; ask it"
        );
        Box::pin(std::future::ready(Err(SendError::Closed {
            msg,
            id: ActorId::REMOTE,
        })))
    }

    fn ask(
        &self,
        msg: Duplex<O>,
        timeout: Option<Duration>,
    ) -> BoxFuture<'_, Result<ReplyStream<O::Out>, AskError>> {
        let sink = &self.0;
        let prepared = sink.prepare::<O>(timeout);
        let span = prepared.span.clone();
        let Duplex { open, input } = msg;
        Box::pin(tracing::Instrument::instrument(
            async move {
                let sent = move |s: &Arc<Session>, corr| {
                    let credits = s.open_credits(corr, false);
                    let input = ReplyStream::from_source(Encoded::new(input, s.codec()));
                    let session = Arc::clone(s);
                    let task = tokio::spawn(async move {
                        stream::pump(&session, corr, false, input, &credits).await;
                    });
                    s.track_upload(corr, task.abort_handle());
                };
                sink.call_stream(prepared, open, sent).await
            },
            span,
        ))
    }

    fn describe(&self) -> String {
        self.0.describe_wire()
    }
}
