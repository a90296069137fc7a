//! Test support shared by the middlewares' unit tests: a build context, request
//! contexts, a recording backend and helpers to run a middleware and read what
//! comes back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::ClientInfo;
use crate::middleware::build::{BuildError, Context};
use crate::middleware::{
    BoxFuture, Middleware, Next, Outcome, RequestContext, ServiceTarget, Terminal,
};
use crate::router::Route;
use crate::upstream::PortRef;

/// A kind's `build` function.
pub(crate) type BuildFn = fn(&Value, &mut dyn Context) -> Result<Arc<dyn Middleware>, BuildError>;

/// A build context in namespace `default` with some Secrets and Services (none
/// unless added) and no other Middlewares.
#[derive(Default)]
pub(crate) struct FakeBuild {
    /// Secrets by name.
    pub(crate) secrets: HashMap<String, Secret>,
    /// Services: name, port and what they resolve to.
    pub(crate) services: Vec<(String, PortRef, ServiceTarget)>,
}

impl FakeBuild {
    /// Adds a Secret with `data` (and an optional type).
    pub(crate) fn with_secret(
        mut self,
        name: &str,
        type_: Option<&str>,
        data: &[(&str, &[u8])],
    ) -> Self {
        let secret = Secret {
            type_: type_.map(str::to_owned),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        self.secrets.insert(name.to_owned(), secret);
        self
    }

    /// Builds with `build` from a JSON config.
    pub(crate) fn build(
        mut self,
        build: BuildFn,
        config: Value,
    ) -> Result<Arc<dyn Middleware>, BuildError> {
        build(&config, &mut self)
    }
}

impl Context for FakeBuild {
    fn namespace(&self) -> &str {
        "default"
    }

    fn secret(&mut self, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }

    fn service(&mut self, name: &str, port: &PortRef) -> Result<ServiceTarget, String> {
        self.services
            .iter()
            .find(|(n, p, _)| n == name && p == port)
            .map(|(_, _, t)| t.clone())
            .ok_or_else(|| format!("service {name}:{port} not found"))
    }

    fn service_in(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<ServiceTarget, String> {
        // Services of other namespaces are listed as `namespace/name`.
        let qualified = format!("{namespace}/{name}");
        let wanted = if namespace == "default" {
            name
        } else {
            &qualified
        };
        self.service(wanted, port)
    }

    fn middleware(&mut self, reference: &str) -> Result<Arc<dyn Middleware>, BuildError> {
        Err(BuildError::NotFound(
            reference.to_owned(),
            "default".to_owned(),
        ))
    }

    fn invalid(&self, reason: String) -> BuildError {
        BuildError::Invalid {
            middleware: "default/test".to_owned(),
            kind: "test".to_owned(),
            reason,
        }
    }
}

/// Builds a middleware with `build` from JSON `config` in an empty build context.
pub(crate) fn make(build: BuildFn, config: Value) -> Result<Arc<dyn Middleware>, BuildError> {
    FakeBuild::default().build(build, config)
}

/// A route for request contexts (its own target is never used).
pub(crate) fn route() -> Arc<Route> {
    crate::middleware::support::detached_route("test")
}

/// A request context for a client at `remote`, over TLS or not.
pub(crate) fn context_at(remote: &str, tls: bool) -> RequestContext {
    let remote: SocketAddr = remote.parse().expect("socket address");
    RequestContext {
        client: ClientInfo::new(remote, tls),
        route: route(),
    }
}

/// A request context for a client at `127.0.0.1:40000`.
pub(crate) fn context(tls: bool) -> RequestContext {
    context_at("127.0.0.1:40000", tls)
}

/// The head of a request the backend got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
}

pub(crate) type Respond = Box<dyn Fn() -> Response<ResponseBody> + Send + Sync>;

/// A backend that records each request (with its body read whole) and answers
/// 200 `backend` (or `body` when set) with `headers`, or whatever `respond`
/// makes when built [`Recorder::with`] it.
#[derive(Default)]
pub(crate) struct Recorder {
    /// The requests that reached the backend, in order.
    pub(crate) seen: Mutex<Vec<(http::request::Parts, Bytes)>>,
    /// Extra response headers of the canned answer.
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    /// The body of the canned answer (`backend` when `None`).
    pub(crate) body: Option<Bytes>,
    /// Makes the answer instead, when set (see [`Recorder::with`]).
    pub(crate) respond: Option<Respond>,
}

impl Recorder {
    /// Answers 200 with an empty body.
    pub(crate) fn ok() -> Self {
        Self::with(|| Response::new(ResponseBody::empty()))
    }

    /// Answers with whatever `respond` makes.
    pub(crate) fn with(
        respond: impl Fn() -> Response<ResponseBody> + Send + Sync + 'static,
    ) -> Self {
        Self {
            respond: Some(Box::new(respond)),
            ..Self::default()
        }
    }

    /// How many requests reached the backend.
    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Whether the backend was called.
    pub(crate) fn called(&self) -> bool {
        self.count() > 0
    }

    /// The last request's head.
    pub(crate) fn last(&self) -> http::request::Parts {
        self.seen
            .lock()
            .unwrap()
            .last()
            .expect("a request")
            .0
            .clone()
    }

    /// The last request's body.
    pub(crate) fn last_body(&self) -> Bytes {
        self.seen
            .lock()
            .unwrap()
            .last()
            .expect("a request")
            .1
            .clone()
    }

    /// The last request the backend got, if any.
    pub(crate) fn last_seen(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().map(|(parts, _)| Seen {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }

    /// The last request the backend got (panics if none).
    pub(crate) fn got(&self) -> Seen {
        self.last_seen().expect("backend was called")
    }

    fn answer(&self) -> Response<ResponseBody> {
        if let Some(respond) = &self.respond {
            return respond();
        }
        let body = self.body.clone().unwrap_or_else(|| "backend".into());
        let mut resp = Response::new(ResponseBody::full(body));
        for (k, v) in &self.headers {
            resp.headers_mut()
                .append(*k, http::HeaderValue::from_static(v));
        }
        resp
    }
}

impl Terminal for Recorder {
    fn forward<'a>(
        &'a self,
        req: Request<RequestBody>,
        _cx: &'a RequestContext,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.expect("request body").to_bytes();
            self.seen.lock().unwrap().push((parts, body));
            Ok(self.answer())
        })
    }
}

/// Runs `req` through `mw` and then `terminal`, in `cx`.
pub(crate) async fn run_in(
    mw: &Arc<dyn Middleware>,
    terminal: &dyn Terminal,
    req: Request<RequestBody>,
    cx: &RequestContext,
) -> Outcome {
    let steps = [mw.clone()];
    Next::new(&steps, terminal).run(req, cx).await
}

/// Runs `mw` then `backend` for `req`, from a plain-HTTP client.
pub(crate) async fn run(
    mw: &Arc<dyn Middleware>,
    backend: &dyn Terminal,
    req: Request<RequestBody>,
) -> Response<ResponseBody> {
    run_tls(mw, req, backend, false).await
}

/// Runs `mw` on `req` in front of `backend`, over TLS or not.
pub(crate) async fn run_tls(
    mw: &Arc<dyn Middleware>,
    req: Request<RequestBody>,
    backend: &dyn Terminal,
    tls: bool,
) -> Response<ResponseBody> {
    run_in(mw, backend, req, &context(tls))
        .await
        .expect("a response")
}

/// A GET of `target` with `headers`.
pub(crate) fn get(target: &str, headers: &[(&str, &str)]) -> Request<RequestBody> {
    request(Method::GET, target, headers)
}

/// A request of `method` to `target` with `headers` and an empty body.
pub(crate) fn request(
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> Request<RequestBody> {
    let mut req = Request::builder().method(method).uri(target);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(RequestBody::empty()).unwrap()
}

/// The whole body of `resp`.
pub(crate) async fn body(resp: Response<ResponseBody>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// A response's body as text.
pub(crate) async fn text(resp: Response<ResponseBody>) -> String {
    String::from_utf8_lossy(&body(resp).await).into_owned()
}

/// An outcome's status and body text.
pub(crate) async fn read(outcome: Outcome) -> (StatusCode, String) {
    let resp = outcome.expect("a response");
    (resp.status(), text(resp).await)
}

/// Every value of `name` in `headers`, as text.
pub(crate) fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}
