//! Turning a client's request into the request a backend receives, and the
//! backend's response into the one the client receives: hop-by-hop headers,
//! X-Forwarded-*, the upstream URI, and Upgrade tunnels.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::Version;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Facts about the client connection that the forwarded headers carry.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client's address as seen by the listener.
    pub remote: SocketAddr,
    /// Whether the client connected over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): Connection and the headers it
/// names, Keep-Alive, Proxy-*, TE (except `trailers`), Transfer-Encoding, Upgrade.
///
/// Returns the Upgrade protocol when the message asked for one (kept by the caller).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let upgrade = connection_has(headers, "upgrade")
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    let trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    headers.remove(header::TE);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::UPGRADE);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    if headers.keys().any(|k| k.as_str().starts_with("proxy-")) {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy {
            headers.remove(name);
        }
    }
    upgrade
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Restores an Upgrade handshake after [`strip_hop_by_hop`] removed it.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Sets X-Forwarded-For (appended), -Proto, -Host, -Port and X-Real-Ip.
///
/// `host` is the authority the client addressed (Host header or `:authority`).
/// The port is the one in that authority, else the scheme's default, as Traefik does.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientInfo, host: &str) {
    let ip = client.remote.ip();
    let ip_value = ip_header_value(ip);
    match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            let appended = format!("{prior}, {ip}");
            if let Ok(v) = HeaderValue::from_str(&appended) {
                headers.insert(&X_FORWARDED_FOR, v);
            }
        }
        _ => {
            headers.insert(&X_FORWARDED_FOR, ip_value.clone());
        }
    }
    headers.insert(&X_REAL_IP, ip_value);
    let proto = if client.tls { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(&X_FORWARDED_HOST, v);
    }
    let port = super::request::port_of(host).unwrap_or(if client.tls { "443" } else { "80" });
    if let Ok(v) = HeaderValue::from_str(port) {
        headers.insert(&X_FORWARDED_PORT, v);
    }
}

fn ip_header_value(ip: IpAddr) -> HeaderValue {
    // An IP address always formats to valid header characters.
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An HTTP/2 request carries its host in `:authority`; an HTTP/1.1 backend needs a Host header.
pub fn ensure_host_header(headers: &mut HeaderMap, host: &str) {
    if !headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, v);
        }
    }
}

/// The URI the pooled client is given: the endpoint as authority, the target as sent.
pub fn upstream_uri(endpoint: SocketAddr, path_and_query: &str) -> Option<Uri> {
    let pq: PathAndQuery = path_and_query.parse().ok()?;
    Uri::builder()
        .scheme("http")
        .authority(endpoint.to_string())
        .path_and_query(pq)
        .build()
        .ok()
}

/// The version the backend request uses: HTTP/1.1 whatever the client spoke.
pub const UPSTREAM_VERSION: Version = Version::HTTP_11;

/// Copies bytes both ways between an upgraded client and backend until either closes.
pub async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers, deflate"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        assert_eq!(strip_hop_by_hop(&mut h), None);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["te", "x-kept"]);
        assert_eq!(h[header::TE], "trailers");
    }

    #[test]
    fn upgrade_protocol_is_reported() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let proto = strip_hop_by_hop(&mut h);
        assert_eq!(proto, Some(HeaderValue::from_static("websocket")));
        restore_upgrade(&mut h, HeaderValue::from_static("websocket"));
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let client = ClientInfo {
            remote: "192.0.2.7:5555".parse().expect("addr"),
            tls: false,
        };
        set_forwarded(&mut h, &client, "app.example.com:8080");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com:8080");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        let mut plain = HeaderMap::new();
        set_forwarded(&mut plain, &client, "app.example.com");
        assert_eq!(plain["x-forwarded-port"], "80");
        assert_eq!(plain["x-forwarded-for"], "192.0.2.7");
    }

    #[test]
    fn upstream_uri_keeps_the_target_verbatim() {
        let uri =
            upstream_uri("10.0.0.1:8080".parse().expect("addr"), "/a%2Fb/c?x=%20&y").expect("uri");
        assert_eq!(uri.to_string(), "http://10.0.0.1:8080/a%2Fb/c?x=%20&y");
    }
}
