//! `nginxCustomErrors` and `nginxDefaultBackend`: ingress-nginx's
//! `custom-http-errors` and `default-backend` annotations (read in
//! `router::nginx::errors`), on the `errors` middleware's way of asking
//! another Service ([`send_to_service`]).
//!
//! - `nginxCustomErrors` is the location's `proxy_intercept_errors on` and
//!   one `error_page <code> = @custom_<backend>_<code>` per listed code: an
//!   answer with a listed status (a backend's response, unless `intercept`
//!   is off, or a failure of the proxy's own: 502, 503, 504) is replaced by
//!   what the default backend answers to the request nginx's `@custom_`
//!   location sends: the client's method and headers, the target `/` plus the
//!   client's query (`rewrite (.*) / break`), no body, and `X-Code`,
//!   `X-Format` (the client's `Accept`), `X-Original-URI`, `X-Namespace`,
//!   `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port`, `X-Request-ID`
//!   and `X-Forwarded-For` (the client's address). As `error_page =` does,
//!   the client gets the default backend's answer unchanged, status
//!   included. Without a default backend (or while it has no ready
//!   endpoint) the error goes to ingress-nginx's built-in default backend,
//!   which answers 404: sluice answers as it does to a request no route
//!   matches.
//! - `nginxDefaultBackend` serves the request from the default backend when
//!   the route's own Service has no ready endpoint (or cannot be resolved),
//!   with `X-Code: 503` and the location's other `X-*` fields, as
//!   ingress-nginx does by making the default backend the location's
//!   upstream. While the default backend has no ready endpoint either, the
//!   route's own backend answers (503).

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::ProxyError;
use crate::middleware::build::{decode, BuildError, Context, ServiceTarget};
use crate::middleware::errors::{
    send_to_service, strip_body_headers, strip_hop_by_hop, CodeRanges,
};
use crate::middleware::{BoxFuture, Failure, Middleware, Next, Outcome, RequestContext};
use crate::router::{Route, Target};
use crate::upstream::PortRef;

/// The section name of the `custom-http-errors` step.
const CUSTOM_ERRORS: &str = "nginxCustomErrors";
/// The section name of the `default-backend` fallback step.
const DEFAULT_BACKEND: &str = "nginxDefaultBackend";

static X_CODE: HeaderName = HeaderName::from_static("x-code");
static X_FORMAT: HeaderName = HeaderName::from_static("x-format");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
static X_INGRESS_NAME: HeaderName = HeaderName::from_static("x-ingress-name");
static X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
static X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Builds `kind` if this module owns it.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    match kind {
        CUSTOM_ERRORS => Some(custom_errors(config, cx)),
        DEFAULT_BACKEND => Some(default_backend(config, cx)),
        _ => None,
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErrorsConfig {
    /// The intercepted statuses (400-599, as ingress-nginx accepts them).
    codes: Vec<u16>,
    /// Whether backend responses are intercepted (`disable-proxy-intercept-errors`
    /// turns it off; the proxy's own failures always are).
    #[serde(default = "yes")]
    intercept: bool,
    /// The `default-backend` Service, when there is one.
    service: Option<String>,
    /// Its port (the Service's first, as ingress-nginx picks it).
    port: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendConfig {
    service: String,
    port: i32,
}

/// The default backend's Service port, resolved in the Ingress's namespace.
fn resolve_target(
    cx: &mut dyn Context,
    name: &str,
    port: i32,
) -> Result<ServiceTarget, BuildError> {
    cx.service(name, &PortRef::Number(port))
        .map_err(|e| cx.invalid(format!("default-backend Service {name}: {e}")))
}

fn custom_errors(config: &Value, cx: &mut dyn Context) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: ErrorsConfig = decode(config, cx)?;
    if config.codes.is_empty() {
        return Err(cx.invalid("codes must list at least one status".to_owned()));
    }
    if let Some(bad) = config.codes.iter().find(|c| !(400..=599).contains(*c)) {
        return Err(cx.invalid(format!("{bad} is not an error status (400-599)")));
    }
    let listed: Vec<String> = config.codes.iter().map(u16::to_string).collect();
    let codes = CodeRanges::parse(&listed).map_err(|e| cx.invalid(e))?;
    let target = match (config.service, config.port) {
        (None, _) => None,
        (Some(name), Some(port)) => Some(resolve_target(cx, &name, port)?),
        (Some(_), None) => return Err(cx.invalid("service needs a port".to_owned())),
    };
    Ok(Arc::new(CustomErrors {
        codes,
        intercept: config.intercept,
        target,
    }))
}

fn default_backend(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: BackendConfig = decode(config, cx)?;
    let target = resolve_target(cx, &config.service, config.port)?;
    Ok(Arc::new(DefaultBackend { target }))
}

/// The built `custom-http-errors` step.
#[derive(Debug)]
struct CustomErrors {
    codes: CodeRanges,
    intercept: bool,
    target: Option<ServiceTarget>,
}

/// What the error request needs from the client's request.
struct Original {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Original {
    fn of(req: &Request<RequestBody>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        }
    }

    /// The request nginx's `@custom_<backend>_<code>` location sends.
    fn error_request(self, code: StatusCode, cx: &RequestContext) -> Request<RequestBody> {
        let mut req = Request::new(RequestBody::empty());
        *req.method_mut() = self.method;
        // `rewrite (.*) / break;` keeps the query string.
        let target = match self.uri.query() {
            Some(query) => format!("/?{query}"),
            None => "/".to_owned(),
        };
        *req.uri_mut() = target
            .parse::<PathAndQuery>()
            .map_or_else(|_| Uri::from_static("/"), Uri::from);
        let mut headers = self.headers;
        strip_body_headers(&mut headers);
        strip_hop_by_hop(&mut headers);
        set_location_fields(&mut headers, code, &cx.route);
        let original = self.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        set_text(&mut headers, &X_ORIGINAL_URI, original);
        headers.insert(&X_FORWARDED_FOR, cx.client.ip_header().clone());
        *req.headers_mut() = headers;
        req
    }
}

impl CustomErrors {
    /// The answer to an intercepted `code`.
    async fn page(
        &self,
        original: Option<Original>,
        code: StatusCode,
        cx: &RequestContext,
    ) -> Response<ResponseBody> {
        let (Some(target), Some(original)) = (&self.target, original) else {
            return builtin_default_backend();
        };
        if !target.backend.pick_preview() {
            // ingress-nginx uses a custom default backend only while it has
            // endpoints; otherwise the built-in one answers.
            return builtin_default_backend();
        }
        match send_to_service(target, original.error_request(code, cx)).await {
            Ok(resp) => resp,
            // `recursive_error_pages` is off: nginx's own error page.
            Err(failed) => failed.into_response(),
        }
    }
}

/// What ingress-nginx's built-in default backend answers every request
/// (`return 404`), which is also what sluice answers a request that matches
/// no route.
fn builtin_default_backend() -> Response<ResponseBody> {
    ProxyError::NoRoute.into_response()
}

impl Middleware for CustomErrors {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let original = self.target.as_ref().map(|_| Original::of(&req));
            let outcome = next.run(req, cx).await;
            let code = match &outcome {
                Ok(resp) if self.intercept => resp.status(),
                Ok(_) => return outcome,
                Err(failure) => failure.error.status(),
            };
            if !self.codes.contains(code.as_u16()) {
                return outcome;
            }
            if let Err(failure) = &outcome {
                tracing::debug!(error = %failure.error, "custom-http-errors page for a failed request");
            }
            drop(outcome);
            Ok(self.page(original, code, cx).await)
        })
    }
}

/// The built `default-backend` fallback step.
#[derive(Debug)]
struct DefaultBackend {
    target: ServiceTarget,
}

/// Whether the route's own backend has a ready endpoint now.
fn has_endpoint(route: &Route) -> bool {
    if let Target::Backend(backend) = &route.target {
        backend.pick_preview()
    } else {
        false
    }
}

impl Middleware for DefaultBackend {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        if has_endpoint(&cx.route) || !self.target.backend.pick_preview() {
            return next.run(req, cx);
        }
        set_location_fields(
            req.headers_mut(),
            StatusCode::SERVICE_UNAVAILABLE,
            &cx.route,
        );
        Box::pin(async move {
            send_to_service(&self.target, req)
                .await
                .map_err(Failure::from)
        })
    }
}

/// The fields ingress-nginx sets on every request to a default backend
/// (`proxy_set_header`): `X-Code`, `X-Format`, `X-Namespace`,
/// `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port`, `X-Request-ID`.
/// An empty value is not sent, as nginx does not send it.
fn set_location_fields(headers: &mut HeaderMap, code: StatusCode, route: &Route) {
    headers.insert(&X_CODE, HeaderValue::from(code.as_u16()));
    match joined(headers, &ACCEPT) {
        Some(accept) => headers.insert(&X_FORMAT, accept),
        None => headers.remove(&X_FORMAT),
    };
    let namespace = route.ingress.namespace.as_deref().unwrap_or("");
    set_text(headers, &X_NAMESPACE, namespace);
    set_text(headers, &X_INGRESS_NAME, &route.ingress.name);
    match &route.service {
        Some(key) => {
            set_text(headers, &X_SERVICE_NAME, &key.service);
            set_text(headers, &X_SERVICE_PORT, &key.port.to_string());
        }
        None => {
            headers.remove(&X_SERVICE_NAME);
            headers.remove(&X_SERVICE_PORT);
        }
    }
    // `$req_id`: the client's X-Request-ID, else nginx's `$request_id`.
    let sent = headers
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !v.as_bytes().is_empty());
    if !sent {
        headers.insert(&X_REQUEST_ID, request_id());
    }
}

/// `name: text`, or no `name` field when `text` is empty or not a field value.
fn set_text(headers: &mut HeaderMap, name: &HeaderName, text: &str) {
    match HeaderValue::from_str(text) {
        Ok(value) if !text.is_empty() => {
            headers.insert(name, value);
        }
        _ => {
            headers.remove(name);
        }
    }
}

/// nginx's `$http_<name>`: the field's lines joined with `, `; `None` when
/// absent or empty.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return (!first.as_bytes().is_empty()).then(|| first.clone());
    };
    let mut out = first.as_bytes().to_vec();
    for more in std::iter::once(second).chain(values) {
        out.extend_from_slice(b", ");
        out.extend_from_slice(more.as_bytes());
    }
    HeaderValue::from_bytes(&out).ok()
}

/// nginx's `$request_id`: 16 random bytes in hexadecimal.
fn request_id() -> HeaderValue {
    let id = format!("{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::FakeBuild;
    use crate::upstream::{BackendKey, PoolSettings, UpstreamClient, Upstreams};

    fn fake() -> FakeBuild {
        let backend = Upstreams::new().backend(&BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: "pages".into(),
            port: PortRef::Number(8080),
        });
        let target = ServiceTarget {
            backend,
            client: Arc::new(UpstreamClient::new(&PoolSettings::default())),
        };
        FakeBuild {
            services: vec![("pages".into(), PortRef::Number(8080), target)],
            ..FakeBuild::default()
        }
    }

    fn built(kind: &str, config: Value) -> Result<Arc<dyn Middleware>, BuildError> {
        let mut cx = fake();
        build(kind, &config, &mut cx).expect("a kind of this module")
    }

    #[test]
    fn configs_are_validated() {
        assert!(built(CUSTOM_ERRORS, json!({"codes": [404, 503]})).is_ok());
        assert!(built(
            CUSTOM_ERRORS,
            json!({"codes": [404], "intercept": false, "service": "pages", "port": 8080})
        )
        .is_ok());
        assert!(built(DEFAULT_BACKEND, json!({"service": "pages", "port": 8080})).is_ok());
        let bad = [
            (CUSTOM_ERRORS, json!({"codes": []}), "at least one"),
            (
                CUSTOM_ERRORS,
                json!({"codes": [399]}),
                "not an error status",
            ),
            (
                CUSTOM_ERRORS,
                json!({"codes": [600]}),
                "not an error status",
            ),
            (CUSTOM_ERRORS, json!({"codes": ["x"]}), "invalid type"),
            (
                CUSTOM_ERRORS,
                json!({"codes": [404], "service": "pages"}),
                "needs a port",
            ),
            (
                CUSTOM_ERRORS,
                json!({"codes": [404], "service": "gone", "port": 80}),
                "not found",
            ),
            (DEFAULT_BACKEND, json!({"service": "pages"}), "port"),
            (
                DEFAULT_BACKEND,
                json!({"service": "pages", "port": 81}),
                "not found",
            ),
        ];
        for (kind, config, expected) in bad {
            let err = built(kind, config.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{kind} {config}: {err}");
        }
        assert!(build("nginxOther", &json!({}), &mut fake()).is_none());
    }

    #[test]
    fn location_fields_follow_nginx() {
        let route = crate::middleware::testing::route();
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT, HeaderValue::from_static("text/html"));
        headers.append(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(&X_SERVICE_NAME, HeaderValue::from_static("forged"));
        set_location_fields(&mut headers, StatusCode::NOT_FOUND, &route);
        assert_eq!(headers[&X_CODE], "404");
        assert_eq!(headers[&X_FORMAT], "text/html, application/json");
        assert_eq!(headers[&X_NAMESPACE], "default");
        assert_eq!(headers[&X_INGRESS_NAME], "test");
        // The detached route names no Service: no field, not the client's.
        assert!(headers.get(&X_SERVICE_NAME).is_none());
        let id = headers[&X_REQUEST_ID].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

        let mut headers = HeaderMap::new();
        headers.insert(&X_FORMAT, HeaderValue::from_static("forged"));
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        set_location_fields(&mut headers, StatusCode::SERVICE_UNAVAILABLE, &route);
        assert!(headers.get(&X_FORMAT).is_none(), "no Accept, no X-Format");
        assert_eq!(headers[&X_REQUEST_ID], "abc");
        assert_eq!(headers[&X_CODE], "503");
    }
}
