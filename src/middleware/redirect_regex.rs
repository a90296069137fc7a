//! `redirectRegex`: redirects when a regex matches the request's full URL
//! (`scheme://host[:port]/path?query`), to the URL its replacement makes.
//!
//! Also home of what both redirect middlewares share: the status choice
//! (302/307, or 301/308 when permanent; only GET gets 301/302), the response,
//! and Go's `url.Parse` + `URL.String()`, which Traefik runs on every target
//! (an unparsable target answers 502; a parsed one is re-serialised).

use std::sync::Arc;

use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::{escape_path, unescape, valid_encoded, valid_encoded_with};
use super::replace_path_regex::replace_all;
use super::support::status_response;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

/// The redirect status Traefik picks for `method`.
pub(super) fn redirect_status(method: &Method, permanent: bool) -> StatusCode {
    match (permanent, method == Method::GET) {
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
    }
}

/// Traefik's redirect: `Location`, body `StatusText(status)`, no Content-Type.
pub(super) fn redirect_response(
    status: StatusCode,
    location: HeaderValue,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(status.canonical_reason().unwrap_or("")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(LOCATION, location);
    resp
}

/// What both redirect middlewares do with a computed target: pass through
/// when it equals the current URL, 502 when Go cannot parse it, else redirect.
pub(super) fn redirect_to(
    old: &str,
    new: &str,
    method: &Method,
    permanent: bool,
) -> Option<Response<ResponseBody>> {
    let Some(parsed) = go_url_string(new) else {
        return Some(strip_content_type(status_response(StatusCode::BAD_GATEWAY)));
    };
    if new == old {
        return None;
    }
    let status = redirect_status(method, permanent);
    match HeaderValue::from_bytes(parsed.as_bytes()) {
        Ok(location) => Some(redirect_response(status, location)),
        Err(_) => Some(strip_content_type(status_response(StatusCode::BAD_GATEWAY))),
    }
}

/// oxy's error handler writes `StatusText` without a Content-Type.
fn strip_content_type(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    resp
}

/// Go's `url.Parse(raw).String()`, or `None` where `url.Parse` fails.
pub(super) fn go_url_string(raw: &str) -> Option<String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let (rest, fragment) = match raw.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (raw, None),
    };
    let mut out = String::with_capacity(raw.len() + 8);
    if rest == "*" {
        out.push('*');
    } else {
        go_url_main(rest, &mut out)?;
    }
    if let Some(fragment) = fragment {
        // `setFragment` + `EscapedFragment`: an invalid escape fails the parse;
        // a valid encoding is kept as sent.
        let decoded = unescape(fragment).ok()?;
        if !decoded.is_empty() {
            out.push('#');
            if valid_encoded_with(fragment, should_escape_fragment) {
                out.push_str(fragment);
            } else {
                out.push_str(&escape_with(&decoded, should_escape_fragment));
            }
        }
    }
    Some(out)
}

fn go_url_main(raw: &str, out: &mut String) -> Option<()> {
    // Scheme: [A-Za-z][A-Za-z0-9+.-]* followed by ':'.
    let mut scheme = "";
    let mut rest = raw;
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' => {
                if i == 0 {
                    return None; // missing protocol scheme
                }
                scheme = &raw[..i];
                rest = &raw[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let scheme = scheme.to_ascii_lowercase();
    let (rest, query) = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        (&rest[..rest.len() - 1], Some(""))
    } else {
        match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        }
    };
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // Opaque URL (`mailto:x`): kept as is.
            out.push_str(rest);
            push_query(out, query);
            return Some(());
        }
        let first = rest.split('/').next().unwrap_or("");
        if first.contains(':') {
            return None; // first path segment in URL cannot contain colon
        }
    }
    let mut path = rest;
    let mut host = None;
    let mut user = None;
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let authority_and_path = &rest[2..];
        let (authority, p) = match authority_and_path.find('/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, ""),
        };
        path = p;
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            user = Some(parse_userinfo(userinfo)?);
        }
        host = Some(parse_host(hostport)?);
    }
    let decoded_path = unescape(path).ok()?;
    let escaped_path = {
        let canonical = escape_path(&decoded_path);
        // `setPath` keeps RawPath when it differs; `EscapedPath` uses it when valid.
        if canonical != path && valid_encoded(path) {
            path.to_owned()
        } else {
            canonical
        }
    };
    let host = host.unwrap_or_default();
    if !scheme.is_empty() || !host.is_empty() || user.is_some() {
        if !host.is_empty() || !escaped_path.is_empty() || user.is_some() {
            out.push_str("//");
        }
        if let Some(user) = &user {
            out.push_str(user);
            out.push('@');
        }
        out.push_str(&escape_with(&host, should_escape_host));
    }
    if !escaped_path.is_empty() && !escaped_path.starts_with('/') && !host.is_empty() {
        out.push('/');
    }
    if out.is_empty() {
        let segment = escaped_path.split('/').next().unwrap_or("");
        if segment.contains(':') {
            out.push_str("./");
        }
    }
    out.push_str(&escaped_path);
    push_query(out, query);
    Some(())
}

fn push_query(out: &mut String, query: Option<&str>) {
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
}

/// Go's `parseAuthority` user part, re-serialised as `User.String()` does.
fn parse_userinfo(userinfo: &str) -> Option<String> {
    let valid = userinfo.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b':'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b'@'
            )
    });
    if !valid {
        return None;
    }
    let mut out = String::new();
    match userinfo.split_once(':') {
        Some((name, password)) => {
            out.push_str(&escape_with(&unescape(name).ok()?, should_escape_userinfo));
            out.push(':');
            out.push_str(&escape_with(
                &unescape(password).ok()?,
                should_escape_userinfo,
            ));
        }
        None => out.push_str(&escape_with(
            &unescape(userinfo).ok()?,
            should_escape_userinfo,
        )),
    }
    Some(out)
}

/// Go's `parseHost`: port syntax checked, escapes decoded (host mode).
fn parse_host(host: &str) -> Option<Vec<u8>> {
    let valid_port = |colon_port: &str| {
        colon_port.is_empty()
            || colon_port
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let close = host.rfind(']')?;
        if !valid_port(&host[close + 1..]) {
            return None;
        }
    } else if let Some(i) = host.rfind(':') {
        if !valid_port(&host[i..]) {
            return None;
        }
    }
    // unescape(host, encodeHost): only %XX of non-ASCII bytes (and %25), and
    // no ASCII byte the host encoding would escape.
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            let escape = host.get(i..i + 3)?;
            if escape != "%25" && escape.as_bytes().get(1).is_some_and(|h| *h < b'8') {
                return None;
            }
            i += 3;
        } else {
            if c < 0x80 && should_escape_host(c) {
                return None;
            }
            i += 1;
        }
    }
    unescape(host).ok()
}

fn should_escape_host(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
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
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        ))
}

fn should_escape_userinfo(c: u8) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b',' | b';' | b'='
        ))
}

fn should_escape_fragment(c: u8) -> bool {
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
                | b'?'
                | b'@'
                | b'!'
                | b'('
                | b')'
                | b'*'
        ))
}

fn escape_with(bytes: &[u8], should_escape: fn(u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if should_escape(b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The parts of the URL Traefik rebuilds for a request: scheme (from TLS, or
/// an absolute-form HTTP/1 target), host (`req.Host` as sent, port included,
/// unless the absolute target names one) and the request target.
pub(super) struct RequestUrl {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host as sent (may carry a port).
    pub host: String,
    /// A port from an absolute-form target (`:8080`), else empty.
    pub port: String,
    /// Path and query as they stand now.
    pub uri: String,
}

impl RequestUrl {
    /// Reads `req` as Traefik's `rawURL` does.
    pub(super) fn of<B>(req: &Request<B>, tls: bool) -> Self {
        let uri = req.uri();
        let target = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let header_host = req
            .headers()
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        let mut url = Self {
            scheme: if tls { "https" } else { "http" },
            host: uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .or(header_host)
                .unwrap_or_default(),
            port: String::new(),
            uri: target,
        };
        // An absolute-form HTTP/1 target (HTTP/2 always carries scheme and
        // authority; Go's RequestURI is then just `:path`).
        if req.version() < http::Version::HTTP_2 {
            if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
                    if !tls {
                        url.scheme = if scheme.eq_ignore_ascii_case("https") {
                            "https"
                        } else {
                            "http"
                        };
                    }
                    url.host = authority.host().to_owned();
                    url.port = authority
                        .port()
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default();
                }
            }
        }
        url
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    regex: String,
    #[serde(default)]
    replacement: String,
    #[serde(default)]
    permanent: bool,
}

/// Builds a `redirectRegex` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let regex = Regex::new(&config.regex)
        .map_err(|e| cx.invalid(format!("regex {:?}: {e}", config.regex)))?;
    Ok(Arc::new(RedirectRegex {
        regex,
        replacement: config.replacement,
        permanent: config.permanent,
    }))
}

/// The built `redirectRegex`.
#[derive(Debug)]
struct RedirectRegex {
    regex: Regex,
    replacement: String,
    permanent: bool,
}

impl Middleware for RedirectRegex {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let url = RequestUrl::of(&req, cx.client.tls);
            let old = format!("{}://{}{}{}", url.scheme, url.host, url.port, url.uri);
            if !self.regex.is_match(&old) {
                return next.run(req, cx).await;
            }
            let new = replace_all(&self.regex, &old, &self.replacement);
            match redirect_to(&old, &new, req.method(), self.permanent) {
                Some(resp) => Ok(resp),
                None => next.run(req, cx).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    #[test]
    fn go_url_round_trips_and_normalises() {
        let same = [
            "http://new.example/o?u=http://127.0.0.1:18080&p=a/b?c=d",
            "https://h.example:8443/a%2Fb?x=1#frag",
            "https://[::1]:443/x",
            "/relative/path",
            "mailto:someone@example.com",
            "http://user:pa%20ss@h/",
            "http://h",
            "http://h?",
        ];
        for url in same {
            assert_eq!(go_url_string(url).as_deref(), Some(url), "{url}");
        }
        assert_eq!(
            go_url_string("HTTP://h/a b").as_deref(),
            Some("http://h/a%20b")
        );
        assert_eq!(
            go_url_string("http://h/%41").as_deref(),
            Some("http://h/%41")
        );
        assert_eq!(go_url_string("http://h/#").as_deref(), Some("http://h/"));
        for bad in [
            "http://h/%zz",
            "http://[::1/x",
            "http://h:port/x",
            ":nope",
            "1a:b/c",
            "http://h\n/x",
            "http://h /x",
            "http://h/x#%zz",
        ] {
            assert_eq!(go_url_string(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_depends_on_get_and_permanence() {
        assert_eq!(redirect_status(&Method::GET, false), 302);
        assert_eq!(redirect_status(&Method::HEAD, false), 307);
        assert_eq!(redirect_status(&Method::POST, false), 307);
        assert_eq!(redirect_status(&Method::GET, true), 301);
        assert_eq!(redirect_status(&Method::HEAD, true), 308);
        assert_eq!(redirect_status(&Method::PUT, true), 308);
    }

    async fn answer(
        config: Value,
        req: Request<RequestBody>,
        tls: bool,
    ) -> (Response<ResponseBody>, bool) {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let resp = run_tls(&mw, req, &backend, tls).await;
        (resp, backend.called())
    }

    #[tokio::test]
    async fn redirects_with_groups_over_the_full_url() {
        let config = json!({
            "regex": "^(.*)/rregex/(.*)",
            "replacement": "http://new.example/o?u=$1&p=$2"
        });
        let req = get("/rregex/a/b?c=d", &[("host", "127.0.0.1:18080")]);
        let (resp, called) = answer(config, req, false).await;
        assert!(!called);
        assert_eq!(resp.status(), 302);
        assert_eq!(
            resp.headers()["location"],
            "http://new.example/o?u=http://127.0.0.1:18080&p=a/b?c=d"
        );
        assert!(resp.headers().get("content-type").is_none());
        assert_eq!(body(resp).await, "Found");
    }

    #[tokio::test]
    async fn scheme_comes_from_tls_not_forwarded_proto() {
        let config = json!({"regex": "^(https?)://([^/]+)/(.*)", "replacement": "$1://other/$3", "permanent": true});
        let req = request(
            Method::POST,
            "/x",
            &[("host", "h.example:99"), ("x-forwarded-proto", "https")],
        );
        let (resp, _) = answer(config.clone(), req, false).await;
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], "http://other/x");
        let (resp, _) = answer(config, get("/x", &[("host", "h")]), true).await;
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()["location"], "https://other/x");
    }

    #[tokio::test]
    async fn no_match_or_identical_target_passes_through() {
        let (_, called) = answer(
            json!({"regex": "^nomatch", "replacement": "x"}),
            get("/a", &[("host", "h")]),
            false,
        )
        .await;
        assert!(called);
        let config = json!({"regex": "^(.*)$", "replacement": "$1"});
        let (resp, called) = answer(config, get("/a", &[("host", "h")]), false).await;
        assert!(called);
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn unparsable_target_is_a_bad_gateway() {
        let config = json!({"regex": "^http://([^/]+)/(.*)", "replacement": "http://[$1/$2"});
        let (resp, called) = answer(config, get("/x", &[("host", "h")]), false).await;
        assert!(!called);
        assert_eq!(resp.status(), 502);
        assert!(resp.headers().get("content-type").is_none());
        assert_eq!(body(resp).await, "Bad Gateway");
    }

    #[tokio::test]
    async fn target_is_reserialised_like_go() {
        let config = json!({"regex": "^http://h/(.*)", "replacement": "http://h2/a b/$1"});
        let (resp, _) = answer(config, get("/x", &[("host", "h")]), false).await;
        assert_eq!(resp.headers()["location"], "http://h2/a%20b/x");
    }

    #[tokio::test]
    async fn absolute_form_targets_supply_scheme_host_and_port() {
        let config = json!({"regex": "^(.*)$", "replacement": "/r?u=$1"});
        let req = get("http://abs.example:8080/p?q", &[("host", "ignored")]);
        let (resp, _) = answer(config, req, false).await;
        assert_eq!(
            resp.headers()["location"],
            "/r?u=http://abs.example:8080/p?q"
        );
    }

    #[test]
    fn bad_regex_is_refused() {
        assert!(testing::make(build, json!({"regex": "(", "replacement": "x"})).is_err());
    }
}
