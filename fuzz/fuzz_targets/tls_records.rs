//! A TLS transport (`netloop::tls::TlsAcceptor::accept`, `TlsTransport::client`) fed arbitrary
//! bytes in arbitrary pieces, the way the poller feeds it whatever a read returned: it
//! never panics, and without the client's half of a key exchange no handshake completes
//! and no plaintext comes out. An error ends the connection, as it does in the poller.
//! The first byte picks the side (its low bit: the client side of a dial, answered by
//! the fuzzer as if it were the server) and sets the size of the pieces.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netloop::tls::{rustls, TlsAcceptor, TlsTransport};
use netloop::transport::Transport;
use netloop::{BytesMut, Output};

fn acceptor() -> TlsAcceptor {
    static ACCEPTOR: OnceLock<TlsAcceptor> = OnceLock::new();
    ACCEPTOR
        .get_or_init(|| {
            let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let key =
                rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
            let config = rustls::ServerConfig::builder_with_provider(netloop::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![made.cert.der().clone()], key)
                .unwrap();
            TlsAcceptor::new(config)
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let piece = 1 + (control >> 1) as usize * 16;
    let mut tls = if control & 1 == 0 {
        acceptor().accept().unwrap()
    } else {
        let config = netloop::tls::client_config(rustls::RootCertStore::empty());
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = TlsTransport::client(std::sync::Arc::new(config), name).unwrap();
        tls.start(&mut Output::new());
        tls
    };
    let (mut wire, mut plain, mut reply) = (BytesMut::new(), BytesMut::new(), Output::new());
    for chunk in bytes.chunks(piece) {
        wire.extend_from_slice(chunk);
        if tls.decode(&mut wire, &mut plain, &mut reply).is_err() {
            break;
        }
    }
    assert!(
        !tls.is_ready(),
        "a handshake completed without a key exchange"
    );
    assert!(plain.is_empty(), "plaintext before any handshake");
});
