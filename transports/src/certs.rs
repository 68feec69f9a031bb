//! A development certificate authority and node certificates, made with
//! rcgen (ring). For tests, examples and `plexus certs`; production nodes
//! get their certificates from a real CA.
//!
//! A node certificate names the node in its subject alternative name (a DNS
//! name): that name is the node's identity on QUIC links.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why making or writing certificates failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused (e.g. a name that is not a valid DNS name).
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A development CA: its certificate (to trust) and key (to sign node certs).
pub struct DevCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key, PEM. Keep it secret.
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A node's certificate and key, PEM.
#[derive(Clone)]
pub struct NodeCert {
    /// The node's name (the certificate's DNS subject alternative name).
    pub name: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// A fresh self-signed CA called `common_name`.
    ///
    /// # Errors
    ///
    /// [`CertError::Generate`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_transports::certs::DevCa;
    /// let ca = DevCa::generate("plexus dev CA")?;
    /// let node = ca.issue("orders-1")?;
    /// assert!(node.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok::<(), plexus_transports::certs::CertError>(())
    /// ```
    pub fn generate(common_name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate for node `name`, signed by this CA, usable both to
    /// accept and to make connections (mutual TLS).
    ///
    /// # Errors
    ///
    /// [`CertError::Generate`], e.g. for a name that is not a DNS name.
    pub fn issue(&self, name: &str) -> Result<NodeCert, CertError> {
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            name: name.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Write a dev CA (`ca.pem`, `ca.key`) and, per node, `NAME.pem` and
/// `NAME.key` into `dir` (created if missing). Returns the files written.
///
/// # Errors
///
/// [`CertError`].
pub fn write_dev_certs(dir: &Path, nodes: &[&str]) -> Result<Vec<PathBuf>, CertError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca = DevCa::generate("plexus development CA")?;
    let mut files = Vec::new();
    let mut put = |name: String, text: &str| -> Result<(), CertError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        files.push(path);
        Ok(())
    };
    put("ca.pem".into(), &ca.cert_pem)?;
    put("ca.key".into(), &ca.key_pem)?;
    for node in nodes {
        let cert = ca.issue(node)?;
        put(format!("{node}.pem"), &cert.cert_pem)?;
        put(format!("{node}.key"), &cert.key_pem)?;
    }
    Ok(files)
}
