//! `circuitBreaker`: stops sending requests to a backend that is failing.
//!
//! Traefik's (oxy's) state machine:
//! - **Standby**: every request is forwarded and measured. At most once per
//!   `checkPeriod` (after a response) the expression is evaluated over the rolling
//!   window; when true the breaker trips and the window is cleared.
//! - **Tripped**: for `fallbackDuration` every request is answered `responseCode`
//!   with the reason phrase as body; the backend is not called.
//! - **Recovering**: for `recoveryDuration` a linearly growing share of requests
//!   (0 → 100%) is forwarded, the rest get the fallback answer. The expression is
//!   still checked: true trips again. At the end the breaker is back in standby.
//!
//! Metrics (kept in the built middleware, so they survive reloads that do not
//! change it): status and network-error counters over 10 one-second buckets, and
//! a latency histogram over 6 ten-second buckets (oxy's windows). A request that
//! got no response counts with the status the proxy answers (502, 503, 504), and
//! `NetworkErrorRatio()` is the share of 502 and 504, as in oxy.
//!
//! The request path takes no lock in standby: the state is mirrored in an atomic,
//! counters are atomics, and a bucket is cleared under a mutex once per second.
//! Latency is measured until the response head arrives (Traefik measures until
//! the body has been sent to the client).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::breaker_expr::{Expr, Metrics};
use super::build::{decode, BuildError, Context};
use super::support;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

const DEFAULT_CHECK_PERIOD: Duration = Duration::from_millis(100);
const DEFAULT_FALLBACK: Duration = Duration::from_secs(10);
const DEFAULT_RECOVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    expression: String,
    #[serde(default, deserialize_with = "support::optional_duration")]
    check_period: Option<Duration>,
    #[serde(default, deserialize_with = "support::optional_duration")]
    fallback_duration: Option<Duration>,
    #[serde(default, deserialize_with = "support::optional_duration")]
    recovery_duration: Option<Duration>,
    #[serde(default)]
    response_code: Option<i64>,
}

/// Builds a `circuitBreaker` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    Breaker::from_config(config, Clock::real())
        .map(|b| Arc::new(b) as Arc<dyn Middleware>)
        .map_err(|e| cx.invalid(e))
}

/// Nanoseconds since the breaker was built; a manual clock in tests.
#[derive(Debug, Clone)]
enum Clock {
    Real(Instant),
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    fn real() -> Self {
        Self::Real(Instant::now())
    }

    fn now(&self) -> u64 {
        match self {
            Self::Real(base) => nanos(base.elapsed()),
            #[cfg(test)]
            Self::Manual(now) => now.load(Ordering::SeqCst),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where the breaker is; `until`/`start` are clock readings.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Standby,
    Tripped {
        until: u64,
    },
    Recovering {
        start: u64,
        until: u64,
        allowed: u64,
        denied: u64,
    },
}

/// The built `circuitBreaker`.
#[derive(Debug)]
struct Breaker {
    expression: Expr,
    check_period: u64,
    fallback: u64,
    recovery: u64,
    code: StatusCode,
    clock: Clock,
    window: Window,
    /// Mirrors `phase == Standby`: the request path's lock-free check.
    standby: AtomicBool,
    phase: Mutex<Phase>,
    /// The clock reading after which the next check may run.
    next_check: AtomicU64,
}

impl Breaker {
    fn from_config(config: Config, clock: Clock) -> Result<Self, String> {
        if config.expression.trim().is_empty() {
            return Err("expression must be set".to_owned());
        }
        let expression = Expr::parse(&config.expression).map_err(|e| e.to_string())?;
        let code = match config.response_code {
            None => StatusCode::SERVICE_UNAVAILABLE,
            Some(code) => u16::try_from(code)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("responseCode {code} must be between 100 and 599"))?,
        };
        // Traefik keeps oxy's default for a zero duration.
        let or =
            |d: Option<Duration>, default| nanos(d.filter(|d| !d.is_zero()).unwrap_or(default));
        Ok(Self {
            expression,
            check_period: or(config.check_period, DEFAULT_CHECK_PERIOD),
            fallback: or(config.fallback_duration, DEFAULT_FALLBACK),
            recovery: or(config.recovery_duration, DEFAULT_RECOVERY),
            code,
            clock,
            window: Window::new(),
            standby: AtomicBool::new(true),
            phase: Mutex::new(Phase::Standby),
            next_check: AtomicU64::new(0),
        })
    }

    /// Whether a request may go to the backend now (oxy's `activateFallback`, negated).
    fn admit(&self) -> bool {
        if self.standby.load(Ordering::Acquire) {
            return true;
        }
        let now = self.clock.now();
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Tripped { until } = *phase {
            if now < until {
                return false;
            }
            *phase = Phase::Recovering {
                start: now,
                until: now.saturating_add(self.recovery),
                allowed: 0,
                denied: 0,
            };
            tracing::info!("circuit breaker recovering");
        }
        match &mut *phase {
            Phase::Standby | Phase::Tripped { .. } => true,
            Phase::Recovering {
                start,
                until,
                allowed,
                denied,
            } => {
                if now > *until {
                    *phase = Phase::Standby;
                    self.standby.store(true, Ordering::Release);
                    tracing::info!("circuit breaker back in standby");
                    return true;
                }
                // oxy's ratio controller: keep allowed/(allowed+denied) just under
                // 0.5·elapsed/recovery, which lets through a share of new requests
                // that grows linearly from 0 to 100%.
                let target = 0.5 * (now - *start) as f64 / self.recovery as f64;
                let would_be = (*allowed + 1) as f64 / (*allowed + 1 + *denied) as f64;
                if would_be < target {
                    *allowed += 1;
                    true
                } else {
                    *denied += 1;
                    false
                }
            }
        }
    }

    /// Evaluates the expression when a check is due, and trips on true.
    fn check(&self, now: u64) {
        let due = self.next_check.load(Ordering::Acquire);
        if now <= due && due != 0 {
            return;
        }
        let next = now.saturating_add(self.check_period);
        if self
            .next_check
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // another request runs this check
        }
        if matches!(self.phase(), Phase::Tripped { .. }) {
            return;
        }
        let view = View {
            window: &self.window,
            now,
        };
        if !self.expression.eval(&view) {
            return;
        }
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*phase, Phase::Tripped { .. }) {
            return;
        }
        *phase = Phase::Tripped {
            until: now.saturating_add(self.fallback),
        };
        self.standby.store(false, Ordering::Release);
        self.window.reset();
        tracing::warn!(expression = ?self.expression, "circuit breaker tripped");
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer while tripped: `responseCode` with its reason phrase, no newline.
    fn fallback_response(&self) -> Response<ResponseBody> {
        let reason = self.code.canonical_reason().unwrap_or("");
        let mut resp = Response::new(ResponseBody::full(Bytes::from_static(reason.as_bytes())));
        *resp.status_mut() = self.code;
        resp
    }
}

impl Middleware for Breaker {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if !self.admit() {
                return Ok(self.fallback_response());
            }
            let start = self.clock.now();
            let outcome = next.run(req, cx).await;
            let now = self.clock.now();
            let status = match &outcome {
                Ok(resp) => resp.status().as_u16(),
                Err(failure) => failure.error.status().as_u16(),
            };
            self.window.record(now, status, now.saturating_sub(start));
            self.check(now);
            outcome
        })
    }
}

const SECOND: u64 = 1_000_000_000;
const COUNTER_BUCKETS: u64 = 10;
const COUNTER_PERIOD: u64 = SECOND;
const HIST_BUCKETS: u64 = 6;
const HIST_PERIOD: u64 = 10 * SECOND;
/// Status codes 100..=999 each have a counter.
const CODES: usize = 900;
/// Latency histogram: exact below 128 µs, then 64 sub-buckets per power of two
/// (about 1.5% precision) up to 2^32 µs (71 minutes).
const SUB: u64 = 64;
const HIST_SLOTS: usize = (2 * SUB + (32 - 7) * SUB) as usize;

/// One second of counters. `epoch` is the second it holds plus one (0: empty).
#[derive(Debug)]
struct CounterBucket {
    epoch: AtomicU64,
    total: AtomicU32,
    network: AtomicU32,
    codes: Box<[AtomicU32]>,
}

/// Ten seconds of latencies. `epoch` is the period it holds plus one (0: empty).
#[derive(Debug)]
struct HistBucket {
    epoch: AtomicU64,
    counts: Box<[AtomicU32]>,
}

fn zeroed(n: usize) -> Box<[AtomicU32]> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

/// The rolling window of counters and latencies.
#[derive(Debug)]
struct Window {
    counters: Box<[CounterBucket]>,
    hist: Box<[HistBucket]>,
    /// Held only to clear a bucket for a new second (or to clear all on a trip).
    rotate: Mutex<()>,
}

impl Window {
    fn new() -> Self {
        Self {
            counters: (0..COUNTER_BUCKETS)
                .map(|_| CounterBucket {
                    epoch: AtomicU64::new(0),
                    total: AtomicU32::new(0),
                    network: AtomicU32::new(0),
                    codes: zeroed(CODES),
                })
                .collect(),
            hist: (0..HIST_BUCKETS)
                .map(|_| HistBucket {
                    epoch: AtomicU64::new(0),
                    counts: zeroed(HIST_SLOTS),
                })
                .collect(),
            rotate: Mutex::new(()),
        }
    }

    /// Makes `epoch` hold `want`, clearing the bucket (via `clear`) first if it held another.
    fn claim(&self, epoch: &AtomicU64, want: u64, clear: impl FnOnce()) {
        if epoch.load(Ordering::Acquire) == want {
            return;
        }
        let _guard = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        if epoch.load(Ordering::Acquire) != want {
            clear();
            epoch.store(want, Ordering::Release);
        }
    }

    fn record(&self, now: u64, status: u16, latency: u64) {
        let second = now / COUNTER_PERIOD;
        let bucket = &self.counters[(second % COUNTER_BUCKETS) as usize];
        self.claim(&bucket.epoch, second + 1, || {
            bucket.total.store(0, Ordering::Relaxed);
            bucket.network.store(0, Ordering::Relaxed);
            bucket
                .codes
                .iter()
                .for_each(|c| c.store(0, Ordering::Relaxed));
        });
        bucket.total.fetch_add(1, Ordering::Relaxed);
        if status == 502 || status == 504 {
            bucket.network.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| bucket.codes.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }

        let period = now / HIST_PERIOD;
        let hist = &self.hist[(period % HIST_BUCKETS) as usize];
        self.claim(&hist.epoch, period + 1, || {
            hist.counts
                .iter()
                .for_each(|c| c.store(0, Ordering::Relaxed));
        });
        hist.counts[hist_slot(latency / 1_000)].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets everything (oxy resets its metrics when the breaker trips).
    fn reset(&self) {
        let _guard = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        for b in self.counters.iter() {
            b.epoch.store(0, Ordering::Release);
        }
        for h in self.hist.iter() {
            h.epoch.store(0, Ordering::Release);
        }
    }

    /// The counter buckets inside the window ending at `now`.
    fn live_counters(&self, now: u64) -> impl Iterator<Item = &CounterBucket> {
        let second = now / COUNTER_PERIOD;
        self.counters.iter().filter(move |b| {
            let epoch = b.epoch.load(Ordering::Acquire);
            epoch != 0 && epoch <= second + 1 && epoch + COUNTER_BUCKETS > second + 1
        })
    }

    fn live_hist(&self, now: u64) -> impl Iterator<Item = &HistBucket> {
        let period = now / HIST_PERIOD;
        self.hist.iter().filter(move |b| {
            let epoch = b.epoch.load(Ordering::Acquire);
            epoch != 0 && epoch <= period + 1 && epoch + HIST_BUCKETS > period + 1
        })
    }
}

/// The histogram slot of a latency in microseconds.
fn hist_slot(micros: u64) -> usize {
    let v = micros.min(u64::from(u32::MAX));
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - u64::from(v.leading_zeros()); // >= 7
    let shift = exp - 6;
    let top = v >> shift; // 64..=127
    (2 * SUB + (exp - 7) * SUB + (top - SUB)) as usize
}

/// The highest latency (µs) a slot stands for, as HDR histograms report.
fn slot_value(slot: usize) -> u64 {
    let slot = slot as u64;
    if slot < 2 * SUB {
        return slot;
    }
    let exp = (slot - 2 * SUB) / SUB + 7;
    let top = (slot - 2 * SUB) % SUB + SUB;
    let shift = exp - 6;
    ((top + 1) << shift) - 1
}

/// The window as the expression reads it at `now`.
struct View<'w> {
    window: &'w Window,
    now: u64,
}

impl Metrics for View<'_> {
    fn request_count(&self) -> u64 {
        self.window
            .live_counters(self.now)
            .map(|b| u64::from(b.total.load(Ordering::Relaxed)))
            .sum()
    }

    fn network_error_ratio(&self) -> f64 {
        let (mut total, mut network) = (0u64, 0u64);
        for b in self.window.live_counters(self.now) {
            total += u64::from(b.total.load(Ordering::Relaxed));
            network += u64::from(b.network.load(Ordering::Relaxed));
        }
        if total == 0 {
            0.0
        } else {
            network as f64 / total as f64
        }
    }

    fn response_code_ratio(&self, from: i64, to: i64, div_from: i64, div_to: i64) -> f64 {
        let (mut a, mut b) = (0u64, 0u64);
        for bucket in self.window.live_counters(self.now) {
            for (i, count) in bucket.codes.iter().enumerate() {
                let count = u64::from(count.load(Ordering::Relaxed));
                if count == 0 {
                    continue;
                }
                let code = i as i64 + 100;
                if from <= code && code < to {
                    a += count;
                }
                if div_from <= code && code < div_to {
                    b += count;
                }
            }
        }
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    fn latency_at_quantile_ms(&self, quantile: f64) -> i64 {
        let mut counts = vec![0u64; HIST_SLOTS];
        for bucket in self.window.live_hist(self.now) {
            for (sum, count) in counts.iter_mut().zip(bucket.counts.iter()) {
                *sum += u64::from(count.load(Ordering::Relaxed));
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        // HDR: the count at the percentile, rounded, at least one.
        let wanted = ((quantile / 100.0 * total as f64) + 0.5).max(1.0) as u64;
        let mut seen = 0;
        for (slot, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return (slot_value(slot) / 1_000) as i64;
            }
        }
        (slot_value(HIST_SLOTS - 1) / 1_000) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::super::retry::testing::*;
    use super::*;
    use crate::middleware::testing::{context_at, FakeBuild};
    use serde_json::json;

    const MS: u64 = 1_000_000;

    fn breaker(config: Value) -> (Arc<Breaker>, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(SECOND));
        let config: Config = serde_json::from_value(config).unwrap();
        let b = Breaker::from_config(config, Clock::Manual(now.clone())).unwrap();
        (Arc::new(b), now)
    }

    async fn status(mw: &Arc<Breaker>, t: &Scripted) -> u16 {
        let mw: Arc<dyn Middleware> = mw.clone();
        match run(&mw, t, get("/")).await {
            Ok(resp) => resp.status().as_u16(),
            Err(failure) => failure.error.status().as_u16(),
        }
    }

    #[test]
    fn config_is_validated_and_defaulted() {
        let mut cx = FakeBuild::default();
        let err = build(&json!({}), &mut cx).unwrap_err().to_string();
        assert!(err.contains("expression must be set"), "{err}");
        let err = build(&json!({"expression": "Nope() > 1"}), &mut cx)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown function"), "{err}");
        let err = build(
            &json!({"expression": "NetworkErrorRatio() > 0.5", "responseCode": 600}),
            &mut cx,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("between 100 and 599"), "{err}");
        assert!(build(
            &json!({"expression": "NetworkErrorRatio() > 0.5", "checkPeriod": "x"}),
            &mut cx
        )
        .is_err());

        let (b, _) = breaker(json!({"expression": "NetworkErrorRatio() > 0.5"}));
        assert_eq!(b.check_period, 100 * MS);
        assert_eq!(b.fallback, 10 * SECOND);
        assert_eq!(b.recovery, 10 * SECOND);
        assert_eq!(b.code, 503);
        let (b, _) = breaker(
            json!({"expression": "NetworkErrorRatio() > 0.5", "checkPeriod": "1s",
            "fallbackDuration": 5, "recoveryDuration": "0s", "responseCode": 429}),
        );
        assert_eq!(
            (b.check_period, b.fallback, b.recovery),
            (SECOND, 5 * SECOND, 10 * SECOND)
        );
        assert_eq!(b.code, 429);
    }

    #[tokio::test]
    async fn trips_on_errors_answers_the_fallback_then_recovers() {
        let (b, now) = breaker(
            json!({"expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5",
            "fallbackDuration": "10s", "recoveryDuration": "10s"}),
        );
        let t = Scripted::new(&[Step::Status(500, "boom"), Step::Status(200, "ok")]);
        // The first response is checked at once: 100% errors trips the breaker.
        assert_eq!(status(&b, &t).await, 500);
        assert!(matches!(b.phase(), Phase::Tripped { .. }));
        let mw: Arc<dyn Middleware> = b.clone();
        let (code, headers, body) = answer(run(&mw, &t, get("/")).await).await;
        assert_eq!((code, body.as_str()), (503, "Service Unavailable"));
        assert!(headers.get("content-type").is_none());
        assert_eq!(t.calls(), 1, "the backend is not called while tripped");

        // Still tripped just before the fallback ends.
        now.fetch_add(10 * SECOND - MS, Ordering::SeqCst);
        assert_eq!(status(&b, &t).await, 503);
        // Recovering: the forwarded share grows linearly over recoveryDuration.
        now.fetch_add(MS, Ordering::SeqCst);
        let mut forwarded = Vec::new();
        for _second in 0..10 {
            let before = t.calls();
            for _ in 0..100 {
                status(&b, &t).await;
                now.fetch_add(10 * MS, Ordering::SeqCst);
            }
            forwarded.push(t.calls() - before);
        }
        assert!(forwarded[0] <= 15, "{forwarded:?}");
        assert!(forwarded[9] >= 85, "{forwarded:?}");
        assert!(
            forwarded.windows(2).all(|w| w[1] + 5 >= w[0]),
            "{forwarded:?}"
        );
        let total: usize = forwarded.iter().sum();
        assert!(
            (400..=600).contains(&total),
            "about half over the ramp: {forwarded:?}"
        );
        // Past the recovery: standby, everything forwarded.
        now.fetch_add(MS, Ordering::SeqCst);
        assert_eq!(status(&b, &t).await, 200);
        assert_eq!(b.phase(), Phase::Standby);
    }

    #[tokio::test]
    async fn trips_again_while_recovering() {
        let (b, now) = breaker(
            json!({"expression": "NetworkErrorRatio() > 0.5", "responseCode": 429,
            "fallbackDuration": "1s", "recoveryDuration": "1s"}),
        );
        let t = Scripted::new(&[Step::Refused]);
        assert_eq!(status(&b, &t).await, 502);
        assert_eq!(status(&b, &t).await, 429);
        now.fetch_add(SECOND + 500 * MS, Ordering::SeqCst);
        // Half way through recovery some requests get through, fail, and trip it again.
        let mut calls = 0;
        for _ in 0..20 {
            status(&b, &t).await;
            calls = t.calls();
            if matches!(b.phase(), Phase::Tripped { .. }) {
                break;
            }
            now.fetch_add(200 * MS, Ordering::SeqCst);
        }
        assert!(matches!(b.phase(), Phase::Tripped { .. }));
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn checks_run_once_per_check_period() {
        let (b, now) = breaker(
            json!({"expression": "ResponseCodeRatio(500, 600, 0, 600) >= 0.5",
            "checkPeriod": "1s"}),
        );
        let t = Scripted::new(&[
            Step::Status(200, "ok"),
            Step::Status(500, "a"),
            Step::Status(500, "b"),
        ]);
        // Checked after the first response (0% errors), then not for a second.
        assert_eq!(status(&b, &t).await, 200);
        assert_eq!(status(&b, &t).await, 500);
        assert_eq!(status(&b, &t).await, 500);
        assert_eq!(b.phase(), Phase::Standby);
        now.fetch_add(SECOND + 1, Ordering::SeqCst);
        assert_eq!(status(&b, &t).await, 500);
        assert!(matches!(b.phase(), Phase::Tripped { .. }));
    }

    #[test]
    fn the_window_forgets_old_seconds() {
        let w = Window::new();
        let at = |s: u64| s * SECOND + 1;
        for s in 0..5 {
            w.record(at(s), 500, MS);
        }
        w.record(at(5), 200, MS);
        let view = |now| View { window: &w, now };
        assert_eq!(view(at(5)).response_code_ratio(500, 600, 0, 600), 5.0 / 6.0);
        // 10 s later the five 500s have left the window; the 200 is the last one in it.
        assert_eq!(view(at(14)).response_code_ratio(500, 600, 0, 600), 0.0);
        assert_eq!(view(at(14)).response_code_ratio(200, 300, 0, 600), 1.0);
        assert_eq!(view(at(15)).response_code_ratio(200, 300, 0, 600), 0.0);
        // A bucket reused for a new second starts from zero.
        w.record(at(10), 404, MS);
        assert_eq!(
            view(at(10)).response_code_ratio(500, 600, 0, 600),
            4.0 / 6.0
        );
        w.reset();
        assert_eq!(view(at(10)).response_code_ratio(0, 1000, 0, 1000), 0.0);
        assert_eq!(view(at(10)).network_error_ratio(), 0.0);
    }

    #[test]
    fn network_errors_are_502_and_504() {
        let w = Window::new();
        for status in [502, 504, 503, 200] {
            w.record(SECOND, status, MS);
        }
        let v = View {
            window: &w,
            now: SECOND,
        };
        assert_eq!(v.network_error_ratio(), 0.5);
    }

    #[test]
    fn latency_quantiles_come_from_the_histogram() {
        let w = Window::new();
        for ms in 1..=100u64 {
            w.record(SECOND, 200, ms * MS);
        }
        let v = View {
            window: &w,
            now: SECOND,
        };
        let p50 = v.latency_at_quantile_ms(50.0);
        assert!((49..=51).contains(&p50), "{p50}");
        let p99 = v.latency_at_quantile_ms(99.0);
        assert!((98..=101).contains(&p99), "{p99}");
        assert_eq!(v.latency_at_quantile_ms(100.0) / 10, 10);
        // The histogram keeps a minute: 70 s later it is empty.
        let later = View {
            window: &w,
            now: 71 * SECOND,
        };
        assert_eq!(later.latency_at_quantile_ms(50.0), 0);
    }

    #[test]
    fn histogram_slots_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..5_000u64).chain((5_000..10_000_000).step_by(997)) {
            let slot = hist_slot(v);
            assert!(slot >= last);
            last = slot;
            let top = slot_value(slot);
            assert!(
                top >= v && top as f64 <= v as f64 * 1.016 + 1.0,
                "{v} -> {top}"
            );
        }
        assert!(hist_slot(u64::MAX) < HIST_SLOTS);
    }

    /// A terminal whose answers take `delay` on the manual clock.
    struct Slow {
        now: Arc<AtomicU64>,
        delay: u64,
    }

    impl super::super::Terminal for Slow {
        fn forward<'a>(
            &'a self,
            _req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            self.now.fetch_add(self.delay, Ordering::SeqCst);
            Box::pin(async { Ok(Response::new(ResponseBody::empty())) })
        }
    }

    #[tokio::test]
    async fn trips_on_latency() {
        let (b, now) = breaker(json!({"expression": "LatencyAtQuantileMS(50.0) > 100"}));
        let mw: Arc<dyn Middleware> = b.clone();
        let steps = [mw];
        let cx = context_at(CLIENT, false);
        let fast = Slow {
            now: now.clone(),
            delay: 20 * MS,
        };
        for _ in 0..3 {
            let r = Next::new(&steps, &fast).run(get("/"), &cx).await.unwrap();
            assert_eq!(r.status(), 200);
            now.fetch_add(200 * MS, Ordering::SeqCst);
        }
        assert_eq!(b.phase(), Phase::Standby);
        let slow = Slow {
            now: now.clone(),
            delay: 300 * MS,
        };
        for _ in 0..4 {
            Next::new(&steps, &slow).run(get("/"), &cx).await.unwrap();
        }
        assert!(matches!(b.phase(), Phase::Tripped { .. }));
        let r = Next::new(&steps, &fast).run(get("/"), &cx).await.unwrap();
        assert_eq!(r.status(), 503);
    }
}
