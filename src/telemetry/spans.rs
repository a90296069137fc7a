//! The spans of one request: the server span (client to sluice) and one
//! client span per backend attempt, with HTTP semantic-convention attributes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span;

use super::Tracing;
use crate::router::Route;

/// What the server span records of a request, borrowed from its head.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// The target: path and query as sent.
    pub target: &'a str,
    /// The Host (or `:authority`), maybe with a port.
    pub host: &'a str,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// `1.0`, `1.1` or `2`.
    pub protocol: &'static str,
    /// The client's address.
    pub client: SocketAddr,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The client's `traceparent`.
    pub traceparent: Option<&'a str>,
    /// The client's `tracestate`.
    pub tracestate: Option<&'a str>,
    /// When the request began.
    pub start: SystemTime,
}

impl<'a> RequestFacts<'a> {
    /// Finds `traceparent`, `tracestate` and `User-Agent` among header fields.
    pub fn with_headers(mut self, headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Self {
        for (name, value) in headers {
            let text = || std::str::from_utf8(value).ok();
            if name.eq_ignore_ascii_case("traceparent") {
                self.traceparent = text();
            } else if name.eq_ignore_ascii_case("tracestate") {
                self.tracestate = text();
            } else if name.eq_ignore_ascii_case("user-agent") {
                self.user_agent = text();
            }
        }
        self
    }
}

/// The two W3C fields, for the propagator.
struct Incoming<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The span of one request as sluice served it. Ends (and is exported) when
/// finished or dropped.
#[derive(Debug)]
pub struct ServerSpan {
    span: Span,
    tracing: Arc<Tracing>,
    method: String,
}

impl Tracing {
    /// Starts the server span of a request, continuing the client's trace
    /// when it sent a valid `traceparent`.
    pub fn server(self: &Arc<Self>, facts: &RequestFacts<'_>) -> ServerSpan {
        let parent = self.propagator.extract(&Incoming {
            traceparent: facts.traceparent,
            tracestate: facts.tracestate,
        });
        let (path, query) = match facts.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (facts.target, None),
        };
        let (host, port) = split_host(facts.host, facts.tls);
        let mut attributes = vec![
            KeyValue::new("http.request.method", facts.method.to_owned()),
            KeyValue::new("url.path", path.to_owned()),
            KeyValue::new("url.scheme", if facts.tls { "https" } else { "http" }),
            KeyValue::new("server.address", host.to_owned()),
            KeyValue::new("server.port", i64::from(port)),
            KeyValue::new("client.address", facts.client.ip().to_string()),
            KeyValue::new("client.port", i64::from(facts.client.port())),
            KeyValue::new("network.protocol.version", facts.protocol),
            KeyValue::new(
                "sluice.entrypoint",
                if facts.tls { "websecure" } else { "web" },
            ),
        ];
        if let Some(query) = query {
            attributes.push(KeyValue::new("url.query", query.to_owned()));
        }
        if let Some(agent) = facts.user_agent {
            attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(facts.method.to_owned())
            .with_kind(SpanKind::Server)
            .with_start_time(facts.start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        ServerSpan {
            span,
            tracing: self.clone(),
            method: facts.method.to_owned(),
        }
    }
}

/// `host[:port]` split, with the scheme's default port.
fn split_host(authority: &str, tls: bool) -> (&str, u16) {
    let default = if tls { 443 } else { 80 };
    if authority.starts_with('[') {
        if let Some((host, rest)) = authority.split_once(']') {
            let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
            return (&authority[..=host.len()], port.unwrap_or(default));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().unwrap_or(default)),
        _ => (authority, default),
    }
}

impl ServerSpan {
    /// Records the route the request matched: its rule, Ingress and Service.
    pub fn routed(&mut self, route: &Route) {
        if !self.span.is_recording() {
            return;
        }
        let rule = route.path.as_deref().unwrap_or("/");
        self.span.update_name(format!("{} {rule}", self.method));
        let mut attributes = vec![
            KeyValue::new("http.route", rule.to_owned()),
            KeyValue::new("sluice.route", route.name.to_string()),
            KeyValue::new(
                "sluice.ingress",
                format!(
                    "{}/{}",
                    route.ingress.namespace.as_deref().unwrap_or(""),
                    route.ingress.name
                ),
            ),
            KeyValue::new(
                "k8s.namespace.name",
                route.ingress.namespace.clone().unwrap_or_default(),
            ),
        ];
        if let Some(service) = &route.service {
            attributes.push(KeyValue::new("sluice.service", service.to_string()));
        }
        self.span.set_attributes(attributes);
    }

    /// The trace id (32 hex digits), for the access log.
    pub fn trace_id(&self) -> String {
        self.span.span_context().trace_id().to_string()
    }

    /// What the spans of backend attempts hang from (shared with the middlewares).
    pub fn parent(&self) -> Arc<TraceParent> {
        Arc::new(TraceParent {
            tracing: self.tracing.clone(),
            parent: self.span.span_context().clone(),
            attempts: AtomicU32::new(0),
        })
    }

    /// Starts the span of one backend attempt (the first is attempt 0).
    pub fn client(&self, method: &str, endpoint: SocketAddr, target: &str) -> ClientSpan {
        client_span(
            &self.tracing,
            self.span.span_context(),
            method,
            endpoint,
            target,
            0,
        )
    }

    /// Ends the span with the status sent to the client (5xx marks it failed).
    pub fn finish(mut self, status: u16) {
        self.span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            self.span.set_status(Status::error(format!("{status}")));
        }
        self.span.end();
    }
}

/// The server span's context, carried in request extensions so every backend
/// attempt (retries included) gets its own client span.
#[derive(Debug)]
pub struct TraceParent {
    tracing: Arc<Tracing>,
    parent: SpanContext,
    attempts: AtomicU32,
}

impl TraceParent {
    /// Starts the span of the next backend attempt.
    pub fn client(&self, method: &str, endpoint: SocketAddr, target: &str) -> ClientSpan {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        client_span(
            &self.tracing,
            &self.parent,
            method,
            endpoint,
            target,
            attempt,
        )
    }

    /// Backend attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
}

fn client_span(
    tracing: &Tracing,
    parent: &SpanContext,
    method: &str,
    endpoint: SocketAddr,
    target: &str,
    attempt: u32,
) -> ClientSpan {
    let parent = Context::new().with_remote_span_context(parent.clone());
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.to_owned()),
        KeyValue::new("server.address", endpoint.ip().to_string()),
        KeyValue::new("server.port", i64::from(endpoint.port())),
        KeyValue::new("network.peer.address", endpoint.ip().to_string()),
        KeyValue::new("network.peer.port", i64::from(endpoint.port())),
        KeyValue::new("url.full", format!("http://{endpoint}{target}")),
        KeyValue::new("sluice.retry_attempt", i64::from(attempt)),
    ];
    if attempt > 0 {
        attributes.push(KeyValue::new(
            "http.request.resend_count",
            i64::from(attempt),
        ));
    }
    let span = tracing
        .tracer
        .span_builder(method.to_owned())
        .with_kind(SpanKind::Client)
        .with_attributes(attributes)
        .start_with_context(&tracing.tracer, &parent);
    ClientSpan { span }
}

/// The span of one backend attempt.
#[derive(Debug)]
pub struct ClientSpan {
    span: Span,
}

impl ClientSpan {
    /// The `traceparent` value the backend receives: this span as parent.
    pub fn traceparent(&self) -> String {
        let cx = self.span.span_context();
        format!(
            "00-{}-{}-{:02x}",
            cx.trace_id(),
            cx.span_id(),
            cx.trace_flags().to_u8()
        )
    }

    /// The `tracestate` value the backend receives, if any.
    pub fn tracestate(&self) -> Option<String> {
        let state = self.span.span_context().trace_state().header();
        (!state.is_empty()).then_some(state)
    }

    /// Replaces the request's trace-context fields with this span's.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.remove("tracestate");
        if let Ok(value) = http::HeaderValue::from_str(&self.traceparent()) {
            headers.insert("traceparent", value);
        }
        if let Some(state) = self.tracestate() {
            if let Ok(value) = http::HeaderValue::from_str(&state) {
                headers.insert("tracestate", value);
            }
        }
    }

    /// Ends the span with the backend's status, or the error that ended the attempt.
    pub fn finish(mut self, outcome: Result<u16, &dyn std::fmt::Display>) {
        match outcome {
            Ok(status) => {
                self.span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 400 {
                    self.span.set_status(Status::error(format!("{status}")));
                }
            }
            Err(e) => {
                self.span
                    .set_attribute(KeyValue::new("error.type", e.to_string()));
                self.span.set_status(Status::error(e.to_string()));
            }
        }
        self.span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split_with_scheme_defaults() {
        assert_eq!(split_host("example.com", false), ("example.com", 80));
        assert_eq!(split_host("example.com:8443", true), ("example.com", 8443));
        assert_eq!(split_host("example.com", true), ("example.com", 443));
        assert_eq!(split_host("[::1]:8080", false), ("[::1]", 8080));
        assert_eq!(split_host("[::1]", false), ("[::1]", 80));
    }
}
