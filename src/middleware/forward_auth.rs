//! `forwardAuth`: asks an external auth server about every request.
//!
//! The auth server gets a GET (or the original method) to `address` with the
//! client's headers and `X-Forwarded-Method/Proto/Host/Uri/For`. A 2xx lets the
//! request through, with the configured auth-response headers copied onto it;
//! anything else goes back to the client as the auth server sent it (status,
//! headers, body), the backend never called. An unreachable auth server is a 500.
//!
//! Each built middleware owns one pooled keep-alive client (hyper-util legacy
//! client, hyper-rustls for `https`); since built middlewares are reused across
//! reloads, so are its connections. The whole exchange with the auth server is
//! bounded by [`AUTH_TIMEOUT`] (Traefik's client timeout).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use k8s_openapi::api::core::v1::Secret;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

/// How long the whole exchange with the auth server may take (connect, request,
/// response head and body): 30 s, the timeout of Traefik's auth client.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle connection to the auth server stays pooled (Go's default transport).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    address: String,
    #[serde(default)]
    tls: Option<TlsConfig>,
    #[serde(default)]
    trust_forward_header: bool,
    #[serde(default)]
    auth_response_headers: Vec<String>,
    #[serde(default)]
    auth_response_headers_regex: Option<String>,
    #[serde(default)]
    auth_request_headers: Vec<String>,
    #[serde(default)]
    add_auth_cookies_to_response: Vec<String>,
    /// Traefik records this header's value as the access-log user name; sluice
    /// has no such field, so it is accepted and has no effect.
    #[serde(default)]
    #[allow(dead_code)]
    header_field: Option<String>,
    #[serde(default)]
    forward_body: bool,
    #[serde(default)]
    max_body_size: Option<i64>,
    #[serde(default)]
    max_response_body_size: Option<i64>,
    #[serde(default)]
    preserve_location_header: bool,
    #[serde(default)]
    preserve_request_method: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlsConfig {
    #[serde(default)]
    ca_secret: Option<String>,
    #[serde(default)]
    cert_secret: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    /// Deprecated in Traefik (a warning only); accepted, no effect.
    #[serde(default)]
    #[allow(dead_code)]
    ca_optional: Option<bool>,
    /// File paths in Traefik's file provider: refused here (see [`build`]).
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

type AuthClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds a `forwardAuth` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    build_with_timeout(config, cx, AUTH_TIMEOUT)
}

/// [`build`] with another bound on the auth exchange (tests).
fn build_with_timeout(
    config: &Value,
    cx: &mut dyn Context,
    timeout: Duration,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.address.is_empty() {
        return Err(cx.invalid("forward authentication requires an address".to_owned()));
    }
    let address: Uri = config
        .address
        .parse()
        .map_err(|e| cx.invalid(format!("address {:?}: {e}", config.address)))?;
    let https = match address.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(cx.invalid(format!(
                "address {:?} must be an http:// or https:// URL",
                config.address
            )))
        }
    };
    if address.host().is_none() {
        return Err(cx.invalid(format!("address {:?} has no host", config.address)));
    }
    let tls = config.tls.unwrap_or_default();
    if tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some() {
        return Err(cx.invalid(
            "tls.ca/tls.cert/tls.key are file paths; in a Middleware object use tls.caSecret and tls.certSecret".to_owned(),
        ));
    }
    let rustls_config = if https {
        client_tls(&tls, cx)?
    } else {
        // Never used for an http:// address; the connector type wants one.
        crate::tls::insecure_client_config(&[])
    };
    let names = |list: &[String], what: &str| -> Result<Vec<HeaderName>, BuildError> {
        list.iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| cx.invalid(format!("{what}: {n:?} is not a header name")))
            })
            .collect()
    };
    let response_headers = names(&config.auth_response_headers, "authResponseHeaders")?;
    let request_headers = names(&config.auth_request_headers, "authRequestHeaders")?;
    let response_regex = match config
        .auth_response_headers_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        Some(r) => {
            Some(Regex::new(r).map_err(|e| cx.invalid(format!("authResponseHeadersRegex: {e}")))?)
        }
        None => None,
    };
    let limit = |v: Option<i64>| v.and_then(|n| usize::try_from(n).ok());
    Ok(Arc::new(ForwardAuth {
        client: client(rustls_config),
        timeout,
        address,
        trust_forward_header: config.trust_forward_header,
        response_headers,
        response_regex,
        request_headers: request_headers.into_iter().collect(),
        auth_cookies: config.add_auth_cookies_to_response.into_iter().collect(),
        forward_body: config.forward_body,
        max_body_size: limit(config.max_body_size),
        max_response_body_size: limit(config.max_response_body_size),
        preserve_location_header: config.preserve_location_header,
        preserve_request_method: config.preserve_request_method,
    }))
}

/// The rustls config for an https:// auth server.
fn client_tls(tls: &TlsConfig, cx: &mut dyn Context) -> Result<rustls::ClientConfig, BuildError> {
    let mut config = if tls.insecure_skip_verify {
        crate::tls::insecure_client_config(&[])
    } else {
        let ca = match tls.ca_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => {
                let secret = cx
                    .secret(name)
                    .ok_or_else(|| cx.invalid(format!("tls.caSecret {name:?} not found")))?;
                ca_of(&secret).ok_or_else(|| {
                    cx.invalid(format!(
                        "tls.caSecret {name:?} has no \"tls.ca\" or \"ca.crt\" key"
                    ))
                })?
            }
            None => system_roots().ok_or_else(|| {
                cx.invalid(
                    "no system CA bundle found; set tls.caSecret or tls.insecureSkipVerify"
                        .to_owned(),
                )
            })?,
        };
        crate::tls::verifying_client_config(&ca, &[])
            .map_err(|e| cx.invalid(format!("tls CA: {e}")))?
    };
    if let Some(name) = tls.cert_secret.as_deref().filter(|s| !s.is_empty()) {
        let secret = cx
            .secret(name)
            .ok_or_else(|| cx.invalid(format!("tls.certSecret {name:?} not found")))?;
        let loaded = crate::tls::load_tls_secret(&secret)
            .map_err(|e| cx.invalid(format!("tls.certSecret {name:?}: {e}")))?;
        config.client_auth_cert_resolver =
            Arc::new(rustls::sign::SingleCertAndKey::from(loaded.key));
    }
    Ok(config)
}

/// The CA of a `caSecret`: key `tls.ca`, else `ca.crt`, else the only key (Traefik).
fn ca_of(secret: &Secret) -> Option<Vec<u8>> {
    let data = secret.data.as_ref()?;
    let value = data
        .get("tls.ca")
        .or_else(|| data.get("ca.crt"))
        .or_else(|| (data.len() == 1).then(|| data.values().next()).flatten())?;
    Some(value.0.clone())
}

/// The system CA bundle (`SSL_CERT_FILE`, else the usual distribution paths), read once.
fn system_roots() -> Option<Vec<u8>> {
    static ROOTS: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            let known = [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ];
            from_env
                .into_iter()
                .chain(known.iter().map(std::path::PathBuf::from))
                .find_map(|p| std::fs::read(p).ok())
        })
        .clone()
}

/// One pooled keep-alive client for the auth server.
fn client(tls: rustls::ClientConfig) -> AuthClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(https)
}

/// The built `forwardAuth`.
struct ForwardAuth {
    client: AuthClient,
    /// [`AUTH_TIMEOUT`] outside tests.
    timeout: Duration,
    address: Uri,
    trust_forward_header: bool,
    response_headers: Vec<HeaderName>,
    response_regex: Option<Regex>,
    request_headers: HashSet<HeaderName>,
    auth_cookies: HashSet<String>,
    forward_body: bool,
    max_body_size: Option<usize>,
    max_response_body_size: Option<usize>,
    preserve_location_header: bool,
    preserve_request_method: bool,
}

impl std::fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Why asking the auth server failed (the client gets 500, or 401 for sizes).
#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error("auth server unreachable: {0}")]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error("reading the auth server's response: {0}")]
    Body(String),
    #[error("the auth server's response body is over maxResponseBodySize")]
    TooLarge,
    #[error("the auth server did not answer in time")]
    Timeout,
}

/// Hop-by-hop headers (and the ones `Connection` names) removed from both directions.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRAILER,
        HeaderName::from_static("trailers"),
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// A response with `status` and no body (Traefik's `WriteHeader` answers).
fn bare(status: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = status;
    resp
}

/// Go's `http.CanonicalHeaderKey`: `x-auth-user` → `X-Auth-User`.
fn canonical(name: &str, out: &mut String) {
    out.clear();
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
}

/// The cookie name of a `Set-Cookie` value.
fn cookie_name(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    Some(text.split_once('=')?.0.trim())
}

/// RFC 3986 §5.2 reference resolution of `reference` against `base` (what Go's
/// `Response.Location` does).
fn resolve(base: &Uri, reference: &str) -> Option<String> {
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if reference.is_empty() {
        return Some(base.to_string());
    }
    let has_scheme = reference.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme {
        return Some(reference.to_owned());
    }
    if let Some(rest) = reference.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    let base_path = base.path();
    let (path_part, tail) = match reference.find(['?', '#']) {
        Some(i) => reference.split_at(i),
        None => (reference, ""),
    };
    let path = if path_part.is_empty() {
        if tail.starts_with('#') {
            let query = base.query().map(|q| format!("?{q}")).unwrap_or_default();
            return Some(format!("{scheme}://{authority}{base_path}{query}{tail}"));
        }
        base_path.to_owned()
    } else if path_part.starts_with('/') {
        remove_dot_segments(path_part)
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        remove_dot_segments(&format!("{dir}{path_part}"))
    };
    Some(format!("{scheme}://{authority}{path}{tail}"))
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

impl ForwardAuth {
    /// The request to the auth server for a client request with head `parts`.
    fn auth_request(
        &self,
        parts: &http::request::Parts,
        body: Option<Bytes>,
        cx: &RequestContext,
    ) -> Request<Full<Bytes>> {
        let method = if self.preserve_request_method {
            parts.method.clone()
        } else {
            Method::GET
        };
        let mut headers = HeaderMap::with_capacity(parts.headers.len() + 5);
        for (name, value) in &parts.headers {
            if name == header::HOST || name == header::CONTENT_LENGTH {
                continue;
            }
            if !self.request_headers.is_empty()
                && !self.request_headers.contains(name)
                && !name.as_str().starts_with("x-forwarded-")
                && name != X_REAL_IP
            {
                continue;
            }
            headers.append(name, value.clone());
        }
        strip_hop_by_hop(&mut headers);
        let trusted = |name: &HeaderName| {
            self.trust_forward_header
                .then(|| parts.headers.get(name).cloned())
                .flatten()
        };
        let client_ip = HeaderValue::from_str(&cx.client.remote.ip().to_string()).ok();
        // sluice's own X-Forwarded-For already ends with the client address.
        if let Some(xff) = trusted(&X_FORWARDED_FOR).or(client_ip) {
            headers.insert(&X_FORWARDED_FOR, xff);
        }
        let method_value = HeaderValue::from_str(parts.method.as_str()).ok();
        if let Some(m) = trusted(&X_FORWARDED_METHOD).or(method_value) {
            headers.insert(&X_FORWARDED_METHOD, m);
        }
        let proto = HeaderValue::from_static(if cx.client.tls { "https" } else { "http" });
        headers.insert(
            &X_FORWARDED_PROTO,
            trusted(&X_FORWARDED_PROTO).unwrap_or(proto),
        );
        let host = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| parts.headers.get(header::HOST).cloned());
        match trusted(&X_FORWARDED_HOST).or(host) {
            Some(h) => headers.insert(&X_FORWARDED_HOST, h),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        let uri = parts
            .uri
            .path_and_query()
            .and_then(|pq| HeaderValue::from_str(pq.as_str()).ok());
        match trusted(&X_FORWARDED_URI).or(uri) {
            Some(u) => headers.insert(&X_FORWARDED_URI, u),
            None => headers.remove(&X_FORWARDED_URI),
        };
        let mut req = Request::new(Full::new(body.unwrap_or_default()));
        *req.method_mut() = method;
        *req.uri_mut() = self.address.clone();
        *req.headers_mut() = headers;
        req
    }

    /// Sends `req` and reads the whole answer, within [`AUTH_TIMEOUT`].
    async fn ask(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes), AuthError> {
        let exchange = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let bytes = match self.max_response_body_size {
                Some(max) => Limited::new(body, max).collect().await.map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        AuthError::TooLarge
                    } else {
                        AuthError::Body(e.to_string())
                    }
                })?,
                None => body
                    .collect()
                    .await
                    .map_err(|e| AuthError::Body(e.to_string()))?,
            };
            Ok((parts, bytes.to_bytes()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| AuthError::Timeout)?
    }

    /// The auth server's refusal, relayed to the client.
    fn refusal(&self, mut parts: http::response::Parts, body: Bytes) -> Response<ResponseBody> {
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        if !self.preserve_location_header {
            if let Some(location) = parts.headers.get(header::LOCATION) {
                let resolved = location
                    .to_str()
                    .ok()
                    .and_then(|l| resolve(&self.address, l))
                    .and_then(|l| HeaderValue::from_str(&l).ok());
                match resolved {
                    Some(v) => {
                        parts.headers.insert(header::LOCATION, v);
                    }
                    None => return bare(StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
        }
        Response::from_parts(parts, ResponseBody::full(body))
    }

    /// Copies the configured auth-response headers onto the request.
    fn copy_headers(&self, request: &mut HeaderMap, auth: &HeaderMap) {
        for name in &self.response_headers {
            request.remove(name);
            for value in auth.get_all(name) {
                request.append(name, value.clone());
            }
        }
        if let Some(regex) = &self.response_regex {
            let mut buf = String::new();
            let mut matches = |name: &HeaderName| {
                canonical(name.as_str(), &mut buf);
                regex.is_match(&buf)
            };
            let doomed: Vec<HeaderName> = request.keys().filter(|n| matches(n)).cloned().collect();
            for name in doomed {
                request.remove(name);
            }
            for name in auth.keys() {
                if matches(name) {
                    for value in auth.get_all(name) {
                        request.append(name, value.clone());
                    }
                }
            }
        }
    }

    /// Puts the auth server's listed cookies on the backend's response, replacing
    /// the backend's cookies of the same names.
    fn add_cookies(&self, response: &mut HeaderMap, cookies: Vec<HeaderValue>) {
        let listed =
            |v: &HeaderValue| cookie_name(v).is_some_and(|n| self.auth_cookies.contains(n));
        let backend: Vec<HeaderValue> = response
            .get_all(header::SET_COOKIE)
            .iter()
            .filter(|v| !listed(v))
            .cloned()
            .collect();
        response.remove(header::SET_COOKIE);
        for value in backend.into_iter().chain(cookies) {
            response.append(header::SET_COOKIE, value);
        }
    }
}

impl Middleware for ForwardAuth {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (auth_body, body) = if self.forward_body && parts.method != Method::CONNECT {
                let collected = match self.max_body_size {
                    Some(max) => Limited::new(body, max)
                        .collect()
                        .await
                        .map_err(|e| e.is::<LengthLimitError>()),
                    None => body.collect().await.map_err(|_| false),
                };
                match collected {
                    Ok(c) => {
                        let bytes = c.to_bytes();
                        (Some(bytes.clone()), RequestBody::full(bytes))
                    }
                    Err(true) => return Ok(bare(StatusCode::UNAUTHORIZED)),
                    Err(false) => return Ok(bare(StatusCode::INTERNAL_SERVER_ERROR)),
                }
            } else {
                (None, body)
            };
            let auth_req = self.auth_request(&parts, auth_body, cx);
            let (auth, auth_body) = match self.ask(auth_req).await {
                Ok(answer) => answer,
                Err(AuthError::TooLarge) => return Ok(bare(StatusCode::UNAUTHORIZED)),
                Err(e) => {
                    tracing::warn!(address = %self.address, error = %e, "forwardAuth failed");
                    return Ok(bare(StatusCode::INTERNAL_SERVER_ERROR));
                }
            };
            if !auth.status.is_success() {
                return Ok(self.refusal(auth, auth_body));
            }
            self.copy_headers(&mut parts.headers, &auth.headers);
            let cookies: Vec<HeaderValue> = if self.auth_cookies.is_empty() {
                Vec::new()
            } else {
                auth.headers
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .filter(|v| cookie_name(v).is_some_and(|n| self.auth_cookies.contains(n)))
                    .cloned()
                    .collect()
            };
            let mut resp = next.run(Request::from_parts(parts, body), cx).await?;
            if !self.auth_cookies.is_empty() {
                self.add_cookies(resp.headers_mut(), cookies);
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;
    use crate::middleware::testing::{run, text, FakeBuild, Recorder};

    /// What the auth server saw.
    #[derive(Default)]
    struct Seen {
        requests: Mutex<Vec<(Method, String, HeaderMap, Bytes)>>,
        connections: AtomicUsize,
    }

    impl Seen {
        fn last(&self) -> (Method, String, HeaderMap, Bytes) {
            self.requests
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a request")
        }
    }

    /// Answers by path: `/ok` 200 with auth headers and cookies, `/deny` 403,
    /// `/redir` 302 to a relative URL, `/big` 200 with 1 KiB, `/slow` never.
    async fn auth_answer(
        req: Request<Incoming>,
        seen: Arc<Seen>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        seen.requests.lock().unwrap().push((
            parts.method.clone(),
            parts.uri.to_string(),
            parts.headers.clone(),
            body,
        ));
        let mut resp = Response::builder();
        match path.as_str() {
            "/ok" => {
                resp = resp
                    .status(200)
                    .header("x-auth-user", "alice")
                    .header("x-auth-extra-1", "one")
                    .header("x-unlisted", "nope")
                    .header("set-cookie", "session=abc; Path=/")
                    .header("set-cookie", "other=1");
            }
            "/deny" => {
                resp = resp
                    .status(403)
                    .header("www-authenticate", "Bearer")
                    .header("set-cookie", "denied=1")
                    .header("x-reason", "no")
            }
            "/redir" => resp = resp.status(302).header("location", "/login?x=1"),
            "/big" => return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; 1024])))),
            "/slow" => std::future::pending::<()>().await,
            _ => resp = resp.status(404),
        }
        Ok(resp
            .body(Full::new(Bytes::from_static(b"from auth")))
            .unwrap())
    }

    async fn auth_server() -> (SocketAddr, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| auth_answer(req, s.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    fn forward(config: Value) -> Arc<dyn Middleware> {
        FakeBuild::default().build(build, config).unwrap()
    }

    fn request() -> http::request::Builder {
        Request::get("/app/page?q=1")
            .header("host", "example.com")
            .header("cookie", "c=1")
            .header("authorization", "Bearer t")
            .header("x-auth-user", "spoofed")
            .header("x-auth-extra-2", "spoofed")
            .header("x-forwarded-uri", "/spoof")
            .header("x-forwarded-method", "FAKE")
    }

    #[tokio::test]
    async fn a_2xx_passes_with_the_listed_headers_and_x_forwarded() {
        let (addr, seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/ok"),
            "authResponseHeaders": ["X-Auth-User"],
            "authResponseHeadersRegex": "^X-Auth-Extra-",
        }));
        let backend = Recorder::default();
        let req = request().body(RequestBody::empty()).unwrap();
        let resp = run(&mw, &backend, req).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(text(resp).await, "backend");
        let (method, uri, headers, _) = seen.last();
        assert_eq!(method, Method::GET);
        assert_eq!(uri, "/ok", "the address exactly, not the client's path");
        assert_eq!(headers["x-forwarded-method"], "GET");
        assert_eq!(
            headers["x-forwarded-uri"], "/app/page?q=1",
            "untrusted: replaced"
        );
        assert_eq!(headers["x-forwarded-host"], "example.com");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["cookie"], "c=1");
        assert_eq!(headers["authorization"], "Bearer t");
        assert_eq!(headers["host"], addr.to_string().as_str());
        let backend_saw = backend.last();
        assert_eq!(backend_saw.headers["x-auth-user"], "alice");
        assert_eq!(backend_saw.headers["x-auth-extra-1"], "one");
        assert!(
            !backend_saw.headers.contains_key("x-auth-extra-2"),
            "regex: spoofed value dropped"
        );
        assert!(!backend_saw.headers.contains_key("x-unlisted"));
        assert!(!backend_saw.headers.contains_key("set-cookie"));
    }

    #[tokio::test]
    async fn trusted_forward_headers_pass_through() {
        let (addr, seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/ok"),
            "trustForwardHeader": true,
            "preserveRequestMethod": true,
        }));
        let backend = Recorder::default();
        let req = request()
            .method("DELETE")
            .header("x-forwarded-for", "10.0.0.1, 127.0.0.1")
            .body(RequestBody::empty())
            .unwrap();
        assert_eq!(run(&mw, &backend, req).await.status(), 200);
        let (method, _, headers, _) = seen.last();
        assert_eq!(method, Method::DELETE);
        assert_eq!(headers["x-forwarded-uri"], "/spoof");
        assert_eq!(headers["x-forwarded-method"], "FAKE");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }

    #[tokio::test]
    async fn auth_request_headers_filter_what_the_auth_server_gets() {
        let (addr, seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/ok"),
            "authRequestHeaders": ["X-Keep"],
        }));
        let req = request()
            .header("x-keep", "1")
            .body(RequestBody::empty())
            .unwrap();
        run(&mw, &Recorder::default(), req).await;
        let (_, _, headers, _) = seen.last();
        assert_eq!(headers["x-keep"], "1");
        assert!(!headers.contains_key("cookie"));
        assert!(!headers.contains_key("authorization"));
        assert_eq!(headers["x-forwarded-uri"], "/app/page?q=1");
    }

    #[tokio::test]
    async fn refusals_go_back_as_sent_and_the_backend_is_not_called() {
        let (addr, _seen) = auth_server().await;
        let backend = Recorder::default();
        let mw = forward(json!({ "address": format!("http://{addr}/deny") }));
        let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(resp.headers()["set-cookie"], "denied=1");
        assert_eq!(resp.headers()["x-reason"], "no");
        assert_eq!(text(resp).await, "from auth");

        let redir = forward(json!({ "address": format!("http://{addr}/redir") }));
        let resp = run(
            &redir,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 302);
        assert_eq!(
            resp.headers()["location"],
            format!("http://{addr}/login?x=1").as_str()
        );
        let kept = forward(json!({
            "address": format!("http://{addr}/redir"),
            "preserveLocationHeader": true,
        }));
        let resp = run(
            &kept,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.headers()["location"], "/login?x=1");
        // Any non-2xx is relayed, whatever it is.
        let missing = forward(json!({ "address": format!("http://{addr}/nowhere") }));
        let resp = run(
            &missing,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 404);
        assert_eq!(backend.count(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_auth_server_is_a_500() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let mw = forward(json!({ "address": format!("http://{addr}/ok") }));
        let backend = Recorder::default();
        let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
        assert_eq!(resp.status(), 500);
        assert_eq!(text(resp).await, "");
        assert_eq!(backend.count(), 0);
    }

    #[tokio::test]
    async fn a_slow_auth_server_times_out_with_500() {
        let (addr, seen) = auth_server().await;
        let config = json!({ "address": format!("http://{addr}/slow") });
        let mw = build_with_timeout(
            &config,
            &mut FakeBuild::default(),
            Duration::from_millis(300),
        )
        .unwrap();
        let backend = Recorder::default();
        let start = std::time::Instant::now();
        let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
        assert_eq!(resp.status(), 500);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            seen.requests.lock().unwrap().len(),
            1,
            "the auth server was asked"
        );
        assert_eq!(backend.count(), 0);
    }

    #[tokio::test]
    async fn connections_to_the_auth_server_are_reused() {
        let (addr, seen) = auth_server().await;
        let mw = forward(json!({ "address": format!("http://{addr}/ok") }));
        let backend = Recorder::default();
        for _ in 0..10 {
            let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
            assert_eq!(resp.status(), 200);
        }
        assert_eq!(seen.requests.lock().unwrap().len(), 10);
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bodies_are_forwarded_up_to_max_body_size() {
        let (addr, seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/ok"),
            "forwardBody": true,
            "maxBodySize": 8,
        }));
        let backend = Recorder::default();
        let req = request()
            .method("POST")
            .body(RequestBody::full("12345678"))
            .unwrap();
        assert_eq!(run(&mw, &backend, req).await.status(), 200);
        assert_eq!(seen.last().3, "12345678");
        assert_eq!(seen.last().2["content-length"], "8");
        assert_eq!(
            backend.last_body(),
            "12345678",
            "the backend still gets the body"
        );
        let calls = seen.requests.lock().unwrap().len();
        let big = request()
            .method("POST")
            .body(RequestBody::full("123456789"))
            .unwrap();
        let resp = run(&mw, &backend, big).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(text(resp).await, "");
        assert_eq!(
            seen.requests.lock().unwrap().len(),
            calls,
            "auth server not asked"
        );
        assert_eq!(backend.count(), 1);
        // Without forwardBody the auth server gets no body, the backend all of it.
        let plain = forward(json!({ "address": format!("http://{addr}/ok") }));
        let req = request()
            .method("POST")
            .body(RequestBody::full("payload"))
            .unwrap();
        run(&plain, &backend, req).await;
        assert_eq!(seen.last().3, "");
        assert_eq!(backend.last_body(), "payload");
    }

    #[tokio::test]
    async fn max_response_body_size_refuses_large_auth_answers() {
        let (addr, _seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/big"),
            "maxResponseBodySize": 100,
        }));
        let backend = Recorder::default();
        let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(backend.count(), 0);
    }

    #[tokio::test]
    async fn listed_auth_cookies_replace_the_backends() {
        let (addr, _seen) = auth_server().await;
        let mw = forward(json!({
            "address": format!("http://{addr}/ok"),
            "addAuthCookiesToResponse": ["session"],
        }));
        let backend = Recorder {
            headers: vec![("set-cookie", "session=backend"), ("set-cookie", "keep=1")],
            ..Recorder::default()
        };
        let resp = run(&mw, &backend, request().body(RequestBody::empty()).unwrap()).await;
        let cookies: Vec<_> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(cookies, ["keep=1", "session=abc; Path=/"]);
    }

    #[tokio::test]
    async fn https_auth_servers_with_a_ca_secret_or_without_verification() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let loaded = crate::tls::load_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let served = loaded.key.clone();
        let resolver = Arc::new(crate::tls::SniResolver::new(move |_| Some(served.clone())));
        let config = crate::tls::server_config(resolver, crate::tls::TlsVersion::V1_2).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = service_fn(move |req| auth_answer(req, s.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        let address = format!("https://{addr}/ok");
        let backend = Recorder::default();
        let verified = FakeBuild::default()
            .with_secret("ca", None, &[("ca.crt", cert_pem.as_bytes())])
            .build(
                build,
                json!({"address": address, "tls": {"caSecret": "ca"}}),
            )
            .unwrap();
        let resp = run(
            &verified,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let insecure = forward(json!({"address": address, "tls": {"insecureSkipVerify": true}}));
        let resp = run(
            &insecure,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        // Another CA: the handshake fails, the client gets 500.
        let other = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let wrong = FakeBuild::default()
            .with_secret("ca", None, &[("tls.ca", other.as_bytes())])
            .build(
                build,
                json!({"address": address, "tls": {"caSecret": "ca"}}),
            )
            .unwrap();
        let resp = run(
            &wrong,
            &backend,
            request().body(RequestBody::empty()).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 500);
        assert_eq!(seen.requests.lock().unwrap().len(), 2);
        // A client certificate Secret loads (tls.crt + tls.key).
        let with_cert = FakeBuild::default()
            .with_secret(
                "client",
                Some("kubernetes.io/tls"),
                &[("tls.crt", cert_pem.as_bytes()), ("tls.key", key_pem.as_bytes())],
            )
            .build(
                build,
                json!({"address": address, "tls": {"insecureSkipVerify": true, "certSecret": "client"}}),
            );
        assert!(with_cert.is_ok());
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, want) in [
            (json!({}), "requires an address"),
            (json!({"address": "ftp://x/"}), "http:// or https://"),
            (json!({"address": "not a url"}), "address"),
            (
                json!({"address": "http://a/", "authResponseHeadersRegex": "("}),
                "authResponseHeadersRegex",
            ),
            (
                json!({"address": "http://a/", "authResponseHeaders": ["bad header"]}),
                "authResponseHeaders",
            ),
            (
                json!({"address": "https://a/", "tls": {"ca": "/etc/ca.pem"}}),
                "file paths",
            ),
            (
                json!({"address": "https://a/", "tls": {"caSecret": "nope"}}),
                "not found",
            ),
            (
                json!({"address": "https://a/", "tls": {"insecureSkipVerify": true, "certSecret": "nope"}}),
                "not found",
            ),
        ] {
            let err = FakeBuild::default()
                .build(build, config.clone())
                .unwrap_err();
            assert!(err.to_string().contains(want), "{config}: {err}");
        }
        let bad_cert = FakeBuild::default()
            .with_secret("c", None, &[("tls.crt", b"junk"), ("tls.key", b"junk")])
            .build(build, json!({"address": "https://a/", "tls": {"insecureSkipVerify": true, "certSecret": "c"}}))
            .unwrap_err();
        assert!(bad_cert.to_string().contains("certSecret"), "{bad_cert}");
    }

    #[test]
    fn locations_resolve_like_go() {
        let base: Uri = "http://auth:9000/auth/redir?a=1".parse().unwrap();
        for (reference, want) in [
            ("/login?x=1", "http://auth:9000/login?x=1"),
            ("login", "http://auth:9000/auth/login"),
            ("../up", "http://auth:9000/up"),
            ("https://sso.example/x", "https://sso.example/x"),
            ("//other/y", "http://other/y"),
            ("?b=2", "http://auth:9000/auth/redir?b=2"),
        ] {
            assert_eq!(
                resolve(&base, reference).as_deref(),
                Some(want),
                "{reference}"
            );
        }
    }

    #[test]
    fn header_names_are_canonicalised_for_the_regex() {
        let mut out = String::new();
        canonical("x-auth-user", &mut out);
        assert_eq!(out, "X-Auth-User");
        canonical("www-authenticate", &mut out);
        assert_eq!(out, "Www-Authenticate");
    }
}
