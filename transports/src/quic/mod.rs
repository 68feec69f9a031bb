//! QUIC links between nodes: quinn + rustls (ring), mutual TLS against one
//! CA, one connection per pair of nodes, reconnection with jittered
//! exponential backoff, keepalive.
//!
//! # Stream layout
//!
//! Each connection carries one bidirectional stream of length-prefixed
//! frames (every actor's traffic multiplexed by correlation id); senders
//! write from their own task and the frames of a burst are combined into one
//! chunk for quinn. Measured against a stream per request
//! (`benches/remote.rs`, `quinn_floor`), framing saves a stream open and
//! a FIN per request and lets many small frames share one packet; per-actor
//! fairness comes from the rpc protocol's credit windows, not from streams.
//!
//! # Identity
//!
//! The dialer names the peer it expects and TLS checks the peer's
//! certificate against that name. The dialer then sends its own name as the
//! first frame; the acceptor checks that the client certificate (already
//! verified against the CA) is valid for that name. That name is the peer's
//! identity: handlers see it as `Context::caller`.
//!
//! # Examples
//!
//! ```no_run
//! # use plexus_runtime::Node;
//! # use plexus_transports::{quic::{QuicConfig, QuicEndpoint}, remote::Remote};
//! # async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder().name("a").build();
//! let remote = Remote::builder(&node).build();
//! let quic = QuicEndpoint::start(&remote, QuicConfig::from_dir(dir, "a")?)?;
//! quic.connect("b", "127.0.0.1:4433".parse()?); // reconnects on its own
//! remote.connected("b").await;
//! # Ok(()) }
//! ```

mod config;
mod link;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use rustls::pki_types::{CertificateDer, ServerName};

use crate::remote::{AttachError, Connection, Remote};

pub use config::{ALPN, QuicConfig};

/// Why setting up or making a QUIC link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// A certificate or key did not parse.
    #[error("bad {what} PEM: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parser's explanation.
        reason: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS or QUIC configuration was refused.
    #[error("tls/quic configuration: {0}")]
    Config(String),
    /// Binding the UDP socket failed.
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
    /// Connecting failed (unreachable, refused, or the peer's certificate
    /// was not accepted).
    #[error("connection to {peer} failed: {reason}")]
    Connect {
        /// The peer.
        peer: String,
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed with a TLS alert: a certificate was
    /// refused, by this node or by the peer (not signed by the trusted CA,
    /// expired, or not valid for the peer's name). Retrying will not help;
    /// check both nodes' certificates and CA.
    #[error("TLS handshake with {peer} failed: {reason}")]
    Tls {
        /// The peer (a name when dialing, an address when accepting).
        peer: String,
        /// What the TLS layer said.
        reason: String,
    },
    /// The peer's identity did not check out.
    #[error("peer identity refused: {0}")]
    Identity(String),
    /// The rpc handshake failed.
    #[error(transparent)]
    Attach(#[from] crate::remote::AttachError),
}

impl QuicError {
    fn tls(e: impl std::fmt::Display) -> Self {
        Self::Config(e.to_string())
    }

    /// A failed connection to `peer`: [`Tls`](Self::Tls) if the TLS
    /// handshake ended it with an alert, else [`Connect`](Self::Connect).
    fn connection(peer: &str, e: &quinn::ConnectionError) -> Self {
        let code = match e {
            quinn::ConnectionError::TransportError(t) => Some(t.code),
            quinn::ConnectionError::ConnectionClosed(c) => Some(c.error_code),
            _ => None,
        };
        // QUIC carries a TLS alert as a transport error 0x100 + alert.
        let peer = peer.to_owned();
        let reason = e.to_string();
        match code {
            Some(code) if (0x100..0x200).contains(&u64::from(code)) => Self::Tls { peer, reason },
            _ => Self::Connect { peer, reason },
        }
    }
}

/// A node's QUIC endpoint: listens, accepts authenticated peers, dials
/// peers from a static list, and attaches every link to a [`Remote`].
#[derive(Debug, Clone)]
pub struct QuicEndpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: quinn::Endpoint,
    remote: Remote,
    name: Arc<str>,
    config: QuicConfig,
    stop: tokio::sync::watch::Sender<bool>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// What an endpoint's accept loop has done so far, from
/// [`QuicEndpoint::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Incoming peers that passed mutual TLS and the identity check and
    /// were attached.
    pub accepted: u64,
    /// Incoming connections refused: a certificate the CA did not sign, a
    /// claimed name the certificate does not cover, a duplicate link, or
    /// a handshake that failed. Each is also logged at `warn`.
    pub refused: u64,
}

impl QuicEndpoint {
    /// Listen on `config.listen` and serve accepted peers through `remote`.
    /// The endpoint goes by its node's name ([`NodeBuilder::name`](plexus_runtime::NodeBuilder::name)),
    /// which must be the name its certificate was issued for: peers check
    /// it against the certificate, and the rpc handshake against the node.
    ///
    /// # Errors
    ///
    /// [`QuicError::Config`] or [`QuicError::Bind`].
    pub fn start(remote: &Remote, config: QuicConfig) -> Result<Self, QuicError> {
        let name = remote.node().name();
        let mut endpoint = quinn::Endpoint::server(config.server_config()?, config.listen)
            .map_err(QuicError::Bind)?;
        endpoint.set_default_client_config(config.client_config()?);
        let (stop, _) = tokio::sync::watch::channel(false);
        let this = Self {
            inner: Arc::new(Inner {
                endpoint,
                remote: remote.clone(),
                name: name.into(),
                config,
                stop,
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        };
        tokio::spawn(accept_loop(Arc::clone(&this.inner)));
        Ok(this)
    }

    /// The address the endpoint listens on.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Keep a link to node `peer` at `addr`: connect now, and reconnect with
    /// jittered exponential backoff whenever it drops, until
    /// [`close`](Self::close). List each pair of nodes on one side only.
    pub fn connect(&self, peer: &str, addr: SocketAddr) {
        tokio::spawn(dial_loop(Arc::clone(&self.inner), peer.into(), addr));
    }

    /// Connect to `peer` once.
    ///
    /// # Errors
    ///
    /// [`QuicError::Connect`] (including a refused certificate),
    /// [`QuicError::Attach`].
    pub async fn connect_once(
        &self,
        peer: &str,
        addr: SocketAddr,
    ) -> Result<Connection, QuicError> {
        dial(&self.inner, peer, addr).await
    }

    /// Counts of accepted and refused incoming peers.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            accepted: self.inner.accepted.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting and dialing, and close every connection.
    pub fn close(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.endpoint.close(0u32.into(), b"shutdown");
    }
}

async fn dial(inner: &Inner, peer: &str, addr: SocketAddr) -> Result<Connection, QuicError> {
    let err = |reason: String| QuicError::Connect {
        peer: peer.to_owned(),
        reason,
    };
    let conn = inner
        .endpoint
        .connect(addr, peer)
        .map_err(|e| err(e.to_string()))?
        .await
        .map_err(|e| QuicError::connection(peer, &e))?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| QuicError::connection(peer, &e))?;
    let mut link = link::link(peer.into(), conn, send, recv, inner.config.max_frame);
    link.opened_here = true;
    // Our name first: the acceptor checks it against our certificate.
    link.tx
        .send(Bytes::copy_from_slice(inner.name.as_bytes()))
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(inner.remote.attach(link).await?)
}

async fn dial_loop(inner: Arc<Inner>, peer: Arc<str>, addr: SocketAddr) {
    let mut stop = inner.stop.subscribe();
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        match dial(&inner, &peer, addr).await {
            Ok(conn) => {
                attempt = 0;
                tokio::select! {
                    () = conn.closed() => tracing::info!(peer = %peer, "link lost; reconnecting"),
                    _ = stop.changed() => return,
                }
            }
            Err(QuicError::Attach(AttachError::Duplicate { .. })) => {
                // The peer dialed us too and its link is the one both keep:
                // use it, and dial again only once it is gone.
                attempt = 0;
                if let Some(conn) = inner.remote.connection(&peer) {
                    tokio::select! {
                        () = conn.closed() => tracing::info!(peer = %peer, "link lost; reconnecting"),
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer, %addr, error = %e, attempt, "connect failed");
                attempt = attempt.saturating_add(1);
            }
        }
        let delay = backoff(&inner, attempt);
        let clock = inner.remote.node().clock();
        tokio::select! {
            () = clock.sleep_until(plexus_runtime::clock::after(clock.now(), delay)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `backoff_min · 2^attempt`, capped at `backoff_max`, times a random
/// factor in [0.5, 1) from the node's seeded RNG.
fn backoff(inner: &Inner, attempt: u32) -> Duration {
    let c = &inner.config;
    let base = c
        .backoff_min
        .saturating_mul(1u32 << attempt.min(16))
        .min(c.backoff_max);
    let r = (inner.remote.node().random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.5 + r / 2.0)
}

async fn accept_loop(inner: Arc<Inner>) {
    while let Some(incoming) = inner.endpoint.accept().await {
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let addr = incoming.remote_address();
            match accept(&inner, incoming).await {
                Ok(()) => {
                    inner.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    inner.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%addr, error = %e, "incoming peer refused");
                }
            }
        });
    }
}

async fn accept(inner: &Inner, incoming: quinn::Incoming) -> Result<(), QuicError> {
    let addr = incoming.remote_address().to_string();
    let err = |reason: String| QuicError::Connect {
        peer: addr.clone(),
        reason,
    };
    // The TLS handshake, the stream and the claimed name must all come
    // within the handshake timeout: keepalives would otherwise let a
    // connected peer hold this task for ever.
    let clock = inner.remote.node().clock();
    let limit = inner.remote.config().handshake_timeout;
    let opening = async {
        // A client whose certificate the CA did not sign fails here, in
        // the TLS handshake: no stream is ever opened, no actor reached.
        let conn = incoming
            .await
            .map_err(|e| QuicError::connection(&addr, &e))?;
        let certs = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or_else(|| QuicError::Identity("no client certificate".into()))?;
        let (send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| QuicError::connection(&addr, &e))?;
        let mut link = link::link("?".into(), conn.clone(), send, recv, inner.config.max_frame);
        let claimed = link.rx.recv().await.map_err(|e| err(e.to_string()))?;
        Ok::<_, QuicError>((conn, certs, link, claimed))
    };
    let (conn, certs, mut link, claimed) = tokio::select! {
        r = opening => r?,
        () = clock.sleep_until(plexus_runtime::clock::after(clock.now(), limit)) => {
            return Err(err(format!("no stream and name within {limit:?}")));
        }
    };
    let name = std::str::from_utf8(&claimed)
        .map_err(|_| QuicError::Identity("name is not UTF-8".into()))?
        .to_owned();
    let Some(leaf) = certs.first() else {
        return Err(QuicError::Identity("empty certificate chain".into()));
    };
    verify_name(leaf, &name).inspect_err(|_| {
        conn.close(1u32.into(), b"identity");
    })?;
    link.peer = name.into();
    inner.remote.attach(link).await?;
    Ok(())
}

/// Whether `cert` (already verified against the CA) is valid for `name`.
fn verify_name(cert: &CertificateDer<'_>, name: &str) -> Result<(), QuicError> {
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|e| QuicError::Identity(format!("{name:?}: {e}")))?;
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| QuicError::Identity(format!("certificate: {e}")))?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|e| QuicError::Identity(format!("certificate is not valid for {name:?}: {e}")))
}
