//! The listener side: SNI certificate selection and the rustls server config.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::server::{ClientHello, ResolvesServerCert};
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
    let fail = |e: rustls::Error| CertError::Generate(format!("TLS server config: {e}"));
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(min_version.protocol_versions())
        .map_err(fail)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Ticket keys rotate every 6 hours; the builder already installed a session cache.
    config.ticketer = Ticketer::new().map_err(fail)?;
    Ok(config)
}
