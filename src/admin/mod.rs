//! The admin listener: `/healthz`, `/readyz`, `/metrics`, the JSON API under
//! `/api/` and the dashboard under `/dashboard/`.
//!
//! It reads the same published table as the data plane, the diagnostics of
//! the last load and compile, and the live figures the sampler keeps
//! ([`live`]); it never blocks the request path.

pub mod dashboard;
pub mod gateway;
pub mod live;
pub mod matcher;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, Metrics, OpenConnections};
use crate::router::{Diagnostic, EntryPoint, RouteTable};
use crate::watch::ProviderUpdate;

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct AdminState {
    /// The published routing table.
    pub table: Arc<ArcSwap<RouteTable>>,
    /// True once the first table is published, false again while shutting down.
    pub ready: AtomicBool,
    /// Every diagnostic of the last load and compile.
    pub diagnostics: ArcSwap<Vec<Diagnostic>>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The live figures (sliding windows over the data plane's counters).
    pub live: Arc<live::Live>,
    /// The objects of the last compile (for the middlewares page; specs are never shown).
    pub objects: ArcSwapOption<ProviderUpdate>,
    /// The last publish.
    pub last_reload: ArcSwap<views::ReloadView>,
    /// The entrypoints' addresses and open-connection counters.
    pub entrypoints: EntryPointsInfo,
}

/// The entrypoints as the overview shows them.
#[derive(Debug, Default)]
pub struct EntryPointsInfo {
    /// The plain-HTTP listener's address.
    pub web: Option<SocketAddr>,
    /// The HTTPS listener's address.
    pub websecure: Option<SocketAddr>,
    /// Open connections on `web`.
    pub web_open: Arc<OpenConnections>,
    /// Open connections on `websecure`.
    pub websecure_open: Arc<OpenConnections>,
}

impl AdminState {
    /// State for a table not yet published.
    pub fn new(
        table: Arc<ArcSwap<RouteTable>>,
        metrics: Metrics,
        entrypoints: EntryPointsInfo,
    ) -> Self {
        Self {
            table,
            ready: false.into(),
            diagnostics: ArcSwap::from_pointee(Vec::new()),
            metrics,
            live: Arc::new(live::Live::new()),
            objects: ArcSwapOption::empty(),
            last_reload: ArcSwap::from_pointee(views::ReloadView::default()),
            entrypoints,
        }
    }

    /// Records a publish that took `duration` (`kind`: `routes` or `endpoints`).
    pub fn reloaded(&self, kind: &'static str, duration: std::time::Duration) {
        self.last_reload.store(Arc::new(views::ReloadView {
            at_unix: unix_now(),
            duration_ms: duration.as_secs_f64() * 1e3,
            kind,
        }));
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Serves the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(respond(&state, &req)) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                });
            }
            _ = crate::proxy::stopped(&mut shutdown) => return,
        }
    }
}

fn respond(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let path = req.uri().path();
    if path == "/" || path == "/dashboard" {
        return redirect("/dashboard/");
    }
    if let Some(asset) = path.strip_prefix("/dashboard/") {
        return match dashboard::asset(asset) {
            Some((content_type, bytes)) => {
                let mut resp = body(StatusCode::OK, content_type, Bytes::from_static(bytes));
                resp.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                resp
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        };
    }
    let query = Query::parse(req.uri().query().unwrap_or(""));
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => body(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.metrics.render().into(),
        ),
        "/api/routes" => json(&views::route_views(state, &state.table.load())),
        "/api/routes/page" => json(&views::route_page(
            state,
            &views::RouteQuery {
                search: query.get("q").unwrap_or_default().to_owned(),
                failing: match query.get("state") {
                    Some("failing") => Some(true),
                    Some("ok") => Some(false),
                    _ => None,
                },
                name: query.get("name").map(str::to_owned),
                offset: query.number("offset").unwrap_or(0),
                limit: query.number("limit").unwrap_or(100),
            },
        )),
        "/api/overview" => json(&views::overview(state)),
        "/api/services" => json(&views::services(state, query.get("id"))),
        "/api/middlewares" => json(&views::middlewares(state)),
        "/api/tls" => json(&views::certificates(state, unix_now() as i64)),
        "/api/errors" => json(&views::errors(state)),
        "/api/gateway" => json(&gateway::view(state)),
        "/api/match" => match_route(state, &query),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/api/match?host=..&path=..[&method=..][&entrypoint=web|websecure][&header=Name:Value][&query=..]`.
fn match_route(state: &AdminState, query: &Query) -> Response<Full<Bytes>> {
    let (Some(host), Some(path)) = (query.get("host"), query.get("path")) else {
        return json_status(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "host and path are required: /api/match?host=..&path=.."}),
        );
    };
    let entrypoint = match query.get("entrypoint") {
        None | Some("" | "web") => EntryPoint::Web,
        Some("websecure") => EntryPoint::WebSecure,
        Some(other) => {
            return json_status(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": format!("unknown entrypoint {other:?}: web or websecure")}),
            )
        }
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let headers = query
        .all("header")
        .filter_map(|h| h.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let found = matcher::find(
        state,
        &matcher::MatchQuery {
            host: host.to_owned(),
            path,
            method: query.get("method").unwrap_or("GET").to_ascii_uppercase(),
            entrypoint,
            headers,
            query: query.get("query").map(str::to_owned),
        },
    );
    let status = if found.matched {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    json_status(status, &found)
}

/// A request's query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Self(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Option<usize> {
        self.get(name)?.parse().ok()
    }
}

fn redirect(location: &'static str) -> Response<Full<Bytes>> {
    let mut resp = text(StatusCode::FOUND, "see /dashboard/\n");
    resp.headers_mut()
        .insert(http::header::LOCATION, HeaderValue::from_static(location));
    resp
}

fn json_status<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let mut resp = json(value);
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    resp
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(bytes) => body(StatusCode::OK, "application/json", bytes.into()),
        Err(e) => {
            tracing::error!(error = %e, "encoding admin JSON failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(message.as_bytes()),
    )
}

fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
