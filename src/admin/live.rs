//! Live figures for the dashboard: once a second a sampler reads the data
//! plane's cumulative counters (the same atomics `/metrics` reads; nothing is
//! added to the request path) and keeps what changed, so the last 10 seconds
//! and the last minute can be summed per route, per endpoint and per entrypoint.
//!
//! Only seconds with traffic are stored: an idle route costs one reading.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::{RouteStats, Totals};
use crate::router::{RouteTable, Target};
use crate::upstream::BackendKey;

/// The short window, in seconds.
pub const SHORT_WINDOW: u64 = 10;
/// The long window, in seconds.
pub const LONG_WINDOW: u64 = 60;
/// How long the 60-second window's buckets are.
const LONG_BUCKET: u64 = 10;

/// A series of readings of one set of counters.
#[derive(Debug, Default)]
struct Series {
    /// The last cumulative reading.
    last: Totals,
    /// What changed in each of the last seconds with traffic: (tick, delta).
    recent: VecDeque<(u64, Totals)>,
    /// What changed per 10-second bucket: (tick / 10, delta).
    buckets: VecDeque<(u64, Totals)>,
    /// The tick this series was last seen in a table.
    seen: u64,
}

impl Series {
    fn observe(&mut self, tick: u64, now: Totals) {
        self.seen = tick;
        let delta = now.since(&self.last);
        self.last = now;
        if delta.requests > 0 {
            self.recent.push_back((tick, delta));
            let bucket = tick / LONG_BUCKET;
            match self.buckets.back_mut() {
                Some((b, sum)) if *b == bucket => sum.add(&delta),
                _ => self.buckets.push_back((bucket, delta)),
            }
        }
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| t + SHORT_WINDOW <= tick)
        {
            self.recent.pop_front();
        }
        // Keep the current bucket and the five before it: 51 to 60 seconds.
        let kept = LONG_WINDOW / LONG_BUCKET - 1;
        while self
            .buckets
            .front()
            .is_some_and(|(b, _)| b + kept < tick / LONG_BUCKET)
        {
            self.buckets.pop_front();
        }
    }

    fn short(&self) -> Totals {
        let mut sum = Totals::default();
        for (_, d) in &self.recent {
            sum.add(d);
        }
        sum
    }

    fn long(&self) -> Totals {
        let mut sum = Totals::default();
        for (_, d) in &self.buckets {
            sum.add(d);
        }
        sum
    }
}

/// One window's figures, as the dashboard shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Window {
    /// Requests answered in the window.
    pub requests: u64,
    /// Requests per second over the window.
    pub rate: f64,
    /// Requests answered with a 5xx status.
    pub errors: u64,
    /// `errors / requests` (0 without requests).
    pub error_ratio: f64,
    /// Requests answered with a 4xx status.
    pub client_errors: u64,
    /// Median duration, milliseconds (`None` without requests).
    pub p50_ms: Option<f64>,
    /// 99th-percentile duration, milliseconds.
    pub p99_ms: Option<f64>,
}

impl Window {
    fn of(totals: &Totals, seconds: f64) -> Self {
        let ms = |q| totals.quantile(q).map(|s| (s * 1e6).round() / 1e3);
        Self {
            requests: totals.requests,
            rate: if seconds > 0.0 {
                totals.requests as f64 / seconds
            } else {
                0.0
            },
            errors: totals.server_errors,
            error_ratio: if totals.requests > 0 {
                totals.server_errors as f64 / totals.requests as f64
            } else {
                0.0
            },
            client_errors: totals.client_errors,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        }
    }
}

/// The live figures of one route, endpoint or entrypoint.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LiveFigures {
    /// Requests since sluice started (or since the route appeared).
    pub total: u64,
    /// The last 10 seconds.
    pub last_10s: Window,
    /// The last minute.
    pub last_1m: Window,
}

#[derive(Debug, Default)]
struct Windows {
    tick: u64,
    routes: HashMap<Arc<str>, Series>,
    /// By Service port, then endpoint address.
    endpoints: HashMap<BackendKey, HashMap<SocketAddr, Series>>,
    /// `web`, `websecure`.
    entrypoints: [Series; 2],
}

/// The sampler's state, shared by the sampling task and the admin API.
#[derive(Debug)]
pub struct Live {
    windows: Mutex<Windows>,
    started: Instant,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    /// An empty sampler; figures start at the first [`Live::sample`].
    pub fn new() -> Self {
        Self {
            windows: Mutex::new(Windows::default()),
            started: Instant::now(),
        }
    }

    /// Reads every counter of `table` (and the unmatched requests) once; call
    /// once a second.
    pub fn sample(&self, table: &RouteTable, unmatched: &RouteStats) {
        let mut guard = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = &mut *guard;
        w.tick += 1;
        let tick = w.tick;
        let mut per_entrypoint = [Totals::default(), Totals::default()];
        let mut read = |stats: &RouteStats| {
            let mut both = Totals::default();
            for (i, tls) in [false, true].into_iter().enumerate() {
                let mut one = Totals::default();
                stats.entry(tls).add_totals(&mut one);
                per_entrypoint[i].add(&one);
                both.add(&one);
            }
            both
        };
        read(unmatched);
        let mut seen_stats = std::collections::HashSet::new();
        for route in table.all_routes() {
            if !seen_stats.insert(Arc::as_ptr(&route.stats)) {
                continue;
            }
            // A route that never served a request has no counters and
            // gets no series (at 10,000 mostly idle routes, that is most).
            if route.stats.used() {
                let totals = read(&route.stats);
                w.routes
                    .entry(route.name.clone())
                    .or_default()
                    .observe(tick, totals);
            }
            if let Target::Backend(backend) = &route.target {
                let stats = backend.endpoint_stats();
                if stats.iter().all(|(_, s)| s.get().is_none()) {
                    continue;
                }
                let of_backend = match w.endpoints.get_mut(backend.key()) {
                    Some(map) => map,
                    None => w.endpoints.entry(backend.key().clone()).or_default(),
                };
                for (addr, stats) in stats.iter() {
                    if stats.get().is_none() {
                        continue; // never answered: no counters, no series
                    }
                    let series = of_backend.entry(*addr).or_default();
                    if series.seen == tick {
                        continue; // another route of the same Service
                    }
                    let mut totals = Totals::default();
                    stats.add_totals(&mut totals);
                    series.observe(tick, totals);
                }
            }
        }
        for (series, totals) in w.entrypoints.iter_mut().zip(per_entrypoint) {
            series.observe(tick, totals);
        }
        // Routes and endpoints gone from the table are forgotten.
        w.routes.retain(|_, s| s.seen == tick);
        w.endpoints.retain(|_, map| {
            map.retain(|_, s| s.seen == tick);
            !map.is_empty()
        });
    }

    /// The figures of the route named `name` (zero before its first sample).
    pub fn route(&self, name: &str) -> LiveFigures {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        w.routes
            .get(name)
            .map(|s| self.figures(s, w.tick))
            .unwrap_or_default()
    }

    /// The figures of many routes at once (one lock).
    pub fn routes<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<LiveFigures> {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        names
            .map(|name| {
                w.routes
                    .get(name)
                    .map(|s| self.figures(s, w.tick))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The figures of one endpoint of a Service port.
    pub fn endpoint(&self, key: &BackendKey, addr: SocketAddr) -> LiveFigures {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        w.endpoints
            .get(key)
            .and_then(|map| map.get(&addr))
            .map(|s| self.figures(s, w.tick))
            .unwrap_or_default()
    }

    /// The figures of all endpoints of a Service port together.
    pub fn service(&self, key: &BackendKey) -> LiveFigures {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum = Series::default();
        let (mut short, mut long) = (Totals::default(), Totals::default());
        for series in w.endpoints.get(key).into_iter().flat_map(HashMap::values) {
            sum.last.add(&series.last);
            short.add(&series.short());
            long.add(&series.long());
        }
        self.figures_of(sum.last.requests, &short, &long, w.tick)
    }

    /// The figures of the `web` and `websecure` entrypoints.
    pub fn entrypoints(&self) -> [LiveFigures; 2] {
        let w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        [
            self.figures(&w.entrypoints[0], w.tick),
            self.figures(&w.entrypoints[1], w.tick),
        ]
    }

    /// How long sluice has been sampling.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn figures(&self, series: &Series, tick: u64) -> LiveFigures {
        self.figures_of(series.last.requests, &series.short(), &series.long(), tick)
    }

    fn figures_of(&self, total: u64, short: &Totals, long: &Totals, tick: u64) -> LiveFigures {
        // Before a window has filled, rates are over the time sampled so far.
        let span = |window: u64| tick.min(window).max(1) as f64;
        let long_span = if tick < LONG_WINDOW {
            span(LONG_WINDOW)
        } else {
            // Five whole 10 s buckets plus the current one, begun.
            (LONG_WINDOW - LONG_BUCKET + tick % LONG_BUCKET + 1) as f64
        };
        LiveFigures {
            total,
            last_10s: Window::of(short, span(SHORT_WINDOW)),
            last_1m: Window::of(long, long_span),
        }
    }
}

/// Samples `table` once a second until the process ends.
pub async fn run_sampler(
    live: Arc<Live>,
    table: Arc<arc_swap::ArcSwap<RouteTable>>,
    unmatched: Arc<RouteStats>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let table = table.load_full();
        live.sample(&table, &unmatched);
    }
}

/// Whether a route's figures say it is failing: more than 5% of its answers in
/// the last minute were 5xx.
pub fn too_many_errors(figures: &LiveFigures) -> bool {
    figures.last_1m.requests > 0 && figures.last_1m.error_ratio > 0.05
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn totals(requests: u64, errors: u64) -> Totals {
        let s = crate::metrics::EntryStats::default();
        for i in 0..requests {
            let status = if i < errors { 500 } else { 200 };
            s.record(&Method::GET, status, Duration::from_millis(1));
        }
        let mut t = Totals::default();
        s.add_totals(&mut t);
        t
    }

    #[test]
    fn windows_keep_ten_seconds_and_a_minute() {
        let mut series = Series::default();
        // 5 requests a second for 70 seconds, the first 10 seconds all 5xx.
        let mut cumulative = Totals::default();
        for tick in 1..=70 {
            let errors = if tick <= 10 { 5 } else { 0 };
            cumulative.add(&totals(5, errors));
            series.observe(tick, cumulative);
        }
        assert_eq!(series.short().requests, 50);
        assert_eq!(series.short().server_errors, 0);
        // The long window holds ticks 20..=70: whole buckets 2..=6 and 7 begun.
        let long = series.long();
        assert_eq!(long.requests, 51 * 5);
        assert_eq!(long.server_errors, 0, "the errors are older than a minute");
        // Idle seconds age everything out.
        for tick in 71..=140 {
            series.observe(tick, cumulative);
        }
        assert_eq!(series.short().requests, 0);
        assert_eq!(series.long().requests, 0);
        assert_eq!(series.last.requests, 350);
    }

    #[test]
    fn a_window_reports_rate_error_ratio_and_percentiles() {
        let w = Window::of(&totals(100, 10), 10.0);
        assert_eq!(w.requests, 100);
        assert!((w.rate - 10.0).abs() < 1e-9);
        assert_eq!(w.errors, 10);
        assert!((w.error_ratio - 0.1).abs() < 1e-9);
        let p50 = w.p50_ms.expect("requests");
        assert!(p50 > 0.5 && p50 <= 1.0, "{p50}");
        assert_eq!(Window::of(&Totals::default(), 10.0).p99_ms, None);
        assert!(too_many_errors(&LiveFigures {
            total: 100,
            last_10s: w,
            last_1m: w
        }));
    }
}
