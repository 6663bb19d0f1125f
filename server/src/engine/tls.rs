//! HTTPS for the server (feature `tls`): [`TlsConfig`], what a server
//! serves HTTPS with. The stream itself is `net::tls::TlsStream`.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::ServerConnection;

use crate::net::tls::{pem_certificates, provider, read_pem_file};

/// What a server serves HTTPS with: a certificate chain and its key, ALPN
/// `http/1.1`. Cheap to clone (shared). Set it as
/// [`crate::ServerConfig::tls`].
///
/// ```no_run
/// use phaseloop::{tls::TlsConfig, ServerConfig};
///
/// let cfg = ServerConfig {
///     tls: Some(TlsConfig::from_pem_files("cert.pem", "key.pem")?),
///     ..ServerConfig::default()
/// };
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    rustls: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &self.rustls.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's first) and a PEM
    /// private key (PKCS#8, PKCS#1 or SEC1). The error names the file.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<TlsConfig> {
        TlsConfig::from_pem(
            &read_pem_file(cert.as_ref())?,
            &read_pem_file(key.as_ref())?,
        )
    }

    /// [`TlsConfig::from_pem_files`] from bytes already in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<TlsConfig> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let certs = pem_certificates(cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| invalid(format!("private key PEM: {e}")))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(format!("certificate and key: {e}")))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            rustls: Arc::new(cfg),
        })
    }

    /// A rustls configuration of your own (client certificates, several
    /// certificates by SNI, other versions). Its ALPN list is yours to set:
    /// only `http/1.1` is served.
    pub fn from_rustls(cfg: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig { rustls: cfg }
    }

    /// A new server-side TLS session for one connection.
    pub(crate) fn session(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(self.rustls.clone())
    }
}
