//! Certificates for the TLS tests, made fresh by each test with rcgen: a certificate
//! authority and a server certificate it signed, written as PEM files (what users give
//! `tls::server_config`, what curl and openssl read).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA and one server certificate, as PEM files in a directory of their own.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate and key the same CA signed (for mutual TLS).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// A server certificate valid for `names` (DNS names or IP addresses), signed by a
    /// new CA.
    pub fn new(names: &[&str]) -> Pki {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("netloop-tls-{}-{serial}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("netloop test CA {serial}"),
        );
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "netloop test client");
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_cert: dir.join("client-cert.pem"),
            client_key: dir.join("client-key.pem"),
            dir,
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        std::fs::write(&pki.client_cert, client_cert.pem()).unwrap();
        std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
        pki
    }

    /// A server config presenting this certificate.
    pub fn server(&self) -> netloop::tls::rustls::ServerConfig {
        netloop::tls::server_config(&self.cert, &self.key).unwrap()
    }

    /// A client config trusting this CA.
    pub fn client(&self) -> Arc<netloop::tls::rustls::ClientConfig> {
        Arc::new(netloop::tls::client_config(
            netloop::tls::roots_from_pem(&self.ca).unwrap(),
        ))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
