//! TLS for the socket tests: a test CA and a server certificate made at
//! test time (rcgen), and a real TLS client (rustls) that trusts that CA.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::util::Client;

/// A CA and a certificate it signed (for `localhost` and 127.0.0.1 unless
/// made with [`TestPki::for_names`]).
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        TestPki::for_names(&["localhost"], &["127.0.0.1"])
    }

    /// A CA and a certificate it signed for `names` and `ips` only.
    pub fn for_names(names: &[&str], ips: &[&str]) -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "phaseloop test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut leaf = CertificateParams::new(names).unwrap();
        for ip in ips {
            leaf.subject_alt_names
                .push(SanType::IpAddress(ip.parse().unwrap()));
        }
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The server's side.
    pub fn server_config(&self) -> phaseloop::tls::TlsConfig {
        phaseloop::tls::TlsConfig::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
    }

    /// The server's side as a rustls configuration (for a scripted
    /// server), offering ALPN `http/1.1`.
    pub fn server_rustls(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(self.server_rustls_with(rustls::DEFAULT_VERSIONS))
    }

    /// [`TestPki::server_rustls`] speaking only `versions`, to change
    /// further before use.
    pub fn server_rustls_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        #[allow(deprecated)] // the library's provider: see net/tls.rs
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg
    }

    /// A client configuration trusting the test CA, offering ALPN
    /// `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        #[allow(deprecated)] // the server's provider: see engine/tls.rs
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// A TLS connection to `addr` asking for server name `name`, its
    /// handshake not yet done (the first read or write does it).
    pub fn connect_as(&self, addr: SocketAddr, name: &str) -> TlsStream {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let conn = ClientConnection::new(self.client_config(), name).unwrap();
        StreamOwned::new(conn, tcp)
    }

    /// A [`Client`] over TLS to `addr` as `localhost`, handshake done.
    pub fn client(&self, addr: SocketAddr) -> Client<TlsStream> {
        let mut stream = self.connect_as(addr, "localhost");
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Client::from_stream(stream)
    }
}

/// A rustls client stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
