//! HTTPS for the client (feature `tls`): [`ClientTls`], whom the client
//! trusts and how it speaks TLS. The stream is the server's own
//! (`net::tls::TlsStream`) on the client's side of rustls.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, RootCertStore};

use super::ClientError;
use crate::net::tls::{pem_certificates, provider, read_pem_file};

/// Whom an HTTPS request trusts, as [`super::ClientConfig::tls`]. Cheap to
/// clone (shared). Without one, a client trusts Mozilla's root
/// certificates ([`ClientTls::webpki_roots`]).
///
/// ```no_run
/// use phaseloop::client::{Client, ClientConfig, ClientTls};
///
/// // A service behind a private CA:
/// let client = Client::new(ClientConfig {
///     tls: Some(ClientTls::from_root_pem_file("ca.pem")?),
///     ..ClientConfig::default()
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientTls {
    rustls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("alpn", &self.rustls.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts Mozilla's root certificates, compiled in (the
    /// `webpki-roots` crate): what a client of public HTTPS services
    /// needs. Offers ALPN `http/1.1`.
    pub fn webpki_roots() -> ClientTls {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        ClientTls::with_roots(roots).expect("the default protocol versions are supported")
    }

    /// Trusts only the CA certificates of `pem` (a private CA, or one
    /// service's self-signed certificate). Refused: no certificate in
    /// it, or one that is not a usable CA.
    pub fn from_root_pem(pem: &[u8]) -> io::Result<ClientTls> {
        let mut roots = RootCertStore::empty();
        for cert in pem_certificates(pem, "CA certificate")? {
            roots.add(cert).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("CA certificate: {e}"))
            })?;
        }
        ClientTls::with_roots(roots)
    }

    /// [`ClientTls::from_root_pem`] from a file; the error names it.
    pub fn from_root_pem_file(path: impl AsRef<Path>) -> io::Result<ClientTls> {
        ClientTls::from_root_pem(&read_pem_file(path.as_ref())?)
    }

    /// A rustls configuration of your own (client certificates, another
    /// crypto provider). Its ALPN list is yours: a server choosing
    /// anything but `http/1.1` fails the request.
    pub fn from_rustls(cfg: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls { rustls: cfg }
    }

    fn with_roots(roots: RootCertStore) -> io::Result<ClientTls> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ClientTls {
            rustls: Arc::new(cfg),
        })
    }

    /// A new session for a connection to `host` (a name or an IP
    /// address: what the certificate must be valid for; also the SNI).
    pub(crate) fn session(&self, host: &str) -> Result<ClientConnection, ClientError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| ClientError::Tls(format!("{host}: {e}")))?;
        ClientConnection::new(self.rustls.clone(), name)
            .map_err(|e| ClientError::Tls(e.to_string()))
    }
}
