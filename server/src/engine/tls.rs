//! TLS on the loop (feature `tls`): [`TlsConfig`], what a server serves
//! HTTPS with, and [`TlsStream`], rustls driven over a nonblocking socket in
//! the poll phase. rustls does no I/O of its own: reads feed it the
//! socket's bytes (`read_tls`) and take plaintext out, writes give it
//! plaintext and push its records to the socket (`write_tls`), and a
//! handshake flight leaves from whichever of the two it follows.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConnection;

use crate::engine::transport::Settled;

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
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        TlsConfig::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    /// [`TlsConfig::from_pem_files`] from bytes already in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<TlsConfig> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("certificate PEM: no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| invalid(format!("private key PEM: {e}")))?;
        // ring, not aws-lc-rs: it builds in seconds where aws-lc is a long
        // C build on every CI run. rustls deprecates it for lacking the
        // post-quantum hybrid key exchange (X25519MLKEM768); X25519 and
        // P-256 remain. A server that wants the hybrid builds its own
        // configuration on aws-lc-rs and passes it to `from_rustls`.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
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

/// TLS figures of one server, shared by its connections' streams (the
/// engine copies them into `ServerStats`).
#[derive(Debug, Default)]
pub(crate) struct TlsCounters {
    pub handshakes: Cell<u64>,
    pub handshake_errors: Cell<u64>,
    pub errors: Cell<u64>,
}

impl TlsCounters {
    fn add(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// One connection's TLS: the session and its socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: ServerConnection,
    counters: Rc<TlsCounters>,
    handshaking: bool,
    /// Its failure was counted: rustls repeats the error to every later
    /// call, and a connection counts once.
    failed: bool,
}

impl TlsStream {
    pub fn new(sock: TcpStream, tls: ServerConnection, counters: Rc<TlsCounters>) -> TlsStream {
        TlsStream {
            sock,
            tls,
            counters,
            handshaking: true,
            failed: false,
        }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Writes the records rustls holds. `Ok(false)`: the socket is full.
    fn push(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// See [`crate::engine::transport::Transport::settle`].
    pub fn settle(&mut self) -> io::Result<Settled> {
        Ok(if !self.push()? {
            Settled::Unsent
        } else if self.tls.is_handshaking() {
            Settled::Handshaking
        } else {
            Settled::Done
        })
    }

    pub fn shutdown_write(&mut self) {
        self.tls.send_close_notify();
        let _ = self.push();
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    /// Counts the connection's failure, once: in its handshake or after.
    fn count_failure(&mut self) {
        if std::mem::replace(&mut self.failed, true) {
            return;
        }
        let counter = if self.handshaking {
            &self.counters.handshake_errors
        } else {
            &self.counters.errors
        };
        TlsCounters::add(counter);
    }

    /// Feeds rustls what the socket holds and answers what it must
    /// (a handshake flight, an alert). `Ok(0)`: the socket is at its end.
    fn pull(&mut self) -> io::Result<usize> {
        let n = self.tls.read_tls(&mut self.sock)?;
        if let Err(error) = self.tls.process_new_packets() {
            // Its alert goes out if the socket takes it; the connection
            // closes either way.
            let _ = self.push();
            self.count_failure();
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        if self.handshaking && !self.tls.is_handshaking() {
            self.handshaking = false;
            TlsCounters::add(&self.counters.handshakes);
        }
        // A full socket here leaves the rest to the engine's flush, which
        // asks `settle` and waits for room.
        self.push()?;
        Ok(n)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                // Ok(0): the peer's close_notify, a clean end.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // UnexpectedEof: the socket ended without close_notify.
                Err(e) => return Err(e),
            }
            // No plaintext yet: more records from the socket (WouldBlock
            // when it has none).
            if self.pull()? == 0 {
                // The end of the socket: rustls now says how it ended.
                if self.handshaking {
                    self.count_failure();
                }
                return Ok(0);
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Records waiting go first: plaintext is taken only when the
        // socket has room, so what rustls holds stays one write's worth
        // (bounded by its buffer limit).
        if !self.push()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.push()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
