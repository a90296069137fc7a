//! Checks on a client's request before it is routed: framing that could smuggle a
//! second request, a missing or doubled Host, an oversized target; and the
//! normalised path used for matching and forwarding.

use std::borrow::Cow;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Request, Version};

pub use crate::exchange::{BadRequest, MAX_HEADERS, MAX_TARGET_LEN};

/// Checks framing, Host and target length, and returns the host to route on.
///
/// The host comes from the request target's authority when there is one (HTTP/2
/// `:authority`, or an absolute-form HTTP/1.1 target), else from the Host header.
pub fn check<B>(req: &Request<B>) -> Result<&str, BadRequest> {
    if req.method() == http::Method::CONNECT {
        return Err(BadRequest::Method);
    }
    if req.headers().len() > MAX_HEADERS {
        return Err(BadRequest::TooManyHeaders);
    }
    check_framing(req.headers())?;
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_LEN {
        return Err(BadRequest::TargetTooLong);
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(BadRequest::Host);
    }
    if let Some(authority) = req.uri().authority() {
        // HTTP/2: a Host that names another entity than :authority is malformed
        // (RFC 9113 §8.3.1). HTTP/1.1 absolute-form: the target wins (RFC 9112 §3.2.2).
        let differs = header.is_some_and(|h| {
            !h.as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes())
        });
        if req.version() == Version::HTTP_2 && differs {
            return Err(BadRequest::Host);
        }
        return Ok(authority.as_str());
    }
    match header {
        Some(value) => {
            let host = value.to_str().map_err(|_| BadRequest::Host)?;
            valid_host(host).then_some(host).ok_or(BadRequest::Host)
        }
        None if req.version() == Version::HTTP_11 => Err(BadRequest::Host),
        None => Ok(""),
    }
}

fn check_framing(headers: &HeaderMap) -> Result<(), BadRequest> {
    let mut te = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let chunked_only = te.next().is_none()
            && first
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !chunked_only || headers.contains_key(CONTENT_LENGTH) {
            return Err(BadRequest::Framing);
        }
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|other| other != first) {
            return Err(BadRequest::Framing);
        }
    }
    Ok(())
}

/// A Host header is a registered name, IPv4 or bracketed IPv6, with an optional port.
fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.contains('@') {
        return false;
    }
    host.parse::<http::uri::Authority>().is_ok()
}

/// The port in an authority (`host:port` or `[v6]:port`), if it names one.
pub fn port_of(authority: &str) -> Option<&str> {
    let port = match authority.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .and_then(|(_, after)| after.strip_prefix(':'))
            .unwrap_or(""),
        None => authority.split_once(':').map_or("", |(_, p)| p),
    };
    (!port.is_empty()).then_some(port)
}

/// The path with dot-segments removed (RFC 3986 §5.2.4), so that `/app/../admin`
/// cannot escape the prefix it matched. Percent-encoded dots (`%2e`) count as dots;
/// every other byte, `%2F` included, is kept exactly as sent.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !has_dot_segment(path) {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match dot_kind(seg) {
            Some(1) => {
                if i == last {
                    out.push("");
                }
            }
            Some(_) => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            None => out.push(seg),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for seg in &out {
        normalized.push('/');
        normalized.push_str(seg);
    }
    if normalized.is_empty() {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// The path used for matching: percent-encoded unreserved characters decoded
/// (`/%61pi` is `/api`), runs of `/` collapsed and dot-segments removed, as
/// Traefik sanitises paths, so a request cannot reach a route's backend while
/// dodging that route's rules. `%2F` and other reserved escapes stay encoded.
/// The forwarded target keeps the client's spelling (see [`normalize_path`]).
pub fn match_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !path.contains("//") {
        return normalize_path(path);
    }
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let Some(decoded) = decode_unreserved(bytes[i + 1], bytes[i + 2]) {
                out.push(decoded);
                i += 3;
                continue;
            }
        }
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
        i += 1;
    }
    // Only ASCII was decoded and only ASCII removed, so the bytes stay UTF-8.
    let out = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Cow::Owned(normalize_path(&out).into_owned())
}

fn decode_unreserved(hi: u8, lo: u8) -> Option<u8> {
    let hex = |c: u8| char::from(c).to_digit(16);
    let value = u8::try_from(hex(hi)? * 16 + hex(lo)?).ok()?;
    (value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~')).then_some(value)
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| dot_kind(seg).is_some())
}

/// `Some(1)` for `.`, `Some(2)` for `..` (also percent-encoded), else `None`.
fn dot_kind(seg: &str) -> Option<u8> {
    let mut rest = seg.as_bytes();
    let mut dots = 0u8;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && (rest[2] | 0x20) == b'e'
        {
            rest = &rest[3..];
        } else {
            return None;
        }
        dots += 1;
        if dots > 2 {
            return None;
        }
    }
    (dots > 0).then_some(dots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn req(build: http::request::Builder) -> Request<()> {
        build.body(()).expect("test request")
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalize_path("/a/b"), "/a/b");
        assert_eq!(normalize_path("/app/../admin"), "/admin");
        assert_eq!(normalize_path("/app/%2e%2E/admin"), "/admin");
        assert_eq!(normalize_path("/a/./b/."), "/a/b/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path("/a/...b/c"), "/a/...b/c");
        assert_eq!(normalize_path("/a%2F..%2Fb"), "/a%2F..%2Fb");
    }

    #[test]
    fn match_paths_are_canonical() {
        assert_eq!(match_path("/api/x"), "/api/x");
        assert_eq!(match_path("/%61pi/x"), "/api/x");
        assert_eq!(match_path("//api//x"), "/api/x");
        assert_eq!(match_path("/a%2Fb"), "/a%2Fb");
        assert_eq!(match_path("/app/%2e%2e/admin"), "/admin");
        assert_eq!(match_path("/x%"), "/x%");
        assert_eq!(match_path("/x%4"), "/x%4");
        assert_eq!(match_path("/%7e%5F"), "/~_");
        assert_eq!(match_path("/%C3%A9"), "/%C3%A9");
    }

    #[test]
    fn ports_are_split_off_hosts() {
        assert_eq!(port_of("example.com:8080"), Some("8080"));
        assert_eq!(port_of("[::1]:8443"), Some("8443"));
        assert_eq!(port_of("[::1]"), None);
        assert_eq!(port_of("example.com"), None);
    }

    #[test]
    fn host_rules_for_http11() {
        let ok = req(Request::get("/").header(HOST, "a.example.com:80"));
        assert_eq!(check(&ok), Ok("a.example.com:80"));
        let missing = req(Request::get("/"));
        assert_eq!(check(&missing), Err(BadRequest::Host));
        let twice = req(Request::get("/").header(HOST, "a").header(HOST, "b"));
        assert_eq!(check(&twice), Err(BadRequest::Host));
        let invalid = req(Request::get("/").header(HOST, "a b"));
        assert_eq!(check(&invalid), Err(BadRequest::Host));
        let userinfo = req(Request::get("/").header(HOST, "user@a"));
        assert_eq!(check(&userinfo), Err(BadRequest::Host));
        let http10 = req(Request::get("/").version(Version::HTTP_10));
        assert_eq!(check(&http10), Ok(""));
        let absolute = req(Request::get("http://a.test/x").header(HOST, "b.test"));
        assert_eq!(check(&absolute), Ok("a.test"));
        let h2_mismatch = req(Request::get("http://a.test/x")
            .version(Version::HTTP_2)
            .header(HOST, "b.test"));
        assert_eq!(check(&h2_mismatch), Err(BadRequest::Host));
        let connect = req(Request::connect("a.test:443").header(HOST, "a.test:443"));
        assert_eq!(check(&connect), Err(BadRequest::Method));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let both = req(Request::post("/")
            .header(HOST, "a")
            .header(CONTENT_LENGTH, "5")
            .header(TRANSFER_ENCODING, "chunked"));
        assert_eq!(check(&both), Err(BadRequest::Framing));
        let two_lengths = req(Request::post("/")
            .header(HOST, "a")
            .header(CONTENT_LENGTH, "5")
            .header(CONTENT_LENGTH, "6"));
        assert_eq!(check(&two_lengths), Err(BadRequest::Framing));
        let gzip = req(Request::post("/")
            .header(HOST, "a")
            .header(TRANSFER_ENCODING, "gzip, chunked"));
        assert_eq!(check(&gzip), Err(BadRequest::Framing));
        let chunked = req(Request::post("/")
            .header(HOST, "a")
            .header(TRANSFER_ENCODING, "Chunked"));
        assert_eq!(check(&chunked), Ok("a"));
        assert!(BadRequest::Framing.closes_connection());
    }

    #[test]
    fn long_targets_get_414() {
        let long = format!("/{}", "a".repeat(MAX_TARGET_LEN));
        let r = req(Request::get(long.as_str()).header(HOST, "a"));
        assert_eq!(check(&r), Err(BadRequest::TargetTooLong));
        assert_eq!(BadRequest::TargetTooLong.status(), StatusCode::URI_TOO_LONG);
    }
}
