//! `nginxExternalAuth`: ingress-nginx's `auth-url` (nginx `auth_request`).
//!
//! Every request is first sent, without its body, to the auth URL: the
//! client's headers plus what ingress-nginx's auth location sets (`Host` of
//! the auth URL, `X-Original-URL`, `X-Original-Method`, `X-Sent-From`,
//! `X-Real-IP`, `X-Forwarded-For`, `X-Auth-Request-Redirect`, and with
//! `auth-method` also `X-Original-URI`/`X-Scheme`). Its answer decides, as
//! `auth_request` does:
//!
//! - 2xx: the request goes on, with the `auth-response-headers` set from the
//!   auth answer (removed when the answer lacks them, so a client cannot
//!   send its own), and the answer's `Set-Cookie` added to a successful response;
//! - 401: 401 with the auth answer's `WWW-Authenticate`, or with
//!   `auth-signin`, a 302 to the sign-in URL carrying the original URL in the
//!   `auth-signin-redirect-param` (default `rd`) query parameter;
//! - 403: 403; anything else, or no answer: 500.
//!
//! With `auth-cache-key`, answers whose status `auth-cache-duration` lists
//! (default `200 202 401 5m`) are remembered per expanded key for that long.
//!
//! Like nginx's default (`proxy_ssl_verify off`), an https auth URL's
//! certificate is not verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::forward_auth::AUTH_TIMEOUT;
use crate::middleware::nginx::http_kinds::vars;
use crate::middleware::source::reply;
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// How many cached answers one middleware keeps at most.
const CACHE_CAPACITY: usize = 10_000;
/// The largest auth answer body read (and dropped).
const MAX_AUTH_BODY: usize = 1 << 20;

type AuthClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    signin: Option<String>,
    #[serde(default)]
    signin_redirect_param: Option<String>,
    #[serde(default)]
    response_headers: Vec<String>,
    #[serde(default)]
    request_redirect: Option<String>,
    #[serde(default)]
    cache_key: Option<String>,
    /// `"<codes> <duration>"` entries; `["200 202 401 5m"]` when empty.
    #[serde(default)]
    cache_duration: Vec<String>,
    /// `auth-proxy-set-headers`: the ConfigMap's headers for the auth
    /// request; values may hold the nginx variables `vars` evaluates.
    #[serde(default)]
    proxy_set_headers: std::collections::BTreeMap<String, String>,
}

/// Builds an `nginxExternalAuth` middleware.
pub(crate) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let url: Uri = config
        .url
        .parse()
        .map_err(|e| cx.invalid(format!("auth-url {:?}: {e}", config.url)))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(cx.invalid(format!(
            "auth-url {:?} is not an http:// or https:// URL",
            config.url
        )));
    }
    let host = HeaderValue::from_str(url.host().unwrap_or(""))
        .map_err(|_| cx.invalid("auth-url host is not a header value".to_owned()))?;
    let method = match config.method.as_deref() {
        None => None,
        Some(m) => Some(
            Method::from_bytes(m.as_bytes())
                .map_err(|_| cx.invalid(format!("auth-method {m:?} is not a method")))?,
        ),
    };
    let response_headers = config
        .response_headers
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                cx.invalid(format!("auth-response-headers: {h:?} is not a header name"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signin = match &config.signin {
        Some(s) => Some(
            signin_base(s, config.signin_redirect_param.as_deref()).map_err(|e| cx.invalid(e))?,
        ),
        None => None,
    };
    let request_redirect =
        match &config.request_redirect {
            Some(r) => Some(HeaderValue::from_str(r).map_err(|_| {
                cx.invalid("auth-request-redirect is not a header value".to_owned())
            })?),
            None => None,
        };
    let cache = match &config.cache_key {
        Some(key) => Some(Cache {
            key: parse_key(key).map_err(|e| cx.invalid(format!("auth-cache-key: {e}")))?,
            rules: parse_durations(&config.cache_duration)
                .map_err(|e| cx.invalid(format!("auth-cache-duration: {e}")))?,
            entries: Mutex::new(HashMap::new()),
        }),
        None => None,
    };
    let proxy_set_headers = config
        .proxy_set_headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                cx.invalid(format!(
                    "auth-proxy-set-headers: {name:?} is not a header name"
                ))
            })?;
            let pieces = vars::parse(value, false)
                .map_err(|e| cx.invalid(format!("auth-proxy-set-headers: {name}: {e}")))?;
            Ok((name, pieces))
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::insecure_client_config(&[]))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    Ok(Arc::new(ExternalAuth {
        client,
        url,
        host,
        method,
        signin,
        response_headers,
        request_redirect,
        cache,
        proxy_set_headers,
    }))
}

/// The sign-in URL and how the original URL joins it: `None` when the URL
/// already carries the redirect parameter (ingress-nginx leaves it alone),
/// else `Some("?rd=")` or `Some("&rd=")`.
type Signin = (String, Option<String>);

fn signin_base(url: &str, param: Option<&str>) -> Result<Signin, String> {
    let parsed: Uri = expand(url, "http", "x", "/")
        .parse()
        .map_err(|e| format!("auth-signin {url:?}: {e}"))?;
    if parsed.host().is_none() || expand(url, "", "", "").contains('$') {
        return Err(format!("auth-signin {url:?} is not an absolute URL"));
    }
    let param = param.filter(|p| !p.is_empty()).unwrap_or("rd");
    let query = parsed.query().unwrap_or("");
    if query.is_empty() {
        return Ok((url.to_owned(), Some(format!("?{param}="))));
    }
    let present = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == param && !v.is_empty());
    if present {
        return Ok((url.to_owned(), None));
    }
    Ok((url.to_owned(), Some(format!("&{param}="))))
}

/// One piece of an `auth-cache-key` template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Header(HeaderName),
    Cookie(String),
    Arg(String),
    RemoteAddr,
    Host,
    RequestUri,
    Uri,
    Scheme,
    Method,
    RemoteUser,
}

/// Parses nginx variables in a cache-key template (`$http_authorization`,
/// `${cookie_session}`...); an unknown variable is an error.
fn parse_key(template: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').ok_or("unclosed ${")?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        rest = after;
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(variable(name)?);
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn variable(name: &str) -> Result<Piece, String> {
    if let Some(h) = name.strip_prefix("http_") {
        return HeaderName::from_bytes(h.replace('_', "-").as_bytes())
            .map(Piece::Header)
            .map_err(|_| format!("${name} is not a header variable"));
    }
    if let Some(c) = name.strip_prefix("cookie_") {
        return Ok(Piece::Cookie(c.to_owned()));
    }
    if let Some(a) = name.strip_prefix("arg_") {
        return Ok(Piece::Arg(a.to_owned()));
    }
    Ok(match name {
        "remote_addr" => Piece::RemoteAddr,
        "host" | "http_host" => Piece::Host,
        "request_uri" => Piece::RequestUri,
        "uri" => Piece::Uri,
        "scheme" => Piece::Scheme,
        "request_method" => Piece::Method,
        "remote_user" => Piece::RemoteUser,
        other => return Err(format!("unsupported variable ${other}")),
    })
}

/// `"<codes> <duration>"` entries as (codes, ttl); codes empty = 200, 301, 302.
fn parse_durations(entries: &[String]) -> Result<Vec<(Vec<u16>, Duration)>, String> {
    let defaults = ["200 202 401 5m".to_owned()];
    let entries = if entries.is_empty() {
        &defaults[..]
    } else {
        entries
    };
    entries
        .iter()
        .map(|entry| {
            let mut codes = Vec::new();
            let mut ttl = None;
            for word in entry.split_whitespace() {
                if ttl.is_some() {
                    return Err(format!("{entry:?}: nothing may follow the duration"));
                }
                if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) {
                    codes.push(word.parse::<u16>().map_err(|e| e.to_string())?);
                } else {
                    ttl = Some(
                        nginx_duration(word)
                            .ok_or_else(|| format!("{entry:?}: bad duration {word:?}"))?,
                    );
                }
            }
            let ttl = ttl.ok_or_else(|| format!("{entry:?} has no duration"))?;
            if codes.is_empty() {
                codes = vec![200, 301, 302];
            }
            Ok((codes, ttl))
        })
        .collect()
}

/// An nginx time like `5m`, `30s`, `500ms`, `1h`, `2d`.
pub(crate) fn nginx_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "M" => 2_592_000,
        "y" => 31_536_000,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

/// What a cached auth answer keeps.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
}

#[derive(Debug)]
struct Cache {
    key: Vec<Piece>,
    rules: Vec<(Vec<u16>, Duration)>,
    entries: Mutex<HashMap<String, (Instant, Answer)>>,
}

impl Cache {
    fn get(&self, key: &str) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, a)| a.clone())
    }

    fn put(&self, key: String, answer: &Answer) {
        let Some(ttl) = self
            .rules
            .iter()
            .find(|(codes, _)| codes.contains(&answer.status.as_u16()))
            .map(|(_, ttl)| *ttl)
        else {
            return;
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY {
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, answer.clone()));
    }
}

/// The built `nginxExternalAuth`.
struct ExternalAuth {
    client: AuthClient,
    url: Uri,
    host: HeaderValue,
    method: Option<Method>,
    signin: Option<Signin>,
    response_headers: Vec<HeaderName>,
    request_redirect: Option<HeaderValue>,
    cache: Option<Cache>,
    /// Extra headers of the auth request (`auth-proxy-set-headers`).
    proxy_set_headers: Vec<(HeaderName, Vec<vars::Piece>)>,
}

impl std::fmt::Debug for ExternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAuth")
            .field("url", &self.url)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");
static X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");

/// What the request looks like to nginx's variables.
struct Facts {
    scheme: &'static str,
    host: String,
    request_uri: String,
}

fn facts(req: &Request<RequestBody>, cx: &RequestContext) -> Facts {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let request_uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    Facts {
        scheme: if cx.client.tls { "https" } else { "http" },
        host,
        request_uri,
    }
}

impl ExternalAuth {
    fn cache_key(
        &self,
        pieces: &[Piece],
        req: &Request<RequestBody>,
        cx: &RequestContext,
        f: &Facts,
    ) -> String {
        // ingress-nginx prefixes the key with the server's host name.
        let mut out = format!("{}\u{0}", f.host);
        let h = req.headers();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Header(name) => {
                    let values: Vec<&str> = h
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    out.push_str(&values.join(","));
                }
                Piece::Cookie(name) => {
                    let found = h
                        .get_all(header::COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(';'))
                        .filter_map(|kv| kv.trim().split_once('='))
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.to_owned());
                    out.push_str(&found.unwrap_or_default());
                }
                Piece::Arg(name) => {
                    let found = req
                        .uri()
                        .query()
                        .unwrap_or("")
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.to_owned());
                    out.push_str(&found.unwrap_or_default());
                }
                Piece::RemoteAddr => {
                    out.push_str(&cx.client.remote.ip().to_canonical().to_string())
                }
                Piece::Host => out.push_str(&f.host),
                Piece::RequestUri => out.push_str(&f.request_uri),
                Piece::Uri => out.push_str(req.uri().path()),
                Piece::Scheme => out.push_str(f.scheme),
                Piece::Method => out.push_str(req.method().as_str()),
                Piece::RemoteUser => out.push_str(&remote_user(h).unwrap_or_default()),
            }
            // Keeps `a` + `bc` apart from `ab` + `c`.
            out.push('\u{0}');
        }
        out
    }

    /// Asks the auth server; `None` when it could not be reached.
    async fn ask(
        &self,
        req: &Request<RequestBody>,
        cx: &RequestContext,
        f: &Facts,
    ) -> Option<Answer> {
        let method = self.method.clone().unwrap_or(Method::GET);
        let mut headers = HeaderMap::new();
        for (name, value) in req.headers() {
            if is_hop_by_hop(name)
                || name == header::HOST
                || name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
                || name == X_FORWARDED_PROTO
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(header::HOST, self.host.clone());
        let original = format!("{}://{}{}", f.scheme, f.host, f.request_uri);
        if let Ok(v) = HeaderValue::from_str(&original) {
            headers.insert(X_ORIGINAL_URL.clone(), v);
        }
        if let Ok(v) = HeaderValue::from_str(req.method().as_str()) {
            headers.insert(X_ORIGINAL_METHOD.clone(), v);
        }
        headers.insert(
            X_SENT_FROM.clone(),
            HeaderValue::from_static("nginx-ingress-controller"),
        );
        let ip = cx.client.remote.ip().to_canonical().to_string();
        if let Ok(v) = HeaderValue::from_str(&ip) {
            headers.insert(X_REAL_IP.clone(), v.clone());
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        let redirect = match &self.request_redirect {
            Some(v) => Some(v.clone()),
            None => HeaderValue::from_str(&f.request_uri).ok(),
        };
        if let Some(v) = redirect {
            headers.insert(X_AUTH_REQUEST_REDIRECT.clone(), v);
        }
        if self.method.is_some() {
            if let Ok(v) = HeaderValue::from_str(&f.request_uri) {
                headers.insert(X_ORIGINAL_URI.clone(), v);
            }
            headers.insert(X_SCHEME.clone(), HeaderValue::from_static(f.scheme));
        }
        if !self.proxy_set_headers.is_empty() {
            let values = vars::Vars::of(req, cx.client.tls);
            for (name, pieces) in &self.proxy_set_headers {
                match HeaderValue::from_str(&values.eval(pieces, &[])) {
                    // nginx passes no header whose value is empty.
                    Ok(v) if !v.is_empty() => {
                        headers.insert(name.clone(), v);
                    }
                    _ => {
                        headers.remove(name);
                    }
                }
            }
        }
        let mut auth_req = Request::new(Full::new(Bytes::new()));
        *auth_req.method_mut() = method;
        *auth_req.uri_mut() = self.url.clone();
        *auth_req.headers_mut() = headers;
        let exchange = async {
            let resp = self.client.request(auth_req).await.ok()?;
            let (parts, body) = resp.into_parts();
            // Read (and drop) the body so the connection can be reused.
            let _ = Limited::new(body, MAX_AUTH_BODY).collect().await;
            Some(Answer {
                status: parts.status,
                headers: parts.headers,
            })
        };
        tokio::time::timeout(AUTH_TIMEOUT, exchange)
            .await
            .ok()
            .flatten()
    }

    fn signin_redirect(&self, f: &Facts) -> Option<Response<ResponseBody>> {
        let (url, join) = self.signin.as_ref()?;
        let url = expand(url, f.scheme, &f.host, &f.request_uri);
        let location = match join {
            None => url,
            Some(join) => format!(
                "{url}{join}{}://{}{}",
                f.scheme,
                f.host,
                escape_uri(&f.request_uri)
            ),
        };
        let mut resp = reply(StatusCode::FOUND, "");
        let value = HeaderValue::from_str(&location).ok()?;
        resp.headers_mut().insert(header::LOCATION, value);
        Some(resp)
    }
}

/// The nginx variables a sign-in URL may hold, expanded for this request.
pub(crate) fn expand(url: &str, scheme: &str, host: &str, request_uri: &str) -> String {
    if !url.contains('$') {
        return url.to_owned();
    }
    url.replace("$escaped_request_uri", &escape_uri(request_uri))
        .replace("$request_uri", request_uri)
        .replace("$pass_access_scheme", scheme)
        .replace("$scheme", scheme)
        .replace("$best_http_host", host)
        .replace("$http_host", host)
        .replace("$host", host)
}

/// nginx's `set_escape_uri`: everything but unreserved characters percent-encoded.
fn escape_uri(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The user name of a Basic `Authorization` header (`$remote_user`).
fn remote_user(h: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(u, _)| u.to_owned()),
    )
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
    )
}

impl Middleware for ExternalAuth {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let f = facts(&req, cx);
            let key = self
                .cache
                .as_ref()
                .map(|c| self.cache_key(&c.key, &req, cx, &f));
            let cached = match (&self.cache, &key) {
                (Some(cache), Some(key)) => cache.get(key),
                _ => None,
            };
            let answer = match cached {
                Some(a) => a,
                None => {
                    let Some(answer) = self.ask(&req, cx, &f).await else {
                        tracing::warn!(url = %self.url, route = %cx.route.name, "nginx external auth: no answer from the auth server");
                        return Ok(reply(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "Internal Server Error",
                        ));
                    };
                    if let (Some(cache), Some(key)) = (&self.cache, key) {
                        cache.put(key, &answer);
                    }
                    answer
                }
            };
            match answer.status.as_u16() {
                200..=299 => {}
                401 => {
                    if let Some(resp) = self.signin_redirect(&f) {
                        return Ok(resp);
                    }
                    let mut resp = reply(StatusCode::UNAUTHORIZED, "Unauthorized");
                    for v in answer.headers.get_all(header::WWW_AUTHENTICATE) {
                        resp.headers_mut()
                            .append(header::WWW_AUTHENTICATE, v.clone());
                    }
                    return Ok(resp);
                }
                403 => return Ok(reply(StatusCode::FORBIDDEN, "Forbidden")),
                other => {
                    tracing::warn!(url = %self.url, status = other, "nginx external auth: unexpected status from the auth server");
                    return Ok(reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                    ));
                }
            }
            for name in &self.response_headers {
                req.headers_mut().remove(name);
                for v in answer.headers.get_all(name) {
                    req.headers_mut().append(name.clone(), v.clone());
                }
            }
            let mut resp = next.run(req, cx).await?;
            // `add_header Set-Cookie $auth_cookie` (without `always`).
            let status = resp.status().as_u16();
            if matches!(
                status,
                200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
            ) {
                for v in answer.headers.get_all(header::SET_COOKIE) {
                    resp.headers_mut().append(header::SET_COOKIE, v.clone());
                }
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_keys_parse() {
        let d = parse_durations(&["200 202 401 5m".to_owned(), "30s".to_owned()]).expect("ok");
        assert_eq!(d[0], (vec![200, 202, 401], Duration::from_secs(300)));
        assert_eq!(d[1], (vec![200, 301, 302], Duration::from_secs(30)));
        assert!(parse_durations(&["200 5m 401".to_owned()]).is_err());
        assert!(parse_durations(&["200".to_owned()]).is_err());
        let k = parse_key("$remote_user${http_authorization}x").expect("ok");
        assert_eq!(k.len(), 3);
        assert!(parse_key("$upstream_addr").is_err());
    }

    #[test]
    fn signin_joins_the_redirect_param() {
        assert_eq!(
            signin_base("https://a/start", None)
                .expect("ok")
                .1
                .as_deref(),
            Some("?rd=")
        );
        assert_eq!(
            signin_base("https://a/start?x=1", Some("next"))
                .expect("ok")
                .1
                .as_deref(),
            Some("&next=")
        );
        assert_eq!(
            signin_base("https://a/start?rd=/home", None).expect("ok").1,
            None
        );
        assert_eq!(escape_uri("/a b?c=d"), "%2Fa%20b%3Fc%3Dd");
    }
}
