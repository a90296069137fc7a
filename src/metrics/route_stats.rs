//! Per-route request counters, updated on the request path without locks or allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

#[derive(Debug, Default)]
struct Slot {
    /// `(method index + 1) << 16 | status`; 0 while the slot is free.
    key: AtomicU32,
    count: AtomicU64,
}

/// Requests of one route, per entrypoint (plain HTTP and HTTPS).
#[derive(Debug, Default)]
pub struct RouteStats {
    web: EntryStats,
    websecure: EntryStats,
}

impl RouteStats {
    /// Counts one finished request that arrived over TLS (`tls`) or plain HTTP.
    pub fn record(&self, tls: bool, method: &Method, status: u16, elapsed: Duration) {
        self.entry(tls).record(method, status, elapsed);
    }

    /// The counters of one entrypoint.
    pub fn entry(&self, tls: bool) -> &EntryStats {
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
#[derive(Debug, Default)]
pub struct EntryStats {
    slots: [Slot; SLOTS],
    overflow: AtomicU64,
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl EntryStats {
    /// Counts one finished request.
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        self.count_status(method_index(method), status);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
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
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }
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
    fn overflow_beyond_slots_is_counted_not_lost() {
        let s = EntryStats::default();
        for status in 100..(100 + SLOTS as u16 + 5) {
            s.record(&Method::GET, status, Duration::ZERO);
        }
        let total: u64 = s.requests().iter().map(|r| r.2).sum();
        assert_eq!(total, SLOTS as u64 + 5);
    }
}
