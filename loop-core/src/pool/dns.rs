//! DNS lookup (lane [`Lane::Dns`]): `getaddrinfo`, like Node's `dns.lookup`,
//! which blocks and so must never run on the loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::{Job, Lane};

/// Resolves `host` (a name or a literal address) with the system resolver,
/// returning every address with `port` set.
pub fn lookup(host: impl Into<String>, port: u16) -> Job<io::Result<Vec<SocketAddr>>> {
    let host = host.into();
    Job::new(Lane::Dns, move || {
        Ok((host.as_str(), port).to_socket_addrs()?.collect())
    })
}
