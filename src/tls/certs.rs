//! Loading certificates: a `kubernetes.io/tls` Secret (or raw PEM) becomes a
//! checked [`LoadedCert`]; [`self_signed_default`] makes the fallback certificate.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::ring::default_provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::time::ASN1Time;

use super::leaf::Leaf;

/// A certificate chain and key from a kubernetes.io/tls Secret, parsed and checked.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The chain (leaf first, then intermediates) and signing key, ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// DNS names the leaf certificate covers (SAN dNSName entries, lowercased; the CN only
    /// when there is no SAN), wildcards kept as `*.example.com`.
    pub dns_names: Vec<String>,
    /// notAfter of the leaf, as Unix seconds.
    pub not_after: i64,
    /// notBefore of the leaf, as Unix seconds.
    pub not_before: i64,
    /// The leaf's issuer (distinguished name), for the dashboard.
    pub issuer: String,
    /// The leaf's subject (distinguished name).
    pub subject: String,
}

impl LoadedCert {
    /// Whether the leaf is past its notAfter at `unix_now`; callers warn but keep serving it.
    pub fn is_expired_at(&self, unix_now: i64) -> bool {
        unix_now > self.not_after
    }
}

/// Why a TLS Secret (or the generated default) could not become a [`LoadedCert`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The Secret has no `tls.crt` or `tls.key` entry (in `data` or `stringData`).
    #[error("the Secret has no {0:?} entry")]
    MissingField(&'static str),
    /// The named entry is not PEM text.
    #[error("{0:?} is not PEM (expected -----BEGIN ...----- blocks)")]
    NotPem(&'static str),
    /// `tls.crt` has PEM blocks but no CERTIFICATE among them.
    #[error("\"tls.crt\" contains no CERTIFICATE block")]
    NoCertificate,
    /// `tls.key` has PEM blocks but no private key among them.
    #[error("\"tls.key\" contains no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block")]
    NoPrivateKey,
    /// The private key is of a type or size the TLS stack cannot sign with.
    #[error("unsupported private key (RSA >= 2048 bits, ECDSA P-256/P-384 or Ed25519 work): {0}")]
    UnsupportedKey(String),
    /// The private key does not belong to the first (leaf) certificate of `tls.crt`.
    #[error("\"tls.key\" does not match the first certificate in \"tls.crt\"")]
    KeyMismatch,
    /// A certificate in `tls.crt` could not be parsed as X.509.
    #[error("bad certificate in \"tls.crt\": {0}")]
    BadCertificate(String),
    /// Generating key material or a TLS configuration failed (random source or rcgen error).
    #[error("could not generate TLS material: {0}")]
    Generate(String),
    /// The CA bundle for verifying backends holds no usable CERTIFICATE.
    #[error("bad CA bundle: {0}")]
    BadCa(String),
}

/// Reads `data["tls.crt"]`/`data["tls.key"]` (k8s-openapi ByteString, already base64-decoded),
/// falling back to `string_data` if `data` lacks them.
pub fn load_tls_secret(secret: &Secret) -> Result<LoadedCert, CertError> {
    let cert = secret_field(secret, "tls.crt")?;
    let key = secret_field(secret, "tls.key")?;
    load_pem(cert, key)
}

fn secret_field<'a>(secret: &'a Secret, field: &'static str) -> Result<&'a [u8], CertError> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(field))
        .map(|b| b.0.as_slice());
    let from_string = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(field))
            .map(String::as_bytes)
    };
    from_data
        .or_else(from_string)
        .ok_or(CertError::MissingField(field))
}

/// Same as [`load_tls_secret`], from raw PEM bytes.
pub fn load_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert, CertError> {
    let chain: Vec<CertificateDer<'static>> = sections(cert_pem, "tls.crt")?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    // The first key block wins; openssl's `EC PARAMETERS` block before it is skipped.
    let key = sections(key_pem, "tls.key")?
        .into_iter()
        .find_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
        .ok_or(CertError::NoPrivateKey)?;
    from_der(chain, key)
}

/// Every PEM block in `pem`; `NotPem` for malformed PEM or text with no blocks at all.
fn sections(pem: &[u8], field: &'static str) -> Result<Vec<(SectionKind, Vec<u8>)>, CertError> {
    let found = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertError::NotPem(field))?;
    if found.is_empty() {
        return Err(CertError::NotPem(field));
    }
    Ok(found)
}

/// Checks every certificate parses, the key is usable and matches the leaf.
fn from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<LoadedCert, CertError> {
    for cert in chain.iter().skip(1) {
        Leaf::parse(cert)?;
    }
    let leaf = Leaf::parse(chain.first().ok_or(CertError::NoCertificate)?)?;
    let signer = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    // The ring provider reports public keys for every type it loads, so an
    // "unknown" answer is as bad as a mismatch: refuse rather than serve a broken pair.
    certified.keys_match().map_err(|_| CertError::KeyMismatch)?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        dns_names: leaf.dns_names,
        not_after: leaf.not_after,
        not_before: leaf.not_before,
        issuer: leaf.issuer,
        subject: leaf.subject,
    })
}

/// Seconds in a day, for validity arithmetic.
const DAY: i64 = 24 * 60 * 60;

/// The fallback certificate: self-signed (rcgen), CN "sluice default certificate",
/// valid ~10 years, ECDSA P-256.
pub fn self_signed_default() -> Result<LoadedCert, CertError> {
    let generate = |e: rcgen::Error| CertError::Generate(e.to_string());
    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "sluice default certificate");
    // rcgen wants `time` dates; x509-parser's ASN1Time converts without naming that crate.
    let at = |unix: i64| {
        ASN1Time::from_timestamp(unix)
            .map(|t| t.to_datetime())
            .map_err(|e| CertError::Generate(e.to_string()))
    };
    let now = ASN1Time::now().timestamp();
    // A day of slack for clients whose clocks run behind.
    params.not_before = at(now - DAY)?;
    params.not_after = at(now + 3650 * DAY)?;
    let cert = params.self_signed(&key_pair).map_err(generate)?;
    let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
    from_der(vec![cert.der().clone()], key.into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use rcgen::{date_time_ymd, KeyPair, PKCS_ED25519};

    use super::*;
    use crate::tls::fixtures::{self, RSA_PKCS1, RSA_PKCS8};

    fn leaf_der(loaded: &LoadedCert) -> &[u8] {
        loaded.key.cert[0].as_ref()
    }

    #[test]
    fn rsa_pkcs1_and_pkcs8() {
        let key = KeyPair::from_pem(RSA_PKCS8).expect("ring reads RSA PKCS#8");
        let cert = fixtures::self_signed(&["rsa.example.com"], &key);
        for key_pem in [RSA_PKCS1, RSA_PKCS8] {
            let loaded = load_pem(cert.as_bytes(), key_pem.as_bytes()).expect("RSA loads");
            assert_eq!(loaded.dns_names, ["rsa.example.com"]);
        }
    }

    #[test]
    fn ecdsa_sec1_with_openssl_parameters_block_and_pkcs8() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = fixtures::self_signed(&["ec.example.com"], &key);
        let sec1 = fixtures::sec1_from_pkcs8(key.serialized_der());
        let openssl_style = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            fixtures::pem("EC PRIVATE KEY", &sec1)
        );
        let plain_sec1 = fixtures::pem("EC PRIVATE KEY", &sec1);
        for key_pem in [openssl_style, plain_sec1, key.serialize_pem()] {
            load_pem(cert.as_bytes(), key_pem.as_bytes()).expect("ECDSA loads");
        }
    }

    #[test]
    fn ed25519_pkcs8() {
        let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
        let cert = fixtures::self_signed(&["ed.example.com"], &key);
        load_pem(cert.as_bytes(), key.serialize_pem().as_bytes()).expect("Ed25519 loads");
    }

    #[test]
    fn chain_keeps_leaf_then_intermediate() {
        let root = fixtures::ca("root");
        let mid = fixtures::intermediate(&root, "intermediate");
        let (leaf, key) = fixtures::leaf(&mid, &["a.example.com"]);
        let chain = format!("{leaf}{}", mid.pem());
        let loaded = load_pem(chain.as_bytes(), key.as_bytes()).expect("chain loads");
        assert_eq!(loaded.key.cert.len(), 2);
        assert_eq!(loaded.key.cert[1].as_ref(), mid.der().as_ref());
        assert_ne!(leaf_der(&loaded), mid.der().as_ref());
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let root = fixtures::ca("root");
        let (cert, _) = fixtures::leaf(&root, &["a.example.com"]);
        let (_, other_key) = fixtures::leaf(&root, &["b.example.com"]);
        let err = load_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert_eq!(err, CertError::KeyMismatch);
    }

    #[test]
    fn garbage_and_missing_blocks() {
        let root = fixtures::ca("root");
        let (cert, key) = fixtures::leaf(&root, &["a.example.com"]);
        assert_eq!(
            load_pem(b"hello", key.as_bytes()).unwrap_err(),
            CertError::NotPem("tls.crt")
        );
        assert_eq!(
            load_pem(cert.as_bytes(), b"\x00\xff").unwrap_err(),
            CertError::NotPem("tls.key")
        );
        assert_eq!(
            load_pem(key.as_bytes(), key.as_bytes()).unwrap_err(),
            CertError::NoCertificate
        );
        assert_eq!(
            load_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err(),
            CertError::NoPrivateKey
        );
        let broken = fixtures::pem("CERTIFICATE", b"not der");
        let err = load_pem(broken.as_bytes(), key.as_bytes()).unwrap_err();
        assert!(matches!(err, CertError::BadCertificate(_)), "{err:?}");
    }

    #[test]
    fn secret_data_then_string_data_then_missing_field() {
        let root = fixtures::ca("root");
        let (cert, key) = fixtures::leaf(&root, &["a.example.com"]);
        let mut secret = Secret {
            data: Some(BTreeMap::from([(
                "tls.crt".to_owned(),
                ByteString(cert.into_bytes()),
            )])),
            ..Secret::default()
        };
        assert_eq!(
            load_tls_secret(&secret).unwrap_err(),
            CertError::MissingField("tls.key")
        );
        secret.string_data = Some(BTreeMap::from([("tls.key".to_owned(), key)]));
        assert_eq!(
            load_tls_secret(&secret).expect("loads").dns_names,
            ["a.example.com"]
        );
        secret.data = None;
        assert_eq!(
            load_tls_secret(&secret).unwrap_err(),
            CertError::MissingField("tls.crt")
        );
    }

    #[test]
    fn san_names_lowercased_with_wildcards() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = fixtures::self_signed(&["A.Example.com", "*.Apps.example.com"], &key);
        let loaded = load_pem(cert.as_bytes(), key.serialize_pem().as_bytes()).expect("loads");
        assert_eq!(loaded.dns_names, ["a.example.com", "*.apps.example.com"]);
    }

    #[test]
    fn cn_used_only_without_san() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Legacy.Example.com");
        let cert = params.self_signed(&key).expect("sign").pem();
        let loaded = load_pem(cert.as_bytes(), key.serialize_pem().as_bytes()).expect("loads");
        assert_eq!(loaded.dns_names, ["legacy.example.com"]);
        params.subject_alt_names = fixtures::leaf_params(&["san.example.com"]).subject_alt_names;
        let cert = params.self_signed(&key).expect("sign").pem();
        let loaded = load_pem(cert.as_bytes(), key.serialize_pem().as_bytes()).expect("loads");
        assert_eq!(loaded.dns_names, ["san.example.com"]);
    }

    #[test]
    fn validity_and_expired_certificates_still_load() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = fixtures::leaf_params(&["old.example.com"]);
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
        let cert = params.self_signed(&key).expect("sign").pem();
        let loaded = load_pem(cert.as_bytes(), key.serialize_pem().as_bytes()).expect("loads");
        assert_eq!(loaded.not_before, 946_684_800);
        assert_eq!(loaded.not_after, 978_307_200);
        assert!(loaded.is_expired_at(ASN1Time::now().timestamp()));
        assert!(!loaded.is_expired_at(978_307_200));
    }

    #[test]
    fn default_certificate() {
        let loaded = self_signed_default().expect("generates");
        let now = ASN1Time::now().timestamp();
        assert!(loaded.not_before <= now && !loaded.is_expired_at(now));
        assert!(loaded.not_after - now > 9 * 365 * DAY);
        assert!(loaded.dns_names.is_empty(), "the CN is not a host name");
        let (_, cert) = x509_parser::parse_x509_certificate(leaf_der(&loaded)).expect("parses");
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok());
        assert_eq!(cn, Some("sluice default certificate"));
        assert_eq!(
            loaded.key.key.algorithm(),
            rustls::SignatureAlgorithm::ECDSA
        );
    }
}
