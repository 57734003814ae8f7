//! TLS as a connection [`Transport`](crate::transport::Transport), through
//! [rustls](https://docs.rs/rustls) with its `ring` crypto provider.
//!
//! - **Servers**: [`Builder::tls`](crate::Builder::tls) serves TLS on every listener,
//!   [`Builder::listen_tls`](crate::Builder::listen_tls) on one. The handshake runs on
//!   the poller after `on_prepare` and before `on_connect`, bounded by
//!   [`Builder::handshake_timeout`](crate::Builder::handshake_timeout)
//!   ([`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout)).
//! - **Clients**: [`Dialer::tls`](crate::Dialer::tls) for any dial (the task protocol's
//!   `netloop::task::client::TaskClient` included); the WebSocket client engine
//!   speaks `wss://`.
//! - **Handlers do not change**: they read plaintext [`Input`](crate::Input) and write
//!   plaintext [`Output`](crate::Output); [`Conn::tls`](crate::Conn::tls) shows what was
//!   negotiated ([`TlsInfo`]).
//! - **Failures**: a peer whose bytes are not TLS, a certificate that does not verify,
//!   a server name it is not valid for: the connection closes with
//!   [`CloseReason::Error`](crate::CloseReason::Error)`(InvalidData)` after sending
//!   rustls' alert, and [`ConnHandle::transport_error`](crate::ConnHandle::transport_error)
//!   says which in words.
//!
//! A server from PEM files:
//!
//! ```no_run
//! let config = netloop::tls::server_config("cert.pem", "key.pem")?;
//! let server = netloop::Server::builder()
//!     .listen("0.0.0.0:8443")
//!     .tls(config)
//!     .serve(netloop::handler_fn(|conn| {
//!         let sni = conn.tls().and_then(|t| t.server_name.clone());
//!         let n = conn.input().len();
//!         conn.input().skip(n);
//!         conn.output().write(format!("hello, {sni:?}\n").as_bytes());
//!     }))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A client trusting one certificate authority:
//!
//! ```no_run
//! # use netloop::{handler_fn, Server};
//! let roots = netloop::tls::roots_from_pem("ca.pem")?;
//! let config = netloop::tls::client_config(roots);
//! let runtime = Server::builder().pollers(1).start()?;
//! let handle = runtime
//!     .dialer()
//!     .tls(config, "localhost")
//!     .dial("127.0.0.1:8443", handler_fn(|conn| {
//!         let n = conn.input().len();
//!         conn.input().skip(n);
//!     }))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Kernel TLS offload is not built: see [`ktls_supported`].

mod config;
mod transport;

pub use config::{
    client_config, load_certs, load_private_key, provider, roots_from_pem, server_config,
    system_roots, TlsError,
};
pub use transport::{TlsAcceptor, TlsTransport};

pub use rustls;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What a connection's TLS handshake negotiated ([`Conn::tls`](crate::Conn::tls)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsInfo {
    /// TLS 1.2 or 1.3.
    pub version: Option<rustls::ProtocolVersion>,
    /// The cipher suite.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// The application protocol agreed through ALPN (`b"http/1.1"`, `b"h2"`), if any.
    pub alpn: Option<Vec<u8>>,
    /// On a server, the name the client asked for (SNI), if it sent one.
    pub server_name: Option<String>,
    /// The peer's certificate chain, its own first: the server's on a client; the
    /// client's on a server that asked for one (empty otherwise).
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

impl TlsInfo {
    fn of(session: &rustls::CommonState, server_name: Option<String>) -> TlsInfo {
        TlsInfo {
            version: session.protocol_version(),
            cipher_suite: session.negotiated_cipher_suite().map(|s| s.suite()),
            alpn: session.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: session
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }
}

/// Whether this kernel offers TLS offload (the `tls` upper-layer protocol, probed with
/// `setsockopt(TCP_ULP, "tls")` on a loopback socket). netloop does not hand sessions
/// to the kernel yet: the offload needs a kernel that has it to be built and measured
/// against, and the machines it is developed on do not (`ENOENT`). This probe says
/// whether yours would. `Err` carries the reason (the `setsockopt` error).
pub fn ktls_supported() -> std::io::Result<()> {
    crate::sys::probe_tls_ulp()
}
