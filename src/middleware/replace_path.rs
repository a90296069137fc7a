//! `replacePath`: replaces the whole request path, keeping the query, and
//! records the old one in `X-Replaced-Path`.
//!
//! Also home of the request-path model every path middleware shares
//! ([`GoPath`]): Traefik's middlewares work on Go's `URL.Path` (decoded) and
//! `URL.RawPath` (the client's encoding, kept only when it differs from the
//! canonical one), and what reaches the backend is `URL.EscapedPath()`. Copying
//! that model is what keeps `%2F` and friends exactly as Traefik forwards them.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, StatusCode, Uri};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::support::{status_response, text_response};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

/// `X-Replaced-Path`: the path before replacePath / replacePathRegex changed it.
pub(super) static X_REPLACED_PATH: HeaderName = HeaderName::from_static("x-replaced-path");

/// A `%` not followed by two hex digits (Go's `url.EscapeError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EscapeError(String);

impl fmt::Display for EscapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL escape {:?}", self.0)
    }
}

/// Why a path middleware answers instead of forwarding.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The request's path does not decode (Go's server answers 400).
    BadRequest,
    /// Go's `http.Error(w, text, 500)` (a replacement that does not unescape).
    Internal(String),
}

impl Refusal {
    /// The response Traefik gives.
    pub(super) fn answer(self) -> Outcome {
        match self {
            Self::BadRequest => Ok(status_response(StatusCode::BAD_REQUEST)),
            Self::Internal(text) => {
                let mut resp =
                    text_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{text}\n"));
                resp.headers_mut().insert(
                    http::header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                Ok(resp)
            }
        }
    }
}

/// Go's `net/url` view of a path: the decoded bytes (`URL.Path`) and the
/// client's encoding (`URL.RawPath`, empty when the canonical encoding of
/// `path` is what the client sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoPath {
    /// `URL.Path`: percent-decoded (may be any bytes).
    pub(super) path: Vec<u8>,
    /// `URL.RawPath`: the escaped form, or empty.
    pub(super) raw: String,
}

impl GoPath {
    /// `URL.setPath(escaped)`, as Go parses a request target's path.
    pub(super) fn parse(escaped: &str) -> Result<Self, EscapeError> {
        let path = unescape(escaped)?;
        let raw = if escape_path(&path) == escaped {
            String::new()
        } else {
            escaped.to_owned()
        };
        Ok(Self { path, raw })
    }

    /// The path of `req`, or the 400 Go's server answers for a target whose
    /// escapes do not decode (Traefik never sees such a request).
    pub(super) fn of<B>(req: &Request<B>) -> Result<Self, Refusal> {
        Self::parse(req.uri().path()).map_err(|_| Refusal::BadRequest)
    }

    /// `URL.EscapedPath()`: `raw` when it is a valid encoding of `path`,
    /// otherwise the canonical encoding of `path`.
    pub(super) fn escaped(&self) -> String {
        if !self.raw.is_empty() && valid_encoded(&self.raw) {
            if let Ok(decoded) = unescape(&self.raw) {
                if decoded == self.path {
                    return self.raw.clone();
                }
            }
        }
        if self.path == b"*" {
            return "*".to_owned();
        }
        escape_path(&self.path)
    }

    /// Rewrites `path` with `f`, and `raw` too when set (a `raw` that `f`
    /// leaves invalid UTF-8 becomes empty).
    pub(super) fn map(&mut self, f: impl Fn(&[u8]) -> Vec<u8>) {
        self.path = f(&self.path);
        if !self.raw.is_empty() {
            self.raw = String::from_utf8(f(self.raw.as_bytes())).unwrap_or_default();
        }
    }

    /// The old path as Traefik writes it into `X-Replaced-Path`: `RawPath` if
    /// set, else `Path` (decoded). A decoded path that is not a valid header
    /// value (control bytes) falls back to its escaped form.
    pub(super) fn replaced_header(&self) -> HeaderValue {
        let bytes = if self.raw.is_empty() {
            &self.path[..]
        } else {
            self.raw.as_bytes()
        };
        HeaderValue::from_bytes(bytes)
            .or_else(|_| HeaderValue::from_str(&self.escaped()))
            .unwrap_or_else(|_| HeaderValue::from_static("/"))
    }
}

/// Go's `ensureLeadingSlash`: empty stays empty.
pub(super) fn ensure_leading_slash(rest: &[u8]) -> Vec<u8> {
    if rest.is_empty() || rest[0] == b'/' {
        return rest.to_vec();
    }
    let mut out = Vec::with_capacity(rest.len() + 1);
    out.push(b'/');
    out.extend_from_slice(rest);
    out
}

/// Go's `unescape(s, encodePath)`: `%XX` decoded, anything else kept.
pub(super) fn unescape(s: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    let end = (i + 3).min(bytes.len());
                    return Err(EscapeError(
                        String::from_utf8_lossy(&bytes[i..end]).into_owned(),
                    ));
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `shouldEscape(c, encodePath)`.
fn should_escape_path(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'$'
                | b'&'
                | b'+'
                | b','
                | b'/'
                | b':'
                | b';'
                | b'='
                | b'@'
        ))
}

/// Go's `escape(s, encodePath)`: the canonical encoding of a decoded path.
pub(super) fn escape_path(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if should_escape_path(b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go's `validEncoded(s, encodePath)`.
pub(super) fn valid_encoded(s: &str) -> bool {
    valid_encoded_with(s, should_escape_path)
}

/// Go's `validEncoded(s, mode)`: every byte is a sub-delimiter, `%`, or a byte
/// `should_escape` leaves alone.
pub(super) fn valid_encoded_with(s: &str, should_escape: fn(u8) -> bool) -> bool {
    s.bytes().all(|c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c)
    })
}

/// Points `req` at `escaped_path`, keeping the query (Go's `RequestURI()`:
/// an empty path is sent as `/`) and, for HTTP/2, the scheme and authority.
pub(super) fn set_path<B>(req: &mut Request<B>, escaped_path: &str) -> Result<(), Refusal> {
    let mut target = String::with_capacity(escaped_path.len() + 16);
    target.push_str(if escaped_path.is_empty() {
        "/"
    } else {
        escaped_path
    });
    if let Some(query) = req.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    let pq =
        PathAndQuery::try_from(target.as_str()).map_err(|e| Refusal::Internal(e.to_string()))?;
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| Refusal::Internal(e.to_string()))?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    path: String,
}

/// Builds a `replacePath` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    // Traefik unescapes per request and answers 500 on failure; the outcome
    // never changes, so it is decided here once.
    let path = match unescape(&config.path) {
        Ok(path) => Ok(GoPath {
            path,
            raw: config.path.clone(),
        }),
        Err(e) => Err(e),
    };
    Ok(Arc::new(ReplacePath { path }))
}

/// The built `replacePath`.
#[derive(Debug)]
struct ReplacePath {
    /// The new path (`RawPath = path`, `Path = unescape(path)`), or why it
    /// cannot be unescaped (every request then gets 500, as in Traefik).
    path: Result<GoPath, EscapeError>,
}

impl Middleware for ReplacePath {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let old = match GoPath::of(&req) {
                Ok(old) => old,
                Err(refusal) => return refusal.answer(),
            };
            req.headers_mut()
                .append(&X_REPLACED_PATH, old.replaced_header());
            let new = match &self.path {
                Ok(new) => new,
                Err(e) => return Refusal::Internal(e.to_string()).answer(),
            };
            if let Err(refusal) = set_path(&mut req, &new.escaped()) {
                return refusal.answer();
            }
            next.run(req, cx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    #[test]
    fn go_path_model_matches_net_url() {
        let plain = GoPath::parse("/a/b").unwrap();
        assert_eq!(plain.raw, "");
        assert_eq!(plain.escaped(), "/a/b");
        // %20 is the canonical encoding of a space: no RawPath.
        let space = GoPath::parse("/a%20b").unwrap();
        assert_eq!(space.path, b"/a b");
        assert_eq!(space.raw, "");
        assert_eq!(space.escaped(), "/a%20b");
        // %2F is not: RawPath keeps the client's form.
        let slash = GoPath::parse("/x%2Fy").unwrap();
        assert_eq!(slash.path, b"/x/y");
        assert_eq!(slash.raw, "/x%2Fy");
        assert_eq!(slash.escaped(), "/x%2Fy");
        // A RawPath that no longer decodes to Path is ignored.
        let stale = GoPath {
            path: b"/z".to_vec(),
            raw: "/x%2Fy".to_owned(),
        };
        assert_eq!(stale.escaped(), "/z");
        assert_eq!(escape_path(b"/a?b c\xff"), "/a%3Fb%20c%FF");
        assert_eq!(
            unescape("/a%zz").unwrap_err().to_string(),
            "invalid URL escape \"%zz\""
        );
        assert_eq!(unescape("/a%4").unwrap_err().0, "%4");
        assert_eq!(GoPath::parse("*").unwrap().escaped(), "*");
    }

    #[tokio::test]
    async fn replaces_path_keeps_query_and_records_old_path() {
        let mw = testing::make(build, json!({"path": "/replaced/p%20q"})).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get("/repl/a?q=1", &[]), &backend, false).await;
        let got = backend.got();
        assert_eq!(got.uri, "/replaced/p%20q?q=1");
        assert_eq!(values(&got.headers, "x-replaced-path"), ["/repl/a"]);
    }

    #[tokio::test]
    async fn old_raw_path_is_recorded_escaped_and_header_appends() {
        let mw = testing::make(build, json!({"path": "/new"})).unwrap();
        let backend = Recorder::ok();
        let req = get("/repl/a%2Fb?x", &[("x-replaced-path", "/earlier")]);
        run_tls(&mw, req, &backend, false).await;
        let got = backend.got();
        assert_eq!(got.uri, "/new?x");
        assert_eq!(
            values(&got.headers, "x-replaced-path"),
            ["/earlier", "/repl/a%2Fb"]
        );
    }

    #[tokio::test]
    async fn decoded_old_path_is_recorded_decoded_like_traefik() {
        let mw = testing::make(build, json!({"path": "/new%2Fpath"})).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get("/a%20b", &[]), &backend, false).await;
        let got = backend.got();
        assert_eq!(values(&got.headers, "x-replaced-path"), ["/a b"]);
        assert_eq!(got.uri, "/new%2Fpath");
    }

    #[tokio::test]
    async fn replacement_that_does_not_unescape_answers_500() {
        let mw = testing::make(build, json!({"path": "/bad%zz"})).unwrap();
        let backend = Recorder::ok();
        let resp = run_tls(&mw, get("/x", &[]), &backend, false).await;
        assert_eq!(resp.status(), 500);
        assert!(!backend.called());
        assert_eq!(body(resp).await, "invalid URL escape \"%zz\"\n");
    }

    #[tokio::test]
    async fn replacement_with_characters_go_escapes_is_reencoded() {
        let mw = testing::make(build, json!({"path": "/a b?c"})).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get("/x?q", &[]), &backend, false).await;
        assert_eq!(backend.got().uri, "/a%20b%3Fc?q");
    }

    #[tokio::test]
    async fn undecodable_request_path_is_a_bad_request() {
        let mw = testing::make(build, json!({"path": "/new"})).unwrap();
        let backend = Recorder::ok();
        let resp = run_tls(&mw, get("/x%zz", &[]), &backend, false).await;
        assert_eq!(resp.status(), 400);
        assert!(!backend.called());
    }

    #[tokio::test]
    async fn http2_targets_keep_scheme_and_authority() {
        let mw = testing::make(build, json!({"path": "/new"})).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get("http://example.com/old?q=1", &[]), &backend, false).await;
        assert_eq!(backend.got().uri, "http://example.com/new?q=1");
    }

    #[test]
    fn config_types_are_checked() {
        assert!(testing::make(build, json!({"path": 3})).is_err());
    }
}
