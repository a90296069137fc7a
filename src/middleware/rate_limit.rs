//! `rateLimit`: a token bucket per request source, as Traefik's in-memory limiter.
//!
//! Each source (the client IP by default, see [`super::source`]) gets a bucket
//! of `burst` tokens refilled at `average / period` tokens per second; a
//! request takes one. When the bucket is empty the request either waits for
//! its token — if the wait is short (at most `1 / (2 · rate)`, or 500 ms below
//! one request per second) — or gets 429 with `Retry-After` (whole seconds,
//! rounded up) and `X-Retry-In` (a Go duration string). `average: 0` means no
//! limit.
//!
//! Buckets live in sharded maps inside the built middleware, so an unchanged
//! Middleware keeps its buckets across reloads. The maps are bounded: a bucket
//! that has refilled completely is indistinguishable from a new one and is
//! dropped first; past 65536 sources the least recently seen ones go, so a
//! flood of distinct clients cannot grow memory without bound.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderName, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::source::{
    reply, DefaultSource, Shards, Source, SourceCriterionConfig, SourceKey, SHARDS,
};
use super::support;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

/// At most this many sources have a bucket (Traefik's `maxSources`).
const MAX_SOURCES: usize = 65536;
/// Per shard.
const SHARD_CAPACITY: usize = MAX_SOURCES / SHARDS;

static X_RETRY_IN: HeaderName = HeaderName::from_static("x-retry-in");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    average: i64,
    #[serde(default, deserialize_with = "support::optional_duration")]
    period: Option<Duration>,
    #[serde(default)]
    burst: Option<i64>,
    #[serde(default)]
    source_criterion: Option<SourceCriterionConfig>,
    #[serde(default)]
    redis: Option<Value>,
}

/// Builds a `rateLimit` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.average < 0 {
        return Err(cx.invalid(format!("average {} is negative", config.average)));
    }
    let source = Source::build(config.source_criterion.as_ref(), DefaultSource::RemoteAddr)
        .map_err(|e| cx.invalid(e))?;
    if config.redis.is_some() {
        tracing::warn!(
            middleware = cx.namespace(),
            "rateLimit.redis is not supported: buckets are kept per sluice instance"
        );
    }
    if config.average == 0 {
        return Ok(Arc::new(Unlimited));
    }
    let period = config
        .period
        .filter(|p| !p.is_zero())
        .unwrap_or(Duration::from_secs(1));
    let burst = config.burst.unwrap_or(1).max(1);
    let limits = Limits::new(config.average, period, burst);
    Ok(Arc::new(RateLimit {
        source,
        limiter: Limiter::new(limits),
    }))
}

/// `average: 0`: every request passes.
#[derive(Debug)]
struct Unlimited;

impl Middleware for Unlimited {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        next.run(req, cx)
    }
}

/// The shape shared by every bucket of one middleware.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Tokens per second.
    rate: f64,
    /// Bucket capacity.
    burst: f64,
    /// The longest a request may wait for its token instead of being refused.
    max_delay: Duration,
}

impl Limits {
    fn new(average: i64, period: Duration, burst: i64) -> Self {
        let rate = average as f64 / period.as_secs_f64();
        // Traefik: 1 / (2 · int(rate)), capped at 500 ms for rates below 1/s.
        let max_delay = if rate < 1.0 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs_f64(1.0 / (2.0 * rate.trunc()))
        };
        Self {
            rate,
            burst: burst as f64,
            max_delay,
        }
    }
}

/// One source's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date: also when the source was last seen.
    last: Instant,
}

impl Bucket {
    fn full(limits: &Limits, now: Instant) -> Self {
        Self {
            tokens: limits.burst,
            last: now,
        }
    }

    fn tokens_at(&self, limits: &Limits, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * limits.rate).min(limits.burst)
    }

    /// Takes a token: `Ok(wait)` (how long until it is really there) or
    /// `Err(wait)` when that is longer than the limits allow (nothing taken).
    fn take(&mut self, limits: &Limits, now: Instant) -> Result<Duration, Duration> {
        self.tokens = self.tokens_at(limits, now);
        self.last = self.last.max(now);
        let after = self.tokens - 1.0;
        if after >= 0.0 {
            self.tokens = after;
            return Ok(Duration::ZERO);
        }
        let wait = Duration::try_from_secs_f64(-after / limits.rate).unwrap_or(Duration::MAX);
        if wait > limits.max_delay {
            return Err(wait);
        }
        self.tokens = after;
        Ok(wait)
    }
}

/// The buckets of one middleware, by source.
#[derive(Debug)]
struct Limiter {
    limits: Limits,
    buckets: Shards<Bucket>,
}

impl Limiter {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            buckets: Shards::default(),
        }
    }

    /// Takes a token for `key` at `now` (the clock is the caller's, so tests
    /// can run time forward without sleeping).
    fn reserve(&self, key: SourceKey, now: Instant) -> Result<Duration, Duration> {
        let limits = &self.limits;
        let mut shard = self.buckets.lock(&key);
        if let Some(bucket) = shard.get_mut(&key) {
            return bucket.take(limits, now);
        }
        if shard.len() >= SHARD_CAPACITY {
            // Full buckets first: forgetting them changes nothing.
            shard.retain(|_, bucket| bucket.tokens_at(limits, now) < limits.burst);
            if shard.len() >= SHARD_CAPACITY {
                // Then the least recently seen eighth, so the scan is paid
                // once per SHARD_CAPACITY / 8 new sources.
                let mut seen: Vec<Instant> = shard.values().map(|b| b.last).collect();
                let drop = SHARD_CAPACITY / 8;
                let (_, cutoff, _) = seen.select_nth_unstable(drop);
                let cutoff = *cutoff;
                shard.retain(|_, bucket| bucket.last > cutoff);
            }
        }
        let mut bucket = Bucket::full(limits, now);
        let result = bucket.take(limits, now);
        shard.insert(key, bucket);
        result
    }
}

/// The built `rateLimit`.
#[derive(Debug)]
struct RateLimit {
    source: Source,
    limiter: Limiter,
}

impl Middleware for RateLimit {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let key = self.source.key(&req, &cx.client);
        match self.limiter.reserve(key, Instant::now()) {
            Ok(wait) if wait.is_zero() => next.run(req, cx),
            Ok(wait) => Box::pin(async move {
                tokio::time::sleep(wait).await;
                next.run(req, cx).await
            }),
            Err(wait) => {
                tracing::debug!(client = %cx.client.remote, route = %cx.route.name, ?wait, "rateLimit: refused");
                let resp = too_many_requests(wait);
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}

/// Traefik's 429: `Retry-After` in whole seconds (rounded up), `X-Retry-In` exact.
fn too_many_requests(wait: Duration) -> Response<ResponseBody> {
    let mut resp = reply(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    if let Ok(value) = HeaderValue::from_str(&go_duration(wait)) {
        resp.headers_mut().insert(&X_RETRY_IN, value);
    }
    resp
}

/// A duration as Go's `time.Duration.String` prints it: `1h2m3.5s`, `9.91112s`, `250ms`.
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let fraction = |value: u128, unit: u128, digits: usize| {
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            whole.to_string()
        } else {
            let rest = format!("{rest:0digits$}");
            format!("{whole}.{}", rest.trim_end_matches('0'))
        }
    };
    match nanos {
        0 => "0s".to_owned(),
        1..=999 => format!("{nanos}ns"),
        1_000..=999_999 => format!("{}µs", fraction(nanos, 1_000, 3)),
        1_000_000..=999_999_999 => format!("{}ms", fraction(nanos, 1_000_000, 6)),
        _ => {
            let secs = d.as_secs();
            let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
            let mut out = String::new();
            if hours > 0 {
                let _ = write!(out, "{hours}h");
            }
            if hours > 0 || minutes > 0 {
                let _ = write!(out, "{minutes}m");
            }
            let sub = u128::from(seconds) * 1_000_000_000 + u128::from(d.subsec_nanos());
            let _ = write!(out, "{}s", fraction(sub, 1_000_000_000, 9));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::middleware::testing::{context_at, get, read, run_in, FakeBuild, Recorder};

    fn limiter(average: i64, period: Duration, burst: i64) -> Limiter {
        Limiter::new(Limits::new(average, period, burst))
    }

    fn ip(n: u32) -> SourceKey {
        SourceKey::Ip(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn burst_then_refill_at_the_average_rate() {
        // 10 per second, burst 3: a token every 100 ms; waits up to 50 ms are served.
        let l = limiter(10, Duration::from_secs(1), 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.reserve(ip(1), t0), Ok(Duration::ZERO));
        }
        // The 4th token is 100 ms away: more than the 50 ms we may wait.
        assert_eq!(l.reserve(ip(1), t0), Err(Duration::from_millis(100)));
        // Another source has its own bucket.
        assert_eq!(l.reserve(ip(2), t0), Ok(Duration::ZERO));
        // 60 ms later the token is 40 ms away: the request waits for it.
        let wait = l
            .reserve(ip(1), t0 + Duration::from_millis(60))
            .expect("served");
        assert!((39..=41).contains(&wait.as_millis()), "{wait:?}");
        // It was taken, so the next one is 140 ms away.
        let refused = l
            .reserve(ip(1), t0 + Duration::from_millis(60))
            .expect_err("refused");
        assert!((139..=141).contains(&refused.as_millis()), "{refused:?}");
        // A long idle time refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.reserve(ip(1), later), Ok(Duration::ZERO));
        }
        assert!(l.reserve(ip(1), later).is_err());
    }

    #[test]
    fn slow_rates_wait_at_most_half_a_second() {
        // Traefik's verified case: average 1 per 10 s, burst 2.
        let l = limiter(1, Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert!(l.reserve(ip(1), t0).is_ok());
        assert!(l.reserve(ip(1), t0).is_ok());
        assert_eq!(l.reserve(ip(1), t0), Err(Duration::from_secs(10)));
        // 9.6 s later the token is 400 ms away: served after waiting.
        let wait = l.reserve(ip(1), t0 + Duration::from_millis(9600));
        let wait = wait.expect("served");
        assert!((399..=401).contains(&wait.as_millis()), "{wait:?}");
    }

    #[test]
    fn max_delay_follows_traefik() {
        assert_eq!(
            Limits::new(1, Duration::from_secs(10), 1).max_delay,
            Duration::from_millis(500)
        );
        assert_eq!(
            Limits::new(100, Duration::from_secs(1), 1).max_delay,
            Duration::from_millis(5)
        );
        // 1.5/s truncates to 1: 500 ms.
        assert_eq!(
            Limits::new(3, Duration::from_secs(2), 1).max_delay,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_sources() {
        let l = limiter(1, Duration::from_secs(3600), 5);
        let t0 = Instant::now();
        // A heavy, steady client...
        let steady = ip(0xffff_ffff);
        for _ in 0..5 {
            assert!(l.reserve(steady.clone(), t0).is_ok());
        }
        // ...and three times the capacity of one-off sources, none refilled.
        for i in 0..(3 * MAX_SOURCES as u32) {
            let now = t0 + Duration::from_micros(u64::from(i));
            assert!(l.reserve(ip(i), now).is_ok());
            if i % 4096 == 0 {
                // The steady client keeps being seen, so it is never the oldest.
                assert!(
                    l.reserve(steady.clone(), now).is_err(),
                    "its empty bucket was forgotten"
                );
            }
        }
        let len = l.buckets.len();
        assert!(len <= MAX_SOURCES, "{len} buckets");
        assert!(len >= MAX_SOURCES / 2, "evicted far too much: {len}");
    }

    #[test]
    fn full_buckets_are_forgotten_first() {
        // 1000/s, burst 1: a bucket is full again 1 ms after use.
        let l = limiter(1000, Duration::from_secs(1), 1);
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32) {
            let _ = l.reserve(ip(i), t0);
        }
        // Much later every bucket is full; new sources replace them, and an old
        // source simply starts over with a full bucket.
        let later = t0 + Duration::from_secs(1);
        for i in 0..(MAX_SOURCES as u32 / 2) {
            assert!(l.reserve(ip(i + MAX_SOURCES as u32), later).is_ok());
        }
        assert!(l.buckets.len() <= MAX_SOURCES);
        assert_eq!(l.reserve(ip(1), later), Ok(Duration::ZERO));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_micros(1250)), "1.25ms");
        assert_eq!(
            go_duration(Duration::from_nanos(9_911_120_133)),
            "9.911120133s"
        );
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(3_723_500)), "1h2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
    }

    fn rate_limit(config: serde_json::Value) -> Arc<dyn Middleware> {
        build(&config, &mut FakeBuild::default()).expect("built")
    }

    #[tokio::test]
    async fn refuses_with_retry_headers_per_client_ip() {
        let mw = rate_limit(serde_json::json!({"average": 1, "period": "10s", "burst": 2}));
        let backend = Recorder::default();
        let a = context_at("192.0.2.1:1000", false);
        for _ in 0..2 {
            let (status, _) = read(run_in(&mw, &backend, get("/", &[]), &a).await).await;
            assert_eq!(status, StatusCode::OK);
        }
        let resp = run_in(&mw, &backend, get("/", &[]), &a)
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[RETRY_AFTER], "10");
        let retry_in = resp.headers()[&X_RETRY_IN].to_str().expect("ascii");
        assert!(
            retry_in.ends_with('s') && retry_in.starts_with('9') || retry_in == "10s",
            "{retry_in}"
        );
        assert!(resp.headers().get(http::header::CONTENT_TYPE).is_none());
        let (_, body) = read(Ok(resp)).await;
        assert_eq!(body, "Too Many Requests");
        assert_eq!(backend.count(), 2);
        // Another client (same port range, other IP) is not affected; the same IP
        // on another connection is.
        let b = context_at("192.0.2.2:1000", false);
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &b).await).await.0,
            StatusCode::OK
        );
        let a2 = context_at("192.0.2.1:2000", false);
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &a2).await)
                .await
                .0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test]
    async fn short_waits_are_served_late_not_refused() {
        // 20/s, burst 1: a token every 50 ms, waits up to 25 ms are served. A
        // request at least 30 ms after the first needs to wait at most 20 ms
        // (a slow machine only makes the gap longer, so the wait shorter).
        let mw = rate_limit(serde_json::json!({"average": 20, "burst": 1}));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(backend.count(), 2);
    }

    #[tokio::test]
    async fn header_source_and_unlimited() {
        let mw = rate_limit(serde_json::json!({
            "average": 1, "period": "1h",
            "sourceCriterion": {"requestHeaderName": "X-Api-Key"}
        }));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        let key = |k: &'static str| get("/", &[("x-api-key", k)]);
        assert_eq!(
            read(run_in(&mw, &backend, key("a"), &cx).await).await.0,
            StatusCode::OK
        );
        assert_eq!(
            read(run_in(&mw, &backend, key("a"), &cx).await).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            read(run_in(&mw, &backend, key("b"), &cx).await).await.0,
            StatusCode::OK
        );
        // No header: one shared (empty) key.
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            read(run_in(&mw, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::TOO_MANY_REQUESTS
        );

        let unlimited = rate_limit(serde_json::json!({"average": 0, "burst": 1}));
        for _ in 0..100 {
            assert_eq!(
                read(run_in(&unlimited, &backend, get("/", &[]), &cx).await)
                    .await
                    .0,
                StatusCode::OK
            );
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        for config in [
            serde_json::json!({"average": -1}),
            serde_json::json!({"average": 1, "period": "-1s"}),
            serde_json::json!({"average": 1, "period": "soon"}),
            serde_json::json!({"average": "many"}),
            serde_json::json!({"average": 1, "sourceCriterion": {"requestHost": true, "requestHeaderName": "x"}}),
        ] {
            assert!(
                build(&config, &mut FakeBuild::default()).is_err(),
                "{config} was accepted"
            );
        }
        // Defaults: period 1 s, burst 1; period as bare seconds.
        assert!(build(
            &serde_json::json!({"average": 5}),
            &mut FakeBuild::default()
        )
        .is_ok());
        assert!(build(
            &serde_json::json!({"average": 5, "period": 2, "burst": 0}),
            &mut FakeBuild::default()
        )
        .is_ok());
    }

    /// The compiler's [`super::super::build::Environment`], with Middleware objects only.
    #[derive(Default)]
    struct Objects(Vec<crate::middleware::MiddlewareObject>);

    impl crate::middleware::Environment for Objects {
        fn secret(&self, _: &str, _: &str) -> Option<&k8s_openapi::api::core::v1::Secret> {
            None
        }

        fn middleware(
            &self,
            namespace: &str,
            name: &str,
        ) -> Option<&crate::middleware::MiddlewareObject> {
            self.0
                .iter()
                .find(|o| o.namespace() == namespace && o.name() == name)
        }

        fn service(
            &mut self,
            _: &str,
            name: &str,
            _: &crate::upstream::PortRef,
        ) -> Result<crate::middleware::ServiceTarget, String> {
            Err(format!("no service {name}"))
        }
    }

    fn object(spec: serde_json::Value) -> crate::middleware::MiddlewareObject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rl", "namespace": "default"},
            "spec": spec,
        }))
        .expect("object")
    }

    #[tokio::test]
    async fn buckets_survive_a_reload_that_keeps_the_definition() {
        let builder = crate::middleware::Builder::default();
        let spec = serde_json::json!({"rateLimit": {"average": 1, "period": "1h"}});
        let mut env = Objects(vec![object(spec.clone())]);
        let first = builder
            .session(&mut env, false)
            .resolve("default", "rl")
            .expect("built");
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        assert_eq!(
            read(run_in(&first, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::OK
        );

        // A reload: a new compile over the same objects (the old table still holds `first`).
        let mut env = Objects(vec![object(spec)]);
        let second = builder
            .session(&mut env, false)
            .resolve("default", "rl")
            .expect("built");
        assert!(
            Arc::ptr_eq(&first, &second),
            "an unchanged Middleware was rebuilt"
        );
        assert_eq!(
            read(run_in(&second, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::TOO_MANY_REQUESTS
        );

        // A changed definition starts with fresh buckets.
        let mut env = Objects(vec![object(
            serde_json::json!({"rateLimit": {"average": 2, "period": "1h"}}),
        )]);
        let third = builder
            .session(&mut env, false)
            .resolve("default", "rl")
            .expect("built");
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(
            read(run_in(&third, &backend, get("/", &[]), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
    }
}
