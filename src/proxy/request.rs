//! Checks on a client's request before it is routed: framing that could smuggle a
//! second request, a missing or doubled Host, an oversized target; and the
//! normalised path used for matching and forwarding.

use std::borrow::Cow;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Request, StatusCode, Version};

/// The longest request target (path + query) accepted; longer answers 414.
pub const MAX_TARGET_LEN: usize = 16 * 1024;

/// Why a request was refused before routing, and the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Both Content-Length and Transfer-Encoding, differing Content-Lengths, or an
    /// unknown transfer coding: the framing is ambiguous, so the connection is closed.
    #[error("ambiguous message framing")]
    Framing,
    /// HTTP/1.1 without a Host header, with two, or with one that is not a valid host.
    #[error("missing, repeated or invalid Host header")]
    Host,
    /// The request target is longer than [`MAX_TARGET_LEN`].
    #[error("request target too long")]
    TargetTooLong,
}

impl BadRequest {
    /// The status code the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Framing | Self::Host => StatusCode::BAD_REQUEST,
            Self::TargetTooLong => StatusCode::URI_TOO_LONG,
        }
    }

    /// Whether the connection must be closed after answering (no smuggling, ever).
    pub fn closes_connection(self) -> bool {
        matches!(self, Self::Framing)
    }
}

/// Checks framing, Host and target length, and returns the host to route on.
///
/// The host comes from the request target's authority when there is one (HTTP/2
/// `:authority`, or an absolute-form HTTP/1.1 target), else from the Host header.
pub fn check<B>(req: &Request<B>) -> Result<&str, BadRequest> {
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
