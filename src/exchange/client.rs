//! What the data plane knows about the client connection a request came on.

use std::net::{IpAddr, SocketAddr};

use http::header::HeaderValue;

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
}

impl ClientInfo {
    /// Describes a client connected from `remote`, over TLS or not.
    pub fn new(remote: SocketAddr, tls: bool) -> Self {
        Self {
            remote,
            tls,
            ip: ip_header_value(remote.ip()),
            tls_session: None,
        }
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
