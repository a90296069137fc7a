//! The OTLP/HTTP exporter, sending with hyper from the tokio runtime that
//! started tracing.
//!
//! The SDK's batch processor runs on its own thread and blocks on each
//! export, so the request is spawned onto the runtime and its join handle
//! awaited: the export never runs on a data-plane worker.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use tokio::runtime::Handle;

use super::TracingError;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a collector's answer that is read.
const MAX_ANSWER: usize = 1 << 20;

/// An [`HttpClient`] over hyper-util's pooled client.
#[derive(Debug, Clone)]
struct HyperClient {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: Handle,
}

#[async_trait]
impl HttpClient for HyperClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let send = async move {
            let (parts, body) = request.into_parts();
            let request = Request::from_parts(parts, Full::new(body));
            let answer = client.request(request).await?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| -> HttpError { e })?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let timed = async move {
            tokio::time::timeout(EXPORT_TIMEOUT, send)
                .await
                .map_err(|_| -> HttpError { "OTLP export timed out".into() })?
        };
        self.runtime.spawn(timed).await?
    }
}

/// The span exporter for the traces URL `url`.
pub(super) fn build(url: &str) -> Result<SpanExporter, TracingError> {
    let runtime = Handle::try_current()
        .map_err(|_| TracingError::Exporter("no tokio runtime to export from".to_owned()))?;
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(HyperClient { client, runtime })
        .build()
        .map_err(|e| TracingError::Exporter(e.to_string()))
}
