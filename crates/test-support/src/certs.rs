//! Certificates and TLS server configurations made in the tests: a test CA, leaves signed
//! by it (or self-signed) with a chosen validity, and rustls server configurations.

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

/// A test certificate authority (`CN=PG Test CA`).
pub struct Ca {
    /// What signs leaves.
    pub issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
    /// Its certificate, DER.
    pub der: CertificateDer<'static>,
}

/// A distinguished name with only a common name.
pub fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A CA valid from a day ago for ten years.
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
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    })
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// The certificate, PEM.
    pub pem: String,
    /// Its key.
    pub key: KeyPair,
    /// When it expires (whole seconds).
    pub not_after: OffsetDateTime,
}

/// A leaf for `names` (the first is also its common name), valid from `from` to `until` (relative to now), signed by `ca`
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

/// rustls with ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `chain` with `key`: TLS 1.3 and 1.2, or 1.2 only.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_signed_by_the_ca_and_a_self_signed_one() -> Result<(), Box<dyn Error>> {
        let ca = make_ca()?;
        assert!(ca.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
        assert!(leaf.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(leaf.not_after.nanosecond(), 0);
        server_config(vec![leaf.der.clone(), ca.der.clone()], &leaf.key, false)?;
        let expired = make_leaf(&["old.pg.test"], -DAY * 400, -DAY * 35, None)?;
        assert!(expired.not_after < OffsetDateTime::now_utc());
        server_config(vec![expired.der], &expired.key, true)?;
        let file = ca_file(&ca)?;
        assert_eq!(std::fs::read_to_string(file.path())?, ca.pem);
        Ok(())
    }
}
