//! Feeding the access log from both engines: what a request said is captured
//! before it is forwarded (only when an access log is on), and one line is
//! recorded when its response has been sent.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::accesslog::{AccessLog, Entry};
use crate::exchange::ClientInfo;
use crate::router::Route;

/// What the access log needs of a request, owned so it outlives the head's
/// buffer; built only when an access log is on.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    start: SystemTime,
    number: u64,
    method: String,
    target: String,
    authority: String,
    protocol: &'static str,
    referer: Option<String>,
    user_agent: Option<String>,
    headers: Vec<(String, String)>,
    request_size: u64,
}

/// The outcome of a request, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    /// The status sent to the client.
    pub status: u16,
    /// Response body bytes sent (or announced) to the client.
    pub size: u64,
    /// The route, when one matched.
    pub route: Option<&'a Route>,
    /// The endpoint, when a backend was chosen.
    pub server: Option<SocketAddr>,
    /// The backend's status and how long the exchange with it took.
    pub origin: Option<(u16, Duration)>,
    /// From the start of the request to the end of its response.
    pub duration: Duration,
}

impl RequestLog {
    /// Captures a request's line fields; `headers` are all its header fields.
    pub(crate) fn capture<'h>(
        log: &AccessLog,
        method: &str,
        target: &str,
        authority: &str,
        protocol: &'static str,
        request_size: u64,
        headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    ) -> Box<Self> {
        let mut entry = Self {
            start: SystemTime::now(),
            number: log.next_request(),
            method: method.to_owned(),
            target: target.to_owned(),
            authority: authority.to_owned(),
            protocol,
            referer: None,
            user_agent: None,
            headers: Vec::new(),
            request_size,
        };
        for (name, value) in headers {
            let text = || String::from_utf8_lossy(value).into_owned();
            if name.eq_ignore_ascii_case("referer") {
                entry.referer = Some(text());
            } else if name.eq_ignore_ascii_case("user-agent") {
                entry.user_agent = Some(text());
            }
            if log
                .headers()
                .iter()
                .any(|wanted| name.eq_ignore_ascii_case(wanted.as_str()))
            {
                entry.headers.push((name.to_ascii_lowercase(), text()));
            }
        }
        Box::new(entry)
    }

    /// Records the line for this request.
    pub(crate) fn record(&self, log: &AccessLog, client: &ClientInfo, outcome: Outcome<'_>) {
        if !log.wants(outcome.status, outcome.duration) {
            return;
        }
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let service = outcome
            .route
            .and_then(|r| r.service.as_ref())
            .map(|s| format!("{}/{}", s.namespace, s.service));
        let scheme = outcome.route.map_or_else(
            || "http".to_owned(),
            |r| r.client.scheme().as_str().to_owned(),
        );
        let entry = Entry {
            start: self.start,
            duration: outcome.duration,
            origin_duration: outcome.origin.map(|(_, d)| d),
            client: client.remote,
            user: None,
            method: &self.method,
            target: &self.target,
            protocol: self.protocol,
            authority: &self.authority,
            tls: client.tls.then(|| client.tls_session.unwrap_or(("", ""))),
            entrypoint: if client.tls { "websecure" } else { "web" },
            status: outcome.status,
            origin_status: outcome.origin.map(|(s, _)| s),
            downstream_size: outcome.size,
            request_size: self.request_size,
            referer: self.referer.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_count: self.number,
            router: outcome.route.map(|r| &*r.name),
            service: service.as_deref(),
            server: outcome.server,
            server_scheme: &scheme,
            ingress: outcome.route.map(|r| {
                (
                    r.ingress.namespace.as_deref().unwrap_or(""),
                    r.ingress.name.as_str(),
                )
            }),
            retry_attempts: 0,
            headers: &headers,
        };
        log.record(&entry);
    }
}
