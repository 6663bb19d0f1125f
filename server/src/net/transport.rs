//! A connection's byte stream: the socket itself, or TLS over it. The
//! engine and the HTTP client read and write through [`Transport`] and
//! never ask which; the few places that need the socket (registration,
//! linger, the kernel's unsent count) take it with [`Transport::socket`].

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::net::tls::TlsStream;

/// What a stream still has to do once the engine's output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Nothing: the connection may go idle.
    Done,
    /// Bytes of its own wait for room in the socket (a writable event
    /// brings them out).
    Unsent,
    /// A TLS handshake is under way: the client owes us bytes, under the
    /// header timeout.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshaking,
}

/// The socket, or TLS over it (feature `tls`).
pub(crate) enum Transport {
    /// Plain TCP: bytes as they are.
    Plain(TcpStream),
    /// TLS on the loop: rustls over the nonblocking socket. Boxed: the
    /// TLS state is ~1 KiB and a plain connection must not pay for it.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

impl Transport {
    /// The socket under the stream.
    #[inline(always)]
    pub fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.socket(),
        }
    }

    /// The socket under the stream, to register with the loop.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.socket_mut(),
        }
    }

    /// Whether a read that filled less than the room offered means the
    /// socket is empty (true for TCP). Under TLS it does not: rustls may
    /// have taken one record of several, and no new edge would come for
    /// the rest, so reading goes on until a read would block.
    #[inline(always)]
    pub fn short_read_drains(&self) -> bool {
        match self {
            Transport::Plain(_) => true,
            #[cfg(feature = "tls")]
            Transport::Tls(_) => false,
        }
    }

    /// Writes what the stream itself still holds (TLS records, a handshake
    /// flight) and says what is left.
    #[inline(always)]
    pub fn settle(&mut self) -> io::Result<Settled> {
        match self {
            Transport::Plain(_) => Ok(Settled::Done),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.settle(),
        }
    }

    /// Ends our sending side (after a TLS close_notify).
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.shutdown_write(),
        }
    }
}

impl Read for Transport {
    #[inline(always)]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    #[inline(always)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
