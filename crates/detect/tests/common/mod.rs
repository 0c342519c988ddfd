//! Certificates and TLS server configurations made in the tests.
#![allow(dead_code)]

use std::error::Error;
use std::io::Write;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::NamedTempFile;
use time::OffsetDateTime;

/// One day.
pub const DAY: time::Duration = time::Duration::days(1);

/// A test certificate authority.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

pub fn make_ca() -> Result<Ca, Box<dyn Error>> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn("PG Test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - DAY;
    params.not_after = now + DAY * 3650;
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key: KeyPair,
    pub not_after: OffsetDateTime,
}

/// A leaf for `names`, valid from `from` to `until` (relative to now), signed by `ca`
/// or self-signed when `ca` is `None`.
pub fn make_leaf(
    names: &[&str],
    from: time::Duration,
    until: time::Duration,
    ca: Option<&Ca>,
) -> Result<Leaf, Box<dyn Error>> {
    let key = KeyPair::generate()?;
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone())?;
    params.distinguished_name = dn(names.first().map_or("leaf", String::as_str));
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    params.not_before = now + from;
    params.not_after = now + until;
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.issuer)?,
        None => params.self_signed(&key)?,
    };
    Ok(Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key,
        not_after: params.not_after,
    })
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
    tls12_only: bool,
) -> Result<ServerConfig, Box<dyn Error>> {
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?)
}

/// The CA certificate as a PEM file.
pub fn ca_file(ca: &Ca) -> Result<NamedTempFile, Box<dyn Error>> {
    let mut f = NamedTempFile::new()?;
    f.write_all(ca.pem.as_bytes())?;
    f.flush()?;
    Ok(f)
}
