//! Makes a certificate for local TLS use with rcgen: a certificate authority of its own
//! and a server certificate it signed, valid for the names given (DNS names or IP
//! addresses), written as PEM files the examples' `--tls-cert/--tls-key` take.
//!
//! ```text
//! cargo run --example tls_cert -- --out certs --name localhost --name 127.0.0.1
//! cargo run --release --example http -- --tls-cert certs/cert.pem --tls-key certs/key.pem
//! curl --cacert certs/ca.pem https://localhost:8080/plaintext
//! ```
//! `ca.pem` is what clients trust; `cert.pem` and `key.pem` are the server's. Nothing
//! here is fit for a server others reach: the CA's key is thrown away, and nobody but
//! you trusts it.

use std::path::PathBuf;

use clap::Parser;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

#[derive(Parser)]
#[command(about = "write a local CA and a server certificate (PEM) for the TLS examples")]
struct Args {
    /// Directory to write ca.pem, cert.pem and key.pem into (created if missing).
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// A name the certificate is valid for; repeat for several. Default: localhost,
    /// 127.0.0.1 and ::1.
    #[arg(long)]
    name: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let names = if args.name.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        args.name
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "netloop local development CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    let cert = params.signed_by(&key, &ca)?;
    std::fs::create_dir_all(&args.out)?;
    for (file, pem) in [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        let path = args.out.join(file);
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("valid for: {}", names.join(", "));
    Ok(())
}
