//! Building rustls configs: certificates and keys from PEM, trust roots, the provider.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: rustls::pki_types::pem::Error,
    },
    /// A PEM file holds no certificate.
    NoCertificates(PathBuf),
    /// rustls refused the certificates or key (a key that does not match the
    /// certificate, an unsupported key type, a certificate authority it cannot parse).
    Rustls(rustls::Error),
    /// No trust root could be loaded from the system's store.
    SystemRoots(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, error } => write!(f, "{}: {error}", path.display()),
            TlsError::NoCertificates(path) => {
                write!(f, "{}: no CERTIFICATE block", path.display())
            }
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
            TlsError::SystemRoots(e) => write!(f, "system trust roots: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { error, .. } => Some(error),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Rustls(e)
    }
}

/// The crypto provider netloop's configs use: rustls' `ring` provider (see the README's
/// dependency table for why `ring` over `aws-lc-rs`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every certificate in a PEM file, in order (the server's own first, then its chain).
///
/// # Errors
/// The file cannot be read, is not PEM, or holds no certificate.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::Pem {
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates(path.to_owned()));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// # Errors
/// The file cannot be read, is not PEM, or holds no private key.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::Pem {
        path: path.to_owned(),
        error,
    })
}

/// A server config presenting the certificate chain in `cert_pem` with the key in
/// `key_pem`: TLS 1.2 and 1.3, no client certificates, no ALPN. It is a plain
/// `rustls::ServerConfig`: set `alpn_protocols`, or build one with
/// [`provider`] and a client certificate verifier, before giving it to
/// [`Builder::tls`](crate::Builder::tls).
///
/// # Errors
/// A file cannot be read or parsed, or the key does not suit the certificate.
pub fn server_config(
    cert_pem: impl AsRef<Path>,
    key_pem: impl AsRef<Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(cert_pem)?;
    let key = load_private_key(key_pem)?;
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

/// The certificate authorities in a PEM file, as trust roots.
///
/// # Errors
/// The file cannot be read or parsed, holds no certificate, or one is not a usable
/// trust anchor.
pub fn roots_from_pem(path: impl AsRef<Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The operating system's trust roots (`rustls-native-certs`: the OpenSSL locations on
/// Linux, `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured). Certificates that cannot be
/// parsed are skipped, as browsers do.
///
/// # Errors
/// Not one root could be loaded.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "the store is empty".to_owned(),
        };
        return Err(TlsError::SystemRoots(why));
    }
    Ok(roots)
}

/// A client config trusting `roots` ([`system_roots`], [`roots_from_pem`]): TLS 1.2 and
/// 1.3, no client certificate. Set `alpn_protocols` on it if the server needs one.
pub fn client_config(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
