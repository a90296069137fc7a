//! Client-certificate authentication on the HTTPS listener (ingress-nginx's
//! `auth-tls-*` annotations), per host name (SNI).
//!
//! nginx asks for a certificate only on the servers whose Ingress carries
//! `auth-tls-secret` and, whatever the client sends, lets the handshake
//! complete: the verdict is checked on each request (400, or the error page),
//! not by ending the handshake. sluice does the same in two steps:
//!
//! - During the handshake, the host's [`HostClientAuth`] config offers the
//!   CA's subjects and accepts any certificate chain, but still checks the
//!   handshake signature (the client must hold the key of the certificate it
//!   sent), through rustls' webpki verifier.
//! - Right after the handshake, [`HostClientAuth::verify`] checks the chain
//!   against the CA (and its CRLs) with nginx's depth limit, once per
//!   connection, and keeps the outcome as a [`PeerCertificate`]: nginx's
//!   `$ssl_client_verify`, `$ssl_client_s_dn`, `$ssl_client_i_dn` and
//!   `$ssl_client_escaped_cert`, ready to be sent as header values.

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderValue;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

/// Intermediates a client may send that the depth check looks at; more is
/// no legitimate chain (webpki itself stops at six).
const MAX_INTERMEDIATES: usize = 8;

/// `auth-tls-verify-client`: nginx's `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// A verified certificate is required (the default).
    #[default]
    On,
    /// No certificate is asked for.
    Off,
    /// A certificate is asked for; without one the request passes, a bad one fails.
    Optional,
    /// A certificate is asked for but its issuer is not checked.
    OptionalNoCa,
}

impl VerifyClient {
    /// Parses the annotation value (`on`, `off`, `optional`, `optional_no_ca`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            "optional" => Some(Self::Optional),
            "optional_no_ca" => Some(Self::OptionalNoCa),
            _ => None,
        }
    }

    /// The value as the annotation writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Optional => "optional",
            Self::OptionalNoCa => "optional_no_ca",
        }
    }
}

/// Why a Secret's CA cannot be used for client-certificate authentication.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientAuthError {
    /// `ca.crt` holds no certificate.
    #[error("ca.crt holds no PEM certificate")]
    NoCertificates,
    /// `ca.crt` is not PEM.
    #[error("ca.crt is not PEM: {0}")]
    Pem(String),
    /// A certificate of `ca.crt` cannot be a trust anchor.
    #[error("certificate {index} of ca.crt cannot be used as a CA: {reason}")]
    BadCertificate {
        /// Its position in `ca.crt`, from 1.
        index: usize,
        /// What webpki said.
        reason: String,
    },
    /// `ca.crl` cannot be used.
    #[error("ca.crl cannot be used: {0}")]
    Crl(String),
}

/// The CA (and CRLs) of an `auth-tls-secret`, ready to verify client chains.
#[derive(Debug, Clone)]
pub struct ClientCa {
    /// rustls' webpki verifier over the CA (anonymous clients allowed).
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCa {
    /// Reads `ca.crt` (one or more PEM certificates) and the optional `ca.crl`
    /// (PEM CRLs; with them, every certificate of the chain needs a current
    /// CRL, as nginx's `ssl_crl` checks the whole chain).
    pub fn from_pem(ca: &[u8], crl: Option<&[u8]>) -> Result<Self, ClientAuthError> {
        let certs = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientAuthError::Pem(e.to_string()))?;
        if certs.is_empty() {
            return Err(ClientAuthError::NoCertificates);
        }
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|e| ClientAuthError::BadCertificate {
                    index: i + 1,
                    reason: e.to_string(),
                })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated();
        if let Some(crl) = crl.filter(|c| !c.iter().all(u8::is_ascii_whitespace)) {
            let crls = CertificateRevocationListDer::pem_slice_iter(crl)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientAuthError::Crl(e.to_string()))?;
            if crls.is_empty() {
                return Err(ClientAuthError::Crl("no PEM X509 CRL in it".into()));
            }
            builder = builder.with_crls(crls).enforce_revocation_expiration();
        }
        let webpki = builder
            .build()
            .map_err(|e| ClientAuthError::Crl(format!("{e:?}")))?;
        Ok(Self { webpki })
    }
}

/// The handshake side of a host's client authentication: asks for a
/// certificate, names the CA, accepts any chain (it is verified after the
/// handshake), and checks the handshake signature with webpki.
#[derive(Debug)]
struct AskForCertificate {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AskForCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// One host's client-certificate authentication: the CA, nginx's
/// `ssl_verify_depth` and `ssl_verify_client` (never `off`: such hosts ask
/// for nothing), and the listener config that asks for a certificate.
pub struct HostClientAuth {
    ca: ClientCa,
    depth: usize,
    mode: VerifyClient,
    handshake: Arc<dyn ClientCertVerifier>,
    /// The config built from the listener's (whose address is kept beside it).
    config: OnceLock<(usize, Arc<ServerConfig>)>,
}

impl fmt::Debug for HostClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostClientAuth")
            .field("depth", &self.depth)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HostClientAuth {
    /// Client authentication with `ca`, at most `depth` intermediates between
    /// the client's certificate and the CA, verified as `mode` says.
    pub fn new(ca: ClientCa, depth: usize, mode: VerifyClient) -> Self {
        let handshake = Arc::new(AskForCertificate {
            webpki: ca.webpki.clone(),
        });
        Self {
            ca,
            depth,
            mode,
            handshake,
            config: OnceLock::new(),
        }
    }

    /// `ssl_verify_client` of this host.
    pub fn mode(&self) -> VerifyClient {
        self.mode
    }

    /// The listener config for this host's handshakes: `base` (the listener's
    /// own) asking for a client certificate. Built on first use and kept;
    /// if it cannot be built, `base` is used, no certificate is asked for,
    /// and requests fail as if none had been sent.
    pub fn server_config(
        &self,
        base: &Arc<ServerConfig>,
        min_version: super::TlsVersion,
    ) -> Arc<ServerConfig> {
        let id = Arc::as_ptr(base) as usize;
        if let Some((built_from, config)) = self.config.get() {
            if *built_from == id {
                return config.clone();
            }
        }
        match super::server::with_client_auth(base, self.handshake.clone(), min_version) {
            Ok(config) => {
                let config = Arc::new(config);
                // The first listener's config is kept (all listeners share one).
                let _ = self.config.set((id, config.clone()));
                config
            }
            Err(e) => {
                tracing::error!(error = %e, "building the client-certificate TLS config failed");
                base.clone()
            }
        }
    }

    /// Verifies what a client sent in a handshake that asked for a
    /// certificate (`chain`: its certificates, leaf first) on `sni`, at time `now`.
    pub fn verify(
        &self,
        sni: &str,
        chain: Option<&[CertificateDer<'static>]>,
        now: UnixTime,
    ) -> PeerCertificate {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase().into();
        let Some((leaf, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return PeerCertificate {
                sni,
                verdict: Verdict::None,
                verify: HeaderValue::from_static("NONE"),
                subject: None,
                issuer: None,
                escaped: None,
            };
        };
        let verdict = self.check(leaf, intermediates, now);
        let verify = match verdict {
            Verdict::Success => HeaderValue::from_static("SUCCESS"),
            Verdict::None => HeaderValue::from_static("NONE"),
            Verdict::Failed { reason, .. } => HeaderValue::from_str(&format!("FAILED:{reason}"))
                .unwrap_or_else(|_| HeaderValue::from_static("FAILED")),
        };
        let names = x509_parser::parse_x509_certificate(leaf)
            .ok()
            .map(|(_, x)| {
                (
                    HeaderValue::from_str(&rfc2253(x.subject())).ok(),
                    HeaderValue::from_str(&rfc2253(x.issuer())).ok(),
                )
            });
        let (subject, issuer) = names.unwrap_or((None, None));
        PeerCertificate {
            sni,
            verdict,
            verify,
            subject,
            issuer,
            escaped: HeaderValue::from_str(&escaped_pem(leaf)).ok(),
        }
    }

    /// The chain's verdict: webpki's (CA, validity, key usage, CRLs), then
    /// nginx's depth limit.
    fn check(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Verdict {
        let webpki = &self.ca.webpki;
        if let Err(e) = webpki.verify_client_cert(leaf, intermediates, now) {
            return failed(&e, leaf, intermediates);
        }
        if intermediates.len() <= self.depth {
            return Verdict::Success;
        }
        // A chain exists; is there one with at most `depth` intermediates? It
        // would use at most `depth` of the ones sent, so some subset of
        // exactly that size (extra certificates do not hurt) verifies.
        let pool = &intermediates[..intermediates.len().min(MAX_INTERMEDIATES)];
        let within = if self.depth >= pool.len() {
            webpki.verify_client_cert(leaf, pool, now).is_ok()
        } else {
            Subsets::new(pool.len(), self.depth).any(|picked| {
                let subset: Vec<CertificateDer<'_>> =
                    picked.iter().map(|&i| pool[i].clone()).collect();
                webpki.verify_client_cert(leaf, &subset, now).is_ok()
            })
        };
        if within {
            Verdict::Success
        } else {
            Verdict::Failed {
                reason: "certificate chain too long",
                unknown_issuer: false,
            }
        }
    }
}

/// The `k`-element subsets of `0..n`, as sorted index lists.
struct Subsets {
    n: usize,
    current: Option<Vec<usize>>,
}

impl Subsets {
    fn new(n: usize, k: usize) -> Self {
        Self {
            n,
            current: (k <= n).then(|| (0..k).collect()),
        }
    }
}

impl Iterator for Subsets {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let out = self.current.take()?;
        let mut next = out.clone();
        let k = next.len();
        // The rightmost index that can still move right, then reset the rest.
        let movable = (0..k).rev().find(|&i| next[i] < self.n - k + i);
        if let Some(i) = movable {
            next[i] += 1;
            for j in i + 1..k {
                next[j] = next[j - 1] + 1;
            }
            self.current = Some(next);
        }
        Some(out)
    }
}

/// OpenSSL's words for a webpki failure (nginx's `$ssl_client_verify` says
/// `FAILED:<X509_verify_cert_error_string>`).
fn failed(
    e: &rustls::Error,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Verdict {
    let rustls::Error::InvalidCertificate(e) = e else {
        return Verdict::Failed {
            reason: "unspecified certificate verification error",
            unknown_issuer: false,
        };
    };
    let reason = match e {
        CertificateError::UnknownIssuer => {
            let reason = if self_signed(leaf) {
                "self-signed certificate"
            } else if intermediates.iter().any(|c| self_signed(c)) {
                "self-signed certificate in certificate chain"
            } else {
                "unable to get local issuer certificate"
            };
            return Verdict::Failed {
                reason,
                unknown_issuer: true,
            };
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not yet valid"
        }
        CertificateError::Revoked => "certificate revoked",
        CertificateError::UnknownRevocationStatus => "unable to get certificate CRL",
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => "CRL has expired",
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "certificate signature failure"
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "unsupported certificate purpose"
        }
        CertificateError::UnhandledCriticalExtension => "unhandled critical extension",
        _ => "unspecified certificate verification error",
    };
    Verdict::Failed {
        reason,
        unknown_issuer: false,
    }
}

/// Whether a certificate names itself as its issuer.
fn self_signed(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert)
        .is_ok_and(|(_, x)| x.subject().as_raw() == x.issuer().as_raw())
}

/// What the client's certificate chain came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It chains to the CA within the depth limit, and is valid.
    Success,
    /// It does not verify.
    Failed {
        /// OpenSSL's words for why.
        reason: &'static str,
        /// The only problem is an issuer outside the CA (nginx's
        /// `optional_no_ca` accepts that, not an expired certificate).
        unknown_issuer: bool,
    },
    /// The client sent no certificate.
    None,
}

/// A connection's client certificate, as checked right after its handshake
/// (only on hosts that asked for one).
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The server name the handshake asked for, lowercased.
    sni: Box<str>,
    verdict: Verdict,
    verify: HeaderValue,
    subject: Option<HeaderValue>,
    issuer: Option<HeaderValue>,
    escaped: Option<HeaderValue>,
}

impl PeerCertificate {
    /// The SNI of the handshake (lowercase, no trailing dot).
    pub fn sni(&self) -> &str {
        &self.sni
    }

    /// The chain's verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// nginx's `$ssl_client_verify`: `SUCCESS`, `FAILED:<reason>` or `NONE`.
    pub fn verify_header(&self) -> &HeaderValue {
        &self.verify
    }

    /// nginx's `$ssl_client_s_dn`: the subject, RFC 2253 (`CN=a,O=b`).
    pub fn subject_dn(&self) -> Option<&HeaderValue> {
        self.subject.as_ref()
    }

    /// nginx's `$ssl_client_i_dn`: the issuer, RFC 2253.
    pub fn issuer_dn(&self) -> Option<&HeaderValue> {
        self.issuer.as_ref()
    }

    /// nginx's `$ssl_client_escaped_cert`: the leaf as PEM, URL-escaped.
    pub fn escaped_cert(&self) -> Option<&HeaderValue> {
        self.escaped.as_ref()
    }
}

/// A name as OpenSSL prints it with `XN_FLAG_RFC2253` (what nginx's
/// `$ssl_client_s_dn` holds since 1.11.6): RDNs last to first, `,` between
/// them, `+` inside one, short attribute names, RFC 2253 escaping with
/// control and non-ASCII bytes as `\XX`, values of unknown types as `#hex`.
pub fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => out.push_str(sn),
                None => out.push_str(&oid),
            }
            out.push('=');
            let value = attr.attr_value();
            match string_value(value) {
                Some(text) if short_name(&oid).is_some() => escape_value(&text, &mut out),
                _ => {
                    out.push('#');
                    for b in der_of(value) {
                        out.push_str(&format!("{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

/// OpenSSL's short names for the attributes certificates use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// The text of a string-typed attribute value (UTF-8 as OpenSSL converts it).
fn string_value(value: &x509_parser::asn1_rs::Any<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => Some(String::from_utf8_lossy(data).into_owned()),
        // Teletex is read as Latin-1, as OpenSSL does.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        Tag::UniversalString => Some(
            data.chunks_exact(4)
                .map(|c| {
                    char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The DER of a value (tag, length, content) for `#hex` dumps.
fn der_of(value: &x509_parser::asn1_rs::Any<'_>) -> Vec<u8> {
    let data = value.data;
    let tag = u8::try_from(value.tag().0).unwrap_or(0x1f)
        | if value.header.is_constructed() {
            0x20
        } else {
            0
        }
        | match value.class() {
            x509_parser::asn1_rs::Class::Universal => 0x00,
            x509_parser::asn1_rs::Class::Application => 0x40,
            x509_parser::asn1_rs::Class::ContextSpecific => 0x80,
            x509_parser::asn1_rs::Class::Private => 0xc0,
        };
    let mut out = vec![tag];
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

/// RFC 2253 escaping as OpenSSL's `ASN1_STRFLGS_RFC2253` does it.
fn escape_value(text: &str, out: &mut String) {
    let last = text.len().saturating_sub(1);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x00..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
            _ => out.push(char::from(b)),
        }
    }
}

/// The leaf as PEM (64-column base64, as OpenSSL writes it), escaped as
/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)`.
pub fn escaped_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or(""));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    escape_uri_component(&pem)
}

/// nginx's `uri_component` escape table: everything but letters, digits
/// and `!'()*-._~` becomes `%XX`.
fn escape_uri_component(text: &str) -> String {
    const TABLE: [u32; 8] = [
        0xffff_ffff,
        0xfc00_987d,
        0x7800_0001,
        0xb800_0001,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
    ];
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if TABLE[usize::from(b >> 5)] & (1 << (b & 0x1f)) != 0 {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
        RevocationReason, RevokedCertParams, SerialNumber,
    };

    struct Ca {
        pem: String,
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn intermediate(parent: &Ca, cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &parent.issuer)
            .expect("intermediate");
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn client_params(cn: &str, serial: u64) -> CertificateParams {
        let mut params = CertificateParams::default();
        // Issuer-first order as written: O, then CN (printed last to first).
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(SerialNumber::from(serial));
        params
    }

    fn client(issuer: &Ca, cn: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        client_params(cn, 7)
            .signed_by(&key, &issuer.issuer)
            .expect("client")
            .der()
            .clone()
    }

    fn auth(ca_pem: &str, depth: usize) -> HostClientAuth {
        HostClientAuth::new(
            ClientCa::from_pem(ca_pem.as_bytes(), None).expect("CA"),
            depth,
            VerifyClient::On,
        )
    }

    fn verdict(auth: &HostClientAuth, chain: &[CertificateDer<'static>]) -> Verdict {
        auth.verify("App.Test.", Some(chain), UnixTime::now())
            .verdict()
    }

    #[test]
    fn verify_client_values() {
        for mode in [
            VerifyClient::On,
            VerifyClient::Off,
            VerifyClient::Optional,
            VerifyClient::OptionalNoCa,
        ] {
            assert_eq!(VerifyClient::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(VerifyClient::parse("ON"), None);
        assert_eq!(VerifyClient::parse("required"), None);
        assert_eq!(VerifyClient::default(), VerifyClient::On);
    }

    #[test]
    fn bad_ca_secrets_are_errors() {
        assert_eq!(
            ClientCa::from_pem(b"not pem at all", None).err(),
            Some(ClientAuthError::NoCertificates)
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ClientCa::from_pem(garbage, None),
            Err(ClientAuthError::BadCertificate { index: 1, .. })
        ));
        let good = ca("root");
        assert!(matches!(
            ClientCa::from_pem(good.pem.as_bytes(), Some(b"not a crl")),
            Err(ClientAuthError::Crl(_))
        ));
        // Whitespace only: no CRL.
        assert!(ClientCa::from_pem(good.pem.as_bytes(), Some(b"\n")).is_ok());
    }

    #[test]
    fn a_certificate_from_the_ca_verifies_and_others_do_not() {
        let root = ca("root");
        let other = ca("other");
        let auth = auth(&root.pem, 1);
        assert_eq!(verdict(&auth, &[client(&root, "alice")]), Verdict::Success);
        assert_eq!(
            verdict(&auth, &[client(&other, "mallory")]),
            Verdict::Failed {
                reason: "unable to get local issuer certificate",
                unknown_issuer: true
            }
        );
        assert_eq!(
            verdict(&auth, &[client(&other, "mallory"), other.der.clone()]),
            Verdict::Failed {
                reason: "self-signed certificate in certificate chain",
                unknown_issuer: true
            }
        );
        let key = KeyPair::generate().expect("key");
        let own = client_params("me", 1).self_signed(&key).expect("cert");
        assert_eq!(
            verdict(&auth, &[own.der().clone()]),
            Verdict::Failed {
                reason: "self-signed certificate",
                unknown_issuer: true
            }
        );
        let none = auth.verify("app.test", None, UnixTime::now());
        assert_eq!(none.verdict(), Verdict::None);
        assert_eq!(none.verify_header(), "NONE");
        assert!(none.subject_dn().is_none() && none.escaped_cert().is_none());
    }

    #[test]
    fn expiry_and_purpose_are_checked() {
        let root = ca("root");
        let auth = auth(&root.pem, 1);
        let key = KeyPair::generate().expect("key");
        let mut old = client_params("old", 2);
        old.not_before = rcgen::date_time_ymd(2020, 1, 1);
        old.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let old = old.signed_by(&key, &root.issuer).expect("cert");
        assert_eq!(
            verdict(&auth, &[old.der().clone()]),
            Verdict::Failed {
                reason: "certificate has expired",
                unknown_issuer: false
            }
        );
        let mut server_only = client_params("server", 3);
        server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_only = server_only.signed_by(&key, &root.issuer).expect("cert");
        assert_eq!(
            verdict(&auth, &[server_only.der().clone()]),
            Verdict::Failed {
                reason: "unsupported certificate purpose",
                unknown_issuer: false
            }
        );
    }

    #[test]
    fn depth_counts_intermediates_between_the_leaf_and_the_ca() {
        let root = ca("root");
        let mid1 = intermediate(&root, "mid 1");
        let mid2 = intermediate(&mid1, "mid 2");
        let direct = client(&root, "direct");
        let one = client(&mid1, "one");
        let two = client(&mid2, "two");
        let too_long = Verdict::Failed {
            reason: "certificate chain too long",
            unknown_issuer: false,
        };
        let d0 = auth(&root.pem, 0);
        assert_eq!(
            verdict(&d0, std::slice::from_ref(&direct)),
            Verdict::Success
        );
        assert_eq!(verdict(&d0, &[one.clone(), mid1.der.clone()]), too_long);
        let d1 = auth(&root.pem, 1);
        assert_eq!(
            verdict(&d1, &[one.clone(), mid1.der.clone()]),
            Verdict::Success
        );
        let chain2 = [two.clone(), mid2.der.clone(), mid1.der.clone()];
        assert_eq!(verdict(&d1, &chain2), too_long);
        // Extra, unrelated certificates do not count.
        let stray = ca("stray").der;
        assert_eq!(
            verdict(&d1, &[one.clone(), stray.clone(), mid1.der.clone()]),
            Verdict::Success
        );
        let d2 = auth(&root.pem, 2);
        assert_eq!(verdict(&d2, &chain2), Verdict::Success);
        assert_eq!(
            verdict(&d2, &[two, stray, mid2.der.clone(), mid1.der.clone()]),
            Verdict::Success
        );
        // The missing intermediate is not the CA's: unknown issuer.
        assert!(matches!(
            verdict(&d2, &[one]),
            Verdict::Failed {
                unknown_issuer: true,
                ..
            }
        ));
        // An intermediate in ca.crt is a trust anchor itself.
        let mid_ca = auth(&format!("{}{}", mid1.pem, root.pem), 0);
        assert_eq!(verdict(&mid_ca, &[client(&mid1, "x")]), Verdict::Success);
    }

    #[test]
    fn revoked_certificates_fail_with_a_crl() {
        let root = ca("root");
        let key = KeyPair::generate().expect("key");
        let revoked = client_params("revoked", 42)
            .signed_by(&key, &root.issuer)
            .expect("cert");
        let kept = client_params("kept", 43)
            .signed_by(&key, &root.issuer)
            .expect("cert");
        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(42u64),
                revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&root.issuer)
        .expect("CRL");
        let ca = ClientCa::from_pem(
            root.pem.as_bytes(),
            Some(crl.pem().expect("pem").as_bytes()),
        )
        .expect("CA with CRL");
        let auth = HostClientAuth::new(ca, 1, VerifyClient::On);
        assert_eq!(
            verdict(&auth, &[revoked.der().clone()]),
            Verdict::Failed {
                reason: "certificate revoked",
                unknown_issuer: false
            }
        );
        assert_eq!(verdict(&auth, &[kept.der().clone()]), Verdict::Success);
    }

    #[test]
    fn names_are_printed_as_openssl_rfc2253() {
        let root = ca("Root CA");
        let leaf = client(&root, "alice");
        let peer = auth(&root.pem, 1).verify("App.Test.", Some(&[leaf]), UnixTime::now());
        assert_eq!(peer.sni(), "app.test");
        assert_eq!(peer.verify_header(), "SUCCESS");
        assert_eq!(
            peer.subject_dn().map(HeaderValue::as_bytes),
            Some(&b"CN=alice,O=Acme\\, Inc."[..])
        );
        assert_eq!(
            peer.issuer_dn().map(HeaderValue::as_bytes),
            Some(&b"CN=Root CA"[..])
        );
        let mut out = String::new();
        escape_value(" #a+b;<c> \"d\"\\\u{1}é ", &mut out);
        assert_eq!(out, "\\ #a\\+b\\;\\<c\\> \\\"d\\\"\\\\\\01\\C3\\A9\\ ");
        let mut out = String::new();
        escape_value("#x", &mut out);
        assert_eq!(out, "\\#x");
    }

    #[test]
    fn the_pem_is_escaped_as_nginx_escapes_a_uri_component() {
        assert_eq!(
            escape_uri_component("a-b_c.d~e!f*g'h(i)j k+l/m=n\no:p?q&r%s"),
            "a-b_c.d~e!f*g'h(i)j%20k%2Bl%2Fm%3Dn%0Ao%3Ap%3Fq%26r%25s"
        );
        let der: Vec<u8> = (0u8..=255).collect();
        let escaped = escaped_pem(&der);
        assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(escaped.ends_with("%0A-----END%20CERTIFICATE-----%0A"));
        // Back to PEM, the base64 lines are 64 columns and decode to the DER.
        let pem = escaped
            .replace("%20", " ")
            .replace("%0A", "\n")
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body.iter().all(|l| l.len() <= 64));
        assert_eq!(body[0].len(), 64);
        assert_eq!(STANDARD.decode(body.concat()).expect("base64"), der);
    }

    #[test]
    fn subsets_enumerates_every_choice_once() {
        let all: Vec<Vec<usize>> = Subsets::new(4, 2).collect();
        assert_eq!(
            all,
            [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]].map(Vec::from)
        );
        assert_eq!(Subsets::new(3, 0).count(), 1);
        assert_eq!(Subsets::new(2, 3).count(), 0);
        assert_eq!(Subsets::new(8, 4).count(), 70);
    }
}
