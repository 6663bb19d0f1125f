//! TLS over a nonblocking socket (feature `tls`): [`TlsStream`], rustls
//! driven in the poll phase, for either side (the server's connections and
//! the HTTP client's). rustls does no I/O of its own: reads feed it the
//! socket's bytes (`read_tls`) and take plaintext out, writes give it
//! plaintext and push its records to the socket (`write_tls`), and a
//! handshake flight leaves from whichever of the two it follows.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::Connection;

use crate::net::transport::Settled;

/// The cryptography both sides use: ring, not aws-lc-rs, because it
/// builds in seconds where aws-lc is a long C build on every CI run.
/// rustls deprecates it for lacking the post-quantum hybrid key exchange
/// (X25519MLKEM768); X25519 and P-256 remain. A program that wants the
/// hybrid builds its own rustls configuration on aws-lc-rs and passes it
/// in (`TlsConfig::from_rustls`, `ClientTls::from_rustls`).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM file's bytes (a certificate, a key, a CA); the error names the
/// file.
pub(crate) fn read_pem_file(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The certificates of a PEM text, at least one; `what` names them in an
/// error ("certificate", "CA certificate").
pub(crate) fn pem_certificates(pem: &[u8], what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{what} PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{what} PEM: no CERTIFICATE block")));
    }
    Ok(certs)
}

/// TLS figures shared by the streams of one server or one client (the
/// engine copies them into `ServerStats`, the client into `ClientStats`).
#[derive(Debug, Default)]
pub(crate) struct TlsCounters {
    pub handshakes: Cell<u64>,
    pub handshake_errors: Cell<u64>,
    pub errors: Cell<u64>,
}

impl TlsCounters {
    pub fn add(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// One connection's TLS: the session and its socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: Connection,
    counters: Rc<TlsCounters>,
    handshaking: bool,
    /// Its failure was counted: rustls repeats the error to every later
    /// call, and a connection counts once.
    failed: bool,
}

impl TlsStream {
    /// `tls`: a server's session (`Connection::Server`) or a client's,
    /// whose ClientHello goes out with the first write.
    pub fn new(
        sock: TcpStream,
        tls: impl Into<Connection>,
        counters: Rc<TlsCounters>,
    ) -> TlsStream {
        TlsStream {
            sock,
            tls: tls.into(),
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

    /// See [`crate::net::transport::Transport::settle`].
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
