//! `gatewayRedirect`: the HTTPRoute `RequestRedirect` filter
//! (`HTTPRequestRedirectFilter`), answered without calling the rest of the
//! chain.
//!
//! The `Location` is absolute, built from:
//! - scheme: the filter's, else the request's (TLS or not);
//! - host: the filter's `hostname`, else the request's host (the URI
//!   authority of an HTTP/2 or absolute-form request, else `Host`) without
//!   its port;
//! - port: the filter's; else, when the filter sets a scheme, that scheme's
//!   well-known port (80, 443); else the Gateway listener's port
//!   (`listenerPort`, given by the compiler; the request scheme's well-known
//!   port when absent). It is left out for `http` on 80 and `https` on 443;
//! - path: the request's, or what the filter's `path` makes of it
//!   ([`PathModifier`]; `ReplacePrefixMatch` needs `matchedPrefix`, the rule's
//!   `PathPrefix` value, given by the compiler);
//! - the request's query, unchanged.
//!
//! The status is the filter's `statusCode` (301, 302, 303, 307 or 308; 302
//! when absent) and the body is empty. Unlike Traefik's redirects the status
//! does not depend on the method, and a target equal to the request URL is
//! still redirected: the filter says what to answer, not where to go.

use std::fmt::Write as _;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_LENGTH, HOST, LOCATION};
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::path_modifier::{PathConfig, PathModifier};
use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::support::status_response;
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// `HTTPRequestRedirectFilter`, plus what the compiler adds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// `http` or `https`.
    #[serde(default)]
    scheme: Option<String>,
    /// The host of the `Location`.
    #[serde(default)]
    hostname: Option<String>,
    /// How the path changes.
    #[serde(default)]
    path: Option<PathConfig>,
    /// The port of the `Location`.
    #[serde(default)]
    port: Option<i64>,
    /// The status (302 when absent).
    #[serde(default)]
    status_code: Option<i64>,
    /// The rule's `PathPrefix` value, when it matches with one.
    #[serde(default)]
    matched_prefix: Option<String>,
    /// The port of the Gateway listener the route is attached to.
    #[serde(default)]
    listener_port: Option<i64>,
}

/// A redirect scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `http`, port 80.
    Http,
    /// `https`, port 443.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL.
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// Its well-known port.
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// Builds a `gatewayRedirect` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let scheme = match config.scheme.as_deref() {
        None => None,
        Some("http") => Some(Scheme::Http),
        Some("https") => Some(Scheme::Https),
        Some(other) => return Err(cx.invalid(format!("scheme {other:?} is not supported"))),
    };
    if let Some(hostname) = &config.hostname {
        check_hostname(hostname).map_err(|reason| cx.invalid(reason))?;
    }
    let port = config
        .port
        .map(|p| port_number("port", p))
        .transpose()
        .map_err(|reason| cx.invalid(reason))?;
    let listener_port = config
        .listener_port
        .map(|p| port_number("listenerPort", p))
        .transpose()
        .map_err(|reason| cx.invalid(reason))?;
    let status = match config.status_code.unwrap_or(302) {
        code @ (301 | 302 | 303 | 307 | 308) => u16::try_from(code)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or_else(|| cx.invalid(format!("statusCode {code} is not supported")))?,
        code => return Err(cx.invalid(format!("statusCode {code} is not supported"))),
    };
    let path = config
        .path
        .as_ref()
        .map(|path| PathModifier::new(path, config.matched_prefix.as_deref()))
        .transpose()
        .map_err(|reason| cx.invalid(reason))?;
    Ok(Arc::new(Redirect {
        scheme,
        hostname: config.hostname,
        port,
        listener_port,
        path,
        status,
    }))
}

/// A `PreciseHostname`: letters, digits, `-` and `.`, at most 253 bytes.
pub(super) fn check_hostname(hostname: &str) -> Result<(), String> {
    let valid = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(format!("hostname {hostname:?} is not a valid hostname"))
    }
}

/// A port number field (1-65535).
fn port_number(field: &str, port: i64) -> Result<u16, String> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{field} {port} is not a port number (1-65535)"))
}

/// The built `gatewayRedirect`.
#[derive(Debug)]
struct Redirect {
    /// The filter's scheme.
    scheme: Option<Scheme>,
    /// The filter's hostname (checked).
    hostname: Option<String>,
    /// The filter's port.
    port: Option<u16>,
    /// The Gateway listener's port.
    listener_port: Option<u16>,
    /// The filter's path modifier.
    path: Option<PathModifier>,
    /// The answer's status.
    status: StatusCode,
}

impl Redirect {
    /// The `Location` for `req`, or `None` when the request's host is not
    /// one a URL may carry. A request without any host (HTTP/1.0, and no
    /// `hostname` in the filter) gets a `Location` that is only a path.
    fn location<B>(&self, req: &Request<B>, tls: bool) -> Option<String> {
        let uri = req.uri();
        let host = match &self.hostname {
            Some(hostname) => Some(hostname.as_str()),
            None => request_host(req)?,
        };
        let path = uri.path();
        let query = uri.query();
        let mut out = String::with_capacity(
            host.map_or(0, str::len) + path.len() + query.map_or(0, |q| q.len() + 1) + 16,
        );
        if let Some(host) = host {
            let scheme = self
                .scheme
                .unwrap_or(if tls { Scheme::Https } else { Scheme::Http });
            let port = match (self.port, self.scheme) {
                (Some(port), _) => port,
                (None, Some(scheme)) => scheme.default_port(),
                (None, None) => self.listener_port.unwrap_or(scheme.default_port()),
            };
            out.push_str(scheme.as_str());
            out.push_str("://");
            out.push_str(host);
            if port != scheme.default_port() {
                // Writing to a String cannot fail.
                let _ = write!(out, ":{port}");
            }
        }
        match &self.path {
            Some(modifier) => modifier.write(path, &mut out),
            None => {
                if !path.starts_with('/') {
                    out.push('/');
                }
                out.push_str(path);
            }
        }
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        Some(out)
    }
}

/// The request's host without its port: the URI authority's (HTTP/2,
/// absolute form), else `Host`'s. `Some(None)` when there is none, `None`
/// when it holds what no URL may.
fn request_host<B>(req: &Request<B>) -> Option<Option<&str>> {
    if let Some(authority) = req.uri().authority() {
        return Some(Some(authority.host()));
    }
    let Some(header) = req.headers().get(HOST) else {
        return Some(None);
    };
    let host = crate::router::strip_port(header.to_str().ok()?);
    if host.is_empty() {
        return Some(None);
    }
    let valid = host.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
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
                    | b'['
                    | b']'
                    | b':'
            )
    });
    valid.then_some(Some(host))
}

impl Middleware for Redirect {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        _next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let answer = match self
            .location(&req, cx.client.tls)
            .and_then(|location| HeaderValue::try_from(location).ok())
        {
            Some(location) => {
                let mut resp = Response::new(ResponseBody::empty());
                *resp.status_mut() = self.status;
                resp.headers_mut().insert(LOCATION, location);
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                resp
            }
            None => status_response(StatusCode::BAD_REQUEST),
        };
        Box::pin(std::future::ready(Ok(answer)))
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Version};
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    /// What `config` answers to `req` on a connection over TLS or not: the
    /// status and `Location`; the backend must not be called.
    async fn redirect(config: Value, req: Request<RequestBody>, tls: bool) -> (u16, String) {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let resp = run_tls(&mw, req, &backend, tls).await;
        assert!(!backend.called(), "the backend was called");
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (resp.status().as_u16(), location)
    }

    /// A GET of `path` to a Gateway addressed by IP, on port 80.
    fn to_gateway(path: &str) -> Request<RequestBody> {
        get(path, &[("host", "10.0.0.7")])
    }

    /// `config` for a rule matching PathPrefix `prefix`, on a listener on port 80.
    fn with_prefix(mut config: Value, prefix: &str) -> Value {
        config["matchedPrefix"] = json!(prefix);
        config["listenerPort"] = json!(80);
        config
    }

    #[tokio::test]
    async fn host_and_status_conformance() {
        let cases = [
            (
                json!({"hostname": "example.org"}),
                "/hostname-redirect",
                302,
            ),
            (
                json!({"statusCode": 301, "hostname": "example.org"}),
                "/host-and-status",
                301,
            ),
        ];
        for (config, path, status) in cases {
            let config = with_prefix(config, path);
            let got = redirect(config, to_gateway(path), false).await;
            assert_eq!(got, (status, format!("http://example.org{path}")));
        }
    }

    #[tokio::test]
    async fn path_conformance() {
        let prefix = |to: &str| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": to});
        let full = |to: &str| json!({"type": "ReplaceFullPath", "replaceFullPath": to});
        let cases = [
            (
                json!({"path": prefix("/replacement-prefix")}),
                "/original-prefix",
                "/original-prefix/lemon",
                302,
                "http://10.0.0.7/replacement-prefix/lemon",
            ),
            (
                json!({"path": full("/full-path-replacement")}),
                "/full",
                "/full/path/original",
                302,
                "http://10.0.0.7/full-path-replacement",
            ),
            (
                json!({"hostname": "example.org", "path": prefix("/replacement-prefix")}),
                "/path-and-host",
                "/path-and-host",
                302,
                "http://example.org/replacement-prefix",
            ),
            (
                json!({"path": prefix("/replacement-prefix"), "statusCode": 301}),
                "/path-and-status",
                "/path-and-status",
                301,
                "http://10.0.0.7/replacement-prefix",
            ),
            (
                json!({"hostname": "example.org", "path": full("/replacement-full")}),
                "/full-path-and-host",
                "/full-path-and-host",
                302,
                "http://example.org/replacement-full",
            ),
            (
                json!({"path": full("/replacement-full"), "statusCode": 301}),
                "/full-path-and-status",
                "/full-path-and-status",
                301,
                "http://10.0.0.7/replacement-full",
            ),
            // httproute-backend-request-redirect.
            (
                json!({"path": prefix("/redirected-prefix")}),
                "/prefix",
                "/prefix/original",
                302,
                "http://10.0.0.7/redirected-prefix/original",
            ),
        ];
        for (config, matched, path, status, location) in cases {
            let config = with_prefix(config, matched);
            let got = redirect(config, to_gateway(path), false).await;
            assert_eq!(got, (status, location.to_owned()), "{path}");
        }
    }

    #[tokio::test]
    async fn port_conformance() {
        let cases = [
            (
                json!({"port": 8083}),
                "/port",
                "http://10.0.0.7:8083/port",
                302,
            ),
            (
                json!({"hostname": "example.org", "port": 8083}),
                "/port-and-host",
                "http://example.org:8083/port-and-host",
                302,
            ),
            (
                json!({"port": 8083, "statusCode": 301}),
                "/port-and-status",
                "http://10.0.0.7:8083/port-and-status",
                301,
            ),
            (
                json!({"port": 8083, "hostname": "example.org", "statusCode": 302}),
                "/port-and-host-and-status",
                "http://example.org:8083/port-and-host-and-status",
                302,
            ),
        ];
        for (config, path, location, status) in cases {
            let config = with_prefix(config, path);
            let got = redirect(config, to_gateway(path), false).await;
            assert_eq!(got, (status, location.to_owned()), "{path}");
        }
    }

    #[tokio::test]
    async fn scheme_conformance() {
        let cases = [
            (
                json!({"scheme": "https"}),
                "/scheme",
                "https://10.0.0.7/scheme",
                302,
            ),
            (
                json!({"hostname": "example.org", "scheme": "https"}),
                "/scheme-and-host",
                "https://example.org/scheme-and-host",
                302,
            ),
            (
                json!({"scheme": "https", "statusCode": 301}),
                "/scheme-and-status",
                "https://10.0.0.7/scheme-and-status",
                301,
            ),
            (
                json!({"scheme": "https", "statusCode": 302, "hostname": "example.org"}),
                "/scheme-and-host-and-status",
                "https://example.org/scheme-and-host-and-status",
                302,
            ),
        ];
        for (config, path, location, status) in cases {
            let config = with_prefix(config, path);
            let got = redirect(config, to_gateway(path), false).await;
            assert_eq!(got, (status, location.to_owned()), "{path}");
        }
    }

    #[tokio::test]
    async fn port_and_scheme_conformance() {
        // (listener port, over TLS, filter, request path, Location).
        let cases = [
            // http-listener-on-80
            (
                80,
                false,
                json!({}),
                "/scheme-nil-and-port-nil",
                "http://example.org/scheme-nil-and-port-nil",
            ),
            (
                80,
                false,
                json!({"port": 80}),
                "/scheme-nil-and-port-80",
                "http://example.org/scheme-nil-and-port-80",
            ),
            (
                80,
                false,
                json!({"port": 8080}),
                "/scheme-nil-and-port-8080",
                "http://example.org:8080/scheme-nil-and-port-8080",
            ),
            (
                80,
                false,
                json!({"scheme": "https"}),
                "/scheme-https-and-port-nil",
                "https://example.org/scheme-https-and-port-nil",
            ),
            (
                80,
                false,
                json!({"scheme": "https", "port": 443}),
                "/scheme-https-and-port-443",
                "https://example.org/scheme-https-and-port-443",
            ),
            (
                80,
                false,
                json!({"scheme": "https", "port": 8443}),
                "/scheme-https-and-port-8443",
                "https://example.org:8443/scheme-https-and-port-8443",
            ),
            // http-listener-on-8080
            (
                8080,
                false,
                json!({}),
                "/scheme-nil-and-port-nil",
                "http://example.org:8080/scheme-nil-and-port-nil",
            ),
            (
                8080,
                false,
                json!({"port": 80}),
                "/scheme-nil-and-port-80",
                "http://example.org/scheme-nil-and-port-80",
            ),
            (
                8080,
                false,
                json!({"scheme": "https"}),
                "/scheme-https-and-port-nil",
                "https://example.org/scheme-https-and-port-nil",
            ),
            // https-listener-on-443
            (
                443,
                true,
                json!({}),
                "/scheme-nil-and-port-nil",
                "https://example.org/scheme-nil-and-port-nil",
            ),
            (
                443,
                true,
                json!({"port": 443}),
                "/scheme-nil-and-port-443",
                "https://example.org/scheme-nil-and-port-443",
            ),
            (
                443,
                true,
                json!({"port": 8443}),
                "/scheme-nil-and-port-8443",
                "https://example.org:8443/scheme-nil-and-port-8443",
            ),
            (
                443,
                true,
                json!({"scheme": "http"}),
                "/scheme-http-and-port-nil",
                "http://example.org/scheme-http-and-port-nil",
            ),
            (
                443,
                true,
                json!({"scheme": "http", "port": 80}),
                "/scheme-http-and-port-80",
                "http://example.org/scheme-http-and-port-80",
            ),
            (
                443,
                true,
                json!({"scheme": "http", "port": 8080}),
                "/scheme-http-and-port-8080",
                "http://example.org:8080/scheme-http-and-port-8080",
            ),
        ];
        for (listener, tls, mut config, path, location) in cases {
            config["hostname"] = json!("example.org");
            config["listenerPort"] = json!(listener);
            config["listenerScheme"] = json!(if tls { "https" } else { "http" });
            config["matchedPrefix"] = json!(path);
            let req = get(path, &[("host", "example.org")]);
            let got = redirect(config, req, tls).await;
            assert_eq!(
                got,
                (302, location.to_owned()),
                "listener {listener}, {path}"
            );
        }
    }

    #[tokio::test]
    async fn extended_status_codes_whatever_the_method() {
        for (status, method) in [
            (303, Method::POST),
            (307, Method::GET),
            (308, Method::GET),
            (301, Method::PUT),
        ] {
            let config = json!({"statusCode": status, "listenerPort": 80});
            let req = request(method.clone(), "/see-other", &[("host", "gw")]);
            let got = redirect(config, req, false).await;
            assert_eq!(got, (status, "http://gw/see-other".to_owned()), "{method}");
        }
    }

    #[tokio::test]
    async fn the_answer_is_empty() {
        let mw = testing::make(build, json!({"scheme": "https"})).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/a", &[("host", "h")])).await;
        assert_eq!(resp.status(), 302);
        assert_eq!(values(resp.headers(), "content-length"), ["0"]);
        assert!(resp.headers().get("content-type").is_none());
        assert!(body(resp).await.is_empty());
    }

    #[tokio::test]
    async fn query_and_client_spelling_are_kept() {
        let config = json!({"hostname": "example.org", "listenerPort": 80});
        let got = redirect(config.clone(), to_gateway("/a%20b/c?x=1&y=%2F"), false).await;
        assert_eq!(got.1, "http://example.org/a%20b/c?x=1&y=%2F");
        let config = with_prefix(
            json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}),
            "/old",
        );
        let got = redirect(config, to_gateway("/old/x?q"), false).await;
        assert_eq!(got.1, "http://10.0.0.7/new/x?q");
    }

    #[tokio::test]
    async fn request_host_loses_its_port() {
        let config = json!({"listenerPort": 80});
        let got = redirect(
            config.clone(),
            get("/p", &[("host", "gw.example:30080")]),
            false,
        )
        .await;
        assert_eq!(got.1, "http://gw.example/p");
        let got = redirect(config.clone(), get("/p", &[("host", "[::1]:30080")]), false).await;
        assert_eq!(got.1, "http://[::1]/p");
        let got = redirect(config.clone(), get("/p", &[("host", "[::1]")]), false).await;
        assert_eq!(got.1, "http://[::1]/p");
        // HTTP/2: the authority.
        let mut req = get("https://h2.example:8443/p", &[]);
        *req.version_mut() = Version::HTTP_2;
        let got = redirect(json!({"listenerPort": 443}), req, true).await;
        assert_eq!(got.1, "https://h2.example/p");
        // The listener port is used, not the one the client used.
        let got = redirect(
            json!({"listenerPort": 8080}),
            get("/p", &[("host", "gw:30080")]),
            false,
        )
        .await;
        assert_eq!(got.1, "http://gw:8080/p");
    }

    #[tokio::test]
    async fn without_listener_port_the_scheme_port_is_used() {
        let got = redirect(json!({}), get("/p", &[("host", "gw:8080")]), false).await;
        assert_eq!(got.1, "http://gw/p");
        let got = redirect(json!({}), get("/p", &[("host", "gw:8443")]), true).await;
        assert_eq!(got.1, "https://gw/p");
    }

    #[tokio::test]
    async fn hostless_requests_get_a_path() {
        let mut req = get("/p?q", &[]);
        *req.version_mut() = Version::HTTP_10;
        let got = redirect(json!({"listenerPort": 80}), req, false).await;
        assert_eq!(got, (302, "/p?q".to_owned()));
        let mut req = get("/p", &[]);
        *req.version_mut() = Version::HTTP_10;
        let got = redirect(json!({"hostname": "example.org"}), req, false).await;
        assert_eq!(got.1, "http://example.org/p");
    }

    #[tokio::test]
    async fn a_host_no_url_may_carry_is_refused() {
        let mw = testing::make(build, json!({})).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/", &[("host", "a b")])).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.headers().get(LOCATION).is_none());
        assert!(!backend.called());
    }

    #[test]
    fn without_port_follows_host_syntax() {
        use crate::router::strip_port as without_port;
        assert_eq!(without_port("h"), "h");
        assert_eq!(without_port("h:80"), "h");
        assert_eq!(without_port("h:"), "h");
        assert_eq!(without_port("[::1]:80"), "[::1]");
        assert_eq!(without_port("::1"), "::1");
        assert_eq!(without_port("h:x"), "h:x");
    }

    #[test]
    fn invalid_filters_are_refused() {
        let refused = |config: Value, why: &str| {
            let err = testing::make(build, config.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{config}: {err}");
        };
        refused(json!({"statusCode": 304}), "statusCode 304");
        refused(json!({"statusCode": 65838}), "statusCode 65838");
        refused(json!({"scheme": "ftp"}), "scheme \"ftp\"");
        refused(json!({"scheme": "HTTPS"}), "scheme \"HTTPS\"");
        refused(json!({"hostname": "a/b"}), "not a valid hostname");
        refused(json!({"hostname": "a:80"}), "not a valid hostname");
        refused(json!({"hostname": ""}), "not a valid hostname");
        refused(json!({"port": 0}), "port 0");
        refused(json!({"port": 65536}), "port 65536");
        refused(json!({"listenerPort": -1}), "listenerPort -1");
        refused(json!({"port": "80"}), "invalid type");
        refused(
            json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/x"}}),
            "PathPrefix",
        );
        refused(json!({"path": {"type": "Regex"}}), "not supported");
    }
}
