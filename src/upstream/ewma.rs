//! `load-balance: ewma`, as ingress-nginx's `balancer/ewma.lua` (after
//! Finagle's PeakEwma): each endpoint has an exponentially weighted moving
//! average of its response times, decayed by the time since it was last
//! updated (`weight = e^(-Δt / 10 s)`); a request goes to the better of two
//! endpoints drawn at random ("power of two choices").
//!
//! As in ingress-nginx: an endpoint never measured scores 0 (so it is
//! tried), an endpoint's score when picking is its average decayed to now
//! (it drifts back towards 0 while unused, so a slow endpoint is retried
//! after a while), time is kept in milliseconds, and endpoints that join get
//! the mean of the others' averages ("slow start") instead of 0.
//!
//! Each endpoint's state is one `AtomicU64` (the average as `f32` and the
//! millisecond of its last update), updated by compare-and-swap: no lock.
//! The table of endpoints is swapped off the request path when the endpoints
//! change; scores of endpoints that stay are kept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::Rng;

/// ingress-nginx's `DECAY_TIME`, in seconds.
pub const DECAY_SECONDS: f64 = 10.0;

/// One endpoint's score: the average (seconds, `f32` bits) in the high half,
/// the millisecond it was last updated in the low half (0: never).
#[derive(Debug, Default)]
struct Score(AtomicU64);

/// Milliseconds since the first call, on 32 bits (wrapping after 49 days;
/// only differences are used), never 0.
fn now_ms() -> u32 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    // Truncation is the point: the clock wraps.
    #[allow(clippy::cast_possible_truncation)]
    let ms = ms as u32;
    ms.max(1)
}

fn pack(average: f64, at: u32) -> u64 {
    #[allow(clippy::cast_possible_truncation)]
    let average = average as f32;
    (u64::from(average.to_bits()) << 32) | u64::from(at)
}

fn unpack(packed: u64) -> (f64, u32) {
    let average = f32::from_bits((packed >> 32) as u32);
    #[allow(clippy::cast_possible_truncation)]
    let at = packed as u32;
    (f64::from(average), at)
}

/// nginx's `decay_ewma`: the average decayed over the time since `at`,
/// then moved towards `rtt` by what decayed.
fn decay(average: f64, at: u32, rtt: f64, now: u32) -> f64 {
    if at == 0 {
        // Never touched: nginx's last-touched time is 0, the weight e^-∞.
        return rtt;
    }
    let elapsed = f64::from(now.wrapping_sub(at)) / 1000.0;
    let weight = (-elapsed / DECAY_SECONDS).exp();
    average * weight + rtt * (1.0 - weight)
}

impl Score {
    /// With a given average, as of `at`.
    fn with(average: f64, at: u32) -> Self {
        Self(AtomicU64::new(pack(average, at)))
    }

    /// The average decayed to `now` (nginx's `score`).
    fn score(&self, now: u32) -> f64 {
        let (average, at) = unpack(self.0.load(Ordering::Relaxed));
        if at == 0 {
            return 0.0;
        }
        decay(average, at, 0.0, now)
    }

    /// Folds one response time in.
    fn update(&self, rtt: f64, now: u32) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let (average, at) = unpack(current);
            let next = pack(decay(average, at, rtt, now), now);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The stored (not decayed) average, if the endpoint was ever measured.
    fn stored(&self) -> Option<f64> {
        let (average, at) = unpack(self.0.load(Ordering::Relaxed));
        (at != 0).then_some(average)
    }
}

/// The endpoints and their scores, sorted by address.
type Table = Box<[(SocketAddr, Arc<Score>)]>;

/// The EWMA balancer of one backend: a score per endpoint.
#[derive(Debug)]
pub struct Ewma {
    table: ArcSwap<Table>,
}

impl Ewma {
    /// A balancer over `addrs`, none of them measured yet.
    pub fn new(addrs: &[SocketAddr]) -> Self {
        let this = Self {
            table: ArcSwap::from_pointee(Box::default()),
        };
        this.sync(addrs);
        this
    }

    /// Follows an endpoint change (off the request path): endpoints that stay
    /// keep their scores, endpoints that left are forgotten, and endpoints
    /// that joined start at the mean of the others' averages.
    pub fn sync(&self, addrs: &[SocketAddr]) {
        let old = self.table.load();
        let mut addrs = addrs.to_vec();
        addrs.sort_unstable();
        addrs.dedup();
        let kept = |addr: &SocketAddr| {
            old.binary_search_by_key(addr, |(a, _)| *a)
                .ok()
                .map(|i| old[i].1.clone())
        };
        let measured: Vec<f64> = addrs
            .iter()
            .filter_map(kept)
            .filter_map(|score| score.stored())
            .collect();
        let slow_start = (!measured.is_empty()).then(|| {
            #[allow(clippy::cast_precision_loss)]
            let n = measured.len() as f64;
            measured.iter().sum::<f64>() / n
        });
        let now = now_ms();
        let table: Table = addrs
            .iter()
            .map(|addr| {
                let score = kept(addr).unwrap_or_else(|| {
                    Arc::new(slow_start.map_or_else(Score::default, |avg| Score::with(avg, now)))
                });
                (*addr, score)
            })
            .collect();
        self.table.store(Arc::new(table));
    }

    /// The better of two endpoints drawn at random (the only one when there
    /// is one); `None` without endpoints.
    pub fn pick(&self) -> Option<SocketAddr> {
        let table = self.table.load();
        match table.len() {
            0 => None,
            1 => Some(table[0].0),
            n => {
                let mut rng = rand::rng();
                let first = rng.random_range(0..n);
                // A second, different endpoint.
                let second = (first + rng.random_range(1..n)) % n;
                let now = now_ms();
                let (a, b) = (&table[first], &table[second]);
                if b.1.score(now) < a.1.score(now) {
                    Some(b.0)
                } else {
                    Some(a.0)
                }
            }
        }
    }

    /// Folds the response time of one request to `endpoint` into its
    /// average; an address that is no longer an endpoint is ignored.
    pub fn record(&self, endpoint: SocketAddr, rtt: Duration) {
        let table = self.table.load();
        if let Ok(i) = table.binary_search_by_key(&endpoint, |(a, _)| *a) {
            table[i].1.update(rtt.as_secs_f64(), now_ms());
        }
    }

    /// The current score (seconds, decayed to now) of `endpoint`.
    pub fn score(&self, endpoint: SocketAddr) -> Option<f64> {
        let table = self.table.load();
        let i = table.binary_search_by_key(&endpoint, |(a, _)| *a).ok()?;
        Some(table[i].1.score(now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 80))
    }

    #[test]
    fn decay_follows_nginx() {
        // Never touched: the first measure is the average.
        assert_eq!(decay(0.0, 0, 0.25, 5000), 0.25);
        // No time passed (same millisecond): the weight is 1, nothing moves.
        assert_eq!(decay(0.5, 100, 2.0, 100), 0.5);
        // One decay time later: weight e^-1.
        let d = decay(1.0, 1000, 0.0, 11_000);
        assert!((d - (-1.0f64).exp()).abs() < 1e-9, "{d}");
        let d = decay(1.0, 1000, 3.0, 11_000);
        let w = (-1.0f64).exp();
        assert!((d - (w + 3.0 * (1.0 - w))).abs() < 1e-9, "{d}");
        // Across the clock's wrap.
        let d = decay(1.0, u32::MAX - 499, 0.0, 500);
        assert!((d - (-0.1f64).exp()).abs() < 1e-6, "{d}");
    }

    #[test]
    fn packing_round_trips() {
        let (average, at) = unpack(pack(0.125, 77));
        assert_eq!((average, at), (0.125, 77));
    }

    #[test]
    fn an_unmeasured_endpoint_scores_zero_and_one_measure_sets_it() {
        let e = Ewma::new(&[addr(1)]);
        assert_eq!(e.score(addr(1)), Some(0.0));
        e.record(addr(1), Duration::from_millis(200));
        let s = e.score(addr(1)).expect("an endpoint");
        assert!(s > 0.19 && s <= 0.2 + 1e-6, "{s}");
        assert_eq!(e.score(addr(9)), None);
        // Not an endpoint: ignored.
        e.record(addr(9), Duration::from_secs(1));
        assert_eq!(e.pick(), Some(addr(1)));
        assert_eq!(Ewma::new(&[]).pick(), None);
    }

    #[test]
    fn two_choices_avoid_the_slow_endpoint() {
        let addrs = [addr(1), addr(2), addr(3)];
        let e = Ewma::new(&addrs);
        e.record(addr(1), Duration::from_millis(1));
        e.record(addr(2), Duration::from_millis(2));
        e.record(addr(3), Duration::from_millis(500));
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let picked = e.pick().expect("an endpoint");
            let i = addrs.iter().position(|a| *a == picked).expect("known");
            counts[i] += 1;
        }
        // The slow one is never the better of two.
        assert_eq!(counts[2], 0, "{counts:?}");
        // The fastest wins every draw it is in (2 of the 3 pairs), the
        // second every other one.
        assert!(counts[0] > 1800 && counts[0] < 2200, "{counts:?}");
        assert!(counts[1] > 800 && counts[1] < 1200, "{counts:?}");
    }

    #[test]
    fn endpoints_that_join_start_at_the_mean_and_leavers_are_forgotten() {
        let e = Ewma::new(&[addr(1), addr(2)]);
        e.record(addr(1), Duration::from_millis(100));
        e.record(addr(2), Duration::from_millis(300));
        e.sync(&[addr(2), addr(3), addr(1)]);
        let s3 = e.score(addr(3)).expect("joined");
        assert!(
            s3 > 0.19 && s3 <= 0.2 + 1e-6,
            "slow start at the mean: {s3}"
        );
        let s1 = e.score(addr(1)).expect("stayed");
        assert!(s1 > 0.09 && s1 <= 0.1 + 1e-6, "kept: {s1}");
        e.sync(&[addr(3)]);
        assert_eq!(e.score(addr(1)), None);
        assert_eq!(e.pick(), Some(addr(3)));
        // Nothing measured: newcomers score 0.
        let fresh = Ewma::new(&[addr(1)]);
        fresh.sync(&[addr(1), addr(2)]);
        assert_eq!(fresh.score(addr(2)), Some(0.0));
    }

    #[test]
    fn concurrent_updates_keep_a_whole_score() {
        let e = Arc::new(Ewma::new(&[addr(1)]));
        let threads: Vec<_> = [10u64, 90]
            .into_iter()
            .map(|ms| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        e.record(addr(1), Duration::from_millis(ms));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        // Every update read and wrote the average and its time together: the
        // score is a mix of the two response times, never a torn value.
        let s = e.score(addr(1)).expect("endpoint");
        assert!((0.0099..=0.0901).contains(&s), "{s}");
    }
}
