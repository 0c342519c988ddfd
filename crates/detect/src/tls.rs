//! TLS inspection.
//!
//! [`inspect_tls`] runs a TLS client handshake over any byte stream (a fresh TCP
//! connection, or one that just finished a STARTTLS exchange) and records what the
//! server presented: protocol version, cipher suite, ALPN, and the leaf certificate.
//!
//! Bad certificates do not abort the handshake: a recording certificate verifier runs
//! the real WebPKI verification against the trust roots, remembers its verdict and lets
//! the handshake continue, so that expired, self-signed, untrusted or wrong-name
//! certificates can still be described. Validity dates, the name match and
//! self-signedness are also checked independently from the parsed leaf, so that several
//! problems can be reported together (WebPKI stops at the first one).
//!
//! Everything is bounded: the handshake runs under [`TlsOptions::timeout`], rustls bounds
//! the size of every record and handshake message, and certificate chains larger than
//! [`TlsOptions::max_chain_bytes`] or longer than [`TlsOptions::max_chain_certs`] are
//! flagged and not verified.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portgate_model::{CertFailure, TlsSummary};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
pub use tokio_rustls::client::TlsStream;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Largest CA bundle file read from [`TlsOptions::ca_file`].
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Options for a TLS inspection.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Time allowed for the TLS handshake (and, in [`inspect_tls_at`], separately for the
    /// TCP connect).
    pub timeout: Duration,
    /// PEM bundle of trust roots to verify against instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// ALPN protocols to offer, in preference order (none by default).
    pub alpn: Vec<String>,
    /// Chains with more certificates than this are flagged and not verified.
    pub max_chain_certs: usize,
    /// Chains with more DER bytes in total than this are flagged and not verified.
    pub max_chain_bytes: usize,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            ca_file: None,
            alpn: Vec::new(),
            max_chain_certs: 10,
            max_chain_bytes: 64 * 1024,
        }
    }
}

/// Errors from a TLS inspection.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or contained no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file given.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The server name is neither a valid DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The TCP connection failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Target address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Connect or handshake did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The handshake failed (I/O error, protocol error, alert, garbage from the peer).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// The TLS client could not be configured.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The handshake finished without a server certificate.
    #[error("server presented no certificate")]
    NoCertificate,
}

/// Trust roots plus the exact DER of each root (to recognise a pinned self-signed leaf).
struct Roots {
    store: Arc<RootCertStore>,
    ders: HashSet<Vec<u8>>,
}

fn roots_from(certs: Vec<CertificateDer<'static>>) -> Roots {
    let ders = certs.iter().map(|c| c.as_ref().to_vec()).collect();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certs);
    Roots {
        store: Arc::new(store),
        ders,
    }
}

fn system_roots() -> Arc<Roots> {
    static ROOTS: OnceLock<Arc<Roots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| Arc::new(roots_from(rustls_native_certs::load_native_certs().certs)))
        .clone()
}

fn ca_error(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::CaFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn load_ca_file(path: &Path) -> Result<Roots, TlsError> {
    let file = std::fs::File::open(path).map_err(|e| ca_error(path, e))?;
    let mut data = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| ca_error(path, e))?;
    if data.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(ca_error(
            path,
            format!("larger than {MAX_CA_FILE_BYTES} bytes"),
        ));
    }
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&data) {
        certs.push(cert.map_err(|e| ca_error(path, format!("bad PEM: {e}")))?);
    }
    if certs.is_empty() {
        return Err(ca_error(path, "no PEM certificate found"));
    }
    let roots = roots_from(certs);
    if roots.store.is_empty() {
        return Err(ca_error(path, "no usable certificate"));
    }
    Ok(roots)
}

/// Trust roots already read, by CA file.
type RootsCache = Vec<(PathBuf, Arc<Roots>)>;

fn load_roots(opts: &TlsOptions) -> Result<Arc<Roots>, TlsError> {
    match &opts.ca_file {
        Some(path) => {
            // A scan inspects many ports with the same file: read it once.
            static CACHE: OnceLock<Mutex<RootsCache>> = OnceLock::new();
            let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
            let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, roots)) = cache.iter().find(|(p, _)| p == path) {
                return Ok(roots.clone());
            }
            let roots = Arc::new(load_ca_file(path)?);
            cache.push((path.clone(), roots.clone()));
            Ok(roots)
        }
        None => Ok(system_roots()),
    }
}

/// Check that `path` is a readable PEM file with at least one usable CA certificate, so
/// that a bad `--ca` is reported before any scanning.
pub fn check_ca_file(path: &Path) -> Result<(), TlsError> {
    load_ca_file(path).map(|_| ())
}

/// What the recording verifier saw.
#[derive(Debug, Default)]
struct Record {
    chain_len: usize,
    /// Set when the chain exceeded the caps (verification skipped).
    oversized: Option<String>,
    /// WebPKI verdict; `None` when not run.
    webpki: Option<Result<(), rustls::Error>>,
}

/// Accepts every certificate but records what real verification thought of it.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    max_certs: usize,
    max_bytes: usize,
    record: Mutex<Record>,
}

impl RecordingVerifier {
    fn take(&self) -> Record {
        let mut guard = self.record.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *guard)
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain_len = 1usize.saturating_add(intermediates.len());
        let chain_bytes = intermediates
            .iter()
            .fold(end_entity.as_ref().len(), |acc, c| {
                acc.saturating_add(c.as_ref().len())
            });
        let mut rec = Record {
            chain_len,
            ..Record::default()
        };
        if chain_len > self.max_certs || chain_bytes > self.max_bytes {
            rec.oversized = Some(format!(
                "chain too large: {chain_len} certificates, {chain_bytes} bytes (limits {} certificates, {} bytes)",
                self.max_certs, self.max_bytes
            ));
        } else if let Some(inner) = &self.inner {
            rec.webpki = Some(
                inner
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .map(|_| ()),
            );
        } else {
            rec.webpki = Some(Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )));
        }
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = rec;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Map a WebPKI error to failure reasons.
fn webpki_reason(err: &rustls::Error) -> CertFailure {
    match err {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertFailure::NotYetValid
            }
            CertificateError::UnknownIssuer => CertFailure::UntrustedIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertFailure::NameMismatch
            }
            other => CertFailure::Other(kebab_name(&format!("{other:?}"))),
        },
        other => CertFailure::Other(other.to_string()),
    }
}

/// A readable reason from a verifier error's debug text: its innermost name in kebab case
/// (`Other(OtherError(CaUsedAsEndEntity))` → `ca-used-as-end-entity`, `BadSignature` →
/// `bad-signature`); text that is not a plain name is kept as it is.
fn kebab_name(debug: &str) -> String {
    let inner = debug.trim_end_matches(')');
    let inner = inner.rsplit('(').next().unwrap_or(inner);
    if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_alphanumeric()) {
        return debug.to_string();
    }
    let mut out = String::new();
    for (i, c) in inner.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The target name as given: DNS name or IP address.
enum Target {
    Dns(String),
    Ip(IpAddr),
}

fn parse_target(name: &str) -> Result<(Target, ServerName<'static>), TlsError> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok((Target::Ip(ip), ServerName::IpAddress(ip.into())));
    }
    let dns = name.trim_end_matches('.').to_ascii_lowercase();
    let sn = ServerName::try_from(dns.clone())
        .map_err(|_| TlsError::InvalidServerName(name.to_string()))?;
    Ok((Target::Dns(dns), sn))
}

/// Does a SAN DNS pattern (possibly `*.example.com`) match a host name?
fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        // The wildcard covers exactly one whole left-most label; the rest must have
        // at least two labels so that `*.com` does not match everything.
        if !suffix.contains('.') || suffix.contains('*') {
            return false;
        }
        match host.split_once('.') {
            Some((first, rest)) => !first.is_empty() && rest == suffix,
            None => false,
        }
    } else {
        !pattern.contains('*') && pattern == host
    }
}

fn rfc3339(ts: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Leaf details and the independent checks.
#[derive(Default)]
struct LeafFacts {
    subject: String,
    issuer: String,
    san_dns: Vec<String>,
    san_ips: Vec<IpAddr>,
    not_before: Option<String>,
    not_after: Option<String>,
    days_left: Option<i64>,
    self_signed: bool,
    reasons: Vec<CertFailure>,
}

fn examine_leaf(der: &[u8], target: Option<&Target>) -> LeafFacts {
    let mut facts = LeafFacts::default();
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            facts.reasons.push(CertFailure::Other(format!(
                "unparseable leaf certificate: {e}"
            )));
            return facts;
        }
    };
    facts.subject = cert.subject().to_string();
    facts.issuer = cert.issuer().to_string();

    let validity = cert.validity();
    let nb = validity.not_before.timestamp();
    let na = validity.not_after.timestamp();
    facts.not_before = rfc3339(nb);
    facts.not_after = rfc3339(na);
    let now = now_unix();
    facts.days_left = Some(na.saturating_sub(now).div_euclid(86_400));
    if now > na {
        facts.reasons.push(CertFailure::Expired);
    }
    if now < nb {
        facts.reasons.push(CertFailure::NotYetValid);
    }

    match cert.subject_alternative_name() {
        Ok(Some(san)) => {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => facts.san_dns.push((*d).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(b4) = <[u8; 4]>::try_from(*bytes) {
                            facts.san_ips.push(IpAddr::from(b4));
                        } else if let Ok(b16) = <[u8; 16]>::try_from(*bytes) {
                            facts.san_ips.push(IpAddr::from(b16));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(None) => {}
        Err(e) => facts
            .reasons
            .push(CertFailure::Other(format!("bad subjectAltName: {e}"))),
    }

    let name_matches = match target {
        Some(Target::Dns(host)) => facts.san_dns.iter().any(|p| dns_matches(p, host)),
        Some(Target::Ip(ip)) => facts.san_ips.iter().any(|s| s == ip),
        None => true,
    };
    if !name_matches {
        facts.reasons.push(CertFailure::NameMismatch);
    }

    facts.self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    facts
}

/// Run a TLS client handshake over `stream` and describe what the server presented.
///
/// `server_name` is sent as SNI when it is a DNS name (never for an IP address) and is
/// what the certificate's name is checked against; with `None` no name check is made.
/// The handshake completes even for bad certificates; their problems are listed in
/// [`TlsSummary::reasons`].
pub async fn inspect_tls<S>(
    stream: S,
    server_name: Option<&str>,
    opts: &TlsOptions,
) -> Result<TlsSummary, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    handshake(stream, server_name, opts)
        .await
        .map(|(_, info)| info)
}

/// Like [`inspect_tls`], but also hands back the established TLS stream, so that the
/// caller can go on talking to the service inside TLS (HTTP, a banner, ...).
pub async fn handshake<S>(
    stream: S,
    server_name: Option<&str>,
    opts: &TlsOptions,
) -> Result<(TlsStream<S>, TlsSummary), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let roots = load_roots(opts)?;
    handshake_with_roots(stream, server_name, opts, roots).await
}

async fn handshake_with_roots<S>(
    stream: S,
    server_name: Option<&str>,
    opts: &TlsOptions,
    roots: Arc<Roots>,
) -> Result<(TlsStream<S>, TlsSummary), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (target, sn) = match server_name {
        Some(name) => {
            let (t, sn) = parse_target(name)?;
            (Some(t), sn)
        }
        // No name: rustls needs one; an unspecified IP sends no SNI.
        None => (
            None,
            ServerName::IpAddress(IpAddr::from([0u8, 0, 0, 0]).into()),
        ),
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = if roots.store.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(roots.store.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?,
        )
    };
    let verifier = Arc::new(RecordingVerifier {
        inner,
        provider: provider.clone(),
        max_certs: opts.max_chain_certs,
        max_bytes: opts.max_chain_bytes,
        record: Mutex::new(Record::default()),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();

    let connector = TlsConnector::from(Arc::new(config));
    let tls = match tokio::time::timeout(opts.timeout, connector.connect(sn, stream)).await {
        Err(_) => return Err(TlsError::Timeout(opts.timeout)),
        Ok(Err(e)) => return Err(TlsError::Handshake(e.to_string())),
        Ok(Ok(tls)) => tls,
    };
    let (_, conn) = tls.get_ref();

    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| {
            s.suite()
                .as_str()
                .map_or_else(|| format!("{:?}", s.suite()), str::to_string)
        })
        .unwrap_or_default();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(TlsError::NoCertificate)?;

    let fingerprint_sha256 = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let record = verifier.take();
    let facts = examine_leaf(leaf.as_ref(), target.as_ref());
    let mut reasons = facts.reasons;
    if let Some(msg) = record.oversized {
        reasons.push(CertFailure::Other(msg));
    }
    let webpki_ok = matches!(record.webpki, Some(Ok(())));
    if let Some(Err(e)) = &record.webpki {
        let reason = webpki_reason(e);
        // Without a name to check, a name error from the placeholder name means nothing.
        if !(target.is_none() && reason == CertFailure::NameMismatch) {
            reasons.push(reason);
        }
    }
    if facts.self_signed && !roots.ders.contains(leaf.as_ref()) {
        reasons.push(CertFailure::SelfSigned);
        reasons.push(CertFailure::UntrustedIssuer);
    }
    reasons.sort();
    reasons.dedup();
    // With no name given, WebPKI may reject only the placeholder name.
    let valid = reasons.is_empty() && (webpki_ok || target.is_none() && record.webpki.is_some());

    let info = TlsSummary {
        starttls: None,
        protocol,
        cipher_suite,
        alpn,
        server_name: server_name.map(str::to_string),
        subject: facts.subject,
        issuer: facts.issuer,
        san_dns: facts.san_dns,
        san_ips: facts.san_ips,
        not_before: facts.not_before,
        not_after: facts.not_after,
        days_left: facts.days_left,
        self_signed: facts.self_signed,
        chain_len: record.chain_len,
        fingerprint_sha256,
        valid,
        reasons,
    };
    Ok((tls, info))
}

/// Connect to `addr` (within [`TlsOptions::timeout`]) and run [`inspect_tls`] on it.
pub async fn inspect_tls_at(
    addr: SocketAddr,
    server_name: Option<&str>,
    opts: &TlsOptions,
) -> Result<TlsSummary, TlsError> {
    // Fail on a bad CA file or server name before touching the network.
    let roots = load_roots(opts)?;
    if let Some(name) = server_name {
        parse_target(name)?;
    }
    let stream = match tokio::time::timeout(opts.timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(TlsError::Timeout(opts.timeout)),
        Ok(Err(source)) => return Err(TlsError::Connect { addr, source }),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    handshake_with_roots(stream, server_name, opts, roots)
        .await
        .map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::{dns_matches, kebab_name};

    #[test]
    fn reasons_read_well() {
        assert_eq!(
            kebab_name("Other(OtherError(CaUsedAsEndEntity))"),
            "ca-used-as-end-entity"
        );
        assert_eq!(kebab_name("BadSignature"), "bad-signature");
        assert_eq!(kebab_name("odd text: 1"), "odd text: 1");
    }

    #[test]
    fn wildcards() {
        assert!(dns_matches("app.pg.test", "APP.pg.test."));
        assert!(dns_matches("*.pg.test", "app.pg.test"));
        assert!(!dns_matches("*.pg.test", "pg.test"));
        assert!(!dns_matches("*.pg.test", "a.b.pg.test"));
        assert!(!dns_matches("*.test", "pg.test"));
        assert!(!dns_matches("a*.pg.test", "ab.pg.test"));
        assert!(!dns_matches("other.test", "app.pg.test"));
    }
}
