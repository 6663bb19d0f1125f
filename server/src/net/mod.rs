//! Byte streams on the loop's sockets, for every role above: the socket
//! itself, or TLS over it (feature `tls`). The server's engine and the
//! HTTP client read and write through [`transport::Transport`] and never
//! ask which.

#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod transport;
