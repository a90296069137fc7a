//! `gatewayCors`: the HTTPRoute `CORS` filter (GEP-1767, `HTTPCORSFilter`).
//!
//! The config is the filter's `cors` section: `allowOrigins`,
//! `allowCredentials`, `allowMethods`, `allowHeaders`, `exposeHeaders`,
//! `maxAge` (default 5).
//!
//! - **Origins.** An entry is `*` (every origin) or
//!   `<http|https>://<host>[:<port>]`; the port defaults to the scheme's (80,
//!   443) on both sides, so `https://a.test` and `https://a.test:443` are the
//!   same origin. The host may be `*` (any host) or start with `*.`, a greedy
//!   match of one or more DNS labels (`https://*.bar.com` matches
//!   `https://www.bar.com` and `https://x.www.bar.com`, not
//!   `https://bar.com`). Schemes and hosts compare case-insensitively.
//! - **Preflight** (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`): always answered here, never sent to
//!   the backend (the GEP makes the gateway the final authority). An allowed
//!   origin gets `204` with `Access-Control-Allow-Origin`, `-Credentials`
//!   (when allowed), `-Methods`, `-Headers`, `-Expose-Headers` and
//!   `-Max-Age`; any other origin gets `204` without CORS headers (the
//!   spec's first option; the browser then refuses the request).
//! - **Other requests** go to the backend. When their `Origin` is allowed,
//!   the response gets `Access-Control-Allow-Origin`, `-Credentials` and
//!   `-Expose-Headers` as configured (replacing the backend's own); when it
//!   is not, the backend's `Access-Control-Allow-Origin`, `-Credentials`
//!   and `-Expose-Headers` are removed, so the route's policy is the only
//!   one a browser sees. Requests without `Origin` are left alone.
//! - **Wildcards.** `Access-Control-Allow-Origin: *` only for `allowOrigins:
//!   ["*"]` without credentials; otherwise the request's `Origin` is echoed
//!   (and `Vary: Origin` added to every response). With credentials, `*` is
//!   never sent: `allowMethods: ["*"]` echoes the preflight's
//!   `Access-Control-Request-Method`, `allowHeaders: ["*"]` its
//!   `Access-Control-Request-Headers` (omitted when absent), and
//!   `exposeHeaders: ["*"]` lists the response's own header names (the
//!   CORS-safelisted ones aside; omitted on preflights).
//! - Failures that produce no response (502/503/504 made by the proxy) get
//!   no CORS headers.

use std::sync::Arc;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// `Access-Control-Max-Age` when `maxAge` is not set (GEP-1767's default).
const DEFAULT_MAX_AGE: i64 = 5;

/// The `HTTPCORSFilter` section as the HTTPRoute holds it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow_origins: Vec<String>,
    #[serde(default)]
    allow_credentials: Option<bool>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    max_age: Option<i64>,
}

/// Builds a `gatewayCors` from the filter's `cors` section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let origins = parse_origins(&config.allow_origins).map_err(|e| cx.invalid(e))?;
    let methods = allow_list("allowMethods", &config.allow_methods, |m| {
        Method::from_bytes(m.as_bytes()).is_ok()
    })
    .map_err(|e| cx.invalid(e))?;
    let headers = allow_list("allowHeaders", &config.allow_headers, |h| {
        HeaderName::from_bytes(h.as_bytes()).is_ok()
    })
    .map_err(|e| cx.invalid(e))?;
    let expose = expose_list(&config.expose_headers).map_err(|e| cx.invalid(e))?;
    let max_age = match config.max_age {
        // The API server's default, also for an explicit 0 (omitempty).
        None | Some(0) => DEFAULT_MAX_AGE,
        Some(age) if age > 0 => age,
        Some(age) => return Err(cx.invalid(format!("maxAge {age} is negative"))),
    };
    Ok(Arc::new(Cors {
        origins,
        credentials: config.allow_credentials.unwrap_or(false),
        methods,
        headers,
        expose,
        max_age: HeaderValue::from(max_age),
    }))
}

/// Which origins the filter allows.
#[derive(Debug)]
enum Origins {
    /// `allowOrigins: ["*"]`.
    Any,
    /// The listed origins (possibly none: nothing is allowed).
    List(Box<[AllowedOrigin]>),
}

/// One `allowOrigins` entry other than `*`.
#[derive(Debug, PartialEq, Eq)]
struct AllowedOrigin {
    /// `https` (else `http`).
    https: bool,
    /// The host part.
    host: HostPattern,
    /// The port, the scheme's default when the entry names none.
    port: u16,
}

/// The host part of an allowed origin.
#[derive(Debug, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host.
    Any,
    /// A host name or address, lower-cased.
    Exact(Box<str>),
    /// `*.suffix`: stored as `.suffix`, lower-cased; at least one character
    /// must come before it.
    Suffix(Box<str>),
}

/// A configured list of methods or header names.
#[derive(Debug, PartialEq, Eq)]
enum Allow {
    /// Nothing configured: the header is not sent.
    Nothing,
    /// `*`.
    Any,
    /// The entries joined with `, `.
    List(HeaderValue),
}

/// The built `gatewayCors`.
#[derive(Debug)]
struct Cors {
    /// The allowed origins.
    origins: Origins,
    /// `allowCredentials`.
    credentials: bool,
    /// `allowMethods`.
    methods: Allow,
    /// `allowHeaders`.
    headers: Allow,
    /// `exposeHeaders`.
    expose: Allow,
    /// `maxAge`, as the header value.
    max_age: HeaderValue,
}

/// Parses `allowOrigins`.
fn parse_origins(entries: &[String]) -> Result<Origins, String> {
    if entries.iter().any(|o| o == "*") {
        if entries.len() > 1 {
            return Err("allowOrigins cannot contain '*' alongside other origins".to_owned());
        }
        return Ok(Origins::Any);
    }
    let parsed = entries
        .iter()
        .map(|entry| parse_allowed_origin(entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Origins::List(parsed.into()))
}

/// Parses one `allowOrigins` entry: `<http|https>://<host>[:<port>]`, the host
/// being `*`, `*.<name>` or a name (letters, digits, `-`, `.`).
fn parse_allowed_origin(entry: &str) -> Result<AllowedOrigin, String> {
    let bad = |why: &str| format!("allowOrigins: {entry:?} {why}");
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| bad("is not <scheme>://<host>[:<port>]"))?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err(bad("must use the http or https scheme"));
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let port = match port {
        None => default_port(https),
        Some(port) => parse_port(port).ok_or_else(|| bad("has an invalid port"))?,
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(is_label_byte))
    };
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(name) = host.strip_prefix("*.") {
        if !name_ok(name) {
            return Err(bad("has an invalid host"));
        }
        HostPattern::Suffix(format!(".{}", name.to_ascii_lowercase()).into())
    } else {
        if !name_ok(host) {
            return Err(bad("has an invalid host"));
        }
        HostPattern::Exact(host.to_ascii_lowercase().into())
    };
    Ok(AllowedOrigin { https, host, port })
}

/// Whether `b` may appear in a DNS label of an allowed origin.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The port an origin of this scheme has when it names none.
fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

/// A port written as 1 to 5 digits, 1 to 65535.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

/// Parses `allowMethods` or `allowHeaders`: `*` alone, or valid entries.
fn allow_list(
    field: &str,
    entries: &[String],
    valid: impl Fn(&str) -> bool,
) -> Result<Allow, String> {
    if entries.iter().any(|e| e == "*") {
        if entries.len() > 1 {
            return Err(format!("{field} cannot contain '*' alongside other values"));
        }
        return Ok(Allow::Any);
    }
    if let Some(bad) = entries.iter().find(|e| !valid(e)) {
        return Err(format!("{field}: {bad:?} is not valid"));
    }
    joined(field, entries)
}

/// Parses `exposeHeaders`: any `*` among them exposes every header.
fn expose_list(entries: &[String]) -> Result<Allow, String> {
    if entries.iter().any(|e| e == "*") {
        return Ok(Allow::Any);
    }
    if let Some(bad) = entries
        .iter()
        .find(|e| HeaderName::from_bytes(e.as_bytes()).is_err())
    {
        return Err(format!("exposeHeaders: {bad:?} is not a header name"));
    }
    joined("exposeHeaders", entries)
}

/// `entries` as one `a, b, c` header value (nothing for no entry).
fn joined(field: &str, entries: &[String]) -> Result<Allow, String> {
    if entries.is_empty() {
        return Ok(Allow::Nothing);
    }
    HeaderValue::from_str(&entries.join(", "))
        .map(Allow::List)
        .map_err(|_| format!("{field}: not a header value"))
}

/// A request's `Origin`, split for matching (borrowed from the header).
#[derive(Debug, PartialEq, Eq)]
struct RequestOrigin<'a> {
    /// `https` (else `http`).
    https: bool,
    /// The host as sent (IPv6 addresses with their brackets).
    host: &'a str,
    /// The port, the scheme's default when the origin names none.
    port: u16,
}

/// Parses a serialized origin (`<scheme>://<host>[:<port>]`, RFC 6454);
/// `None` for anything else (`null`, other schemes, paths).
fn parse_request_origin(text: &str) -> Option<RequestOrigin<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return None;
    };
    if rest.bytes().any(|b| matches!(b, b'/' | b'?' | b'#' | b'@')) {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')? + 1;
        (&rest[..end], &rest[end..])
    } else {
        match rest.rfind(':') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        "" => default_port(https),
        port => parse_port(port.strip_prefix(':')?)?,
    };
    Some(RequestOrigin { https, host, port })
}

impl AllowedOrigin {
    /// Whether `origin` is this allowed origin.
    fn matches(&self, origin: &RequestOrigin<'_>) -> bool {
        if self.https != origin.https || self.port != origin.port {
            return false;
        }
        let host = origin.host.as_bytes();
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Suffix(suffix) => {
                let suffix = suffix.as_bytes();
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// `Access-Control-Allow-Credentials: true`.
const TRUE: HeaderValue = HeaderValue::from_static("true");
/// `*`.
const STAR: HeaderValue = HeaderValue::from_static("*");
/// `Vary: Origin`.
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// Whether `req` is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(ORIGIN)
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Response headers a script may always read (Fetch's CORS-safelisted
/// response-header names), plus those it never may (`Set-Cookie`): neither
/// needs exposing.
fn never_exposed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "cache-control"
            | "content-language"
            | "content-length"
            | "content-type"
            | "expires"
            | "last-modified"
            | "pragma"
            | "set-cookie"
            | "set-cookie2"
    ) || name.as_str().starts_with("access-control-")
}

impl Cors {
    /// Whether `Access-Control-Allow-Origin` is the fixed `*` (so responses
    /// do not depend on the request's `Origin`).
    fn static_star(&self) -> bool {
        matches!(self.origins, Origins::Any) && !self.credentials
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, when allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.origins {
            Origins::Any if self.credentials => Some(origin.clone()),
            Origins::Any => Some(STAR),
            Origins::List(allowed) => {
                let parsed = parse_request_origin(origin.to_str().ok()?)?;
                allowed
                    .iter()
                    .any(|a| a.matches(&parsed))
                    .then(|| origin.clone())
            }
        }
    }

    /// The answer to a preflight whose `Origin` gets `allow_origin` (`None`:
    /// not allowed).
    fn preflight(
        &self,
        request: &HeaderMap,
        allow_origin: Option<HeaderValue>,
    ) -> Response<ResponseBody> {
        let mut resp = Response::new(ResponseBody::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let headers = resp.headers_mut();
        if !self.static_star() {
            headers.append(VARY, VARY_ORIGIN);
        }
        let Some(allow_origin) = allow_origin else {
            return resp;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        match &self.methods {
            Allow::Nothing => {}
            Allow::List(list) => {
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, list.clone());
            }
            Allow::Any if !self.credentials => {
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, STAR);
            }
            Allow::Any => {
                let asked = request
                    .get(ACCESS_CONTROL_REQUEST_METHOD)
                    .filter(|m| Method::from_bytes(m.as_bytes()).is_ok());
                if let Some(asked) = asked {
                    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, asked.clone());
                }
            }
        }
        match &self.headers {
            Allow::Nothing => {}
            Allow::List(list) => {
                headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, list.clone());
            }
            Allow::Any if !self.credentials => {
                headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, STAR);
            }
            Allow::Any => {
                for asked in request.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
                    headers.append(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
            }
        }
        match &self.expose {
            Allow::List(list) => {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, list.clone());
            }
            Allow::Any if !self.credentials => {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, STAR);
            }
            // A preflight has no response headers worth listing.
            Allow::Any | Allow::Nothing => {}
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        resp
    }

    /// Sets the CORS headers of an actual request's response: `origin` says
    /// whether the request had an `Origin`, `allow_origin` whether it is allowed.
    fn decorate(&self, headers: &mut HeaderMap, origin: bool, allow_origin: Option<HeaderValue>) {
        if !self.static_star() {
            add_vary_origin(headers);
        }
        let Some(allow_origin) = allow_origin else {
            if origin {
                // Not allowed: the backend's own policy must not let it in.
                headers.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
                headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
                headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
            }
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        } else {
            headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        match &self.expose {
            Allow::Nothing => {
                headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
            }
            Allow::List(list) => {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, list.clone());
            }
            Allow::Any if !self.credentials => {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, STAR);
            }
            Allow::Any => expose_present(headers),
        }
    }
}

/// `Access-Control-Expose-Headers` naming the response's own headers (what
/// `exposeHeaders: ["*"]` means when `*` may not be sent).
fn expose_present(headers: &mut HeaderMap) {
    let mut names = String::new();
    for name in headers.keys().filter(|name| !never_exposed(name)) {
        if !names.is_empty() {
            names.push_str(", ");
        }
        names.push_str(name.as_str());
    }
    match HeaderValue::from_str(&names) {
        Ok(value) if !names.is_empty() => {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, value);
        }
        _ => {
            headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
        }
    }
}

/// Adds `Vary: Origin` unless the response already varies on it (or on everything).
fn add_vary_origin(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|value| {
        value.as_bytes().split(|b| *b == b',').any(|token| {
            let token = token.trim_ascii();
            token == b"*" || token.eq_ignore_ascii_case(b"origin")
        })
    });
    if !present {
        headers.append(VARY, VARY_ORIGIN);
    }
}

impl Middleware for Cors {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let origin = req.headers().get(ORIGIN);
        let has_origin = origin.is_some();
        let allow_origin = origin.and_then(|o| self.allow_origin(o));
        if is_preflight(&req) {
            let resp = self.preflight(req.headers(), allow_origin);
            return Box::pin(std::future::ready(Ok(resp)));
        }
        if !has_origin && self.static_star() {
            // Not a CORS request, and nothing varies by Origin.
            return next.run(req, cx);
        }
        Box::pin(async move {
            let mut resp = next.run(req, cx).await?;
            self.decorate(resp.headers_mut(), has_origin, allow_origin);
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    /// The conformance suite's route `cors-multiple-origins-methods-headers` (`/cors-1`).
    fn cors_1() -> Value {
        json!({
            "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
            "allowMethods": ["GET", "OPTIONS"],
            "allowHeaders": ["x-header-1", "x-header-2"],
            "exposeHeaders": ["x-header-3", "x-header-4"],
            "allowCredentials": true,
            "maxAge": 3600,
        })
    }

    /// `cors-wildcard-methods` (`/cors-2`), with the API server's default maxAge left out.
    fn cors_2() -> Value {
        json!({"allowOrigins": ["https://www.foo.com"], "allowMethods": ["*"]})
    }

    /// `cors-wildcard-origin`.
    fn wildcard_origin() -> Value {
        json!({"allowOrigins": ["*"], "allowMethods": ["PUT"], "allowCredentials": false})
    }

    /// `cors-wildcard-methods-headers` (credentials) and its `-unauth` twin.
    fn wildcard_all(credentials: bool) -> Value {
        json!({
            "allowOrigins": ["*"],
            "allowMethods": ["*"],
            "allowHeaders": ["*"],
            "allowCredentials": credentials,
        })
    }

    /// The conformance suite's comparison with `IgnoreWhitespace`.
    fn squash(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// What one conformance case expects of the response.
    struct Expect<'e> {
        statuses: &'e [u16],
        /// Header -> accepted values (whitespace ignored).
        valid: &'e [(&'e str, &'e [&'e str])],
        absent: &'e [&'e str],
        /// Whether the backend must have answered.
        backend: bool,
    }

    /// Runs `req` through a `gatewayCors` built from `config` in front of a
    /// recording backend, checks `expect` and returns the response headers.
    async fn check(config: Value, req: Request<RequestBody>, expect: Expect<'_>) -> HeaderMap {
        let mw = testing::make(build, config).expect("builds");
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, req).await;
        assert!(
            expect.statuses.contains(&resp.status().as_u16()),
            "status {}",
            resp.status()
        );
        assert_eq!(backend.called(), expect.backend, "backend called");
        let headers = resp.headers().clone();
        for (name, accepted) in expect.valid {
            let got = values(&headers, name);
            assert_eq!(got.len(), 1, "{name}: {got:?}");
            assert!(
                accepted.iter().any(|a| squash(a) == squash(&got[0])),
                "{name}: {got:?} not in {accepted:?}"
            );
        }
        for name in expect.absent {
            assert!(!headers.contains_key(*name), "{name} present: {headers:?}");
        }
        headers
    }

    /// An `OPTIONS` request of `path` with `headers`.
    fn preflight(path: &str, headers: &[(&str, &str)]) -> Request<RequestBody> {
        request(Method::OPTIONS, path, headers)
    }

    /// The statuses the suite accepts for an allowed preflight.
    const OK: &[u16] = &[200, 204];

    #[tokio::test]
    async fn conformance_preflight_from_exact_and_wildcard_origins() {
        for origin in [
            "https://www.foo.com",
            "https://www.bar.com",
            "https://xpto.www.bar.com",
        ] {
            let req = preflight(
                "/cors-1",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-header-1, x-header-2"),
                ],
            );
            check(
                cors_1(),
                req,
                Expect {
                    statuses: OK,
                    valid: &[
                        ("access-control-allow-origin", &[origin]),
                        (
                            "access-control-allow-methods",
                            &["GET, OPTIONS", "OPTIONS, GET"],
                        ),
                        (
                            "access-control-allow-headers",
                            &["x-header-1, x-header-2", "x-header-2, x-header-1"],
                        ),
                        (
                            "access-control-expose-headers",
                            &["x-header-3, x-header-4", "x-header-4, x-header-3"],
                        ),
                        ("access-control-max-age", &["3600"]),
                        ("access-control-allow-credentials", &["true"]),
                    ],
                    absent: &[],
                    backend: false,
                },
            )
            .await;
        }
    }

    #[tokio::test]
    async fn conformance_preflight_from_other_origin_gets_no_cors_headers() {
        let req = preflight(
            "/cors-1",
            &[
                ("origin", "https://foobar.com"),
                ("access-control-request-method", "GET"),
            ],
        );
        check(
            cors_1(),
            req,
            Expect {
                statuses: &[200, 204, 403],
                valid: &[],
                absent: &[
                    "access-control-allow-origin",
                    "access-control-allow-credentials",
                    "access-control-allow-methods",
                    "access-control-max-age",
                ],
                backend: false,
            },
        )
        .await;
    }

    #[tokio::test]
    async fn conformance_simple_requests_from_allowed_origins_get_their_origin() {
        for origin in ["https://www.foo.com", "https://www.bar.com"] {
            let req = get(
                "/cors-1",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-header-1, x-header-2"),
                ],
            );
            let headers = check(
                cors_1(),
                req,
                Expect {
                    statuses: &[200],
                    valid: &[
                        ("access-control-allow-origin", &[origin]),
                        ("access-control-allow-credentials", &["true"]),
                        ("access-control-expose-headers", &["x-header-3, x-header-4"]),
                    ],
                    absent: &["access-control-allow-methods", "access-control-max-age"],
                    backend: true,
                },
            )
            .await;
            assert_eq!(values(&headers, "vary"), ["Origin"]);
        }
    }

    #[tokio::test]
    async fn conformance_simple_request_from_other_origin_gets_nothing() {
        let req = get(
            "/cors-1",
            &[
                ("origin", "https://foobar.com"),
                ("access-control-request-method", "GET"),
            ],
        );
        check(
            cors_1(),
            req,
            Expect {
                statuses: &[200],
                valid: &[],
                absent: &[
                    "access-control-allow-origin",
                    "access-control-allow-credentials",
                    "access-control-expose-headers",
                ],
                backend: true,
            },
        )
        .await;
    }

    #[tokio::test]
    async fn conformance_wildcard_methods_without_credentials() {
        // Two cases of the suite send this same preflight.
        let req = preflight(
            "/cors-2",
            &[
                ("origin", "https://www.foo.com"),
                ("access-control-request-method", "POST"),
            ],
        );
        let headers = check(
            cors_2(),
            req,
            Expect {
                statuses: OK,
                valid: &[
                    ("access-control-allow-methods", &["POST", "*"]),
                    ("access-control-allow-origin", &["https://www.foo.com"]),
                    ("access-control-max-age", &["5"]),
                ],
                absent: &[
                    "access-control-allow-credentials",
                    "Access-Control-Allow-Credentials",
                ],
                backend: false,
            },
        )
        .await;
        assert!(!headers.contains_key("access-control-allow-headers"));
    }

    #[tokio::test]
    async fn conformance_wildcard_origin_preflights_with_and_without_port() {
        for origin in ["https://foobar.com", "https://foobar.com:12345"] {
            let req = preflight(
                "/cors-wildcard-origin",
                &[("origin", origin), ("access-control-request-method", "PUT")],
            );
            check(
                wildcard_origin(),
                req,
                Expect {
                    statuses: OK,
                    valid: &[
                        ("access-control-allow-origin", &[origin, "*"]),
                        ("access-control-allow-methods", &["PUT"]),
                    ],
                    absent: &["access-control-allow-credentials"],
                    backend: false,
                },
            )
            .await;
        }
    }

    #[tokio::test]
    async fn conformance_wildcard_origin_requests_with_and_without_port() {
        for origin in ["https://foobar.com:12345", "https://foobar.com"] {
            let req = request(Method::PUT, "/cors-wildcard-origin", &[("origin", origin)]);
            let headers = check(
                wildcard_origin(),
                req,
                Expect {
                    statuses: &[200],
                    valid: &[("access-control-allow-origin", &[origin, "*"])],
                    absent: &["access-control-allow-credentials"],
                    backend: true,
                },
            )
            .await;
            // The fixed `*` does not vary by Origin.
            assert!(!headers.contains_key("vary"));
        }
    }

    #[tokio::test]
    async fn conformance_wildcards_with_credentials_echo_the_request() {
        let req = preflight(
            "/cors-wildcard-methods-headers",
            &[
                ("origin", "https://other.foo.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-header-1, x-header-2"),
            ],
        );
        check(
            wildcard_all(true),
            req,
            Expect {
                statuses: OK,
                valid: &[
                    ("access-control-allow-origin", &["https://other.foo.com"]),
                    ("access-control-allow-methods", &["PUT"]),
                    (
                        "access-control-allow-headers",
                        &["x-header-1, x-header-2", "x-header-2, x-header-1"],
                    ),
                    ("access-control-allow-credentials", &["true"]),
                ],
                absent: &[],
                backend: false,
            },
        )
        .await;
        let req = get(
            "/cors-wildcard-methods-headers",
            &[("origin", "https://other.foo.com")],
        );
        let headers = check(
            wildcard_all(true),
            req,
            Expect {
                statuses: &[200],
                valid: &[
                    ("access-control-allow-origin", &["https://other.foo.com"]),
                    ("access-control-allow-credentials", &["true"]),
                ],
                absent: &[],
                backend: true,
            },
        )
        .await;
        // The echoed origin makes the response vary by Origin.
        assert_eq!(values(&headers, "vary"), ["Origin"]);
    }

    #[tokio::test]
    async fn conformance_wildcards_without_credentials_hide_the_credentials_header() {
        let req = preflight(
            "/cors-wildcard-methods-headers-unauth",
            &[
                ("origin", "https://other.foo.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-header-1, x-header-2"),
            ],
        );
        check(
            wildcard_all(false),
            req,
            Expect {
                statuses: OK,
                valid: &[
                    (
                        "access-control-allow-origin",
                        &["https://other.foo.com", "*"],
                    ),
                    ("access-control-allow-methods", &["PUT", "*"]),
                    (
                        "access-control-allow-headers",
                        &["x-header-1, x-header-2", "x-header-2, x-header-1", "*"],
                    ),
                ],
                absent: &["access-control-allow-credentials"],
                backend: false,
            },
        )
        .await;
        let req = get(
            "/cors-wildcard-methods-headers-unauth",
            &[("origin", "https://other.foo.com")],
        );
        check(
            wildcard_all(false),
            req,
            Expect {
                statuses: &[200],
                valid: &[(
                    "access-control-allow-origin",
                    &["https://other.foo.com", "*"],
                )],
                absent: &["access-control-allow-credentials"],
                backend: true,
            },
        )
        .await;
    }

    #[tokio::test]
    async fn credentialed_wildcards_omit_what_the_request_did_not_ask() {
        // No Access-Control-Request-Headers: no Access-Control-Allow-Headers.
        let req = preflight(
            "/",
            &[
                ("origin", "https://a.test"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        check(
            wildcard_all(true),
            req,
            Expect {
                statuses: OK,
                valid: &[
                    ("access-control-allow-methods", &["DELETE"]),
                    ("access-control-max-age", &["5"]),
                ],
                absent: &["access-control-allow-headers"],
                backend: false,
            },
        )
        .await;
    }

    #[tokio::test]
    async fn exposed_wildcard_lists_the_response_headers_when_credentialed() {
        let config = |credentials: bool| json!({"allowOrigins": ["*"], "exposeHeaders": ["*"], "allowCredentials": credentials});
        let backend = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::empty());
            let h = resp.headers_mut();
            h.insert("x-trace", HeaderValue::from_static("1"));
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            h.insert("x-rev", HeaderValue::from_static("7"));
            resp
        });
        let mw = testing::make(build, config(true)).unwrap();
        let resp = run(&mw, &backend, get("/", &[("origin", "https://a.test")])).await;
        let exposed = values(resp.headers(), "access-control-expose-headers");
        assert_eq!(exposed.len(), 1);
        let mut names: Vec<&str> = exposed[0].split(", ").collect();
        names.sort_unstable();
        assert_eq!(names, ["vary", "x-rev", "x-trace"]);

        let mw = testing::make(build, config(false)).unwrap();
        let resp = run(&mw, &backend, get("/", &[("origin", "https://a.test")])).await;
        assert_eq!(
            values(resp.headers(), "access-control-expose-headers"),
            ["*"]
        );
        assert_eq!(values(resp.headers(), "access-control-allow-origin"), ["*"]);
    }

    #[tokio::test]
    async fn the_route_policy_replaces_the_backends() {
        let backend = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::empty());
            let h = resp.headers_mut();
            h.insert("access-control-allow-origin", STAR);
            h.insert("access-control-allow-credentials", TRUE);
            h.insert(
                "access-control-expose-headers",
                HeaderValue::from_static("x-secret"),
            );
            h.insert("vary", HeaderValue::from_static("Accept-Encoding, origin"));
            resp
        });
        let mw = testing::make(build, cors_2()).unwrap();
        // Not allowed: the backend's CORS headers are gone.
        let resp = run(&mw, &backend, get("/", &[("origin", "https://evil.test")])).await;
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            assert!(!resp.headers().contains_key(name), "{name}");
        }
        // Already varies on Origin: not added twice.
        assert_eq!(values(resp.headers(), "vary"), ["Accept-Encoding, origin"]);
        // Allowed: the route's values, no credentials, nothing exposed.
        let resp = run(
            &mw,
            &backend,
            get("/", &[("origin", "https://www.foo.com")]),
        )
        .await;
        let h = resp.headers();
        assert_eq!(
            values(h, "access-control-allow-origin"),
            ["https://www.foo.com"]
        );
        assert!(!h.contains_key("access-control-allow-credentials"));
        assert!(!h.contains_key("access-control-expose-headers"));
        // No Origin: not a CORS request, the backend's headers stay.
        let resp = run(&mw, &backend, get("/", &[])).await;
        assert_eq!(values(resp.headers(), "access-control-allow-origin"), ["*"]);
    }

    #[tokio::test]
    async fn options_without_request_method_is_not_a_preflight() {
        let mw = testing::make(build, cors_1()).unwrap();
        let backend = Recorder::ok();
        let req = request(Method::OPTIONS, "/", &[("origin", "https://www.foo.com")]);
        let resp = run(&mw, &backend, req).await;
        assert!(backend.called());
        assert_eq!(resp.status(), 200);
        assert_eq!(
            values(resp.headers(), "access-control-allow-origin"),
            ["https://www.foo.com"]
        );
        assert!(!resp.headers().contains_key("access-control-max-age"));
        // Requests without Origin still vary by it (a cache may serve them to CORS requests).
        let resp = run(&mw, &backend, get("/", &[])).await;
        assert_eq!(values(resp.headers(), "vary"), ["Origin"]);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn origins_match_by_scheme_host_and_port() {
        let allowed = |pattern: &str, origin: &str| {
            let pattern = parse_allowed_origin(pattern).expect("pattern");
            parse_request_origin(origin).is_some_and(|o| pattern.matches(&o))
        };
        assert!(allowed("https://www.foo.com", "https://www.foo.com"));
        assert!(allowed("https://www.foo.com", "HTTPS://WWW.Foo.com"));
        assert!(allowed("https://www.foo.com", "https://www.foo.com:443"));
        assert!(allowed("https://www.foo.com:443", "https://www.foo.com"));
        assert!(allowed("http://a.test", "http://a.test:80"));
        assert!(allowed("http://a.test:8080", "http://a.test:8080"));
        assert!(!allowed("http://a.test", "http://a.test:8080"));
        assert!(!allowed("http://a.test:8080", "http://a.test"));
        assert!(!allowed("https://www.foo.com", "http://www.foo.com"));
        assert!(!allowed(
            "https://www.foo.com",
            "https://www.foo.com.evil.test"
        ));
        assert!(!allowed("https://www.foo.com", "https://www.foo.com/"));
        assert!(!allowed("https://www.foo.com", "null"));
        assert!(allowed("https://*.bar.com", "https://www.bar.com"));
        assert!(allowed("https://*.bar.com", "https://a.b.bar.com"));
        assert!(!allowed("https://*.bar.com", "https://bar.com"));
        assert!(!allowed("https://*.bar.com", "https://foobar.com"));
        assert!(!allowed("https://*.bar.com", "https://www.bar.com:8443"));
        assert!(allowed(
            "https://*.bar.com:8443",
            "https://www.bar.com:8443"
        ));
        assert!(allowed("https://*", "https://anything.test"));
        assert!(!allowed("https://*", "http://anything.test"));
        assert!(allowed("http://10.0.0.1:3000", "http://10.0.0.1:3000"));
        assert!(!allowed("http://a.test", "http://a.test:"));
        assert!(!allowed("http://a.test", "http://a.test:+80"));
        assert_eq!(
            parse_request_origin("http://[::1]:8080"),
            Some(RequestOrigin {
                https: false,
                host: "[::1]",
                port: 8080
            })
        );
        assert_eq!(parse_request_origin("ftp://a.test"), None);
        assert_eq!(parse_request_origin("https://"), None);
        assert_eq!(parse_request_origin("https://a.test:99999"), None);
    }

    #[test]
    fn configs_are_validated() {
        assert!(testing::make(build, json!({})).is_ok());
        let bad = [
            (
                json!({"allowOrigins": ["*", "https://a.test"]}),
                "alongside",
            ),
            (json!({"allowOrigins": ["a.test"]}), "<scheme>"),
            (json!({"allowOrigins": ["ftp://a.test"]}), "scheme"),
            (json!({"allowOrigins": ["https://a.test/"]}), "host"),
            (json!({"allowOrigins": ["https://a.*.test"]}), "host"),
            (json!({"allowOrigins": ["https://a.test:0"]}), "port"),
            (json!({"allowOrigins": ["https://a.test:65536"]}), "port"),
            (json!({"allowMethods": ["*", "GET"]}), "alongside"),
            (json!({"allowMethods": ["GE T"]}), "not valid"),
            (json!({"allowHeaders": ["*", "x-a"]}), "alongside"),
            (json!({"allowHeaders": ["x a"]}), "not valid"),
            (json!({"exposeHeaders": ["x:a"]}), "header name"),
            (json!({"maxAge": -1}), "negative"),
            (json!({"maxAge": "5"}), "invalid type"),
            (json!({"allowOrigin": ["*"]}), "unknown field"),
        ];
        for (config, expected) in bad {
            let err = testing::make(build, config.clone())
                .expect_err("refused")
                .to_string();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }

    #[tokio::test]
    async fn max_age_defaults_to_five_and_lists_are_joined() {
        let mw = testing::make(
            build,
            json!({"allowOrigins": ["http://a.test"], "allowMethods": ["GET", "PATCH"], "maxAge": 0}),
        )
        .unwrap();
        let backend = Recorder::ok();
        let req = preflight(
            "/",
            &[
                ("origin", "http://a.test"),
                ("access-control-request-method", "PATCH"),
            ],
        );
        let resp = run(&mw, &backend, req).await;
        assert_eq!(resp.status(), 204);
        let h = resp.headers();
        assert_eq!(values(h, "access-control-max-age"), ["5"]);
        assert_eq!(values(h, "access-control-allow-methods"), ["GET, PATCH"]);
        assert_eq!(values(h, "vary"), ["Origin"]);
        assert!(!h.contains_key("access-control-allow-headers"));
        assert!(!h.contains_key("access-control-expose-headers"));
    }
}
