//! The listener side: SNI certificate selection and the rustls server config.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, NoClientAuth, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};

use super::certs::CertError;

/// ALPN protocols the listener offers, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Minimum TLS version accepted from clients (`--tls-min-version`): parses "1.2", "1.3",
/// "TLS1.2", "tlsv1.3" (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

impl TlsVersion {
    fn protocol_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
        static ONLY_13: [&SupportedProtocolVersion; 1] = [&TLS13];
        match self {
            Self::V1_2 => &BOTH,
            Self::V1_3 => &ONLY_13,
        }
    }
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("tls").unwrap_or(&lower);
        let bare = bare.strip_prefix('v').unwrap_or(bare);
        match bare {
            "1.2" => Ok(Self::V1_2),
            "1.3" => Ok(Self::V1_3),
            _ => Err(format!("unknown TLS version {s:?} (expected 1.2 or 1.3)")),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        })
    }
}

/// The caller's certificate lookup: SNI (None when absent) to certificate.
type Lookup = dyn Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync;

/// Picks certificates by SNI with one call of `lookup` per handshake (the caller's closure
/// does one ArcSwap load).
pub struct SniResolver {
    lookup: Box<Lookup>,
}

impl SniResolver {
    /// Wraps `lookup`, typically `move |sni| table.load().certs.resolve(sni)`.
    pub fn new(
        lookup: impl Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        (self.lookup)(client_hello.server_name())
    }
}

/// The listener's config: TLS 1.2+1.3 (or 1.3 only), ALPN ["h2", "http/1.1"], session
/// resumption on (stateless tickets via rustls::crypto::ring::Ticketer plus the default
/// in-memory session cache), ring provider.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    min_version: TlsVersion,
) -> Result<ServerConfig, CertError> {
    build(resolver, min_version, Arc::new(NoClientAuth))
}

/// A listener config like `base` (same certificates, ALPN; `min_version`, the
/// one `base` was built with, since rustls does not say) whose handshakes ask
/// for a client certificate through `verifier`. It has session tickets and a
/// session cache of its own, so a session made without a certificate request
/// never resumes on it.
pub fn with_client_auth(
    base: &ServerConfig,
    verifier: Arc<dyn ClientCertVerifier>,
    min_version: TlsVersion,
) -> Result<ServerConfig, CertError> {
    let mut config = build(base.cert_resolver.clone(), min_version, verifier)?;
    config.alpn_protocols.clone_from(&base.alpn_protocols);
    config.ignore_client_order = base.ignore_client_order;
    config.max_fragment_size = base.max_fragment_size;
    Ok(config)
}

fn build(
    resolver: Arc<dyn ResolvesServerCert>,
    min_version: TlsVersion,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, CertError> {
    let fail = |e: rustls::Error| CertError::Generate(format!("TLS server config: {e}"));
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(min_version.protocol_versions())
        .map_err(fail)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Ticket keys rotate every 6 hours; the builder already installed a session cache.
    config.ticketer = Ticketer::new().map_err(fail)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use rustls::ProtocolVersion;

    use super::*;
    use crate::tls::certs::{load_pem, self_signed_default};
    use crate::tls::client::{insecure_client_config, insecure_with_versions};
    use crate::tls::fixtures::{self, handshake};
    use crate::tls::index::CertIndex;

    #[test]
    fn versions_parse_and_print() {
        for (text, version) in [
            ("1.2", TlsVersion::V1_2),
            ("TLS1.2", TlsVersion::V1_2),
            ("tlsv1.3", TlsVersion::V1_3),
            (" TLSv1.3 ", TlsVersion::V1_3),
        ] {
            assert_eq!(text.parse::<TlsVersion>(), Ok(version), "{text}");
            assert_eq!(version.to_string().parse::<TlsVersion>(), Ok(version));
        }
        assert!("1.1".parse::<TlsVersion>().is_err());
        assert!("tls".parse::<TlsVersion>().is_err());
        assert_eq!(TlsVersion::default(), TlsVersion::V1_2);
    }

    fn fixed(key: Arc<CertifiedKey>) -> Arc<dyn ResolvesServerCert> {
        Arc::new(SniResolver::new(move |_| Some(key.clone())))
    }

    #[test]
    fn alpn_prefers_h2() {
        let key = self_signed_default().expect("generates").key;
        let config = server_config(fixed(key), TlsVersion::V1_2).expect("config");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(config.ticketer.enabled());
    }

    #[tokio::test]
    async fn min_version_is_honoured() {
        let key = self_signed_default().expect("generates").key;
        let tls12_only = || insecure_with_versions(&[b"h2"], &[&TLS12]);
        let lenient = server_config(fixed(key.clone()), TlsVersion::V1_2).expect("config");
        let shook = handshake(lenient.clone(), tls12_only(), "a.test")
            .await
            .expect("1.2 ok");
        assert_eq!(shook.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(shook.alpn.as_deref(), Some(&b"h2"[..]));
        let any = handshake(lenient, insecure_client_config(&[]), "a.test")
            .await
            .expect("ok");
        assert_eq!(any.version, Some(ProtocolVersion::TLSv1_3));
        let strict = server_config(fixed(key), TlsVersion::V1_3).expect("config");
        assert!(handshake(strict, tls12_only(), "a.test").await.is_err());
    }

    #[tokio::test]
    async fn client_auth_configs_keep_the_listener_versions_and_alpn() {
        let key = self_signed_default().expect("generates").key;
        let verifier = || -> Arc<dyn ClientCertVerifier> { Arc::new(NoClientAuth) };
        let tls12_only = || insecure_with_versions(&[b"h2"], &[&TLS12]);
        let strict = server_config(fixed(key.clone()), TlsVersion::V1_3).expect("config");
        let derived = with_client_auth(&strict, verifier(), TlsVersion::V1_3).expect("derived");
        assert!(handshake(derived.clone(), tls12_only(), "a.test")
            .await
            .is_err());
        let shook = handshake(derived, insecure_client_config(&[b"h2"]), "a.test")
            .await
            .expect("1.3 ok");
        assert_eq!(shook.alpn.as_deref(), Some(&b"h2"[..]));
        let lenient = server_config(fixed(key), TlsVersion::V1_2).expect("config");
        let derived = with_client_auth(&lenient, verifier(), TlsVersion::V1_2).expect("derived");
        let shook = handshake(derived, tls12_only(), "a.test")
            .await
            .expect("1.2 ok");
        assert_eq!(shook.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(shook.alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[tokio::test]
    async fn sni_picks_the_certificate_and_no_sni_gets_the_default() {
        let ca = fixtures::ca("test CA");
        let load = |names: &[&str]| {
            let (cert, key) = fixtures::leaf(&ca, names);
            load_pem(cert.as_bytes(), key.as_bytes())
                .expect("loads")
                .key
        };
        let (a, wild, default) = (
            load(&["a.example.com"]),
            load(&["*.example.com"]),
            load(&[]),
        );
        let mut builder = CertIndex::builder();
        builder.insert("a.example.com", a.clone());
        builder.insert("*.example.com", wild.clone());
        builder.default_cert(default.clone());
        let index = Arc::new(builder.build());
        let resolver = Arc::new(SniResolver::new(move |sni| index.resolve(sni)));
        let config = server_config(resolver, TlsVersion::V1_2).expect("config");
        let leaf_for = |client: rustls::ClientConfig, name: &'static str| {
            let config = config.clone();
            async move {
                handshake(config, client, name)
                    .await
                    .expect("handshake")
                    .leaf
            }
        };
        let client = || insecure_client_config(&[b"http/1.1"]);
        assert_eq!(
            leaf_for(client(), "A.example.com").await,
            a.cert[0].to_vec()
        );
        assert_eq!(
            leaf_for(client(), "b.example.com").await,
            wild.cert[0].to_vec()
        );
        assert_eq!(
            leaf_for(client(), "other.test").await,
            default.cert[0].to_vec()
        );
        let mut no_sni = client();
        no_sni.enable_sni = false;
        assert_eq!(
            leaf_for(no_sni, "a.example.com").await,
            default.cert[0].to_vec()
        );
    }
}
