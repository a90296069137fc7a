//! `headers`: custom request/response headers, CORS, and security headers.
//!
//! Two layers, as in Traefik: the custom-header/CORS layer runs outermost (it
//! answers CORS preflights itself, before anything else), the security layer
//! (allowed hosts, deprecated SSL redirects, STS, frame options, CSP...) runs
//! inside it. Response headers are applied to the backend's response (and to
//! the answers the security layer makes) without touching the body.
//!
//! Every header name and value is checked when the middleware is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Uri};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::GoPath;
use super::support::text_response;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Config {
    custom_request_headers: BTreeMap<String, String>,
    custom_response_headers: BTreeMap<String, String>,

    access_control_allow_credentials: bool,
    access_control_allow_headers: Vec<String>,
    access_control_allow_methods: Vec<String>,
    access_control_allow_origin_list: Vec<String>,
    access_control_allow_origin_list_regex: Vec<String>,
    access_control_expose_headers: Vec<String>,
    access_control_max_age: i64,
    add_vary_header: bool,

    allowed_hosts: Vec<String>,
    hosts_proxy_headers: Vec<String>,
    ssl_redirect: bool,
    ssl_temporary_redirect: bool,
    ssl_host: String,
    ssl_force_host: bool,
    ssl_proxy_headers: BTreeMap<String, String>,
    sts_seconds: i64,
    sts_include_subdomains: bool,
    sts_preload: bool,
    #[serde(rename = "forceSTSHeader")]
    force_sts_header: bool,
    frame_deny: bool,
    custom_frame_options_value: String,
    content_type_nosniff: bool,
    browser_xss_filter: bool,
    #[serde(rename = "customBrowserXSSValue")]
    custom_browser_xss_value: String,
    content_security_policy: String,
    content_security_policy_report_only: String,
    public_key: String,
    referrer_policy: String,
    feature_policy: String,
    permissions_policy: String,
    is_development: bool,
}

/// Builds a `headers` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let check = Checker { cx: &*cx };
    let mut request_headers = Vec::new();
    let mut host = None;
    for (name, value) in &config.custom_request_headers {
        if name.eq_ignore_ascii_case("host") && !value.is_empty() {
            host = Some(check.value(name, value)?);
            continue;
        }
        let name_v = check.name(name)?;
        let value = if value.is_empty() {
            None
        } else {
            Some(check.value(name, value)?)
        };
        request_headers.push((name_v, value));
    }
    let response_headers = config
        .custom_response_headers
        .iter()
        .map(|(name, value)| {
            let value = if value.is_empty() {
                None
            } else {
                Some(check.value(name, value)?)
            };
            Ok((check.name(name)?, value))
        })
        .collect::<Result<Vec<_>, BuildError>>()?;

    let origin_regexes = config
        .access_control_allow_origin_list_regex
        .iter()
        .map(|text| {
            Regex::new(text)
                .map_err(|e| check.invalid(format!("error occurred during origin parsing: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let joined = |name: &str, list: &[String]| -> Result<Option<HeaderValue>, BuildError> {
        if list.is_empty() {
            return Ok(None);
        }
        let value = list.join(",");
        if value.is_empty() {
            return Ok(None);
        }
        check.value(name, &value).map(Some)
    };
    let cors = Cors {
        enabled: config.access_control_allow_credentials
            || !config.access_control_allow_headers.is_empty()
            || !config.access_control_allow_methods.is_empty()
            || !config.access_control_allow_origin_list.is_empty()
            || !config.access_control_allow_origin_list_regex.is_empty()
            || !config.access_control_expose_headers.is_empty()
            || config.access_control_max_age != 0
            || config.add_vary_header,
        allow_credentials: config.access_control_allow_credentials,
        allow_headers: joined(
            "accessControlAllowHeaders",
            &config.access_control_allow_headers,
        )?,
        allow_methods: joined(
            "accessControlAllowMethods",
            &config.access_control_allow_methods,
        )?,
        origins: config
            .access_control_allow_origin_list
            .iter()
            .map(|o| Ok((o.clone(), check.value("accessControlAllowOriginList", o)?)))
            .collect::<Result<_, BuildError>>()?,
        origin_regexes,
        expose_headers: joined(
            "accessControlExposeHeaders",
            &config.access_control_expose_headers,
        )?,
        max_age: HeaderValue::from(config.access_control_max_age),
        add_vary: config.add_vary_header,
    };

    let secure = Secure::new(&config, &check)?;
    Ok(Arc::new(Headers {
        request_headers,
        host,
        response_headers,
        cors,
        secure,
    }))
}

/// Header checks that turn into build errors.
struct Checker<'c> {
    cx: &'c dyn Context,
}

impl Checker<'_> {
    fn name(&self, name: &str) -> Result<HeaderName, BuildError> {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| self.invalid(format!("{name:?} is not a valid header name")))
    }

    fn value(&self, name: &str, value: &str) -> Result<HeaderValue, BuildError> {
        HeaderValue::from_str(value)
            .map_err(|_| self.invalid(format!("{name}: {value:?} is not a valid header value")))
    }

    fn optional(&self, name: &str, value: &str) -> Result<Option<HeaderValue>, BuildError> {
        if value.is_empty() {
            return Ok(None);
        }
        self.value(name, value).map(Some)
    }

    fn invalid(&self, reason: String) -> BuildError {
        self.cx.invalid(reason)
    }
}

/// The CORS part of the config.
#[derive(Debug)]
struct Cors {
    /// Whether any CORS field is set (preflights are answered only then).
    enabled: bool,
    allow_credentials: bool,
    allow_headers: Option<HeaderValue>,
    allow_methods: Option<HeaderValue>,
    /// The origin list as written, each with its header value.
    origins: Vec<(String, HeaderValue)>,
    origin_regexes: Vec<Regex>,
    expose_headers: Option<HeaderValue>,
    max_age: HeaderValue,
    add_vary: bool,
}

impl Cors {
    /// Traefik's `isOriginAllowed`: the first list entry that is `*` or equal
    /// to `origin` (so `*` allows a missing Origin too), then the regexes
    /// (which answer the origin itself).
    fn allowed(&self, origin: &[u8]) -> Option<HeaderValue> {
        if let Some((_, value)) = self
            .origins
            .iter()
            .find(|(item, _)| item == "*" || item.as_bytes() == origin)
        {
            return Some(value.clone());
        }
        let text = std::str::from_utf8(origin).ok()?;
        if self.origin_regexes.iter().any(|re| re.is_match(text)) {
            return HeaderValue::from_bytes(origin).ok();
        }
        None
    }

    /// The answer to a CORS preflight: 200, empty body, no Vary.
    fn preflight(&self, origin: &[u8]) -> Response<ResponseBody> {
        let mut resp = Response::new(ResponseBody::empty());
        let headers = resp.headers_mut();
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.allow_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.allow_methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        }
        if let Some(v) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        if let Some(v) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        resp
    }

    /// CORS headers on a normal response.
    fn decorate(&self, origin: &[u8], headers: &mut HeaderMap) {
        if let Some(v) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if self.add_vary {
            add_vary_origin(headers);
        }
    }
}

/// Adds `Origin` to `Vary` unless it is exactly `Origin` already (`a,Origin`).
fn add_vary_origin(headers: &mut HeaderMap) {
    let existing: Vec<&[u8]> = headers
        .get_all(header::VARY)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if existing == [b"Origin".as_slice()] {
        return;
    }
    let mut joined = existing.join(&b","[..]);
    if !joined.is_empty() {
        joined.push(b',');
    }
    joined.extend_from_slice(b"Origin");
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::VARY, v);
    }
}

/// The security-header part of the config (unrolled/secure in Traefik).
#[derive(Debug)]
struct Secure {
    allowed_hosts: Vec<String>,
    hosts_proxy_headers: Vec<HeaderName>,
    ssl_redirect: bool,
    ssl_temporary_redirect: bool,
    ssl_host: String,
    ssl_force_host: bool,
    ssl_proxy_headers: Vec<(HeaderName, String)>,
    is_development: bool,
    /// `Strict-Transport-Security`, when `stsSeconds` is set.
    sts: Option<HeaderValue>,
    force_sts: bool,
    /// `Public-Key-Pins` (TLS only).
    public_key: Option<HeaderValue>,
    /// Headers set on every response that reaches the security layer.
    always: Vec<(HeaderName, HeaderValue)>,
}

impl Secure {
    fn new(config: &Config, check: &Checker<'_>) -> Result<Self, BuildError> {
        let sts = if config.sts_seconds != 0 {
            let mut value = format!("max-age={}", config.sts_seconds);
            if config.sts_include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if config.sts_preload {
                value.push_str("; preload");
            }
            Some(check.value("stsSeconds", &value)?)
        } else {
            None
        };
        let mut always = Vec::new();
        let frame = if !config.custom_frame_options_value.is_empty() {
            check.optional(
                "customFrameOptionsValue",
                &config.custom_frame_options_value,
            )?
        } else if config.frame_deny {
            Some(HeaderValue::from_static("DENY"))
        } else {
            None
        };
        if let Some(v) = frame {
            always.push((header::X_FRAME_OPTIONS, v));
        }
        if config.content_type_nosniff {
            always.push((
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        }
        let xss = if !config.custom_browser_xss_value.is_empty() {
            check.optional("customBrowserXSSValue", &config.custom_browser_xss_value)?
        } else if config.browser_xss_filter {
            Some(HeaderValue::from_static("1; mode=block"))
        } else {
            None
        };
        if let Some(v) = xss {
            always.push((header::X_XSS_PROTECTION, v));
        }
        let optional = [
            (
                header::CONTENT_SECURITY_POLICY,
                "contentSecurityPolicy",
                &config.content_security_policy,
            ),
            (
                header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
                "contentSecurityPolicyReportOnly",
                &config.content_security_policy_report_only,
            ),
            (
                header::REFERRER_POLICY,
                "referrerPolicy",
                &config.referrer_policy,
            ),
            (
                HeaderName::from_static("feature-policy"),
                "featurePolicy",
                &config.feature_policy,
            ),
            (
                HeaderName::from_static("permissions-policy"),
                "permissionsPolicy",
                &config.permissions_policy,
            ),
        ];
        for (name, field, value) in optional {
            if let Some(v) = check.optional(field, value)? {
                always.push((name, v));
            }
        }
        Ok(Self {
            allowed_hosts: config.allowed_hosts.clone(),
            hosts_proxy_headers: config
                .hosts_proxy_headers
                .iter()
                .map(|n| check.name(n))
                .collect::<Result<_, _>>()?,
            ssl_redirect: config.ssl_redirect,
            ssl_temporary_redirect: config.ssl_temporary_redirect,
            ssl_host: config.ssl_host.clone(),
            ssl_force_host: config.ssl_force_host,
            ssl_proxy_headers: config
                .ssl_proxy_headers
                .iter()
                .map(|(n, v)| Ok((check.name(n)?, v.clone())))
                .collect::<Result<_, BuildError>>()?,
            is_development: config.is_development,
            sts,
            force_sts: config.force_sts_header,
            public_key: check.optional("publicKey", &config.public_key)?,
            always,
        })
    }

    /// The host the checks use: the first non-empty `hostsProxyHeaders`
    /// header, else the request's host (port included).
    fn host<B>(&self, req: &Request<B>) -> String {
        for name in &self.hosts_proxy_headers {
            if let Some(v) = req.headers().get(name).filter(|v| !v.is_empty()) {
                return String::from_utf8_lossy(v.as_bytes()).into_owned();
            }
        }
        request_host(req)
    }

    fn is_ssl<B>(&self, req: &Request<B>, tls: bool) -> bool {
        tls || self.ssl_proxy_headers.iter().any(|(name, value)| {
            req.headers()
                .get(name)
                .map_or(value.is_empty(), |v| v.as_bytes() == value.as_bytes())
        })
    }

    /// Runs the request-side checks: `Err` is the answer (bad host, SSL
    /// redirect); `Ok` is the headers to set on the response.
    fn check<B>(
        &self,
        req: &Request<B>,
        tls: bool,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Box<Response<ResponseBody>>> {
        let host = self.host(req);
        if !self.allowed_hosts.is_empty()
            && !self.is_development
            && !self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
        {
            let mut resp = text_response(StatusCode::INTERNAL_SERVER_ERROR, "Bad Host\n");
            resp.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            return Err(Box::new(resp));
        }
        let ssl = self.is_ssl(req, tls);
        if self.ssl_redirect && !ssl && !self.is_development {
            let target = if self.ssl_host.is_empty() {
                &host
            } else {
                &self.ssl_host
            };
            return Err(Box::new(self.redirect(req, target)));
        }
        if self.ssl_force_host {
            let target = if self.ssl_host.is_empty() {
                &host
            } else {
                &self.ssl_host
            };
            if *target != host {
                return Err(Box::new(self.redirect(req, target)));
            }
        }
        let mut headers = Vec::with_capacity(self.always.len() + 2);
        if let Some(sts) = &self.sts {
            if (ssl || self.force_sts) && !self.is_development {
                headers.push((header::STRICT_TRANSPORT_SECURITY, sts.clone()));
            }
        }
        if let Some(pins) = &self.public_key {
            if ssl && !self.is_development {
                headers.push((HeaderName::from_static("public-key-pins"), pins.clone()));
            }
        }
        headers.extend(self.always.iter().cloned());
        Ok(headers)
    }

    /// Go's `http.Redirect` to `https://<host><path>?<query>` (301, or 307 with
    /// `sslTemporaryRedirect`).
    fn redirect<B>(&self, req: &Request<B>, host: &str) -> Response<ResponseBody> {
        let path = GoPath::parse(req.uri().path())
            .map_or_else(|_| req.uri().path().to_owned(), |p| p.escaped());
        let mut url = format!("https://{host}{path}");
        if let Some(query) = req.uri().query() {
            url.push('?');
            url.push_str(query);
        }
        let status = if self.ssl_temporary_redirect {
            StatusCode::TEMPORARY_REDIRECT
        } else {
            StatusCode::MOVED_PERMANENTLY
        };
        let reason = status.canonical_reason().unwrap_or("");
        let body = if req.method() == Method::GET {
            let escaped = url
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;");
            format!("<a href=\"{escaped}\">{reason}</a>.\n\n")
        } else {
            String::new()
        };
        let mut resp = Response::new(ResponseBody::full(body));
        *resp.status_mut() = status;
        let location: String = url
            .bytes()
            .map(|b| {
                if b.is_ascii() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        if req.method() == Method::GET || req.method() == Method::HEAD {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
        }
        resp
    }
}

/// Go's `req.Host`: the absolute/HTTP-2 authority, else the Host header.
fn request_host<B>(req: &Request<B>) -> String {
    match req.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default(),
    }
}

/// The built `headers`.
#[derive(Debug)]
struct Headers {
    /// Set (`Some`) or deleted (`None`) on the request.
    request_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// A `Host` entry: replaces the host the backend sees.
    host: Option<HeaderValue>,
    /// Set (`Some`) or deleted (`None`) on the response.
    response_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    cors: Cors,
    secure: Secure,
}

impl Headers {
    /// The custom-header/CORS layer's work on any response it sees.
    fn decorate(&self, origin: &[u8], resp: &mut Response<ResponseBody>) {
        let headers = resp.headers_mut();
        for (name, value) in &self.response_headers {
            match value {
                Some(v) => {
                    headers.insert(name.clone(), v.clone());
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        self.cors.decorate(origin, headers);
    }

    fn set_host(&self, req: &mut Request<RequestBody>) {
        let Some(host) = &self.host else { return };
        req.headers_mut().insert(header::HOST, host.clone());
        if req.uri().authority().is_some() {
            if let Ok(authority) = Authority::try_from(host.as_bytes()) {
                let mut parts = req.uri().clone().into_parts();
                parts.authority = Some(authority);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
}

impl Middleware for Headers {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            if self.cors.enabled
                && req.method() == Method::OPTIONS
                && !origin.is_empty()
                && req
                    .headers()
                    .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                    .is_some_and(|v| !v.is_empty())
            {
                return Ok(self.cors.preflight(&origin));
            }
            for (name, value) in &self.request_headers {
                match value {
                    Some(v) => {
                        req.headers_mut().insert(name.clone(), v.clone());
                    }
                    None => {
                        req.headers_mut().remove(name);
                    }
                }
            }
            self.set_host(&mut req);
            let mut resp = match self.secure.check(&req, cx.client.tls) {
                Err(answer) => *answer,
                Ok(secure_headers) => {
                    let mut resp = next.run(req, cx).await?;
                    for (name, value) in secure_headers {
                        resp.headers_mut().insert(name, value);
                    }
                    resp
                }
            };
            self.decorate(&origin, &mut resp);
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    fn backend_with(headers: &'static [(&'static str, &'static str)]) -> Recorder {
        Recorder {
            headers: headers.to_vec(),
            ..Recorder::default()
        }
    }

    async fn through(
        config: Value,
        req: Request<RequestBody>,
        backend: &Recorder,
        tls: bool,
    ) -> Response<ResponseBody> {
        let mw = testing::make(build, config).unwrap();
        run_tls(&mw, req, backend, tls).await
    }

    #[tokio::test]
    async fn custom_request_headers_set_replace_delete_and_host() {
        let config = json!({"customRequestHeaders": {
            "X-Script-Name": "test",
            "X-Replace": "new",
            "X-Forwarded-For": "",
            "X-Gone": "",
            "host": "backend.internal"
        }});
        let backend = Recorder::ok();
        let req = get(
            "/",
            &[
                ("host", "front.example"),
                ("x-replace", "old1"),
                ("x-replace", "old2"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-gone", "bye"),
                ("x-kept", "yes"),
            ],
        );
        through(config, req, &backend, false).await;
        let got = backend.got();
        assert_eq!(values(&got.headers, "x-script-name"), ["test"]);
        assert_eq!(values(&got.headers, "x-replace"), ["new"]);
        assert!(got.headers.get("x-forwarded-for").is_none());
        assert!(got.headers.get("x-gone").is_none());
        assert_eq!(values(&got.headers, "x-kept"), ["yes"]);
        assert_eq!(values(&got.headers, "host"), ["backend.internal"]);
        assert_eq!(got.method, Method::GET);
    }

    #[tokio::test]
    async fn custom_response_headers_set_and_delete() {
        let config =
            json!({"customResponseHeaders": {"X-Custom": "v", "Server": "", "X-Twice": "one"}});
        let backend = backend_with(&[("server", "nginx"), ("x-twice", "a"), ("x-twice", "b")]);
        let resp = through(config, get("/", &[]), &backend, false).await;
        assert_eq!(values(resp.headers(), "x-custom"), ["v"]);
        assert!(resp.headers().get("server").is_none());
        assert_eq!(values(resp.headers(), "x-twice"), ["one"]);
        assert_eq!(body(resp).await, "backend");
    }

    fn cors_config() -> Value {
        json!({
            "accessControlAllowMethods": ["GET", "OPTIONS", "PUT"],
            "accessControlAllowHeaders": ["X-Foo", "Content-Type"],
            "accessControlAllowOriginList": ["https://a.example"],
            "accessControlAllowOriginListRegex": ["^https://.*\\.b\\.example$"],
            "accessControlExposeHeaders": ["X-Exposed"],
            "accessControlMaxAge": 100,
            "accessControlAllowCredentials": true,
            "addVaryHeader": true,
            "stsSeconds": 31536000,
            "forceSTSHeader": true
        })
    }

    fn preflight(origin: &str) -> Request<RequestBody> {
        request(
            Method::OPTIONS,
            "/",
            &[("origin", origin), ("access-control-request-method", "PUT")],
        )
    }

    #[tokio::test]
    async fn preflight_is_answered_by_the_proxy() {
        let backend = Recorder::ok();
        let resp = through(
            cors_config(),
            preflight("https://a.example"),
            &backend,
            false,
        )
        .await;
        assert!(!backend.called());
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET,OPTIONS,PUT");
        assert_eq!(h["access-control-allow-headers"], "X-Foo,Content-Type");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "100");
        assert_eq!(h["access-control-expose-headers"], "X-Exposed");
        assert_eq!(h["content-length"], "0");
        assert!(h.get("vary").is_none());
        assert!(h.get("strict-transport-security").is_none());
        assert!(body(resp).await.is_empty());
    }

    #[tokio::test]
    async fn preflight_from_a_refused_origin_still_answers_without_allow_origin() {
        let backend = Recorder::ok();
        let resp = through(
            cors_config(),
            preflight("https://evil.example"),
            &backend,
            false,
        )
        .await;
        assert!(!backend.called());
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        // 3.7.15 sends credentials even then.
        assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
        assert_eq!(resp.headers()["access-control-max-age"], "100");
    }

    #[tokio::test]
    async fn regex_origins_echo_the_origin() {
        let backend = Recorder::ok();
        let resp = through(
            cors_config(),
            preflight("https://x.b.example"),
            &backend,
            false,
        )
        .await;
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "https://x.b.example"
        );
    }

    #[tokio::test]
    async fn options_without_origin_or_method_goes_to_the_backend() {
        let backend = Recorder::ok();
        let req = request(
            Method::OPTIONS,
            "/",
            &[("access-control-request-method", "PUT")],
        );
        through(cors_config(), req, &backend, false).await;
        assert!(backend.called());
        let backend = Recorder::ok();
        let req = request(Method::OPTIONS, "/", &[("origin", "https://a.example")]);
        through(cors_config(), req, &backend, false).await;
        assert!(backend.called());
    }

    #[tokio::test]
    async fn preflight_needs_a_cors_field() {
        let backend = Recorder::ok();
        let config = json!({"customResponseHeaders": {"X-A": "b"}});
        through(config, preflight("https://a.example"), &backend, false).await;
        assert!(backend.called());
    }

    #[tokio::test]
    async fn normal_responses_get_cors_and_security_headers() {
        let backend = backend_with(&[("vary", "Accept-Encoding")]);
        let req = get("/", &[("origin", "https://a.example")]);
        let resp = through(cors_config(), req, &backend, false).await;
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-expose-headers"], "X-Exposed");
        assert_eq!(h["vary"], "Accept-Encoding,Origin");
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert!(h.get("access-control-allow-methods").is_none());
    }

    #[tokio::test]
    async fn refused_or_missing_origin_is_still_served() {
        let backend = Recorder::ok();
        let resp = through(
            cors_config(),
            get("/", &[("origin", "https://evil")]),
            &backend,
            false,
        )
        .await;
        assert!(backend.called());
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        assert_eq!(resp.headers()["vary"], "Origin");
        let backend = backend_with(&[("vary", "Origin")]);
        let resp = through(cors_config(), get("/", &[]), &backend, false).await;
        assert_eq!(values(resp.headers(), "vary"), ["Origin"]);
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }

    #[tokio::test]
    async fn wildcard_allows_every_origin_including_null_and_none() {
        let config = json!({"accessControlAllowOriginList": ["*"]});
        let backend = Recorder::ok();
        let resp = through(config.clone(), preflight("null"), &backend, false).await;
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(resp.headers()["access-control-max-age"], "0");
        let resp = through(config, get("/", &[]), &backend, false).await;
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert!(resp.headers().get("vary").is_none());
    }

    #[tokio::test]
    async fn security_headers_all_present() {
        let config = json!({
            "stsSeconds": 60, "stsIncludeSubdomains": true, "stsPreload": true,
            "frameDeny": true, "contentTypeNosniff": true, "browserXssFilter": true,
            "contentSecurityPolicy": "default-src 'self'",
            "contentSecurityPolicyReportOnly": "script-src 'none'",
            "referrerPolicy": "no-referrer", "permissionsPolicy": "camera=()",
            "featurePolicy": "vibrate 'none'", "publicKey": "pin-sha256=\"x\"; max-age=5"
        });
        let backend = backend_with(&[("x-frame-options", "SAMEORIGIN")]);
        let resp = through(config, get("/", &[]), &backend, true).await;
        let h = resp.headers();
        assert_eq!(
            h["strict-transport-security"],
            "max-age=60; includeSubDomains; preload"
        );
        assert_eq!(values(h, "x-frame-options"), ["DENY"]);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-xss-protection"], "1; mode=block");
        assert_eq!(h["content-security-policy"], "default-src 'self'");
        assert_eq!(
            h["content-security-policy-report-only"],
            "script-src 'none'"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["permissions-policy"], "camera=()");
        assert_eq!(h["feature-policy"], "vibrate 'none'");
        assert_eq!(h["public-key-pins"], "pin-sha256=\"x\"; max-age=5");
    }

    #[tokio::test]
    async fn sts_and_pins_only_over_tls_unless_forced_and_never_in_development() {
        let backend = Recorder::ok();
        let plain = through(
            json!({"stsSeconds": 5, "publicKey": "k"}),
            get("/", &[]),
            &backend,
            false,
        )
        .await;
        assert!(plain.headers().get("strict-transport-security").is_none());
        assert!(plain.headers().get("public-key-pins").is_none());
        let forced = through(
            json!({"stsSeconds": 5, "forceSTSHeader": true}),
            get("/", &[]),
            &backend,
            false,
        )
        .await;
        assert_eq!(forced.headers()["strict-transport-security"], "max-age=5");
        let proxied = json!({"stsSeconds": 5, "sslProxyHeaders": {"X-Forwarded-Proto": "https"}});
        let req = get("/", &[("x-forwarded-proto", "https")]);
        let resp = through(proxied, req, &backend, false).await;
        assert_eq!(resp.headers()["strict-transport-security"], "max-age=5");
        let dev = json!({"stsSeconds": 5, "forceSTSHeader": true, "isDevelopment": true});
        let resp = through(dev, get("/", &[]), &backend, true).await;
        assert!(resp.headers().get("strict-transport-security").is_none());
    }

    #[tokio::test]
    async fn custom_values_override_the_defaults() {
        let config = json!({
            "frameDeny": true, "customFrameOptionsValue": "SAMEORIGIN",
            "browserXssFilter": true, "customBrowserXSSValue": "0",
            "customResponseHeaders": {"X-Content-Type-Options": "custom"},
            "contentTypeNosniff": true
        });
        let backend = Recorder::ok();
        let resp = through(config, get("/", &[]), &backend, false).await;
        assert_eq!(resp.headers()["x-frame-options"], "SAMEORIGIN");
        assert_eq!(resp.headers()["x-xss-protection"], "0");
        // The custom-header layer runs outside the security layer.
        assert_eq!(resp.headers()["x-content-type-options"], "custom");
    }

    #[tokio::test]
    async fn allowed_hosts_refuse_other_hosts() {
        let config = json!({"allowedHosts": ["good.example"], "hostsProxyHeaders": ["X-Forwarded-Host"],
                            "customResponseHeaders": {"X-Layer": "outer"}});
        let backend = Recorder::ok();
        let resp = through(
            config.clone(),
            get("/", &[("host", "bad.example")]),
            &backend,
            false,
        )
        .await;
        assert!(!backend.called());
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert_eq!(resp.headers()["x-layer"], "outer");
        assert_eq!(body(resp).await, "Bad Host\n");
        // Case-insensitive; the proxy header wins over Host.
        let req = get(
            "/",
            &[
                ("host", "bad.example"),
                ("x-forwarded-host", "GOOD.example"),
            ],
        );
        let resp = through(config.clone(), req, &backend, false).await;
        assert_eq!(resp.status(), 200);
        // The port is part of the host.
        let resp = through(
            config,
            get("/", &[("host", "good.example:80")]),
            &backend,
            false,
        )
        .await;
        assert_eq!(resp.status(), 500);
        let dev = json!({"allowedHosts": ["good.example"], "isDevelopment": true});
        let resp = through(dev, get("/", &[("host", "bad.example")]), &backend, false).await;
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn deprecated_ssl_redirect_still_works() {
        let backend = Recorder::ok();
        let config = json!({"sslRedirect": true});
        let resp = through(
            config,
            get("/a%20b?q=1", &[("host", "h.example")]),
            &backend,
            false,
        )
        .await;
        assert!(!backend.called());
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()["location"], "https://h.example/a%20b?q=1");
        assert_eq!(
            body(resp).await,
            "<a href=\"https://h.example/a%20b?q=1\">Moved Permanently</a>.\n\n"
        );
        let config =
            json!({"sslRedirect": true, "sslTemporaryRedirect": true, "sslHost": "s.example"});
        let req = request(Method::POST, "/", &[("host", "h.example")]);
        let resp = through(config.clone(), req, &backend, false).await;
        assert_eq!(resp.status(), 307);
        assert_eq!(resp.headers()["location"], "https://s.example/");
        let resp = through(config, get("/", &[("host", "h")]), &backend, true).await;
        assert_eq!(resp.status(), 200);
    }

    #[test]
    fn invalid_headers_and_regexes_are_build_errors() {
        for config in [
            json!({"customRequestHeaders": {"Bad Name": "x"}}),
            json!({"customResponseHeaders": {"X-A": "line\nbreak"}}),
            json!({"customRequestHeaders": {"Host": "a\u{7f}"}}),
            json!({"accessControlAllowOriginListRegex": ["("]}),
            json!({"accessControlAllowHeaders": ["a\r\nb"]}),
            json!({"contentSecurityPolicy": "x\ny"}),
            json!({"hostsProxyHeaders": ["bad header"]}),
            json!({"stsSeconds": "ten"}),
        ] {
            assert!(testing::make(build, config.clone()).is_err(), "{config}");
        }
    }
}
