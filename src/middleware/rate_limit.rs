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
//!
//! With `redis`, the buckets live in Redis instead ([`super::redis_store`]):
//! every sluice instance pointed at the same Redis enforces one limit, with
//! Traefik's bucket maths, one atomic script per request. Keys are
//! `sluice:rate:<namespace>/<name>:<source>`, so two Middlewares never share
//! buckets. When Redis does not answer (within `readTimeout`), the request is
//! decided by this instance's in-memory bucket instead, counted in
//! `sluice_rate_limit_redis_fallbacks_total`; Redis is used again as soon as it
//! answers. Options: `endpoints`, `secret` (a Secret of the Middleware's
//! namespace with `username`/`password`), `db`, `poolSize`, `minIdleConns`,
//! `maxActiveConns`, `dialTimeout`, `readTimeout`, `writeTimeout` and `tls`
//! (`caSecret`/`certSecret` as in `forwardAuth`, or `ca`/`cert`/`key` as PEM
//! text or file paths, and `insecureSkipVerify`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderName, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::redis_store::{RedisOptions, RedisStore, RedisTls};
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
    redis: Option<RedisConfig>,
}

/// `rateLimit.redis`, as Traefik's CRD writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedisConfig {
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    db: i64,
    #[serde(default)]
    pool_size: i64,
    #[serde(default)]
    min_idle_conns: i64,
    #[serde(default)]
    max_active_conns: i64,
    #[serde(default, deserialize_with = "support::optional_duration")]
    dial_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "support::optional_duration")]
    read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "support::optional_duration")]
    write_timeout: Option<Duration>,
    #[serde(default)]
    tls: Option<RedisTlsConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedisTlsConfig {
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    ca_secret: Option<String>,
    #[serde(default)]
    cert_secret: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    #[allow(dead_code)]
    ca_optional: Option<bool>,
}

/// PEM text as is, anything else as a file path to read.
fn pem_or_file(what: &str, value: &str) -> Result<Vec<u8>, String> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|e| format!("redis.tls.{what}: cannot read {value:?}: {e}"))
}

/// The value of the first of `keys` present in `secret`.
fn secret_value(secret: &k8s_openapi::api::core::v1::Secret, keys: &[&str]) -> Option<Vec<u8>> {
    let data = secret.data.as_ref()?;
    keys.iter().find_map(|k| data.get(*k)).map(|v| v.0.clone())
}

/// Turns `rateLimit.redis` into store options, reading its Secrets.
fn redis_options(config: &RedisConfig, cx: &mut dyn Context) -> Result<RedisOptions, BuildError> {
    let count = |what: &str, n: i64| {
        usize::try_from(n).map_err(|_| cx.invalid(format!("redis.{what} {n} is negative")))
    };
    let pool_size = count("poolSize", config.pool_size)?;
    let min_idle_conns = count("minIdleConns", config.min_idle_conns)?;
    let max_active_conns = count("maxActiveConns", config.max_active_conns)?;
    if config.db < 0 {
        return Err(cx.invalid(format!("redis.db {} is negative", config.db)));
    }
    for endpoint in &config.endpoints {
        super::redis_store::parse_endpoint(endpoint)
            .map_err(|e| cx.invalid(format!("redis.endpoints: {e}")))?;
    }
    let defaults = RedisOptions::default();
    let mut options = RedisOptions {
        endpoints: config.endpoints.clone(),
        db: config.db,
        pool_size,
        min_idle_conns,
        max_active_conns,
        dial_timeout: config.dial_timeout.unwrap_or(defaults.dial_timeout),
        read_timeout: config.read_timeout.unwrap_or(defaults.read_timeout),
        write_timeout: config.write_timeout.unwrap_or(defaults.write_timeout),
        ..defaults
    };
    if let Some(name) = config.secret.as_deref().filter(|s| !s.is_empty()) {
        let secret = cx
            .secret(name)
            .ok_or_else(|| cx.invalid(format!("redis.secret {name:?} not found")))?;
        let text = |key: &str| {
            secret_value(&secret, &[key]).map(|v| {
                String::from_utf8_lossy(&v)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned()
            })
        };
        options.username = text("username");
        options.password = text("password");
        if options.username.is_none() && options.password.is_none() {
            return Err(cx.invalid(format!(
                "redis.secret {name:?} has neither a \"username\" nor a \"password\" key"
            )));
        }
    }
    if let Some(tls) = &config.tls {
        let mut out = RedisTls {
            insecure_skip_verify: tls.insecure_skip_verify,
            ..RedisTls::default()
        };
        if let Some(name) = tls.ca_secret.as_deref().filter(|s| !s.is_empty()) {
            let secret = cx
                .secret(name)
                .ok_or_else(|| cx.invalid(format!("redis.tls.caSecret {name:?} not found")))?;
            out.ca = Some(
                secret_value(&secret, &["tls.ca", "ca.crt"])
                    .or_else(|| {
                        let data = secret.data.as_ref()?;
                        (data.len() == 1).then(|| data.values().next().map(|v| v.0.clone()))?
                    })
                    .ok_or_else(|| {
                        cx.invalid(format!(
                            "redis.tls.caSecret {name:?} has no \"tls.ca\" or \"ca.crt\" key"
                        ))
                    })?,
            );
        } else if let Some(ca) = tls.ca.as_deref().filter(|s| !s.is_empty()) {
            out.ca = Some(pem_or_file("ca", ca).map_err(|e| cx.invalid(e))?);
        }
        if let Some(name) = tls.cert_secret.as_deref().filter(|s| !s.is_empty()) {
            let secret = cx
                .secret(name)
                .ok_or_else(|| cx.invalid(format!("redis.tls.certSecret {name:?} not found")))?;
            match (
                secret_value(&secret, &["tls.crt"]),
                secret_value(&secret, &["tls.key"]),
            ) {
                (Some(cert), Some(key)) => out.client_cert = Some((cert, key)),
                _ => {
                    return Err(cx.invalid(format!(
                        "redis.tls.certSecret {name:?} needs \"tls.crt\" and \"tls.key\""
                    )))
                }
            }
        } else {
            match (
                tls.cert.as_deref().filter(|s| !s.is_empty()),
                tls.key.as_deref().filter(|s| !s.is_empty()),
            ) {
                (Some(cert), Some(key)) => {
                    out.client_cert = Some((
                        pem_or_file("cert", cert).map_err(|e| cx.invalid(e))?,
                        pem_or_file("key", key).map_err(|e| cx.invalid(e))?,
                    ));
                }
                (None, None) => {}
                _ => return Err(cx.invalid("redis.tls: cert and key go together".to_owned())),
            }
        }
        options.tls = Some(out);
    }
    Ok(options)
}

/// The `sluice:rate:<namespace>/<name>:` prefix of this middleware's Redis keys.
fn key_prefix(cx: &dyn Context) -> Vec<u8> {
    // The label (`<namespace>/<name>`) is only exposed through the errors.
    let label = match cx.invalid(String::new()) {
        BuildError::Invalid { middleware, .. } => middleware,
        _ => cx.namespace().to_owned(),
    };
    format!("sluice:rate:{label}:").into_bytes()
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
    let redis = match &config.redis {
        Some(redis) => {
            let options = redis_options(redis, cx)?;
            let store = RedisStore::new(options).map_err(|e| cx.invalid(format!("redis: {e}")))?;
            Some(Redis {
                store,
                prefix: key_prefix(cx),
            })
        }
        None => None,
    };
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
        redis,
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

/// The Redis side of a `rateLimit.redis`.
#[derive(Debug)]
struct Redis {
    store: RedisStore,
    /// `sluice:rate:<namespace>/<name>:`.
    prefix: Vec<u8>,
}

impl Redis {
    /// The Redis key of `source`'s bucket.
    fn key(&self, source: &SourceKey) -> Vec<u8> {
        let mut key = self.prefix.clone();
        match source {
            SourceKey::Ip(ip) => {
                let _ = write!(VecWriter(&mut key), "{ip}");
            }
            SourceKey::Text(text) => {
                key.push(b'=');
                key.extend_from_slice(text);
            }
        }
        key
    }
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The built `rateLimit`.
#[derive(Debug)]
struct RateLimit {
    source: Source,
    /// The buckets of this instance (the fallback when Redis is used).
    limiter: Limiter,
    redis: Option<Redis>,
}

impl RateLimit {
    /// Redis's verdict, or this instance's when Redis does not answer.
    async fn reserve_shared(&self, redis: &Redis, key: SourceKey) -> Result<Duration, Duration> {
        let limits = &self.limiter.limits;
        let answer = redis
            .store
            .allow_with_delay(
                &redis.key(&key),
                limits.rate,
                limits.burst,
                limits.max_delay,
            )
            .await;
        match answer {
            Ok(decision) if decision.allowed => Ok(decision.wait),
            Ok(decision) => Err(decision.wait),
            Err(_) => self.limiter.reserve(key, Instant::now()),
        }
    }
}

impl Middleware for RateLimit {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let key = self.source.key(&req, &cx.client);
        if let Some(redis) = &self.redis {
            return Box::pin(async move {
                match self.reserve_shared(redis, key).await {
                    Ok(wait) => {
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        next.run(req, cx).await
                    }
                    Err(wait) => {
                        tracing::debug!(client = %cx.client.remote, route = %cx.route.name, ?wait, "rateLimit: refused");
                        Ok(too_many_requests(wait))
                    }
                }
            });
        }
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

    fn redis_section(redis: serde_json::Value) -> RedisConfig {
        serde_json::from_value(redis).expect("redis section")
    }

    #[test]
    fn redis_options_are_parsed_with_traefik_names() {
        let mut cx = FakeBuild::default().with_secret(
            "auth",
            None,
            &[("username", b"limiter"), ("password", b"pw\n")],
        );
        let options = redis_options(
            &redis_section(serde_json::json!({
                "endpoints": ["redis-a:6379", "[::1]:6380"],
                "secret": "auth",
                "db": 2,
                "poolSize": 4,
                "minIdleConns": 1,
                "maxActiveConns": 8,
                "dialTimeout": "2s",
                "readTimeout": "250ms",
                "writeTimeout": 1,
                "tls": {"insecureSkipVerify": true},
            })),
            &mut cx,
        )
        .expect("options");
        assert_eq!(options.endpoints, ["redis-a:6379", "[::1]:6380"]);
        assert_eq!(options.username.as_deref(), Some("limiter"));
        assert_eq!(options.password.as_deref(), Some("pw"));
        assert_eq!(options.db, 2);
        assert_eq!(
            (
                options.pool_size,
                options.min_idle_conns,
                options.max_active_conns
            ),
            (4, 1, 8)
        );
        assert_eq!(options.dial_timeout, Duration::from_secs(2));
        assert_eq!(options.read_timeout, Duration::from_millis(250));
        assert_eq!(options.write_timeout, Duration::from_secs(1));
        assert!(options.tls.as_ref().is_some_and(|t| t.insecure_skip_verify));

        // Defaults: Traefik's (go-redis's) timeouts, no credentials.
        let options = redis_options(
            &redis_section(serde_json::json!({})),
            &mut FakeBuild::default(),
        )
        .expect("options");
        assert_eq!(options.read_timeout, Duration::from_secs(3));
        assert_eq!(options.dial_timeout, Duration::from_secs(5));
        assert!(options.username.is_none() && options.password.is_none());
    }

    #[test]
    fn bad_redis_options_are_refused_with_a_reason() {
        for (redis, reason) in [
            (serde_json::json!({"endpoints": ["redis"]}), "not host:port"),
            (
                serde_json::json!({"endpoints": ["redis:0"]}),
                "no valid port",
            ),
            (serde_json::json!({"endpoints": [":6379"]}), "no valid host"),
            (serde_json::json!({"readTimeout": "soon"}), "soon"),
            (serde_json::json!({"dialTimeout": "-1s"}), "-1s"),
            (serde_json::json!({"db": -1}), "redis.db"),
            (serde_json::json!({"minIdleConns": -1}), "minIdleConns"),
            (
                serde_json::json!({"secret": "nope"}),
                "redis.secret \"nope\" not found",
            ),
            (serde_json::json!({"secret": "empty"}), "neither"),
            (serde_json::json!({"tls": {"caSecret": "nope"}}), "caSecret"),
            (
                serde_json::json!({"tls": {"cert": "-----BEGIN x"}}),
                "cert and key",
            ),
            (
                serde_json::json!({"tls": {"ca": "/nonexistent/ca.pem"}}),
                "cannot read",
            ),
            (
                serde_json::json!({"endpoint": "redis:6379"}),
                "unknown field",
            ),
        ] {
            let config = serde_json::json!({"average": 5, "redis": redis});
            let mut cx = FakeBuild::default().with_secret("empty", None, &[("token", b"x")]);
            let err = build(&config, &mut cx).expect_err("refused");
            assert!(
                matches!(&err, BuildError::Invalid { .. }) && err.to_string().contains(reason),
                "{redis}: {err}"
            );
        }
        // Valid options build without any Redis running (connections are lazy).
        assert!(build(
            &serde_json::json!({"average": 5, "redis": {"endpoints": ["127.0.0.1:1"]}}),
            &mut FakeBuild::default()
        )
        .is_ok());
    }

    #[tokio::test]
    async fn without_redis_the_local_bucket_decides() {
        // Nothing listens on the port: every request falls back at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mw = rate_limit(serde_json::json!({
            "average": 2, "period": "1h", "burst": 2,
            "redis": {"endpoints": [format!("127.0.0.1:{port}")], "readTimeout": "200ms"},
        }));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        let before = crate::middleware::redis_store::redis_fallbacks();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                read(run_in(&mw, &backend, get("/", &[]), &cx).await)
                    .await
                    .0,
            );
        }
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS
            ]
        );
        assert!(crate::middleware::redis_store::redis_fallbacks() >= before + 3);
    }

    #[test]
    fn redis_keys_carry_the_middleware_identity() {
        let redis = Redis {
            store: RedisStore::new(RedisOptions::default()).expect("store"),
            prefix: key_prefix(&FakeBuild::default()),
        };
        assert_eq!(
            redis.key(&SourceKey::Ip("192.0.2.1".parse().expect("ip"))),
            b"sluice:rate:default/test:192.0.2.1"
        );
        assert_eq!(
            redis.key(&SourceKey::Text(b"k".to_vec().into())),
            b"sluice:rate:default/test:=k"
        );
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
