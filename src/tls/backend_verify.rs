//! Backend certificate verification with Gateway API BackendTLSPolicy (v1) semantics.
//!
//! - The trusted CAs are either an operator's PEM bundle (`caCertificateRefs`) or the
//!   well-known public set (`wellKnownCACertificates: System`): [`TrustRoots`].
//! - `hostname` is always the SNI (the caller's business: hyper-rustls sends the name it
//!   is given). With no `subjectAltNames`, the certificate must be valid for `hostname`
//!   (the plain webpki check).
//! - With `subjectAltNames`, the certificate must still chain to the trusted CAs (for the
//!   serverAuth usage, at the current time), and must carry at least one of the listed
//!   names; `hostname` is then not checked against it.
//!
//! Handshake signatures are always checked by rustls' webpki verifier, and a failed check
//! fails the handshake (the connection is never made without TLS).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::ring::default_provider;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use x509_parser::extensions::GeneralName;

use super::certs::CertError;
use super::client::{ca_roots, well_known_roots};

/// One BackendTLSPolicy `subjectAltNames` entry: a name the backend certificate may carry
/// instead of `hostname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    /// A dNSName SAN (`type: Hostname`). Compared case-insensitively, a trailing dot
    /// ignored; a `*.` wildcard SAN in the certificate covers exactly one leading label.
    /// A wildcard listed here only matches the same wildcard in the certificate.
    Hostname(String),
    /// A uniformResourceIdentifier SAN (`type: URI`, e.g. a SPIFFE ID), compared exactly.
    Uri(String),
}

/// Which CAs a backend certificate must chain to.
#[derive(Debug, Clone, Copy)]
pub enum TrustRoots<'a> {
    /// The CERTIFICATE blocks of a PEM bundle (the `ca.crt` of the referenced objects).
    Pem(&'a [u8]),
    /// The well-known public CAs ([`well_known_roots`]).
    WellKnown,
}

impl TrustRoots<'_> {
    /// The root store → CertError::BadCa for a PEM bundle with no usable certificate.
    pub fn store(&self) -> Result<RootCertStore, CertError> {
        match self {
            Self::Pem(pem) => ca_roots(pem),
            Self::WellKnown => Ok(well_known_roots()),
        }
    }
}

/// Client config for a verified HTTPS backend: certificates must chain to `roots`, and be
/// valid for the server name the connection is made with (no `subject_alt_names`) or
/// carry one of `subject_alt_names`. `alpn`: protocols to offer.
pub fn backend_client_config(
    roots: TrustRoots<'_>,
    subject_alt_names: &[SubjectAltName],
    alpn: &[&[u8]],
) -> Result<ClientConfig, CertError> {
    let verifier = BackendVerifier::new(roots.store()?, subject_alt_names.to_vec())?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The [`ServerCertVerifier`] behind [`backend_client_config`]: rustls' webpki verifier,
/// with the name check replaced by a SAN check when `subjectAltNames` are listed.
#[derive(Debug)]
pub struct BackendVerifier {
    /// Chain + name checks (no SANs listed) and every handshake signature check.
    webpki: Arc<WebPkiServerVerifier>,
    /// The same trust anchors, for the chain-only check when SANs are listed.
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    subject_alt_names: Vec<SubjectAltName>,
}

impl BackendVerifier {
    /// A verifier trusting `roots` → CertError::BadCa when `roots` is empty.
    pub fn new(
        roots: RootCertStore,
        subject_alt_names: Vec<SubjectAltName>,
    ) -> Result<Self, CertError> {
        let provider = Arc::new(default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let roots = Arc::new(roots);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .map_err(|e| CertError::BadCa(e.to_string()))?;
        Ok(Self {
            webpki,
            roots,
            algorithms,
            subject_alt_names,
        })
    }
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.subject_alt_names.is_empty() {
            return self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        // The chain first: a certificate from another CA is refused as such.
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let presented = Presented::parse(end_entity)?;
        if self
            .subject_alt_names
            .iter()
            .any(|want| presented.has(want))
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The SAN entries of a certificate (the CN is never consulted, as in webpki).
struct Presented {
    /// dNSName entries, lowercased, without a trailing dot.
    dns: Vec<String>,
    /// uniformResourceIdentifier entries, as written.
    uris: Vec<String>,
}

impl Presented {
    fn parse(der: &CertificateDer<'_>) -> Result<Self, Error> {
        let bad = || Error::InvalidCertificate(CertificateError::BadEncoding);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| bad())?;
        let mut presented = Self {
            dns: Vec::new(),
            uris: Vec::new(),
        };
        let Some(san) = cert.subject_alternative_name().map_err(|_| bad())? else {
            return Ok(presented);
        };
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => presented.dns.push(normalize(dns)),
                GeneralName::URI(uri) => presented.uris.push((*uri).to_owned()),
                _ => {}
            }
        }
        Ok(presented)
    }

    fn has(&self, want: &SubjectAltName) -> bool {
        match want {
            SubjectAltName::Hostname(host) => {
                let host = normalize(host);
                !host.is_empty() && self.dns.iter().any(|dns| dns_matches(dns, &host))
            }
            SubjectAltName::Uri(uri) => !uri.is_empty() && self.uris.iter().any(|u| u == uri),
        }
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether the certificate's `presented` dNSName covers `host` (both normalized): equal, or
/// `*.rest` with `host` = one non-empty, non-wildcard label + `.rest` (RFC 6125 §6.4.3, the
/// wildcard being the whole leftmost label), and `rest` at least two labels (no `*.com`).
fn dns_matches(presented: &str, host: &str) -> bool {
    if presented == host {
        return true;
    }
    let Some(rest) = presented.strip_prefix("*.") else {
        return false;
    };
    if !rest.contains('.') || rest.contains('*') || rest.split('.').any(str::is_empty) {
        return false;
    }
    match host.split_once('.') {
        Some((label, host_rest)) => !label.is_empty() && !label.contains('*') && host_rest == rest,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::load_pem;
    use crate::tls::fixtures::{self, Ca};
    use crate::tls::server::{server_config, SniResolver, TlsVersion};
    use rcgen::{KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn serving(cert_pem: &str, key_pem: &str) -> rustls::ServerConfig {
        let key = load_pem(cert_pem.as_bytes(), key_pem.as_bytes())
            .expect("loads")
            .key;
        let resolver = Arc::new(SniResolver::new(move |_| Some(key.clone())));
        server_config(resolver, TlsVersion::V1_2).expect("config")
    }

    /// A leaf signed by `ca` with exactly `sans`: (cert PEM, key PEM).
    fn leaf_with(ca: &Ca, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = fixtures::leaf_params(&[]);
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, ca).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().expect("ia5"))
    }

    fn uri(name: &str) -> SanType {
        SanType::URI(name.try_into().expect("ia5"))
    }

    /// One real handshake over loopback TCP, the client sending `sni`; then a byte each way
    /// so both sides saw the handshake finish. The SNI the server received on success.
    async fn connect(
        server: rustls::ServerConfig,
        client: ClientConfig,
        sni: &str,
    ) -> std::io::Result<Option<String>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            tls.write_all(&byte).await?;
            tls.shutdown().await?;
            std::io::Result::Ok(sni)
        });
        let name = ServerName::try_from(sni.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let client = async {
            let tcp = TcpStream::connect(addr).await?;
            let mut tls = connector.connect(name, tcp).await?;
            tls.write_all(b"x").await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            assert_eq!(&byte, b"x");
            std::io::Result::Ok(())
        };
        let outcome = client.await;
        let served = server.await.expect("server task");
        outcome?;
        served
    }

    fn config(ca: &Ca, sans: &[SubjectAltName]) -> ClientConfig {
        backend_client_config(TrustRoots::Pem(ca.pem().as_bytes()), sans, &[b"http/1.1"])
            .expect("config")
    }

    fn is_cert_error(err: &std::io::Error, want: &CertificateError) -> bool {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .is_some_and(|e| matches!(e, Error::InvalidCertificate(c) if c == want))
    }

    /// Refused because the certificate does not carry the name (with or without context).
    fn is_name_error(err: &std::io::Error) -> bool {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .is_some_and(|e| {
                matches!(
                    e,
                    Error::InvalidCertificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                )
            })
    }

    #[tokio::test]
    async fn without_sans_the_hostname_must_match() {
        let ca = fixtures::ca("backend CA");
        let (cert, key) = fixtures::leaf(&ca, &["backend.ns.svc"]);
        let sni = connect(serving(&cert, &key), config(&ca, &[]), "backend.ns.svc").await;
        assert_eq!(sni.expect("trusted").as_deref(), Some("backend.ns.svc"));
        let err = connect(serving(&cert, &key), config(&ca, &[]), "other.ns.svc")
            .await
            .expect_err("wrong hostname");
        assert!(is_name_error(&err), "{err}");
    }

    #[tokio::test]
    async fn a_listed_dns_san_replaces_the_hostname_check() {
        let ca = fixtures::ca("backend CA");
        let (cert, key) = fixtures::leaf(&ca, &["api.internal", "metrics.internal"]);
        let sans = [
            SubjectAltName::Hostname("nope.internal".into()),
            SubjectAltName::Hostname("Metrics.Internal.".into()),
        ];
        // The SNI is the hostname, which the certificate does not carry.
        let sni = connect(serving(&cert, &key), config(&ca, &sans), "backend.ns.svc").await;
        assert_eq!(sni.expect("SAN listed").as_deref(), Some("backend.ns.svc"));
    }

    #[tokio::test]
    async fn a_wildcard_san_covers_one_label() {
        let ca = fixtures::ca("backend CA");
        let (cert, key) = fixtures::leaf(&ca, &["*.backend.example"]);
        let one = [SubjectAltName::Hostname("api.backend.example".into())];
        assert!(
            connect(serving(&cert, &key), config(&ca, &one), "backend.ns.svc")
                .await
                .is_ok()
        );
        for host in ["a.api.backend.example", "backend.example"] {
            let listed = [SubjectAltName::Hostname(host.into())];
            assert!(
                connect(serving(&cert, &key), config(&ca, &listed), "backend.ns.svc")
                    .await
                    .is_err_and(|e| is_name_error(&e)),
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn listed_sans_the_certificate_lacks_fail_even_with_the_hostname() {
        let ca = fixtures::ca("backend CA");
        let (cert, key) = fixtures::leaf(&ca, &["backend.ns.svc"]);
        let sans = [
            SubjectAltName::Hostname("api.internal".into()),
            SubjectAltName::Uri("spiffe://cluster.local/ns/ns/sa/backend".into()),
        ];
        let err = connect(serving(&cert, &key), config(&ca, &sans), "backend.ns.svc")
            .await
            .expect_err("no listed SAN");
        assert!(is_name_error(&err), "{err}");
    }

    #[tokio::test]
    async fn a_uri_san_must_match_exactly() {
        let ca = fixtures::ca("backend CA");
        let id = "spiffe://cluster.local/ns/shop/sa/cart";
        let (cert, key) = leaf_with(&ca, vec![uri(id)]);
        let listed = [SubjectAltName::Uri(id.into())];
        let sni = connect(serving(&cert, &key), config(&ca, &listed), "cart.shop.svc").await;
        assert_eq!(sni.expect("URI SAN").as_deref(), Some("cart.shop.svc"));
        for other in [
            SubjectAltName::Uri("spiffe://cluster.local/ns/shop/sa/cart/x".into()),
            SubjectAltName::Uri("spiffe://cluster.local/ns/shop/sa".into()),
            // A URI is not a dNSName.
            SubjectAltName::Hostname("cluster.local".into()),
        ] {
            assert!(
                connect(
                    serving(&cert, &key),
                    config(&ca, std::slice::from_ref(&other)),
                    "cart.shop.svc"
                )
                .await
                .is_err_and(|e| is_name_error(&e)),
                "{other:?}"
            );
        }
    }

    #[tokio::test]
    async fn another_ca_fails_with_or_without_sans() {
        let (ours, theirs) = (fixtures::ca("our CA"), fixtures::ca("their CA"));
        let (cert, key) = leaf_with(
            &theirs,
            vec![dns("backend.ns.svc"), uri("spiffe://cluster.local/backend")],
        );
        let listed = [
            SubjectAltName::Hostname("backend.ns.svc".into()),
            SubjectAltName::Uri("spiffe://cluster.local/backend".into()),
        ];
        for sans in [&[][..], &listed[..]] {
            let err = connect(serving(&cert, &key), config(&ours, sans), "backend.ns.svc")
                .await
                .expect_err("untrusted CA");
            assert!(
                is_cert_error(&err, &CertificateError::UnknownIssuer),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn an_intermediate_chain_is_accepted_with_sans() {
        let root = fixtures::ca("root");
        let mid = fixtures::intermediate(&root, "intermediate");
        let (leaf, key) = leaf_with(&mid, vec![dns("api.internal")]);
        let chain = format!("{leaf}{}", mid.pem());
        let listed = [SubjectAltName::Hostname("api.internal".into())];
        assert!(connect(
            serving(&chain, &key),
            config(&root, &listed),
            "backend.ns.svc"
        )
        .await
        .is_ok());
    }

    #[tokio::test]
    async fn well_known_roots_trust_public_cas_only() {
        assert!(!well_known_roots().is_empty());
        let ca = fixtures::ca("private CA");
        let (cert, key) = fixtures::leaf(&ca, &["backend.ns.svc"]);
        let listed = [SubjectAltName::Hostname("backend.ns.svc".into())];
        for sans in [&[][..], &listed[..]] {
            let client = backend_client_config(TrustRoots::WellKnown, sans, &[]).expect("config");
            assert!(
                connect(serving(&cert, &key), client, "backend.ns.svc")
                    .await
                    .is_err_and(|e| is_cert_error(&e, &CertificateError::UnknownIssuer)),
                "a private CA is not well known"
            );
        }
    }

    #[test]
    fn garbage_ca_bundles_are_refused() {
        for garbage in [&b"hello"[..], b""] {
            let err = backend_client_config(TrustRoots::Pem(garbage), &[], &[]).unwrap_err();
            assert!(matches!(err, CertError::BadCa(_)), "{err:?}");
        }
    }

    #[test]
    fn wildcard_matching_is_single_label() {
        assert!(dns_matches("*.a.example", "x.a.example"));
        assert!(dns_matches("a.example", "a.example"));
        assert!(dns_matches("*.a.example", "*.a.example"));
        assert!(!dns_matches("*.a.example", "a.example"));
        assert!(!dns_matches("*.a.example", "y.x.a.example"));
        assert!(!dns_matches("*.a.example", ".a.example"));
        assert!(!dns_matches("*.example", "a.example"));
        assert!(!dns_matches("x*.a.example", "xy.a.example"));
        assert!(!dns_matches("*.*.example", "a.b.example"));
    }
}
