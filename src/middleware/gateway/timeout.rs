//! `gatewayTimeout`: an HTTPRoute rule's `timeouts.request` (the compiler puts
//! it outermost) or `timeouts.backendRequest` (innermost, so it covers each
//! try of a retry on its own).
//!
//! The config is `{"timeout": "<duration>"}`, a Gateway API duration
//! (GEP-2257: `10s`, `500ms`, `1h30m`). The rest of the chain and the backend
//! must produce a response head within it; otherwise the request is dropped
//! (its backend connection closed) and the step fails with the upstream
//! timeout, which the client gets as `504 Gateway Timeout` and a retry step
//! outside it sees as a failed try. `0s` disables the timeout: the step
//! then only passes requests on.
//!
//! The clock starts when the step runs, so for `timeouts.request` it covers
//! the upload of the request body too. It stops at the response head: a
//! response body that streams longer is not cut off.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use serde::Deserialize;
use serde_json::Value;

use crate::body::RequestBody;
use crate::exchange::ProxyError;
use crate::gateway::parse_duration;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Failure, Middleware, Next, Outcome, RequestContext};
use crate::upstream::UpstreamError;

/// The step's config, as the Gateway compiler writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// A GEP-2257 duration.
    timeout: String,
}

/// Builds a `gatewayTimeout` from `{"timeout": "<duration>"}`.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let limit = parse_duration(&config.timeout).map_err(|e| cx.invalid(e.to_string()))?;
    if limit.is_zero() {
        return Ok(Arc::new(NoTimeout));
    }
    Ok(Arc::new(Timeout { limit }))
}

/// The built `gatewayTimeout` with a limit.
#[derive(Debug)]
struct Timeout {
    /// How long the rest of the chain has to produce a response head.
    limit: Duration,
}

/// The built `gatewayTimeout` for `0s`: no limit at all.
#[derive(Debug)]
struct NoTimeout;

impl Middleware for Timeout {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match tokio::time::timeout(self.limit, next.run(req, cx)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::debug!(route = %cx.route.name, limit = ?self.limit, "gateway timeout");
                    Err(Failure::from(ProxyError::Upstream(UpstreamError::Timeout(
                        self.limit,
                    ))))
                }
            }
        })
    }
}

impl Middleware for NoTimeout {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        next.run(req, cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::{Response, StatusCode};
    use serde_json::json;

    use super::*;
    use crate::body::ResponseBody;
    use crate::middleware::testing::{self, *};
    use crate::middleware::Terminal;

    /// A backend that answers 200 after `delay` (paused test clock), counting calls.
    struct Slow {
        delay: Duration,
        calls: AtomicUsize,
    }

    impl Slow {
        /// Answers after `delay`, not called yet.
        fn new(delay: Duration) -> Self {
            Self {
                delay,
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl Terminal for Slow {
        fn forward<'a>(
            &'a self,
            _req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(Response::new(ResponseBody::full("slow")))
            })
        }
    }

    /// Runs a GET through a `gatewayTimeout` built from `config`, then `backend`.
    async fn outcome(config: Value, backend: &Slow) -> Outcome {
        let mw = testing::make(build, config).expect("builds");
        run_in(&mw, backend, get("/backend-timeout", &[]), &context(false)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_backend_answers() {
        // Conformance: `/request-timeout` (500ms) without delay -> 200.
        let backend = Slow::new(Duration::from_millis(10));
        let (status, body) = read(outcome(json!({"timeout": "500ms"}), &backend).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "slow");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_backend_gets_504() {
        // Conformance: `?delay=1s` under a 500ms timeout -> 504.
        let backend = Slow::new(Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        let failure = outcome(json!({"timeout": "500ms"}), &backend)
            .await
            .expect_err("timed out");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(failure.error.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(matches!(
            failure.error,
            ProxyError::Upstream(UpstreamError::Timeout(d)) if d == Duration::from_millis(500)
        ));
        // A timed-out try may have reached the backend: never "never sent".
        assert!(!failure.never_sent());
        assert_eq!(backend.calls.load(Ordering::Relaxed), 1);
        let resp = failure.error.into_response();
        assert_eq!(resp.status(), 504);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_disables_the_timeout() {
        // Conformance: `/disable-request-timeout?delay=1s` with "0s" -> 200.
        let backend = Slow::new(Duration::from_secs(3600));
        let (status, _) = read(outcome(json!({"timeout": "0s"}), &backend).await).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn compound_durations_are_read() {
        let backend = Slow::new(Duration::from_millis(61_500));
        let failure = outcome(json!({"timeout": "1m1s"}), &backend)
            .await
            .expect_err("61.5s is over 1m1s");
        assert_eq!(failure.error.status(), StatusCode::GATEWAY_TIMEOUT);
        let (status, _) = read(outcome(json!({"timeout": "1m2s"}), &backend).await).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn each_try_of_a_retry_gets_its_own_budget() {
        // backendRequest sits inside the retry: each try is timed on its own.
        let backend = Slow::new(Duration::from_millis(300));
        let retry = crate::middleware::kinds::build(
            "retry",
            &json!({"attempts": 3}),
            &mut FakeBuild::default(),
        )
        .expect("builds");
        let timeout = testing::make(build, json!({"timeout": "200ms"})).unwrap();
        let steps = [retry, timeout];
        let started = tokio::time::Instant::now();
        let failure = Next::new(&steps, &backend)
            .run(get("/", &[]), &context(false))
            .await
            .expect_err("every try times out");
        assert_eq!(failure.error.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(backend.calls.load(Ordering::Relaxed), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }

    #[test]
    fn configs_are_validated() {
        assert!(testing::make(build, json!({"timeout": "10s"})).is_ok());
        for bad in [
            json!({}),
            json!({"timeout": "10"}),
            json!({"timeout": "1.5s"}),
            json!({"timeout": "1d"}),
            json!({"timeout": 10}),
            json!({"timeout": "10s", "other": 1}),
        ] {
            assert!(testing::make(build, bad.clone()).is_err(), "{bad} accepted");
        }
    }
}
