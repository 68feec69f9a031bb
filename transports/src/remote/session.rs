//! One [`Session`] per connected peer: the reader loop over a link, the
//! caller's pending asks and tell channels, and the receiver's running
//! requests and tell forwarders.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use plexus_codecs::envelope::MAX_BINDING;
use plexus_codecs::{
    Agreed, BoundTell, Codec, CodecKind, Envelope, EnvelopeError, EnvelopeRef, Kind, Target,
    TargetRef, TraceParent, WireError, WireMessage, WireStr,
};
use plexus_runtime::protocols::rpc::{IdHasher, Pending, RecvWindow};
use plexus_runtime::remote::{
    CallScope, CancelToken, FrameReceiver, FrameSender, LinkError, SharedScope,
};
use plexus_runtime::stream::ReplyStream;
use plexus_runtime::trace::TraceContext;
use plexus_runtime::{AskError, BoxFuture};
use tokio::sync::{Notify, Semaphore};

use super::RemoteInner;
use super::inbound::{AskTarget, Serve, TellJob, TellTarget};
use super::stream::{self, Feed, STREAM_WINDOW, stream_error};

/// Tells one sender may have queued at one target before the receiver
/// grants credit back (a protocol constant both sides assume).
pub const TELL_WINDOW: usize = 256;

/// Frames the reader takes with `try_recv` before it waits on the link
/// again (which also grants owed credit and polls the asks it serves).
const BURST: usize = 64;

/// The first answer to one of our calls: a `Reply` (for a stream: the
/// stream is open) or an `Error`, with its payload.
pub(crate) struct Answer {
    pub(crate) kind: Kind,
    pub(crate) payload: Bytes,
}

impl Answer {
    /// The error an answer other than `Reply` stands for.
    pub(crate) fn error(&self, peer: &str) -> AskError {
        match self.kind {
            Kind::Error => match plexus_codecs::WireError::from_payload(&self.payload) {
                Ok(e) => super::inbound::from_wire(e, peer),
                Err(_) => AskError::BadPayload {
                    reason: "undecodable error payload".into(),
                },
            },
            other => AskError::BadPayload {
                reason: format!("unexpected answer kind {other:?}").into(),
            },
        }
    }
}

/// Where the answer to one of our calls is left for its caller: the
/// pending table holds the slot itself, so a call costs no channel.
pub(crate) enum ReplySlot {
    /// No answer yet; the caller's waker once it has polled.
    Waiting(Option<Waker>),
    Answered(Answer),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The caller's side of a stream of tells to one target.
pub(crate) struct TellChannel {
    pub(crate) id: u64,
    pub(crate) credits: Semaphore,
    /// The peer refused a tell of this channel; the next tell reports it.
    refused: Mutex<Option<AskError>>,
    /// Whether `refused` holds a refusal: read by every tell without the
    /// lock, written under it.
    has_refusal: AtomicBool,
}

impl TellChannel {
    /// The refusal to report, once.
    pub(crate) fn take_refusal(&self) -> Option<AskError> {
        if !self.has_refusal.load(Ordering::Acquire) {
            return None;
        }
        let mut refused = lock(&self.refused);
        self.has_refusal.store(false, Ordering::Release);
        refused.take()
    }

    fn refuse(&self, error: AskError) {
        let mut refused = lock(&self.refused);
        *refused = Some(error);
        self.has_refusal.store(true, Ordering::Release);
    }
}

struct InboundCall {
    /// Fired when the caller cancels or the link goes down: drops both the
    /// handler and the code serving the call ([`Serving`]).
    cancel: CancelToken,
}

/// An inbound ask being served by the reader task; it sends its own answer
/// (for a stream: every item, under credit). It ends early, unsent, when
/// its call's cancel token fires.
struct Serving {
    cancel: CancelToken,
    fut: tracing::instrument::Instrumented<BoxFuture<'static, ()>>,
}

impl Future for Serving {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.cancel.poll_served(cx).is_ready() {
            return Poll::Ready(());
        }
        std::pin::Pin::new(&mut this.fut).poll(cx)
    }
}

/// The receiving side of one tell channel, kept by the reader.
#[derive(Default)]
struct InChannel {
    /// Delivers, in order, the tells that found the mailbox full and every
    /// later one until it has caught up.
    forwarder: Option<flume::Sender<TellJob>>,
    /// Tells handed to the forwarder and not yet in the mailbox: while
    /// any are, later tells must go through the forwarder too.
    queued: Arc<AtomicUsize>,
    /// Credit for tells the reader put in the mailbox itself, not yet granted.
    owed: u64,
    /// The targets this channel's tells resolved to, by message type (a
    /// channel carries one target; a sender rarely tells it more than a
    /// few types).
    targets: TargetCache<Box<dyn TellTarget>, 8>,
    /// What a tell without deadline or trace runs under: the caller and
    /// the channel id, made on the first.
    scope: Option<SharedScope>,
}

/// A channel's [`InChannel::scope`], made from the session's caller scope
/// on first use.
fn plain_scope<'a>(
    scope: &'a mut Option<SharedScope>,
    caller: &SharedScope,
    channel: u64,
) -> &'a SharedScope {
    scope.get_or_insert_with(|| caller.with_correlation(channel))
}

/// Resolved targets by (message name, version, actor name), oldest
/// evicted first: requests after the first skip the codecs registry and
/// the actor-name lookup.
struct TargetCache<T, const N: usize> {
    entries: Vec<(WireStr, u32, WireStr, T)>,
}

impl<T, const N: usize> Default for TargetCache<T, N> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T, const N: usize> TargetCache<T, N> {
    /// The target of `message` at `target`, resolved by `resolve` the first
    /// time.
    fn get_or_resolve(
        &mut self,
        (message, version): (&str, u32),
        target: &str,
        resolve: impl FnOnce() -> Result<T, WireError>,
    ) -> Result<&mut T, WireError> {
        let cached = self
            .entries
            .iter()
            .position(|(name, v, to, _)| *v == version && **name == *message && **to == *target);
        let at = match cached {
            Some(at) => at,
            None => {
                let resolved = resolve()?;
                if self.entries.len() == N {
                    self.entries.remove(0);
                }
                // Owned copies: slices would pin the frame's whole buffer.
                self.entries.push((
                    WireStr::from(message.to_owned()),
                    version,
                    WireStr::from(target.to_owned()),
                    resolved,
                ));
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[at].3)
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// What the reader needs of a tell frame.
struct TellRef<'a> {
    channel: u64,
    message: Option<(&'a str, u32)>,
    target: Option<TargetRef<'a>>,
    deadline: Option<Duration>,
    traceparent: Option<TraceParent>,
    payload: &'a [u8],
}

impl<'a> From<&EnvelopeRef<'a>> for TellRef<'a> {
    fn from(env: &EnvelopeRef<'a>) -> Self {
        Self {
            channel: env.correlation,
            message: env.message,
            target: env.target,
            deadline: env.deadline,
            traceparent: env.traceparent,
            payload: env.payload,
        }
    }
}

/// What a peer's bindings stand for ([`BoundTell`]): the header of the
/// plain tell that bound each, by binding, with where its tells go.
#[derive(Default)]
struct Bindings {
    list: Vec<Option<Binding>>,
}

struct Binding {
    channel: u64,
    /// Where the channel's state is in [`InChannels`].
    at: usize,
    name: String,
    version: u32,
    target: String,
    /// The target, resolved by the first tell that reaches it.
    resolved: Option<Box<dyn TellTarget>>,
}

impl Bindings {
    /// Bind `binding` to the header of `tell`, a plain tell of the channel
    /// at `at`; a binding made again is replaced. `None` if `tell` names
    /// no message or target name, or `binding` is above [`MAX_BINDING`]
    /// (both refused by the decoder).
    fn bind(&mut self, binding: u64, tell: &EnvelopeRef<'_>, at: usize) -> Option<&mut Binding> {
        let (Some((name, version)), Some(TargetRef::Name(target))) = (tell.message, tell.target)
        else {
            return None;
        };
        let index = usize::try_from(binding)
            .ok()
            .filter(|&i| i <= MAX_BINDING as usize)?;
        if self.list.len() <= index {
            self.list.resize_with(index + 1, || None);
        }
        let slot = self.list[index].get_or_insert_with(|| Binding {
            channel: 0,
            at: 0,
            name: String::new(),
            version: 0,
            target: String::new(),
            resolved: None,
        });
        slot.channel = tell.correlation;
        slot.at = at;
        slot.name.clear();
        slot.name.push_str(name);
        slot.version = version;
        slot.target.clear();
        slot.target.push_str(target);
        slot.resolved = None;
        Some(slot)
    }

    /// What `binding` was bound to.
    fn get_mut(&mut self, binding: u64) -> Result<&mut Binding, EnvelopeError> {
        usize::try_from(binding)
            .ok()
            .and_then(|at| self.list.get_mut(at))
            .and_then(Option::as_mut)
            .ok_or(EnvelopeError::UnknownBinding { binding })
    }
}

/// The receiving sides of the peer's tell channels, by channel id. Bursts
/// come from one channel at a time: the last one found is checked first,
/// before hashing.
#[derive(Default)]
struct InChannels {
    list: Vec<(u64, InChannel)>,
    index: HashMap<u64, usize>,
    last: usize,
    /// At most this many channels ([`RemoteConfig::max_tell_channels`](super::RemoteConfig::max_tell_channels)).
    max: usize,
}

impl InChannels {
    /// Where channel `id`'s state is in the list (it stays there), made on
    /// its first tell; `None` for a new channel past the limit.
    fn position(&mut self, id: u64) -> Option<usize> {
        if self.list.get(self.last).is_none_or(|(at, _)| *at != id) {
            self.last = match self.index.get(&id) {
                Some(&at) => at,
                None if self.list.len() >= self.max => return None,
                None => {
                    self.list.push((id, InChannel::default()));
                    self.index.insert(id, self.list.len() - 1);
                    self.list.len() - 1
                }
            };
        }
        Some(self.last)
    }

    /// Channel `id`'s state, made on its first tell; `None` for a new
    /// channel past the limit.
    fn get(&mut self, id: u64) -> Option<&mut InChannel> {
        let at = self.position(id)?;
        Some(&mut self.list[at].1)
    }
}

/// What the reader keeps between frames.
#[derive(Default)]
struct ReaderState {
    channels: InChannels,
    /// Channels that may have credit owed, granted when the reader idles.
    owing: Vec<u64>,
    /// Where asks went, by message type and target, while the node's
    /// registry stays at `generation`.
    asks: TargetCache<Box<dyn AskTarget>, 16>,
    generation: u64,
}

impl ReaderState {
    /// The ask target for `message` at `target`: resolved through the
    /// codecs registry and the node's name registry the first time, then
    /// remembered until the name registry changes.
    fn ask_target(
        &mut self,
        remote: &RemoteInner,
        (name, version): (&str, u32),
        target: &str,
    ) -> Result<&dyn AskTarget, WireError> {
        let generation = remote.node.registry().generation();
        if generation != self.generation {
            self.asks.clear();
            self.generation = generation;
        }
        let to = self.asks.get_or_resolve((name, version), target, || {
            remote
                .registry
                .lookup(name, version)?
                .ask_target(&remote.node, target)
        })?;
        Ok(&**to)
    }
}

pub(crate) struct Session {
    pub(crate) peer: Arc<str>,
    pub(crate) tx: Arc<dyn FrameSender>,
    pub(crate) agreed: Agreed,
    /// What a request carrying neither deadline nor trace runs under: the
    /// caller's identity only, built once.
    caller_scope: SharedScope,
    /// Whether this node opened the link.
    pub(crate) opened_here: bool,
    pub(crate) pending: Mutex<Pending<ReplySlot>>,
    channels: Mutex<HashMap<WireStr, Arc<TellChannel>>>,
    channels_by_id: Mutex<HashMap<u64, Arc<TellChannel>>>,
    next_channel: AtomicU64,
    /// The bindings of our tells' headers, by (target, message, version).
    bindings: Mutex<HashMap<(WireStr, &'static str, u32), u64>>,
    inbound: Mutex<HashMap<u64, InboundCall, IdHasher>>,
    /// Streams being received, by (call, whether the items come from its
    /// callee): our calls' reply streams and our served calls' inputs.
    feeds: Mutex<HashMap<(u64, bool), Feed>>,
    /// Credit of the streams being sent, keyed like `feeds` by the
    /// direction of the items.
    credits: Mutex<HashMap<(u64, bool), Arc<Semaphore>>>,
    /// The tasks sending our duplex calls' inputs.
    uploads: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    alive: AtomicBool,
    closed: Notify,
}

impl Session {
    pub(crate) fn new(
        peer: Arc<str>,
        tx: Arc<dyn FrameSender>,
        agreed: Agreed,
        opened_here: bool,
    ) -> Self {
        Self {
            caller_scope: CallScope::new().caller(Arc::clone(&peer)).share(),
            peer,
            tx,
            agreed,
            opened_here,
            pending: Mutex::new(Pending::new()),
            channels: Mutex::new(HashMap::new()),
            channels_by_id: Mutex::new(HashMap::new()),
            next_channel: AtomicU64::new(1),
            bindings: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::default()),
            feeds: Mutex::new(HashMap::new()),
            credits: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            closed: Notify::new(),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Resolves once the session has ended.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed.notified();
            if !self.is_alive() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn codec(&self) -> CodecKind {
        self.agreed.encode_with
    }

    /// Our call `corr`'s answer once it has arrived. `PeerUnavailable`
    /// once the call is no longer pending: the session has ended.
    pub(crate) fn poll_answer(
        &self,
        corr: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Answer, AskError>> {
        let mut pending = lock(&self.pending);
        if let Some(ReplySlot::Waiting(waker)) = pending.get_mut(corr) {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        Poll::Ready(match pending.take(corr) {
            Some(ReplySlot::Answered(answer)) => Ok(answer),
            _ => Err(AskError::PeerUnavailable {
                peer: Arc::clone(&self.peer),
            }),
        })
    }

    /// Leave a `Reply` or `Error` from the callee in its call's slot and
    /// wake the caller; `false` if no call of ours waits for it (a stream
    /// already open, or a tell channel's refusal).
    fn on_answer(&self, env: &EnvelopeRef<'_>, frame: &Bytes) -> bool {
        if !env.from_callee || env.correlation >> 63 == 1 {
            return false;
        }
        let mut pending = lock(&self.pending);
        // Answered already: this is the end of the stream it opened, for
        // the stream's feed.
        let Some(slot) = pending.get_mut(env.correlation) else {
            return false;
        };
        let ReplySlot::Waiting(waker) = slot else {
            return false;
        };
        let waker = waker.take();
        *slot = ReplySlot::Answered(Answer {
            kind: env.kind,
            payload: frame.slice_ref(env.payload),
        });
        drop(pending);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// The tell channel to `target`, made on first use.
    pub(crate) fn channel(&self, target: &WireStr) -> Arc<TellChannel> {
        if let Some(c) = lock(&self.channels).get(target) {
            return Arc::clone(c);
        }
        let mut channels = lock(&self.channels);
        Arc::clone(channels.entry(target.clone()).or_insert_with(|| {
            let id = (1 << 63) | self.next_channel.fetch_add(1, Ordering::Relaxed);
            let ch = Arc::new(TellChannel {
                id,
                credits: Semaphore::new(TELL_WINDOW),
                refused: Mutex::new(None),
                has_refusal: AtomicBool::new(false),
            });
            if !self.is_alive() {
                ch.credits.close();
            }
            lock(&self.channels_by_id).insert(id, Arc::clone(&ch));
            ch
        }))
    }

    /// The binding of plain tells of `name` at `version` to `target`, made
    /// on first use; `None` once every binding is taken (those tells then
    /// carry their whole header).
    pub(crate) fn binding(
        &self,
        target: &WireStr,
        name: &'static str,
        version: u32,
    ) -> Option<u64> {
        let mut bindings = lock(&self.bindings);
        let next = bindings.len() as u64;
        match bindings.entry((target.clone(), name, version)) {
            std::collections::hash_map::Entry::Occupied(at) => Some(*at.get()),
            std::collections::hash_map::Entry::Vacant(at) => {
                (next <= MAX_BINDING).then(|| *at.insert(next))
            }
        }
    }

    /// A tell or ask frame: header, then `msg` encoded straight after it.
    pub(crate) fn encode_request<M: WireMessage>(
        &self,
        kind: Kind,
        correlation: u64,
        target: &WireStr,
        msg: &M,
        budget: Option<Duration>,
        trace: Option<TraceParent>,
    ) -> Result<Bytes, WireError> {
        let mut env = Envelope::for_message::<M>(kind, correlation, Target::Name(target.clone()));
        env.deadline = budget;
        env.traceparent = trace;
        build_frame(|buf| {
            env.encode_header(buf);
            self.codec().encode(msg, buf)?;
            Ok(())
        })
    }

    /// Send a cancel for our call `correlation` without waiting.
    pub(crate) fn send_cancel(&self, correlation: u64) {
        if self.is_alive() {
            self.send_soon(encode(&Envelope::new(Kind::Cancel, correlation)));
        }
    }

    /// Send a control frame without waiting: now if the link has room,
    /// else from a task.
    pub(crate) fn send_soon(&self, frame: Bytes) {
        let _ = self.try_send_soon(frame);
    }

    /// As [`send_soon`](Self::send_soon), saying whether the link refused
    /// the frame outright (`Closed`, `TooLarge`); a full link is no error.
    fn try_send_soon(&self, frame: Bytes) -> Result<(), LinkError> {
        match self.tx.try_send(frame.clone()) {
            Err(LinkError::Full { .. }) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let tx = Arc::clone(&self.tx);
                    rt.spawn(async move {
                        let _ = tx.send(frame).await;
                    });
                }
                Ok(())
            }
            sent => sent,
        }
    }

    /// Receive call `corr`'s stream in direction `from_callee` through `feed`.
    pub(crate) fn open_feed(&self, corr: u64, from_callee: bool, feed: Feed) {
        if !self.is_alive() {
            feed.fail(AskError::PeerUnavailable {
                peer: Arc::clone(&self.peer),
            });
            return;
        }
        lock(&self.feeds).insert((corr, from_callee), feed);
    }

    /// The credit of the stream we send for call `corr` in direction
    /// `from_callee`, starting at a full window.
    pub(crate) fn open_credits(&self, corr: u64, from_callee: bool) -> Arc<Semaphore> {
        let credits = Arc::new(Semaphore::new(STREAM_WINDOW));
        if self.is_alive() {
            lock(&self.credits).insert((corr, from_callee), Arc::clone(&credits));
        } else {
            credits.close();
        }
        credits
    }

    /// Remember the task sending the input of our duplex call `corr`.
    pub(crate) fn track_upload(&self, corr: u64, task: tokio::task::AbortHandle) {
        if self.is_alive() {
            lock(&self.uploads).insert(corr, task);
        } else {
            task.abort();
        }
    }

    /// Stop sending the input of our call `corr` (the call is over, or the
    /// callee stopped reading it).
    fn stop_upload(&self, corr: u64) {
        if let Some(task) = lock(&self.uploads).remove(&corr) {
            task.abort();
        }
        if let Some(c) = lock(&self.credits).remove(&(corr, false)) {
            c.close();
        }
    }

    /// A stream we receive is no longer read (dropped, or undecodable):
    /// forget it. For our call's reply stream the whole call is over.
    pub(crate) fn forget_stream(&self, corr: u64, from_callee: bool) {
        lock(&self.feeds).remove(&(corr, from_callee));
        if from_callee {
            self.stop_upload(corr);
        }
    }

    /// The peer ended a stream we receive (`error`: how, if not cleanly).
    fn end_feed(&self, corr: u64, from_callee: bool, error: Option<AskError>) {
        if let Some(feed) = lock(&self.feeds).remove(&(corr, from_callee))
            && let Some(e) = error
        {
            feed.fail(e);
        }
        if from_callee {
            self.stop_upload(corr);
        }
    }

    /// A call we served is over: forget its entries.
    fn end_served(&self, corr: u64) {
        lock(&self.inbound).remove(&corr);
        if let Some(c) = lock(&self.credits).remove(&(corr, true)) {
            c.close();
        }
        lock(&self.feeds).remove(&(corr, false));
    }

    /// The reader loop: runs until the link closes, then fails what is
    /// pending with `PeerUnavailable`.
    ///
    /// Inbound asks need no task per request: the ask is put in the local
    /// mailbox while the frame is handled, and a local actor sends the
    /// reply frame from its own task as its handler returns
    /// ([`Recipient::ask_then`](plexus_runtime::Recipient::ask_then));
    /// streams, and asks to other kinds of recipient, are futures this
    /// loop polls, which send their answers. Credit for tells the
    /// reader delivered itself is granted when the link has nothing more
    /// to read (or half a window is owed).
    pub(crate) async fn run(
        self: Arc<Self>,
        mut rx: Box<dyn FrameReceiver>,
        remote: Weak<RemoteInner>,
    ) {
        let span = tracing::debug_span!("rpc.session", peer = %self.peer);
        let _ = span;
        let mut serving: FuturesUnordered<Serving> = FuturesUnordered::new();
        let mut state = ReaderState::default();
        state.channels.max = remote
            .upgrade()
            .map_or(usize::MAX, |r| r.config.max_tell_channels);
        // This task's waker, to start the asks of a burst as they arrive.
        let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let mut burst = 0;
        let mut bindings = Bindings::default();
        loop {
            let ready = if burst < BURST { rx.try_recv() } else { None };
            let next = if let Some(frame) = ready {
                burst += 1;
                Ok(frame)
            } else {
                burst = 0;
                let mut recv = rx.recv();
                poll_fn(|cx| {
                    while let Poll::Ready(Some(_)) = serving.poll_next_unpin(cx) {}
                    let r = recv.as_mut().poll(cx);
                    if r.is_pending() {
                        self.grant_owed(&mut state);
                    }
                    r
                })
                .await
            };
            let frame = match next {
                Ok(f) => f,
                Err(e) => {
                    tracing::info!(peer = %self.peer, error = %e, "link closed");
                    break;
                }
            };
            let Some(remote) = remote.upgrade() else {
                break;
            };
            // Tells, the bulk of traffic, come bound to a header sent once
            // (`BoundTell`) and are read in place.
            let decoded = match BoundTell::decode(&frame) {
                Ok(Some(BoundTell::Lean { binding, payload })) => {
                    bindings.get_mut(binding).map(|bound| {
                        self.on_bound_tell(bound, payload, &remote, &mut state);
                        None
                    })
                }
                Ok(Some(BoundTell::Bind { binding, tell })) => {
                    // Past the channel limit the binding still stands (its
                    // lean tells are refused as its bind frame is).
                    let at = state
                        .channels
                        .position(tell.correlation)
                        .unwrap_or(usize::MAX);
                    match bindings.bind(binding, &tell, at) {
                        Some(bound) => self.on_bound_tell(bound, tell.payload, &remote, &mut state),
                        None => self.on_tell(&TellRef::from(&tell), &remote, &mut state),
                    }
                    Ok(None)
                }
                Err(e) => Err(e),
                Ok(None) => self.on_frame(frame, &remote, &mut state),
            };
            let serve = match decoded {
                Ok(serve) => serve,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "undecodable frame dropped");
                    continue;
                }
            };
            if let Some(s) = serve {
                serving.push(s);
                // Put the ask in the mailbox now, not after the burst.
                let mut cx = std::task::Context::from_waker(&waker);
                while let Poll::Ready(Some(_)) = serving.poll_next_unpin(&mut cx) {}
            }
        }
        self.shutdown();
        if let Some(remote) = remote.upgrade() {
            remote.forget(&self);
        }
    }

    /// A frame holding an envelope: tells (with a deadline or trace, or
    /// beyond the bindings) and asks read in place, answers to our calls
    /// left in their slots in place, the rest as owned envelopes.
    fn on_frame(
        self: &Arc<Self>,
        frame: Bytes,
        remote: &Arc<RemoteInner>,
        state: &mut ReaderState,
    ) -> Result<Option<Serving>, EnvelopeError> {
        match EnvelopeRef::peek_kind(&frame) {
            Some(Kind::Tell) => EnvelopeRef::decode(&frame).map(|env| {
                self.on_tell(&TellRef::from(&env), remote, state);
                None
            }),
            Some(Kind::Ask) => {
                EnvelopeRef::decode(&frame).map(|env| self.on_ask(&env, remote, state))
            }
            Some(Kind::Reply | Kind::Error) => match EnvelopeRef::decode(&frame) {
                Ok(env) if self.on_answer(&env, &frame) => Ok(None),
                Ok(_) => Envelope::decode(frame).map(|env| {
                    self.on_envelope(env);
                    None
                }),
                Err(e) => Err(e),
            },
            _ => Envelope::decode(frame).map(|env| {
                self.on_envelope(env);
                None
            }),
        }
    }

    /// Every frame but tells and asks (which are read in place).
    fn on_envelope(self: &Arc<Self>, env: Envelope) {
        tracing::trace!(peer = %self.peer, kind = ?env.kind, correlation = env.correlation, "frame");
        let corr = env.correlation;
        match env.kind {
            Kind::Error if env.from_callee && corr >> 63 == 1 => {
                // The peer refused a tell of one of our channels.
                let ch = lock(&self.channels_by_id).get(&corr).cloned();
                if let Some(ch) = ch {
                    let error = stream_error(&env, &self.peer);
                    tracing::warn!(peer = %self.peer, %error, "remote tell refused");
                    ch.refuse(error);
                }
            }
            Kind::Reply | Kind::Error if env.from_callee => {
                // Not an answer a call waits for (see `on_answer`).
                if env.kind == Kind::Error {
                    // After the stream opened: it failed.
                    self.end_feed(corr, true, Some(stream_error(&env, &self.peer)));
                }
            }
            Kind::Error => {
                // A caller failed the input stream of a call we serve.
                self.end_feed(corr, false, Some(stream_error(&env, &self.peer)));
            }
            Kind::StreamItem => {
                let key = (corr, env.from_callee);
                let within_credit = lock(&self.feeds).get(&key).map(|f| f.item(env.payload));
                if within_credit == Some(false) {
                    tracing::warn!(peer = %self.peer, correlation = corr, "peer exceeded its stream credit; stream failed");
                    self.end_feed(corr, env.from_callee, None);
                    if env.from_callee {
                        self.send_cancel(corr);
                    } else {
                        self.send_soon(encode(&Envelope::new(Kind::Cancel, corr).from_callee()));
                    }
                }
            }
            Kind::StreamEnd => self.end_feed(corr, env.from_callee, None),
            Kind::Credit => {
                let Some(n) = env.credits() else {
                    tracing::debug!(peer = %self.peer, "malformed credit ignored");
                    return;
                };
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if corr >> 63 == 1 {
                    let ch = lock(&self.channels_by_id).get(&corr).cloned();
                    if let Some(ch) = ch {
                        let room = TELL_WINDOW.saturating_sub(ch.credits.available_permits());
                        ch.credits.add_permits(n.min(room));
                    }
                } else if let Some(c) = lock(&self.credits).get(&(corr, !env.from_callee)) {
                    let room = STREAM_WINDOW.saturating_sub(c.available_permits());
                    c.add_permits(n.min(room));
                }
            }
            // Read in place by `run`, never decoded owned.
            Kind::Tell | Kind::Ask => {}
            Kind::Cancel if env.from_callee => {
                // The callee of our call stopped reading its input.
                self.stop_upload(corr);
            }
            Kind::Cancel => {
                if let Some(call) = lock(&self.inbound).remove(&corr) {
                    tracing::debug!(peer = %self.peer, correlation = corr, "cancelled by caller");
                    call.cancel.cancel();
                }
                self.end_feed(
                    corr,
                    false,
                    Some(AskError::StreamAborted {
                        reason: "the caller cancelled the call".into(),
                    }),
                );
                self.end_served(corr);
            }
            _ => {
                tracing::debug!(peer = %self.peer, kind = ?env.kind, "unexpected frame kind ignored")
            }
        }
    }

    fn scope(
        &self,
        correlation: u64,
        deadline: Option<Duration>,
        trace: Option<TraceParent>,
        remote: &RemoteInner,
    ) -> CallScope {
        let mut scope = CallScope::new()
            .correlation(correlation)
            .trace(trace.map(to_context))
            .caller(Arc::clone(&self.peer));
        if let Some(budget) = deadline {
            scope = scope.deadline(plexus_runtime::protocols::rpc::deadline_from_budget(
                budget,
                remote.node.now(),
            ));
        }
        scope
    }

    /// A tell goes straight into the mailbox when it has room and nothing
    /// of its channel waits in the forwarder; otherwise it queues behind
    /// them in the channel's forwarder, keeping the channel's order. A tell
    /// the node cannot take is reported back to the sender (its next tell
    /// to that target returns the refusal).
    fn on_tell(&self, env: &TellRef<'_>, remote: &Arc<RemoteInner>, state: &mut ReaderState) {
        let channel = env.channel;
        let Some(ch) = state.channels.get(channel) else {
            self.refuse_channel(channel, state.channels.max);
            return;
        };
        let direct = ch.queued.load(Ordering::Acquire) == 0;
        let job = self.dispatch_tell(env, remote, ch, direct);
        self.after_tell(channel, ch, &mut state.owing, job);
    }

    /// [`on_tell`](Self::on_tell) for a bound tell: its channel, target
    /// and scope are the binding's, found without a lookup.
    fn on_bound_tell(
        &self,
        bound: &mut Binding,
        payload: &[u8],
        remote: &RemoteInner,
        state: &mut ReaderState,
    ) {
        let Some((_, ch)) = state.channels.list.get_mut(bound.at) else {
            self.refuse_channel(bound.channel, state.channels.max);
            return;
        };
        let direct = ch.queued.load(Ordering::Acquire) == 0;
        let job = (|| {
            let to = match &mut bound.resolved {
                Some(to) => to,
                None => bound.resolved.insert(
                    remote
                        .registry
                        .lookup(&bound.name, bound.version)?
                        .tell_target(&remote.node, &bound.target)?,
                ),
            };
            let scope = plain_scope(&mut ch.scope, &self.caller_scope, bound.channel);
            let codec = self.agreed.decode_with;
            if direct {
                to.try_tell(&remote.node, codec, payload, scope)
            } else {
                to.tell(codec, payload, scope).map(Some)
            }
        })();
        self.after_tell(bound.channel, ch, &mut state.owing, job);
    }

    /// A tell of `channel` was delivered, refused, or left to `job`: grant
    /// the sender's credit back (now or soon), report a refusal, or queue
    /// the job in the channel's forwarder.
    fn after_tell(
        &self,
        channel: u64,
        ch: &mut InChannel,
        owing: &mut Vec<u64>,
        job: Result<Option<TellJob>, WireError>,
    ) {
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "remote tell refused");
                self.send_error(channel, &e);
                None
            }
        };
        let Some(job) = job else {
            // Delivered (or refused): the sender's credit comes back.
            ch.owed += 1;
            if ch.owed == 1 {
                owing.push(channel);
            }
            if ch.owed * 2 >= TELL_WINDOW as u64 {
                let n = std::mem::take(&mut ch.owed);
                self.send_soon(encode(&Envelope::credit(channel, n).from_callee()));
            }
            return;
        };
        let tx = ch
            .forwarder
            .get_or_insert_with(|| self.spawn_forwarder(channel, Arc::clone(&ch.queued)));
        ch.queued.fetch_add(1, Ordering::AcqRel);
        if tx.try_send(job).is_err() {
            ch.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(peer = %self.peer, channel, "peer exceeded its tell credit; tell dropped");
        }
    }

    /// Refuse a tell of `channel`, a channel past the limit of `max`: the
    /// sender hears why, and gets the tell's credit back.
    fn refuse_channel(&self, channel: u64, max: usize) {
        tracing::debug!(peer = %self.peer, channel, max, "tell channel past the limit refused");
        self.send_error(channel, &WireError::TooManyChannels { max: max as u64 });
        self.send_soon(encode(&Envelope::credit(channel, 1).from_callee()));
    }

    /// Grant the credit owed for tells the reader delivered itself.
    fn grant_owed(&self, state: &mut ReaderState) {
        for channel in state.owing.drain(..) {
            let Some(ch) = state.channels.get(channel) else {
                continue;
            };
            if ch.owed > 0 {
                let n = std::mem::take(&mut ch.owed);
                self.send_soon(encode(&Envelope::credit(channel, n).from_callee()));
            }
        }
    }

    /// With `direct`, try the mailbox now (`None`: delivered); otherwise,
    /// or if the mailbox is full, the job that delivers the tell.
    fn dispatch_tell(
        &self,
        env: &TellRef<'_>,
        remote: &RemoteInner,
        ch: &mut InChannel,
        direct: bool,
    ) -> Result<Option<TellJob>, WireError> {
        let target = target_name(env.target)?;
        let Some(message) = env.message else {
            return Err(WireError::BadPayload {
                reason: "envelope names no message".to_owned(),
            });
        };
        let to = ch.targets.get_or_resolve(message, target, || {
            remote
                .registry
                .lookup(message.0, message.1)?
                .tell_target(&remote.node, target)
        })?;
        let timed;
        let scope = if env.deadline.is_none() && env.traceparent.is_none() {
            plain_scope(&mut ch.scope, &self.caller_scope, env.channel)
        } else {
            timed = self
                .scope(env.channel, env.deadline, env.traceparent, remote)
                .share();
            &timed
        };
        let codec = self.agreed.decode_with;
        if direct {
            to.try_tell(&remote.node, codec, env.payload, scope)
        } else {
            to.tell(codec, env.payload, scope).map(Some)
        }
    }

    /// The task that delivers one channel's tells in order, waiting for
    /// mailbox room, and grants credit back as the mailbox accepts them.
    fn spawn_forwarder(&self, channel: u64, queued: Arc<AtomicUsize>) -> flume::Sender<TellJob> {
        let (tx, rx) = flume::bounded::<TellJob>(TELL_WINDOW);
        let link = Arc::clone(&self.tx);
        tokio::spawn(async move {
            let mut window = RecvWindow::new(TELL_WINDOW as u64);
            while let Ok(job) = rx.recv_async().await {
                job.await;
                queued.fetch_sub(1, Ordering::AcqRel);
                if let Some(n) = window.accepted(rx.is_empty())
                    && link
                        .send(encode(&Envelope::credit(channel, n).from_callee()))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        tx
    }

    fn on_ask(
        self: &Arc<Self>,
        env: &EnvelopeRef<'_>,
        remote: &Arc<RemoteInner>,
        state: &mut ReaderState,
    ) -> Option<Serving> {
        let corr = env.correlation;
        match env.deadline {
            Some(b) if b.is_zero() => {
                self.send_error(corr, &WireError::DeadlineExceeded);
                return None;
            }
            _ => {}
        }
        let started = (|| {
            let target = target_name(env.target)?;
            let Some(message) = env.message else {
                return Err(WireError::BadPayload {
                    reason: "envelope names no message".to_owned(),
                });
            };
            let to = state.ask_target(remote, message, target)?;
            let cancel = CancelToken::new();
            let scope = self
                .scope(corr, env.deadline, env.traceparent, remote)
                .cancel(cancel.clone())
                .share();
            // Fields are evaluated only when the span is enabled.
            let span = tracing::debug_span!(
                "rpc.serve",
                peer = %self.peer,
                correlation = corr,
                trace_id = env.traceparent.map(|t| hex(&t.trace_id())).unwrap_or_default(),
            );
            // Registered first: the actor may answer before `ask` returns.
            {
                let mut inbound = lock(&self.inbound);
                if inbound.len() >= remote.config.max_inbound_calls {
                    // Bounded per peer: a peer cannot pile up served calls.
                    return Err(WireError::MailboxFull);
                }
                inbound.insert(
                    corr,
                    InboundCall {
                        cancel: cancel.clone(),
                    },
                );
            }
            match to.ask(env.payload, scope, self, corr, &span) {
                Ok(serve) => Ok((serve, cancel, span)),
                Err(e) => {
                    lock(&self.inbound).remove(&corr);
                    Err(e)
                }
            }
        })();
        match started {
            Ok((Serve::Replying, _, _)) => None,
            Ok((Serve::Polled(fut), cancel, span)) => Some(Serving {
                cancel,
                fut: tracing::Instrument::instrument(fut, span),
            }),
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "remote ask refused");
                self.send_error(corr, &e);
                None
            }
        }
    }

    /// Send `frame`: now if the link has room (no future), else waiting.
    pub(crate) async fn send(&self, frame: Bytes) -> Result<(), LinkError> {
        match self.tx.try_send(frame.clone()) {
            Err(LinkError::Full { .. }) => self.tx.send(frame).await,
            sent => sent,
        }
    }

    /// Send the answer to our peer's unary ask `corr` (its reply frame, or
    /// its error), unless the caller cancelled meanwhile. Called from
    /// wherever the answer was produced.
    pub(crate) fn answer(&self, corr: u64, frame: Result<Bytes, WireError>) {
        if lock(&self.inbound).remove(&corr).is_none() {
            return; // cancelled meanwhile
        }
        match frame {
            Ok(frame) => {
                if let Err(LinkError::TooLarge { len, max }) = self.try_send_soon(frame) {
                    self.send_too_large(corr, len, max, true);
                }
            }
            Err(e) => self.send_error(corr, &e),
        }
    }

    /// Tell the caller of `corr` that its answer (a reply, or a stream item
    /// when `from_callee`) was `len` bytes, more than the link's `max`, so
    /// it learns now rather than at its deadline.
    pub(crate) fn send_too_large(&self, corr: u64, len: usize, max: usize, from_callee: bool) {
        tracing::warn!(peer = %self.peer, correlation = corr, len, max, "answer too large for the link");
        let mut env = Envelope::error(corr, &super::inbound::too_large(len, max));
        env.from_callee = from_callee;
        self.send_soon(encode(&env));
    }

    /// Serve our peer's unary ask `corr`: send its reply frame, or its
    /// error, unless the caller cancelled meanwhile.
    pub(crate) async fn serve_unary(
        self: Arc<Self>,
        corr: u64,
        reply: impl Future<Output = Result<Bytes, WireError>>,
    ) {
        let result = reply.await;
        if lock(&self.inbound).remove(&corr).is_none() {
            return; // cancelled meanwhile
        }
        let frame = match result {
            Ok(frame) => frame,
            Err(e) => encode(&Envelope::error(corr, &e)),
        };
        if let Err(LinkError::TooLarge { len, max }) = self.send(frame).await {
            self.send_too_large(corr, len, max, true);
        }
    }

    /// Serve our peer's streaming ask `corr`: open the reply stream and
    /// send its encoded items under credit, or send the error.
    pub(crate) async fn serve_stream(
        self: Arc<Self>,
        corr: u64,
        items: impl Future<Output = Result<ReplyStream<Bytes>, WireError>>,
    ) {
        let items = match items.await {
            Ok(items) => items,
            Err(e) => {
                if lock(&self.inbound).remove(&corr).is_some() {
                    let _ = self.send(encode(&Envelope::error(corr, &e))).await;
                }
                return;
            }
        };
        if !lock(&self.inbound).contains_key(&corr) {
            return; // cancelled meanwhile
        }
        let credits = self.open_credits(corr, true);
        let open = encode(&Envelope::new(Kind::Reply, corr).from_callee());
        if self.send(open).await.is_ok() {
            stream::pump(&self, corr, true, items, &credits).await;
        }
        self.end_served(corr);
    }

    fn send_error(&self, corr: u64, e: &WireError) {
        self.send_soon(encode(&Envelope::error(corr, e)));
    }

    /// The link is gone: fail pending asks now, refuse tells, cancel what
    /// runs for the peer.
    pub(crate) fn shutdown(&self) {
        if !self.alive.swap(false, Ordering::AcqRel) {
            return;
        }
        self.tx.close();
        // Callers find their calls gone: `PeerUnavailable`.
        let waiters: Vec<_> = lock(&self.pending).drain().collect();
        for w in waiters {
            if let ReplySlot::Waiting(Some(w)) = w {
                w.wake();
            }
        }
        let mut channels: Vec<_> = lock(&self.channels).values().cloned().collect();
        channels.sort_unstable_by_key(|ch| ch.id);
        for ch in channels {
            ch.credits.close();
        }
        // Each table is drained in correlation order, not hash order, so
        // a seeded simulation wakes and cancels in the same order every run.
        for (_, call) in sorted(lock(&self.inbound).drain()) {
            call.cancel.cancel();
        }
        let gone = AskError::PeerUnavailable {
            peer: Arc::clone(&self.peer),
        };
        for (_, feed) in sorted(lock(&self.feeds).drain()) {
            feed.fail(gone.clone());
        }
        for (_, c) in sorted(lock(&self.credits).drain()) {
            c.close();
        }
        for (_, task) in sorted(lock(&self.uploads).drain()) {
            task.abort();
        }
        self.closed.notify_waiters();
    }
}

/// A drained table's entries, ordered by key.
fn sorted<K: Ord, V>(entries: impl Iterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut v: Vec<_> = entries.collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

fn target_name(target: Option<TargetRef<'_>>) -> Result<&str, WireError> {
    match target {
        Some(TargetRef::Name(n)) => Ok(n),
        Some(TargetRef::Id(id)) => Err(WireError::UnknownTarget {
            target: format!("#{id}"),
        }),
        None => Err(WireError::UnknownTarget {
            target: String::new(),
        }),
    }
}

pub(crate) fn encode(env: &Envelope) -> Bytes {
    let built: Result<Bytes, std::convert::Infallible> = build_frame(|buf| {
        env.encode(buf);
        Ok(())
    });
    match built {
        Ok(frame) => frame,
    }
}

/// Room a frame buffer must have left before a new one is started.
const FRAME_ROOM: usize = 4 * 1024;
/// Size of the per-thread buffers frames are built in.
const FRAME_ARENA: usize = 64 * 1024;

/// Build a frame with `f` in this thread's frame buffer and split it off
/// as `Bytes`: frames share 64 KiB allocations instead of each allocating
/// (and regrowing while the payload is appended).
pub(crate) fn build_frame<E>(f: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> Result<Bytes, E> {
    thread_local! {
        static ARENA: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
    }
    ARENA.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            // Re-entered from inside `f` (a codec that sends): build apart.
            let mut buf = BytesMut::new();
            f(&mut buf)?;
            return Ok(buf.freeze());
        };
        if buf.capacity() < FRAME_ROOM {
            *buf = BytesMut::with_capacity(FRAME_ARENA);
        }
        match f(&mut buf) {
            Ok(()) => Ok(buf.split().freeze()),
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    })
}

pub(crate) fn to_context(t: TraceParent) -> TraceContext {
    TraceContext {
        trace_id: u128::from_be_bytes(t.trace_id()),
        span_id: u64::from_be_bytes(t.parent_id()),
        sampled: t.sampled(),
    }
}

pub(crate) fn to_traceparent(t: TraceContext) -> Option<TraceParent> {
    TraceParent::new(
        t.trace_id.to_be_bytes(),
        t.span_id.to_be_bytes(),
        u8::from(t.sampled),
    )
    .ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_codecs::MessageId;

    fn tell(channel: u64, target: &str, payload: &'static [u8]) -> Envelope {
        Envelope::new(Kind::Tell, channel)
            .with_message(MessageId::new("t.Note", 2))
            .with_target(Target::Name(target.to_owned().into()))
            .with_payload(Bytes::from_static(payload))
    }

    #[test]
    fn a_binding_stands_for_the_header_of_the_tell_that_bound_it() {
        let mut bindings = Bindings::default();
        assert_eq!(
            bindings.get_mut(3).err(),
            Some(EnvelopeError::UnknownBinding { binding: 3 }),
            "nothing bound yet"
        );
        let first = encode(&tell(1 << 63 | 1, "svc", b"one"));
        let b = bindings
            .bind(3, &EnvelopeRef::decode(&first).unwrap(), 5)
            .unwrap();
        assert!(b.resolved.is_none());
        let b = bindings.get_mut(3).unwrap();
        assert_eq!((b.channel, b.at), (1 << 63 | 1, 5));
        assert_eq!((b.name.as_str(), b.version), ("t.Note", 2));
        assert_eq!(b.target, "svc");
        for unbound in [0, 2, 4, MAX_BINDING, MAX_BINDING + 1, u64::MAX] {
            assert_eq!(
                bindings.get_mut(unbound).err(),
                Some(EnvelopeError::UnknownBinding { binding: unbound })
            );
        }

        // Bound again: replaced.
        let other = encode(&tell(1 << 63 | 2, "svd", b"two"));
        bindings.bind(3, &EnvelopeRef::decode(&other).unwrap(), 6);
        let b = bindings.get_mut(3).unwrap();
        assert_eq!((b.channel, b.at), (1 << 63 | 2, 6));
        assert_eq!(b.target, "svd");

        // Out of range, or not a tell with a message and a target name:
        // never bound (the decoder refuses both before).
        let other = EnvelopeRef::decode(&other).unwrap();
        assert!(bindings.bind(MAX_BINDING + 1, &other, 0).is_none());
        assert!(bindings.list.len() <= MAX_BINDING as usize + 1);
        let bare = encode(&Envelope::new(Kind::Tell, 1 << 63 | 1));
        assert!(
            bindings
                .bind(4, &EnvelopeRef::decode(&bare).unwrap(), 0)
                .is_none()
        );
        assert!(bindings.get_mut(4).is_err());
    }
}
