//! What the data plane knows about the client connection a request came on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HeaderValue;

use crate::tls::PeerCertificate;

/// Facts about the client connection that the forwarded headers carry.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's address as seen by the listener.
    pub remote: SocketAddr,
    /// Whether the client connected over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The client IP as a header value, built once per connection.
    ip: HeaderValue,
    /// Over TLS: the protocol version (`1.3`) and cipher suite names, for access logs.
    pub tls_session: Option<(&'static str, &'static str)>,
    /// Over TLS: whether the client named a server (SNI) in its handshake.
    pub sni: bool,
    /// Over TLS, on hosts that ask for one (ingress-nginx `auth-tls-*`): the
    /// client certificate the handshake brought, as verified right after it.
    pub client_cert: Option<Arc<PeerCertificate>>,
    /// Over TLS: the server name the handshake named (SNI), lowercase.
    pub server_name: Option<Arc<str>>,
    /// Over TLS: the certificate the handshake served.
    pub served_cert: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl ClientInfo {
    /// Describes a client connected from `remote`, over TLS or not.
    pub fn new(remote: SocketAddr, tls: bool) -> Self {
        Self {
            remote,
            tls,
            ip: ip_header_value(remote.ip()),
            tls_session: None,
            sni: false,
            client_cert: None,
            server_name: None,
            served_cert: None,
        }
    }

    /// The same client, whose handshake named `server_name` and was served `cert`.
    pub fn with_server(
        mut self,
        server_name: Option<&str>,
        cert: Option<Arc<rustls::sign::CertifiedKey>>,
    ) -> Self {
        self.server_name = server_name.map(|n| n.to_ascii_lowercase().into());
        self.served_cert = cert;
        self
    }

    /// The same client, whose handshake named a server (SNI) or not.
    pub fn with_sni(mut self, sni: bool) -> Self {
        self.sni = sni;
        self
    }

    /// The same client, with the client certificate its handshake was asked for.
    pub fn with_client_cert(mut self, cert: Arc<PeerCertificate>) -> Self {
        self.client_cert = Some(cert);
        self
    }

    /// The same client, with the TLS version and cipher suite it negotiated.
    pub fn with_tls_session(mut self, version: &'static str, cipher: &'static str) -> Self {
        self.tls_session = Some((version, cipher));
        self
    }
}

impl ClientInfo {
    /// The client IP as a header value (X-Forwarded-For, X-Real-Ip).
    pub fn ip_header(&self) -> &HeaderValue {
        &self.ip
    }
}

fn ip_header_value(ip: IpAddr) -> HeaderValue {
    // An IP address always formats to valid header characters.
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The user an authentication middleware accepted, kept in the response's
/// extensions (only while an access log is on) for the log's `ClientUsername`.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub String);
