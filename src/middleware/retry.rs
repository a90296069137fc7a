//! `retry`: sends a request again when the backend gave no response.
//!
//! Traefik's rules, with sluice's request bodies:
//! - `attempts` is the total number of tries (1 = pass-through); the last try's
//!   outcome is always returned.
//! - A try that produced no response ([`Failure`]) is retried when the method is
//!   idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or for
//!   any other method when the request certainly never reached a backend
//!   ([`Failure::never_sent`]). "No ready endpoint" is not retried (the next try
//!   would find none either), nor is anything when `disableRetryOnNetworkError`.
//! - A response whose status is in `status` (Traefik 3.7) is dropped and the
//!   request retried, for idempotent methods (Traefik's list: all but POST, PATCH
//!   and LOCK) or any method with `retryNonIdempotentMethod`.
//! - Waits between tries follow Traefik's exponential backoff: the first wait is
//!   `initialInterval`, each next one is multiplied by `2^(1/(attempts-1))`, and
//!   each is randomised by ±50%. No `initialInterval`: retries are immediate.
//! - Once `timeout` has passed since the first try, the current outcome is returned.
//!
//! The next try goes to another endpoint by itself: the backend balancer is
//! round-robin.
//!
//! **Bodies.** A request can only be sent again if its body can be replayed. Sluice
//! streams request bodies instead of buffering them (Traefik buffers up to
//! `maxRequestBodyBytes`), so a request is retried only when its body is empty or
//! already in memory (buffered by an earlier middleware, up to
//! `maxRequestBodyBytes`); any other request is passed through once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request};
use http_body::Body as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::build::{decode, BuildError, Context};
use super::errors::CodeRanges;
use super::support;
use super::{BoxFuture, Failure, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;
use crate::exchange::ProxyError;

/// Traefik's default for `maxRequestBodyBytes` (2 MiB).
const DEFAULT_MAX_BODY: i64 = 2 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    attempts: i64,
    #[serde(default, deserialize_with = "support::optional_duration")]
    initial_interval: Option<Duration>,
    #[serde(default, deserialize_with = "support::optional_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    max_request_body_bytes: Option<i64>,
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    disable_retry_on_network_error: bool,
    #[serde(default)]
    retry_non_idempotent_method: bool,
}

/// Builds a `retry` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.status.is_empty() && config.disable_retry_on_network_error {
        return Err(cx.invalid(
            "retry middleware requires at least HTTP status codes or retry on TCP".to_owned(),
        ));
    }
    if config.attempts <= 0 {
        return Err(cx.invalid(format!(
            "incorrect (or empty) value for attempt ({})",
            config.attempts
        )));
    }
    let attempts = u32::try_from(config.attempts)
        .map_err(|_| cx.invalid(format!("attempts {} is too large", config.attempts)))?;
    let status = CodeRanges::parse(&config.status)
        .map_err(|e| cx.invalid(format!("creating HTTP code ranges: {e}")))?;
    Ok(Arc::new(Retry {
        attempts,
        initial_interval: config.initial_interval.filter(|d| !d.is_zero()),
        timeout: config.timeout.filter(|d| !d.is_zero()),
        // A negative limit (Traefik: -1) means no limit.
        max_body: u64::try_from(config.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY))
            .unwrap_or(u64::MAX),
        status,
        network: !config.disable_retry_on_network_error,
        non_idempotent_status: config.retry_non_idempotent_method,
    }))
}

/// The built `retry`.
#[derive(Debug)]
struct Retry {
    attempts: u32,
    initial_interval: Option<Duration>,
    timeout: Option<Duration>,
    max_body: u64,
    status: CodeRanges,
    network: bool,
    non_idempotent_status: bool,
}

/// RFC 9110 §9.2.2: a request that may be sent twice with the effect of once.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Traefik's notion for status retries: everything but POST, PATCH and LOCK.
fn status_retriable(method: &Method) -> bool {
    *method != Method::POST && *method != Method::PATCH && method.as_str() != "LOCK"
}

/// A request body that can be sent again: nothing, or bytes in memory.
fn replayable(body: &RequestBody, max: u64) -> Option<Option<Bytes>> {
    match body {
        RequestBody::Full(bytes) => match bytes {
            Some(b) if b.len() as u64 > max => None,
            _ => Some(bytes.clone()),
        },
        RequestBody::Incoming(_) | RequestBody::Channel(_) => body.is_end_stream().then_some(None),
    }
}

/// One try's request, rebuilt from the original's parts.
fn rebuild(parts: &Parts, body: &Option<Bytes>) -> Request<RequestBody> {
    let mut req = Request::new(RequestBody::Full(body.clone()));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    req
}

impl Retry {
    /// Whether a failed try may be repeated.
    fn retry_failure(&self, method: &Method, failure: &Failure) -> bool {
        if !self.network {
            return false;
        }
        if matches!(
            failure.error,
            ProxyError::NoEndpoints | ProxyError::Unavailable(..)
        ) {
            return false;
        }
        idempotent(method) || failure.never_sent()
    }

    /// The waits before tries 2, 3, ...: Traefik's exponential backoff.
    fn backoff(&self) -> Backoff {
        Backoff {
            current: self.initial_interval,
            multiplier: 2f64.powf(1.0 / f64::from(self.attempts.saturating_sub(1).max(1))),
        }
    }
}

/// cenkalti/backoff's exponential schedule as Traefik configures it.
struct Backoff {
    current: Option<Duration>,
    multiplier: f64,
}

/// cenkalti/backoff's defaults.
const RANDOMIZATION: f64 = 0.5;
const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl Backoff {
    /// The next wait, randomised by ±50% around the current interval.
    fn next(&mut self, random: f64) -> Duration {
        let Some(current) = self.current else {
            return Duration::ZERO;
        };
        let secs = current.as_secs_f64();
        let delta = RANDOMIZATION * secs;
        let low = secs - delta;
        let wait = low + random * (2.0 * delta);
        let grown = secs * self.multiplier;
        self.current = Some(if grown >= MAX_INTERVAL.as_secs_f64() {
            MAX_INTERVAL
        } else {
            Duration::from_secs_f64(grown)
        });
        Duration::try_from_secs_f64(wait).unwrap_or(Duration::ZERO)
    }
}

impl Middleware for Retry {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if self.attempts <= 1 {
                return next.run(req, cx).await;
            }
            let Some(body) = replayable(req.body(), self.max_body) else {
                // A streamed body can be sent once only.
                return next.run(req, cx).await;
            };
            let (parts, _) = req.into_parts();
            let status_retry = !self.status.is_empty()
                && (self.non_idempotent_status || status_retriable(&parts.method));
            let start = Instant::now();
            let mut backoff = self.backoff();
            let mut attempt = 1;
            loop {
                let outcome = next.run(rebuild(&parts, &body), cx).await;
                if attempt >= self.attempts || self.timeout.is_some_and(|t| start.elapsed() >= t) {
                    return outcome;
                }
                let again = match &outcome {
                    Err(failure) => self.retry_failure(&parts.method, failure),
                    Ok(resp) => status_retry && self.status.contains(resp.status().as_u16()),
                };
                if !again {
                    return outcome;
                }
                drop(outcome);
                attempt += 1;
                tracing::debug!(attempt, uri = %parts.uri, "retrying request");
                let wait = backoff.next(rand::random::<f64>());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        })
    }
}

/// Test doubles shared by the resilience middlewares' unit tests.
#[cfg(test)]
pub(super) mod testing {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
    use http_body_util::BodyExt;

    use crate::body::{RequestBody, ResponseBody};
    use crate::exchange::ProxyError;
    use crate::middleware::testing::{context_at, run_in};
    use crate::middleware::{BoxFuture, Failure, Middleware, Outcome, RequestContext, Terminal};
    use crate::upstream::UpstreamError;

    /// What the fake backend does for one request.
    #[derive(Debug, Clone)]
    pub enum Step {
        /// Answer this status with this body.
        Status(u16, &'static str),
        /// Fail without a response; the request never left (connection refused).
        Refused,
        /// Fail without a response after the request was sent (timeout: 504).
        TimedOut,
        /// No endpoint was ready.
        NoEndpoints,
        /// Wait, then do the step.
        Delay(Duration, Box<Step>),
    }

    /// A request as the fake backend saw it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: Method,
        pub uri: Uri,
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    /// A terminal that plays a script (the last step repeats) and records requests.
    #[derive(Debug, Default)]
    pub struct Scripted {
        steps: Mutex<VecDeque<Step>>,
        pub seen: Mutex<Vec<Seen>>,
    }

    impl Scripted {
        pub fn new(steps: &[Step]) -> Self {
            Self {
                steps: Mutex::new(steps.iter().cloned().collect()),
                seen: Mutex::default(),
            }
        }

        pub fn calls(&self) -> usize {
            self.seen.lock().unwrap().len()
        }

        fn step(&self) -> Step {
            let mut steps = self.steps.lock().unwrap();
            if steps.len() > 1 {
                steps.pop_front().unwrap()
            } else {
                steps.front().cloned().unwrap_or(Step::Status(200, "ok"))
            }
        }
    }

    async fn play(step: Step) -> Outcome {
        match step {
            Step::Status(code, body) => {
                let mut resp = Response::new(ResponseBody::full(body));
                *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                resp.headers_mut()
                    .insert("x-from", http::HeaderValue::from_static("backend"));
                Ok(resp)
            }
            Step::Refused => Err(Failure::from(ProxyError::Upstream(
                UpstreamError::ConnectIo(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                )),
            ))),
            Step::TimedOut => Err(Failure::from(ProxyError::Upstream(UpstreamError::Timeout(
                Duration::from_secs(1),
            )))),
            Step::NoEndpoints => Err(Failure::from(ProxyError::NoEndpoints)),
            Step::Delay(wait, step) => {
                tokio::time::sleep(wait).await;
                Box::pin(play(*step)).await
            }
        }
    }

    impl Terminal for Scripted {
        fn forward<'a>(
            &'a self,
            req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                self.seen.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                });
                let step = self.step();
                play(step).await
            })
        }
    }

    /// The client of [`run`]'s request context.
    pub const CLIENT: &str = "192.0.2.1:4000";

    /// Runs `mw` once over `terminal`, for a plain-HTTP client at [`CLIENT`].
    pub async fn run(
        mw: &Arc<dyn Middleware>,
        terminal: &Scripted,
        req: Request<RequestBody>,
    ) -> Outcome {
        run_in(mw, terminal, req, &context_at(CLIENT, false)).await
    }

    /// A GET of `uri` with an empty body.
    pub fn get(uri: &str) -> Request<RequestBody> {
        request(Method::GET, uri, RequestBody::empty())
    }

    /// A request with `method`, `uri` and `body`.
    pub fn request(method: Method, uri: &str, body: RequestBody) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri.parse().unwrap();
        req.headers_mut()
            .insert("host", http::HeaderValue::from_static("app.example"));
        req
    }

    /// The status and body of an outcome.
    pub async fn answer(outcome: Outcome) -> (u16, HeaderMap, String) {
        let resp = outcome.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::middleware::testing::FakeBuild;
    use serde_json::json;

    fn built(config: Value) -> Result<Arc<dyn Middleware>, BuildError> {
        build(&config, &mut FakeBuild::default())
    }

    fn retry(config: Value) -> Arc<dyn Middleware> {
        built(config).unwrap()
    }

    #[test]
    fn config_is_validated() {
        let err = built(json!({})).unwrap_err().to_string();
        assert!(
            err.contains("incorrect (or empty) value for attempt (0)"),
            "{err}"
        );
        assert!(built(json!({"attempts": -1})).is_err());
        let err = built(json!({"attempts": 2, "disableRetryOnNetworkError": true}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least HTTP status codes"), "{err}");
        assert!(built(json!({"attempts": 2, "status": ["5x0"]})).is_err());
        assert!(built(json!({"attempts": 2, "initialInterval": "10 parsecs"})).is_err());
        assert!(built(json!({"attempts": 3, "initialInterval": "100ms"})).is_ok());
        assert!(built(json!({"attempts": 3, "initialInterval": 1})).is_ok());
    }

    #[tokio::test]
    async fn refused_connections_are_retried_until_one_answers() {
        let mw = retry(json!({"attempts": 3}));
        let t = Scripted::new(&[Step::Refused, Step::Refused, Step::Status(200, "third")]);
        let (status, _, body) = answer(run(&mw, &t, get("/x")).await).await;
        assert_eq!((status, body.as_str()), (200, "third"));
        assert_eq!(t.calls(), 3);
    }

    #[tokio::test]
    async fn the_last_attempt_is_returned_as_is() {
        let mw = retry(json!({"attempts": 3}));
        let t = Scripted::new(&[Step::Refused]);
        let failure = run(&mw, &t, get("/x")).await.unwrap_err();
        assert_eq!(failure.error.status(), 502);
        assert_eq!(t.calls(), 3);
    }

    #[tokio::test]
    async fn one_attempt_passes_through() {
        let mw = retry(json!({"attempts": 1}));
        let t = Scripted::new(&[Step::Refused, Step::Status(200, "never")]);
        assert!(run(&mw, &t, get("/x")).await.is_err());
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn responses_are_not_retried_without_status() {
        let mw = retry(json!({"attempts": 3}));
        let t = Scripted::new(&[Step::Status(500, "boom"), Step::Status(200, "ok")]);
        let (status, _, _) = answer(run(&mw, &t, get("/x")).await).await;
        assert_eq!(status, 500);
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn sent_failures_are_retried_for_idempotent_methods_only() {
        let mw = retry(json!({"attempts": 2}));
        let t = Scripted::new(&[Step::TimedOut, Step::Status(200, "ok")]);
        let (status, _, _) = answer(run(&mw, &t, get("/x")).await).await;
        assert_eq!(status, 200);
        assert_eq!(t.calls(), 2);

        for method in [Method::POST, Method::PATCH] {
            let t = Scripted::new(&[Step::TimedOut, Step::Status(200, "ok")]);
            let req = request(method, "/x", RequestBody::empty());
            let failure = run(&mw, &t, req).await.unwrap_err();
            assert_eq!(failure.error.status(), 504);
            assert_eq!(
                t.calls(),
                1,
                "a POST that may have reached the backend is not resent"
            );
        }
    }

    #[tokio::test]
    async fn never_sent_posts_are_retried_with_their_body() {
        let mw = retry(json!({"attempts": 2}));
        let t = Scripted::new(&[Step::Refused, Step::Status(201, "made")]);
        let req = request(Method::POST, "/x", RequestBody::full("payload"));
        let (status, _, _) = answer(run(&mw, &t, req).await).await;
        assert_eq!(status, 201);
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen
            .iter()
            .all(|s| s.body == "payload" && s.method == Method::POST && s.uri == "/x"));
        assert!(seen.iter().all(|s| s.headers["host"] == "app.example"));
    }

    #[tokio::test]
    async fn bodies_above_the_limit_pass_through_once() {
        let mw = retry(json!({"attempts": 3, "maxRequestBodyBytes": 4}));
        let t = Scripted::new(&[Step::Refused, Step::Status(200, "ok")]);
        let req = request(Method::PUT, "/x", RequestBody::full("too long"));
        assert!(run(&mw, &t, req).await.is_err());
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn no_endpoints_is_not_retried() {
        let mw = retry(json!({"attempts": 3}));
        let t = Scripted::new(&[Step::NoEndpoints, Step::Status(200, "ok")]);
        let failure = run(&mw, &t, get("/x")).await.unwrap_err();
        assert_eq!(failure.error.status(), 503);
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn status_retries_follow_the_ranges_and_methods() {
        let mw = retry(json!({"attempts": 3, "status": ["502-504", "429"]}));
        let t = Scripted::new(&[
            Step::Status(503, "a"),
            Step::Status(429, "b"),
            Step::Status(200, "c"),
        ]);
        let (status, _, body) = answer(run(&mw, &t, get("/x")).await).await;
        assert_eq!((status, body.as_str()), (200, "c"));
        assert_eq!(t.calls(), 3);

        // The last attempt is written through even when its status matches.
        let t = Scripted::new(&[Step::Status(503, "busy")]);
        let (status, _, body) = answer(run(&mw, &t, get("/x")).await).await;
        assert_eq!((status, body.as_str()), (503, "busy"));
        assert_eq!(t.calls(), 3);

        // POST is not status-retried unless asked for.
        let t = Scripted::new(&[Step::Status(503, "busy"), Step::Status(200, "ok")]);
        let req = request(Method::POST, "/x", RequestBody::empty());
        let (status, _, _) = answer(run(&mw, &t, req).await).await;
        assert_eq!(status, 503);
        assert_eq!(t.calls(), 1);

        let mw = retry(json!({"attempts": 2, "status": ["503"], "retryNonIdempotentMethod": true}));
        let t = Scripted::new(&[Step::Status(503, "busy"), Step::Status(200, "ok")]);
        let req = request(Method::POST, "/x", RequestBody::full("p"));
        let (status, _, _) = answer(run(&mw, &t, req).await).await;
        assert_eq!(status, 200);
        assert_eq!(t.calls(), 2);
    }

    #[tokio::test]
    async fn network_retries_can_be_disabled() {
        let mw =
            retry(json!({"attempts": 3, "status": ["500"], "disableRetryOnNetworkError": true}));
        let t = Scripted::new(&[Step::Refused, Step::Status(200, "ok")]);
        assert!(run(&mw, &t, get("/x")).await.is_err());
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn the_timeout_stops_retries() {
        let mw = retry(json!({"attempts": 5, "timeout": "30ms"}));
        let slow = Step::Delay(Duration::from_millis(40), Box::new(Step::Refused));
        let t = Scripted::new(&[slow, Step::Status(200, "ok")]);
        assert!(run(&mw, &t, get("/x")).await.is_err());
        assert_eq!(t.calls(), 1);
    }

    #[tokio::test]
    async fn retries_wait_for_the_backoff() {
        let mw = retry(json!({"attempts": 3, "initialInterval": "40ms"}));
        let t = Scripted::new(&[Step::Refused]);
        let start = Instant::now();
        assert!(run(&mw, &t, get("/x")).await.is_err());
        // Two waits, each at least half of its interval (40ms, then 40ms·√2).
        assert!(
            start.elapsed() >= Duration::from_millis(20 + 28),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(t.calls(), 3);
    }

    #[test]
    fn backoff_grows_to_twice_the_initial_interval() {
        let mw = Retry {
            attempts: 5,
            initial_interval: Some(Duration::from_millis(100)),
            timeout: None,
            max_body: 0,
            status: CodeRanges::default(),
            network: true,
            non_idempotent_status: false,
        };
        let mut b = mw.backoff();
        // random = 0.5 is the centre of the ±50% window.
        let waits: Vec<u128> = (0..4).map(|_| b.next(0.5).as_millis()).collect();
        assert_eq!(waits, vec![100, 118, 141, 168]);
        let mut b = mw.backoff();
        assert_eq!(b.next(0.0).as_millis(), 50);
        assert_eq!(b.next(1.0).as_millis(), 178);
        let immediate = Retry {
            initial_interval: None,
            ..mw
        };
        assert_eq!(immediate.backoff().next(0.7), Duration::ZERO);
    }
}
