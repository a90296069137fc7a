//! HTTP → HTTPS redirects (ingress-nginx's `ssl-redirect` / `force-ssl-redirect`).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::request::Parts;
use http::{Response, StatusCode};

use super::ProxyBody;

/// A 308 to the same URL over `https` (308 keeps the method and body, as
/// ingress-nginx does). As ingress-nginx, one trailing `/` of the request URI
/// is dropped unless `keep_trailing_slash` (`preserve-trailing-slash`).
pub fn to_https(
    parts: &Parts,
    host: Option<&HeaderValue>,
    https_port: u16,
    keep_trailing_slash: bool,
) -> Response<ProxyBody> {
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
    let mut target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if !keep_trailing_slash {
        target = target.strip_suffix('/').unwrap_or(target);
    }
    let location = location(host, https_port, target);
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(
        b"308 permanent redirect\n",
    )));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, value);
    }
    resp
}

/// `https://<host without port>[:port]<target>`; the port is left out when it is 443.
fn location(host: &str, https_port: u16, target: &str) -> String {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest
            .split(']')
            .next()
            .map_or(host.to_owned(), |h| format!("[{h}]")),
        None => host.split(':').next().unwrap_or(host).to_owned(),
    };
    if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_keeps_path_and_query_and_drops_the_http_port() {
        assert_eq!(
            location("a.test:8080", 443, "/x?y=1"),
            "https://a.test/x?y=1"
        );
        assert_eq!(location("a.test", 8443, "/"), "https://a.test:8443/");
        assert_eq!(location("[::1]:80", 443, "/p"), "https://[::1]/p");
    }
}
