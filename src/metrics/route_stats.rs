//! Per-route request counters, updated on the request path without locks or allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use http::Method;

/// Upper bounds (seconds) of the request-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The methods counted by name; anything else counts as `other`.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "other",
];

const SLOTS: usize = 32;

/// Each histogram bucket is split into this many equal sub-buckets, so the
/// dashboard's percentiles resolve finer than the Prometheus buckets (which
/// are their sums).
pub const SUB_BUCKETS: usize = 4;

/// How many fine buckets a histogram keeps.
pub const FINE_BUCKETS: usize = DURATION_BUCKETS.len() * SUB_BUCKETS;

#[derive(Debug, Default)]
struct Slot {
    /// `(method index + 1) << 16 | status`; 0 while the slot is free.
    key: AtomicU32,
    count: AtomicU64,
}

/// Requests of one route, per entrypoint (plain HTTP and HTTPS), each
/// allocated on its first request: a route that never served one costs two
/// pointers, not two tables (at 10,000 routes, most of them idle, that is
/// the difference between 16 bytes and about 1.8 KB per route).
#[derive(Debug, Default)]
pub struct RouteStats {
    web: LazyEntryStats,
    websecure: LazyEntryStats,
}

/// An [`EntryStats`] allocated on first use (routes and endpoints that
/// never served cost one pointer); reads of one never used are empty.
#[derive(Debug, Default)]
pub struct LazyEntryStats(OnceLock<Box<EntryStats>>);

impl LazyEntryStats {
    /// Counts one finished request (allocating the table on the first).
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        self.0
            .get_or_init(Box::default)
            .record(method, status, elapsed);
    }

    /// The table, once something was counted.
    pub fn get(&self) -> Option<&EntryStats> {
        self.0.get().map(|b| &**b)
    }

    /// See [`EntryStats::requests`]; empty before the first request.
    pub fn requests(&self) -> Vec<(&'static str, Option<u16>, u64)> {
        self.get().map(EntryStats::requests).unwrap_or_default()
    }

    /// See [`EntryStats::durations`]; zeros before the first request.
    pub fn durations(&self) -> (Vec<u64>, u64, f64) {
        self.get().map_or_else(
            || (vec![0; DURATION_BUCKETS.len()], 0, 0.0),
            EntryStats::durations,
        )
    }

    /// See [`EntryStats::add_totals`]; adds nothing before the first request.
    pub fn add_totals(&self, into: &mut Totals) {
        if let Some(stats) = self.get() {
            stats.add_totals(into);
        }
    }
}

impl RouteStats {
    /// Counts one finished request that arrived over TLS (`tls`) or plain HTTP.
    pub fn record(&self, tls: bool, method: &Method, status: u16, elapsed: Duration) {
        self.entry(tls).record(method, status, elapsed);
    }

    /// Whether any request was counted (on either entrypoint).
    pub fn used(&self) -> bool {
        self.web.get().is_some() || self.websecure.get().is_some()
    }

    /// The counters of one entrypoint.
    pub fn entry(&self, tls: bool) -> &LazyEntryStats {
        if tls {
            &self.websecure
        } else {
            &self.web
        }
    }
}

/// Requests of one route on one entrypoint by method and status, and their durations.
///
/// A small open-addressed table of atomic slots: a route sees only a handful of
/// (method, status) pairs, so 32 slots are plenty; pairs beyond that are counted
/// under `other`/`other`.
#[derive(Debug)]
pub struct EntryStats {
    slots: [Slot; SLOTS],
    overflow: AtomicU64,
    fine: [AtomicU64; FINE_BUCKETS],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for EntryStats {
    fn default() -> Self {
        Self {
            slots: Default::default(),
            overflow: AtomicU64::new(0),
            fine: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl EntryStats {
    /// Counts one finished request.
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        self.count_status(method_index(method), status);
        if let Some(i) = fine_bucket(elapsed.as_secs_f64()) {
            self.fine[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn count_status(&self, method: usize, status: u16) {
        let key = ((method as u32 + 1) << 16) | u32::from(status);
        let start = (key as usize).wrapping_mul(0x9E37_79B9) % SLOTS;
        for i in 0..SLOTS {
            let slot = &self.slots[(start + i) % SLOTS];
            let current = slot.key.load(Ordering::Acquire);
            let claimed = current == key
                || (current == 0
                    && match slot
                        .key
                        .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => true,
                        Err(other) => other == key,
                    });
            if claimed {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Every (method, status, count) seen so far; status `None` for the overflow bucket.
    pub fn requests(&self) -> Vec<(&'static str, Option<u16>, u64)> {
        let mut out: Vec<_> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let key = slot.key.load(Ordering::Acquire);
                (key != 0).then(|| {
                    let method = METHODS[((key >> 16) - 1) as usize];
                    (
                        method,
                        Some((key & 0xffff) as u16),
                        slot.count.load(Ordering::Relaxed),
                    )
                })
            })
            .collect();
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow > 0 {
            out.push(("other", None, overflow));
        }
        out
    }

    /// The duration histogram: per-bucket counts (not cumulative), total count, sum in seconds.
    pub fn durations(&self) -> (Vec<u64>, u64, f64) {
        let buckets = self
            .fine
            .chunks(SUB_BUCKETS)
            .map(|sub| sub.iter().map(|b| b.load(Ordering::Relaxed)).sum())
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }

    /// Adds this entrypoint's totals to `into`: requests, 4xx, 5xx and the fine
    /// duration buckets (for the dashboard's sliding windows).
    pub fn add_totals(&self, into: &mut Totals) {
        into.requests += self.count.load(Ordering::Relaxed);
        for slot in &self.slots {
            let key = slot.key.load(Ordering::Acquire);
            let status = key & 0xffff;
            if key != 0 && status >= 400 {
                let n = slot.count.load(Ordering::Relaxed);
                if status >= 500 {
                    into.server_errors += n;
                } else {
                    into.client_errors += n;
                }
            }
        }
        for (sum, bucket) in into.fine.iter_mut().zip(&self.fine) {
            *sum += bucket.load(Ordering::Relaxed);
        }
    }
}

/// Cumulative request totals of one or more [`EntryStats`], as the dashboard's
/// sampler reads them once a second; two readings subtract into a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Of which with a 4xx status.
    pub client_errors: u64,
    /// Of which with a 5xx status.
    pub server_errors: u64,
    /// Durations by fine bucket (see [`fine_upper_bound`]); slower ones are in
    /// `requests` only.
    pub fine: [u64; FINE_BUCKETS],
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            requests: 0,
            client_errors: 0,
            server_errors: 0,
            fine: [0; FINE_BUCKETS],
        }
    }
}

impl Totals {
    /// What was added between `earlier` and `self` (counters only grow; a
    /// counter that went back, as after a route was re-created, counts from 0).
    pub fn since(&self, earlier: &Self) -> Self {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
        let mut fine = [0; FINE_BUCKETS];
        for (i, out) in fine.iter_mut().enumerate() {
            *out = d(self.fine[i], earlier.fine[i]);
        }
        Self {
            requests: d(self.requests, earlier.requests),
            client_errors: d(self.client_errors, earlier.client_errors),
            server_errors: d(self.server_errors, earlier.server_errors),
            fine,
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        for (sum, n) in self.fine.iter_mut().zip(&other.fine) {
            *sum += n;
        }
    }

    /// The duration (seconds) below which a fraction `q` (0..=1) of the
    /// requests finished, interpolated linearly inside its fine bucket; `None`
    /// without requests. Requests slower than the last bucket report its bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.requests == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.requests as f64).max(1.0);
        let mut seen = 0.0;
        let mut lower = 0.0;
        for (i, n) in self.fine.iter().enumerate() {
            let upper = fine_upper_bound(i);
            let n = *n as f64;
            if n > 0.0 && seen + n >= rank {
                return Some(lower + (upper - lower) * ((rank - seen) / n));
            }
            seen += n;
            lower = upper;
        }
        Some(lower)
    }
}

/// The upper bound (seconds) of fine bucket `i`.
pub fn fine_upper_bound(i: usize) -> f64 {
    let bucket = i / SUB_BUCKETS;
    let lower = if bucket == 0 {
        0.0
    } else {
        DURATION_BUCKETS[bucket - 1]
    };
    let step = (DURATION_BUCKETS[bucket] - lower) / SUB_BUCKETS as f64;
    lower + step * ((i % SUB_BUCKETS) + 1) as f64
}

/// The fine bucket a duration of `secs` falls in; `None` beyond the last bound.
fn fine_bucket(secs: f64) -> Option<usize> {
    let bucket = DURATION_BUCKETS.iter().position(|b| secs <= *b)?;
    let lower = if bucket == 0 {
        0.0
    } else {
        DURATION_BUCKETS[bucket - 1]
    };
    let fraction = (secs - lower) / (DURATION_BUCKETS[bucket] - lower);
    // `as` saturates; a duration exactly on the upper bound goes in the last sub-bucket.
    let sub = ((fraction * SUB_BUCKETS as f64) as usize).min(SUB_BUCKETS - 1);
    Some(bucket * SUB_BUCKETS + sub)
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_status() {
        let both = RouteStats::default();
        both.record(true, &Method::GET, 200, Duration::from_millis(1));
        let s = both.entry(false);
        s.record(&Method::GET, 200, Duration::from_millis(1));
        s.record(&Method::GET, 200, Duration::from_millis(1));
        s.record(&Method::POST, 503, Duration::from_millis(2));
        assert_eq!(both.entry(true).requests(), vec![("GET", Some(200), 1)]);
        let mut r = s.requests();
        r.sort();
        assert_eq!(r, vec![("GET", Some(200), 2), ("POST", Some(503), 1)]);
        let (buckets, count, sum) = s.durations();
        assert_eq!(count, 3);
        assert_eq!(buckets.iter().sum::<u64>(), 3);
        assert!((sum - 0.004).abs() < 1e-9);
    }

    #[test]
    fn totals_subtract_into_windows_with_fine_percentiles() {
        let s = EntryStats::default();
        let mut before = Totals::default();
        s.add_totals(&mut before);
        for _ in 0..98 {
            s.record(&Method::GET, 200, Duration::from_micros(100));
        }
        s.record(&Method::GET, 502, Duration::from_millis(40));
        s.record(&Method::GET, 404, Duration::from_millis(40));
        let mut after = Totals::default();
        s.add_totals(&mut after);
        let window = after.since(&before);
        assert_eq!(window.requests, 100);
        assert_eq!(window.server_errors, 1);
        assert_eq!(window.client_errors, 1);
        // 100 µs falls in the first fine bucket (0..125 µs), finer than the 0.5 ms
        // Prometheus bucket.
        let p50 = window.quantile(0.5).expect("requests");
        assert!(p50 > 0.0 && p50 <= 0.000125, "{p50}");
        let p99 = window.quantile(0.99).expect("requests");
        assert!(p99 > 0.025 && p99 <= 0.05, "{p99}");
        assert_eq!(Totals::default().quantile(0.5), None);
        // The Prometheus buckets are the sums of the fine ones.
        let (buckets, count, _) = s.durations();
        assert_eq!(count, 100);
        assert_eq!(buckets[0], 98);
        assert_eq!(buckets[6], 2);
    }

    #[test]
    fn fine_bounds_end_on_the_prometheus_bounds() {
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            let fine = fine_upper_bound(i * SUB_BUCKETS + SUB_BUCKETS - 1);
            assert!((fine - bound).abs() < 1e-12, "{fine} vs {bound}");
            assert_eq!(fine_bucket(*bound), Some(i * SUB_BUCKETS + SUB_BUCKETS - 1));
        }
        assert_eq!(fine_bucket(10.0), None);
        assert_eq!(fine_bucket(0.0), Some(0));
    }

    #[test]
    fn overflow_beyond_slots_is_counted_not_lost() {
        let s = EntryStats::default();
        for status in 100..(100 + SLOTS as u16 + 5) {
            s.record(&Method::GET, status, Duration::ZERO);
        }
        let total: u64 = s.requests().iter().map(|r| r.2).sum();
        assert_eq!(total, SLOTS as u64 + 5);
    }
}
