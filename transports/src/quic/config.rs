//! [`QuicConfig`] and the rustls configs built from it (ring provider,
//! TLS 1.3, mutual authentication against one CA).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::QuicError;

/// The ALPN protocol id of plexus links.
pub const ALPN: &[u8] = b"plexus/1";

/// How a node takes part in QUIC links.
#[derive(Debug)]
#[non_exhaustive]
pub struct QuicConfig {
    /// This node's certificate chain (leaf first); its DNS name is the
    /// node's identity.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf certificate.
    pub key: PrivateKeyDer<'static>,
    /// The CA that signs every node certificate; peers signed by anything
    /// else are refused at the TLS handshake.
    pub ca: Vec<CertificateDer<'static>>,
    /// Where to listen. Default `127.0.0.1:0` (an ephemeral port).
    pub listen: SocketAddr,
    /// Keepalive on idle links. Default 2 s.
    pub keepalive: Duration,
    /// A link with no traffic (keepalives included) this long is dead.
    /// Default 10 s.
    pub idle_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt (with jitter).
    /// Default 50 ms.
    pub backoff_min: Duration,
    /// Longest reconnect delay. Default 5 s.
    pub backoff_max: Duration,
    /// Largest frame accepted on a link. Default 1 MiB.
    pub max_frame: usize,
}

impl QuicConfig {
    /// A config from PEM text: the node's certificate (chain), its key, and
    /// the CA certificate.
    ///
    /// # Errors
    ///
    /// [`QuicError::Pem`] if any of them does not parse.
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<Self, QuicError> {
        let pem = |what: &'static str| {
            move |e: rustls::pki_types::pem::Error| QuicError::Pem {
                what,
                reason: e.to_string(),
            }
        };
        let cert_chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem("key"))?;
        let ca = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("CA certificate"))?;
        Ok(Self {
            cert_chain,
            key,
            ca,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keepalive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            max_frame: plexus_codecs::FrameConfig::DEFAULT_MAX_FRAME,
        })
    }

    /// A config from the files `plexus certs --dir DIR --nodes NAME` writes:
    /// `DIR/NAME.pem`, `DIR/NAME.key`, `DIR/ca.pem`.
    ///
    /// # Errors
    ///
    /// [`QuicError::Io`] or [`QuicError::Pem`].
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, QuicError> {
        let read = |file: PathBuf| {
            std::fs::read_to_string(&file).map_err(|source| QuicError::Io { path: file, source })
        };
        Self::from_pem(
            &read(dir.join(format!("{name}.pem")))?,
            &read(dir.join(format!("{name}.key")))?,
            &read(dir.join("ca.pem"))?,
        )
    }

    /// Sets the listen address.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, QuicError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone()).map_err(QuicError::tls)?;
        }
        Ok(Arc::new(roots))
    }

    fn transport(&self) -> Result<Arc<quinn::TransportConfig>, QuicError> {
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(self.keepalive));
        t.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(self.idle_timeout).map_err(QuicError::tls)?,
        ));
        Ok(Arc::new(t))
    }

    /// The quinn server config (mutual TLS, ALPN, keepalive) this config
    /// makes: for custom endpoints and benchmark baselines.
    ///
    /// # Errors
    ///
    /// [`QuicError::Config`].
    pub fn server_config(&self) -> Result<quinn::ServerConfig, QuicError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, Arc::clone(&provider))
                .build()
                .map_err(QuicError::tls)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(QuicError::tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(QuicError::tls)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(QuicError::tls)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(self.transport()?);
        Ok(config)
    }

    /// The quinn client config this config makes.
    ///
    /// # Errors
    ///
    /// [`QuicError::Config`].
    pub fn client_config(&self) -> Result<quinn::ClientConfig, QuicError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(QuicError::tls)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(QuicError::tls)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(QuicError::tls)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.transport()?);
        Ok(config)
    }
}

/// The ring provider, always explicit (never the process default).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
