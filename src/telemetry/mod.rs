//! OpenTelemetry tracing: one server span per request and one client span
//! per backend attempt, exported over OTLP/HTTP (protobuf) by the
//! opentelemetry SDK's batch processor.
//!
//! Off unless `--tracing-otlp-endpoint` is set; then the data plane holds an
//! `Arc<Tracing>` and every request pays for its spans. With tracing off the
//! request path only tests an `Option`.
//!
//! W3C trace context: a client's `traceparent`/`tracestate` is honoured (a
//! sampled parent is continued: the sampler is parent-based, the ratio applies
//! to new traces only), and the backend receives sluice's client span as its
//! parent; the client's own `traceparent`/`tracestate` fields are replaced.

mod exporter;
mod spans;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;

pub use spans::{ClientSpan, RequestFacts, ServerSpan, TraceParent};

/// What the `--tracing-*` flags configure.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`);
    /// `/v1/traces` is appended. `None`: tracing is off.
    pub endpoint: Option<String>,
    /// The fraction of new traces sampled, 0.0 to 1.0.
    pub sample_ratio: f64,
    /// `service.name` of the exported resource.
    pub service_name: String,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            sample_ratio: 1.0,
            service_name: "sluice".to_owned(),
        }
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The endpoint is not an `http://` URL.
    #[error(
        "--tracing-otlp-endpoint {0:?} must be an http:// URL such as http://otel-collector:4318"
    )]
    Endpoint(String),
    /// The sample ratio is outside 0..=1.
    #[error("--tracing-sample-ratio {0} must be between 0 and 1")]
    Ratio(f64),
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The traces endpoint for a collector base URL: `/v1/traces` appended.
pub fn traces_url(base: &str) -> Result<String, TracingError> {
    let trimmed = base.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|_| TracingError::Endpoint(base.to_owned()))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(TracingError::Endpoint(base.to_owned()));
    }
    Ok(format!("{trimmed}/v1/traces"))
}

/// The tracer the data plane uses, and the provider that exports its spans.
#[derive(Debug)]
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
}

impl Tracing {
    /// Starts exporting to `settings.endpoint`; `Ok(None)` when tracing is off.
    ///
    /// Must be called inside a tokio runtime: exports are sent from it.
    pub fn start(settings: &TracingSettings) -> Result<Option<Arc<Self>>, TracingError> {
        let Some(endpoint) = &settings.endpoint else {
            return Ok(None);
        };
        if !(0.0..=1.0).contains(&settings.sample_ratio) {
            return Err(TracingError::Ratio(settings.sample_ratio));
        }
        let url = traces_url(endpoint)?;
        let exporter = exporter::build(&url)?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(500))
            .with_max_queue_size(65_536)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("sluice");
        tracing::info!(endpoint = %url, ratio = settings.sample_ratio, "exporting traces over OTLP/HTTP");
        Ok(Some(Arc::new(Self {
            tracer,
            provider,
            propagator: TraceContextPropagator::new(),
        })))
    }

    /// Exports what is still queued and stops the exporter (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing traces failed");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "stopping the trace exporter failed");
        }
    }
}
