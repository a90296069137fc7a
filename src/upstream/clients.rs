//! Upstream clients by protocol and TLS settings, shared across routes and reloads.

use std::sync::Arc;

use super::pool::{BackendProtocol, BackendTls, PoolSettings, UpstreamClient};
use crate::identity::WeakRegistry;
use crate::tls::CertError;

/// Backend certificate verification: the CA to trust and the name to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verify {
    /// PEM CA certificates (the `ca.crt` of the referenced Secret).
    pub ca_pem: Arc<[u8]>,
    /// The name the backend certificate must carry.
    pub server_name: String,
}

/// What makes two routes share an upstream client (and so a connection pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// How to speak to the backend.
    pub protocol: BackendProtocol,
    /// Certificate verification for the TLS protocols (`None`: not verified).
    pub verify: Option<Verify>,
    /// Timeouts that differ from the defaults (ingress-nginx's `proxy-*-timeout`).
    pub timeouts: Timeouts,
}

/// Per-route overrides of the `--connect-timeout` and
/// `--response-header-timeout` defaults; routes that set them get a client
/// (and pool) of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Backend connect.
    pub connect: Option<std::time::Duration>,
    /// Waiting for the backend's response head.
    pub response_header: Option<std::time::Duration>,
}

impl ClientKey {
    /// Plain HTTP/1.1, the default.
    pub fn http() -> Self {
        Self {
            protocol: BackendProtocol::Http,
            verify: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// The registry of upstream clients: one per [`ClientKey`], alive while a table uses it.
#[derive(Debug, Default)]
pub struct Clients {
    settings: PoolSettings,
    clients: WeakRegistry<ClientKey, UpstreamClient>,
}

impl Clients {
    /// A registry whose clients use `settings`.
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            clients: WeakRegistry::default(),
        }
    }

    /// The client for `key`: the live one, or a new one (with its own pool).
    pub fn get(&self, key: &ClientKey) -> Result<Arc<UpstreamClient>, CertError> {
        // hyper-rustls sets ALPN itself from the HTTP versions it enables.
        let alpn: &[&[u8]] = &[];
        let tls = match (&key.protocol, &key.verify) {
            (BackendProtocol::Http | BackendProtocol::H2c, _) => None,
            (_, Some(verify)) => Some(BackendTls {
                config: crate::tls::verifying_client_config(&verify.ca_pem, alpn)?,
                server_name: Some(verify.server_name.clone()),
            }),
            (_, None) => Some(BackendTls {
                config: crate::tls::insecure_client_config(alpn),
                server_name: None,
            }),
        };
        let mut settings = self.settings.clone();
        if let Some(connect) = key.timeouts.connect {
            settings.connect_timeout = connect;
        }
        if let Some(head) = key.timeouts.response_header {
            settings.response_header_timeout = head;
        }
        Ok(self.clients.get_or_insert_with(key, || {
            UpstreamClient::with_protocol(&settings, key.protocol.clone(), tls)
        }))
    }

    /// Every client some table still uses (for pool metrics).
    pub fn live(&self) -> Vec<Arc<UpstreamClient>> {
        self.clients.live().into_iter().map(|(_, c)| c).collect()
    }
}
