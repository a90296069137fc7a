//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `/api/routes`, `/api/errors`.
//!
//! It reads the same published table as the data plane and the diagnostics of
//! the last load and compile; it never blocks the request path.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
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

use crate::metrics::{self, Metrics};
use crate::router::{Diagnostic, RouteTable};

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
}

#[derive(Serialize)]
struct ErrorsBody<'a> {
    count: usize,
    errors: &'a [Diagnostic],
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
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => body(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            state.metrics.render().into(),
        ),
        "/api/routes" => json(&state.table.load().routes()),
        "/api/errors" => {
            let diagnostics = state.diagnostics.load();
            json(&ErrorsBody {
                count: diagnostics.len(),
                errors: &diagnostics,
            })
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
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
