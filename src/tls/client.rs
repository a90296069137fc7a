//! Client configs for HTTPS backends: one that trusts any certificate (pod IPs carry
//! no names) and one that verifies against an operator-supplied CA bundle.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::ring::default_provider;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use super::certs::CertError;

/// Client config for HTTPS backends without certificate verification (pod IPs have no names,
/// as in Traefik): accepts any certificate but still verifies handshake signatures with the
/// provider's algorithms. `alpn`: protocols to offer (e.g. [b"http/1.1"] or [b"h2"]).
pub fn insecure_client_config(alpn: &[&[u8]]) -> ClientConfig {
    insecure_with_versions(alpn, rustls::DEFAULT_VERSIONS)
}

/// [`insecure_client_config`] limited to `versions` (to pin a TLS version).
pub fn insecure_with_versions(
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let provider = Arc::new(default_provider());
    let verifier = AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Client config that verifies the backend against the CA certificates in `ca_pem` (PEM, one
/// or more CERTIFICATE blocks) → CertError::BadCa on garbage.
pub fn verifying_client_config(ca_pem: &[u8], alpn: &[&[u8]]) -> Result<ClientConfig, CertError> {
    let roots = ca_roots(ca_pem)?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The trust anchors in `ca_pem` (PEM, one or more CERTIFICATE blocks) → CertError::BadCa on
/// garbage or when there is no certificate at all.
pub fn ca_roots(ca_pem: &[u8]) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| CertError::BadCa(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| CertError::BadCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(CertError::BadCa("no CERTIFICATE block".into()));
    }
    Ok(roots)
}

/// The well-known public CAs (Mozilla's set, compiled in from `webpki-roots`): what
/// BackendTLSPolicy's `wellKnownCACertificates: System` trusts. Compiled in rather than read
/// from the host so that a distroless image without `/etc/ssl` behaves the same.
pub fn well_known_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Trusts any server certificate; handshake signatures are still checked so the peer must
/// hold the key for the certificate it sent.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::{load_pem, self_signed_default};
    use crate::tls::fixtures::{self, handshake};
    use crate::tls::server::{server_config, SniResolver, TlsVersion};

    fn serving(cert_pem: &str, key_pem: &str) -> rustls::ServerConfig {
        let key = load_pem(cert_pem.as_bytes(), key_pem.as_bytes())
            .expect("loads")
            .key;
        let resolver = Arc::new(SniResolver::new(move |_| Some(key.clone())));
        server_config(resolver, TlsVersion::V1_2).expect("config")
    }

    #[tokio::test]
    async fn insecure_config_accepts_a_self_signed_backend() {
        let key = self_signed_default().expect("generates").key;
        let resolver = Arc::new(SniResolver::new(move |_| Some(key.clone())));
        let server = server_config(resolver, TlsVersion::V1_2).expect("config");
        let client = insecure_client_config(&[b"http/1.1"]);
        let shook = handshake(server, client, "10.0.0.7")
            .await
            .expect("handshake");
        assert_eq!(shook.alpn.as_deref(), Some(&b"http/1.1"[..]));
    }

    #[tokio::test]
    async fn verifying_config_trusts_only_its_ca() {
        let (ours, theirs) = (fixtures::ca("our CA"), fixtures::ca("their CA"));
        let (good_cert, good_key) = fixtures::leaf(&ours, &["backend.ns.svc"]);
        let (bad_cert, bad_key) = fixtures::leaf(&theirs, &["backend.ns.svc"]);
        let bundle = format!("{}{}", fixtures::ca("unrelated").pem(), ours.pem());
        let client = || verifying_client_config(bundle.as_bytes(), &[b"h2"]).expect("config");
        let server = serving(&good_cert, &good_key);
        let shook = handshake(server.clone(), client(), "backend.ns.svc").await;
        assert_eq!(shook.expect("trusted").alpn.as_deref(), Some(&b"h2"[..]));
        assert!(
            handshake(server, client(), "other.ns.svc").await.is_err(),
            "wrong name"
        );
        let stranger = serving(&bad_cert, &bad_key);
        assert!(
            handshake(stranger, client(), "backend.ns.svc")
                .await
                .is_err(),
            "wrong CA"
        );
    }

    #[test]
    fn garbage_ca_bundles_are_refused() {
        for garbage in [&b"hello"[..], b"", b"-----BEGIN CERTIFICATE-----\n!!\n"] {
            let err = verifying_client_config(garbage, &[]).unwrap_err();
            assert!(matches!(err, CertError::BadCa(_)), "{err:?}");
        }
        let not_x509 = fixtures::pem("CERTIFICATE", b"not der");
        let err = verifying_client_config(not_x509.as_bytes(), &[]).unwrap_err();
        assert!(matches!(err, CertError::BadCa(_)), "{err:?}");
    }
}
