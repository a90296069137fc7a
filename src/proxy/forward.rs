//! Turning a client's request into the request a backend receives, and the
//! backend's response into the one the client receives: hop-by-hop headers,
//! X-Forwarded-*, the upstream URI, and Upgrade tunnels.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

pub use crate::exchange::ClientInfo;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

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

/// Marks a GET or HEAD body of unknown length as chunked for an HTTP/1.1
/// backend. hyper's client frames such a body only for methods that usually
/// carry one and would otherwise drop it (`Content-Length: 0`), so a GET's
/// chunked body would be lost and its bytes left out.
pub fn frame_unsized_body<B: hyper::body::Body>(req: &mut http::Request<B>) {
    let bodiless_method = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    if bodiless_method
        && !req.body().is_end_stream()
        && req.body().size_hint().exact().is_none()
        && !req.headers().contains_key(header::CONTENT_LENGTH)
    {
        req.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// Restores an Upgrade handshake after [`strip_hop_by_hop`] removed it.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Sets X-Forwarded-For (appended to every earlier value), -Proto and X-Real-Ip,
/// and, when the client named a host, X-Forwarded-Host and -Port.
///
/// `host` is the authority the client addressed (Host header or `:authority`).
/// The port is the one in that authority, else the scheme's default, as Traefik does.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientInfo, host: Option<&HeaderValue>) {
    append_forwarded_for(headers, client);
    headers.insert(&X_REAL_IP, client.ip_header().clone());
    let proto = if client.tls { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    let Some(host) = host else {
        // Without a host, client-supplied values must not pass as ours.
        headers.remove(&X_FORWARDED_HOST);
        headers.remove(&X_FORWARDED_PORT);
        return;
    };
    headers.insert(&X_FORWARDED_HOST, host.clone());
    let port = host
        .to_str()
        .ok()
        .and_then(super::request::port_of)
        .and_then(|p| HeaderValue::from_str(p).ok());
    let port =
        port.unwrap_or_else(|| HeaderValue::from_static(if client.tls { "443" } else { "80" }));
    headers.insert(&X_FORWARDED_PORT, port);
}

fn append_forwarded_for(headers: &mut HeaderMap, client: &ClientInfo) {
    let mut prior = headers.get_all(&X_FORWARDED_FOR).iter();
    let Some(first) = prior.next() else {
        headers.insert(&X_FORWARDED_FOR, client.ip_header().clone());
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for more in prior {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(more.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(client.ip_header().as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
}

/// Sets the Host the backend sees to the authority the request was routed by: an
/// HTTP/2 request carries it in `:authority`, an absolute-form HTTP/1.1 target in
/// the URI (RFC 9112 §3.2.2: the target wins over a Host header).
pub fn set_host_header(headers: &mut HeaderMap, host: &HeaderValue) {
    headers.insert(header::HOST, host.clone());
}

/// Replaces Host with the endpoint's own address (`service.passhostheader: false`).
pub fn set_host_to_endpoint(headers: &mut HeaderMap, endpoint: std::net::SocketAddr) {
    if let Ok(value) = HeaderValue::from_str(&endpoint.to_string()) {
        headers.insert(header::HOST, value);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 needs one (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for more in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(more.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

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
        let client = ClientInfo::new("192.0.2.7:5555".parse().expect("addr"), false);
        set_forwarded(
            &mut h,
            &client,
            Some(&HeaderValue::from_static("app.example.com:8080")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com:8080");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        let mut plain = HeaderMap::new();
        set_forwarded(
            &mut plain,
            &client,
            Some(&HeaderValue::from_static("app.example.com")),
        );
        assert_eq!(plain["x-forwarded-port"], "80");
        assert_eq!(plain["x-forwarded-for"], "192.0.2.7");
        let mut spoofed = HeaderMap::new();
        spoofed.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        spoofed.insert("x-forwarded-host", HeaderValue::from_static("evil"));
        spoofed.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        spoofed.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        set_forwarded(&mut spoofed, &client, None);
        assert_eq!(spoofed["x-real-ip"], "192.0.2.7");
        assert_eq!(spoofed["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 192.0.2.7");
        assert!(!spoofed.contains_key("x-forwarded-host"));
    }

    #[test]
    fn cookies_from_http2_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }
}
