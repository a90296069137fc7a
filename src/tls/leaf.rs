//! What the listener needs from a leaf certificate: the DNS names it covers and
//! its validity window. Parsed once at load time with x509-parser.

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::certs::CertError;

/// Names and validity of one parsed certificate.
pub(crate) struct Leaf {
    /// SAN dNSName entries, lowercased; the CN only when the certificate has no SAN.
    pub(crate) dns_names: Vec<String>,
    /// notBefore, Unix seconds.
    pub(crate) not_before: i64,
    /// notAfter, Unix seconds.
    pub(crate) not_after: i64,
    /// The issuer's distinguished name (RFC 4514 form).
    pub(crate) issuer: String,
    /// The subject's distinguished name.
    pub(crate) subject: String,
}

impl Leaf {
    /// Parses `der`; anything that is not a well-formed X.509 certificate is `BadCertificate`.
    pub(crate) fn parse(der: &CertificateDer<'_>) -> Result<Self, CertError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CertError::BadCertificate(e.to_string()))?;
        let validity = cert.validity();
        Ok(Self {
            dns_names: dns_names(&cert)?,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            issuer: cert.issuer().to_string(),
            subject: cert.subject().to_string(),
        })
    }
}

/// RFC 6125: when a SAN extension is present the CN is ignored, as browsers do.
fn dns_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, CertError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::BadCertificate(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        let names = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            });
        return Ok(names.collect());
    }
    // A CN such as "sluice default certificate" names no host; only host-like CNs count.
    let cn = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok());
    Ok(cn
        .filter(|cn| is_host_like(cn))
        .map(str::to_ascii_lowercase)
        .take(1)
        .collect())
}

/// Letters, digits, `-`, `_`, `.` and `*` only, and not empty.
fn is_host_like(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
}
