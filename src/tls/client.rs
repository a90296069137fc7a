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

/// [`insecure_client_config`] limited to `versions` (tests pin TLS 1.2 with it).
pub(crate) fn insecure_with_versions(
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
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
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
