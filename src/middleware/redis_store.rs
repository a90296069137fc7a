//! Token buckets kept in Redis, shared by every sluice instance that uses the
//! same Redis: `rateLimit.redis` (Traefik OSS semantics), and reusable by other
//! limiters (the nginx `limit-rps`/`limit-rpm` annotations).
//!
//! # API
//!
//! ```ignore
//! use sluice::middleware::redis_store::{RedisOptions, RedisStore, Decision};
//!
//! let store = RedisStore::new(RedisOptions {
//!     endpoints: vec!["10.0.0.5:6379".into()],
//!     ..RedisOptions::default()
//! })?;                                   // Result<RedisStore, String>: no I/O yet
//! // One atomic script, one round trip: take a token from bucket `key`, which
//! // refills at `rate` tokens per second up to `burst` tokens.
//! match store.allow(b"nginx:ns/ing:192.0.2.1", 10.0, 20.0).await {
//!     Ok(Decision { allowed: true, .. }) => { /* serve */ }
//!     Ok(Decision { allowed: false, wait, .. }) => { /* 429, retry in `wait` */ }
//!     Err(_) => { /* Redis unreachable: use a local limiter for this request */ }
//! }
//! ```
//!
//! - [`RedisStore::allow`]`(&self, key: &[u8], rate: f64, burst: f64) -> Result<Decision, RedisUnavailable>`
//!   never waits for a token (nginx `nodelay`); [`RedisStore::allow_with_delay`]
//!   takes a `max_delay` too: a token at most that far away is *reserved* and
//!   `Decision { allowed: true, wait }` tells the caller to sleep `wait` before
//!   serving (Traefik's behaviour).
//! - The key is used verbatim: callers prefix it with their own identity so two
//!   limiters never share buckets (`rateLimit` uses `sluice:rate:<ns>/<name>:`).
//! - `Err(RedisUnavailable)` means Redis did not answer in time (or at all): the
//!   store has already counted it in [`REDIS_FALLBACKS`]
//!   (`sluice_rate_limit_redis_fallbacks_total`) and logged the outage (a
//!   warning once when it starts, an info line once when Redis answers again);
//!   the caller falls back to its per-instance limiter for that request.
//! - A request never waits longer than `read_timeout` in total (connecting
//!   included; only the first connection is waited for, not reconnections
//!   during an outage). A failed connection is retried lazily, by a request
//!   after a backoff (100 ms doubling up to 2 s), in a spawned task: requests
//!   in the meantime go straight to the fallback. Nothing here panics, and no lock is
//!   held across an `.await`.
//!
//! # Bucket maths
//!
//! As Traefik's Redis limiter: the bucket is a hash `{last, tokens}` (time in
//! microseconds of the calling instance's clock, rate in tokens per
//! microsecond); the script refills it for the time elapsed since `last`
//! (capped at `burst`), takes a token, and when that leaves it negative
//! computes the wait; a wait longer than `max_delay` gives the token back and
//! refuses. The key expires once a full refill would have happened anyway. It
//! runs as `EVALSHA`, with `EVAL` when the server does not know the script yet.
//!
//! # Connections
//!
//! Requests are pipelined over multiplexed connections. `poolSize` (default 1,
//! at most [`MAX_CONNECTIONS`], and at most `maxActiveConns` when that is set)
//! is the number of such connections, used round-robin; `minIdleConns` of them
//! are opened when the store is built (if a runtime is running), the others on
//! first use. Several `endpoints` are tried in order when connecting (the first
//! one answering is used): Redis Cluster slot routing and Sentinel are not
//! implemented.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo};
use tokio::sync::watch;
use tokio::time::Instant;

/// Requests a Redis-backed limiter answered locally because Redis did not
/// (`sluice_rate_limit_redis_fallbacks_total`).
pub static REDIS_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// The value of [`REDIS_FALLBACKS`].
pub fn redis_fallbacks() -> u64 {
    REDIS_FALLBACKS.load(Ordering::Relaxed)
}

/// At most this many connections per store.
pub const MAX_CONNECTIONS: usize = 64;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The token-bucket script (see the module doc). ARGV: rate (tokens/µs),
/// burst, ttl (s), now (µs), max_delay (µs). Returns {allowed, wait µs, tokens}.
const SCRIPT: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local max_delay = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'last', 'tokens')
local last = tonumber(state[1])
local tokens = tonumber(state[2])
if last == nil or tokens == nil then
  last = now
  tokens = burst
end
local elapsed = now - last
if elapsed < 0 then
  elapsed = 0
else
  last = now
end
tokens = math.min(burst, tokens + elapsed * rate) - 1
local allowed = 1
local wait = 0
if tokens < 0 then
  wait = -tokens / rate
  if wait > max_delay then
    tokens = tokens + 1
    allowed = 0
  end
end
redis.call('HSET', KEYS[1], 'last', last, 'tokens', tokens)
redis.call('EXPIRE', KEYS[1], ttl)
return {allowed, tostring(wait), tostring(tokens)}
";

fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| redis::Script::new(SCRIPT).get_hash().to_owned())
}

/// TLS towards Redis (`rediss`). PEM contents, already read.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// CA bundle to verify the server with (None: the system roots).
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and key for mutual TLS.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

/// How to reach Redis. Zero durations and counts mean the defaults.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `host:port` list, tried in order (default `127.0.0.1:6379`).
    pub endpoints: Vec<String>,
    /// ACL user (`AUTH user password`).
    pub username: Option<String>,
    /// Password (`AUTH password` alone without a user).
    pub password: Option<String>,
    /// Database number (`SELECT`).
    pub db: i64,
    /// Number of multiplexed connections (default 1).
    pub pool_size: usize,
    /// Connections opened when the store is built.
    pub min_idle_conns: usize,
    /// Upper bound on connections (0: none besides [`MAX_CONNECTIONS`]).
    pub max_active_conns: usize,
    /// Connecting, per endpoint (default 5 s).
    pub dial_timeout: Duration,
    /// The most a request waits for Redis, connecting included (default 3 s).
    pub read_timeout: Duration,
    /// Accepted for Traefik compatibility; writes count against `read_timeout`.
    pub write_timeout: Duration,
    /// TLS, if the endpoints speak it.
    pub tls: Option<RedisTls>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["127.0.0.1:6379".to_owned()],
            username: None,
            password: None,
            db: 0,
            pool_size: 0,
            min_idle_conns: 0,
            max_active_conns: 0,
            dial_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(3),
            tls: None,
        }
    }
}

/// What Redis said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may go on (after `wait`).
    pub allowed: bool,
    /// Allowed: how long to wait for the reserved token (zero if it was there).
    /// Refused: how long until a token would be there.
    pub wait: Duration,
    /// Tokens left in the bucket (negative while tokens are reserved ahead).
    pub remaining: f64,
}

/// Redis did not answer in time: use a local limiter for this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisUnavailable(pub String);

/// Splits `host:port` (`[v6]:port` too) and checks both halves.
pub fn parse_endpoint(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {text:?} is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty()
        || host.contains(['/', ' ', '@'])
        || (host.contains(':') && !text.starts_with('['))
    {
        return Err(format!("endpoint {text:?} has no valid host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("endpoint {text:?} has no valid port"))?;
    Ok((host.to_owned(), port))
}

/// A connection slot of the pool.
enum Slot {
    Ready(MultiplexedConnection),
    /// A spawned task is connecting; it flips the flag when done.
    Connecting(watch::Receiver<bool>),
    /// No connection; the next attempt not before `retry_at`.
    Idle {
        retry_at: Instant,
        backoff: Duration,
    },
}

struct Inner {
    clients: Vec<Client>,
    endpoints: String,
    dial_timeout: Duration,
    read_timeout: Duration,
    slots: Box<[Mutex<Slot>]>,
    next: AtomicUsize,
    down: AtomicBool,
}

/// Buckets in Redis; cheap to clone (one shared pool).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoints", &self.inner.endpoints)
            .field("connections", &self.inner.slots.len())
            .finish()
    }
}

/// The store `--rate-limit-redis` names, shared by ingress-nginx's
/// `limit-rps`/`limit-rpm` on every route (set once at start).
static GLOBAL: std::sync::OnceLock<RedisStore> = std::sync::OnceLock::new();

/// Installs the `--rate-limit-redis` store; a second call is ignored (and
/// says so by returning false).
pub fn install_global(store: RedisStore) -> bool {
    GLOBAL.set(store).is_ok()
}

/// The `--rate-limit-redis` store, when one is configured.
pub fn global() -> Option<&'static RedisStore> {
    GLOBAL.get()
}

impl RedisStore {
    /// Checks `options` and prepares the clients; connects only later (or in
    /// the background for `min_idle_conns`, when a tokio runtime is running).
    pub fn new(options: RedisOptions) -> Result<Self, String> {
        let endpoints = if options.endpoints.is_empty() {
            RedisOptions::default().endpoints
        } else {
            options.endpoints.clone()
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(options.db);
        if let Some(user) = options.username.as_deref().filter(|u| !u.is_empty()) {
            settings = settings.set_username(user);
        }
        if let Some(password) = options.password.as_deref().filter(|p| !p.is_empty()) {
            settings = settings.set_password(password);
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            let (host, port) = parse_endpoint(endpoint)?;
            let addr = match &options.tls {
                None => ConnectionAddr::Tcp(host, port),
                Some(tls) => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: tls.insecure_skip_verify,
                    tls_params: None,
                },
            };
            let info = addr
                .into_connection_info()
                .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?
                .set_redis_settings(settings.clone());
            let client = match &options.tls {
                Some(tls) if tls.ca.is_some() || tls.client_cert.is_some() => {
                    let certs = redis::TlsCertificates {
                        client_tls: tls.client_cert.as_ref().map(|(cert, key)| {
                            redis::ClientTlsConfig {
                                client_cert: cert.clone(),
                                client_key: key.clone(),
                            }
                        }),
                        root_cert: if tls.insecure_skip_verify {
                            None
                        } else {
                            tls.ca.clone()
                        },
                    };
                    Client::build_with_tls(info, certs)
                }
                _ => Client::open(info),
            }
            .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
            clients.push(client);
        }
        let nonzero = |d: Duration, default: Duration| if d.is_zero() { default } else { d };
        let defaults = RedisOptions::default();
        let mut size = options.pool_size.max(1);
        if options.max_active_conns > 0 {
            size = size.min(options.max_active_conns);
        }
        let size = size.min(MAX_CONNECTIONS);
        let now = Instant::now();
        let inner = Arc::new(Inner {
            clients,
            endpoints: endpoints.join(","),
            dial_timeout: nonzero(options.dial_timeout, defaults.dial_timeout),
            read_timeout: nonzero(options.read_timeout, defaults.read_timeout),
            slots: (0..size)
                .map(|_| {
                    Mutex::new(Slot::Idle {
                        retry_at: now,
                        backoff: FIRST_BACKOFF,
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            for index in 0..options.min_idle_conns.min(size) {
                let _ = start_connect(&inner, index);
            }
        }
        Ok(Self { inner })
    }

    /// Takes a token from bucket `key` (refilled at `rate` per second up to
    /// `burst`), refusing rather than waiting when it is empty.
    pub async fn allow(
        &self,
        key: &[u8],
        rate: f64,
        burst: f64,
    ) -> Result<Decision, RedisUnavailable> {
        self.allow_with_delay(key, rate, burst, Duration::ZERO)
            .await
    }

    /// As [`Self::allow`], but a token at most `max_delay` away is reserved
    /// (`allowed` with a non-zero `wait`).
    pub async fn allow_with_delay(
        &self,
        key: &[u8],
        rate: f64,
        burst: f64,
        max_delay: Duration,
    ) -> Result<Decision, RedisUnavailable> {
        if rate.is_nan() || rate <= 0.0 || rate.is_infinite() {
            return Ok(Decision {
                allowed: true,
                wait: Duration::ZERO,
                remaining: burst,
            });
        }
        let deadline = Instant::now() + self.inner.read_timeout;
        let result = self
            .evaluate(key, rate, burst.max(1.0), max_delay, deadline)
            .await;
        match result {
            Ok(decision) => {
                if self.inner.down.load(Ordering::Relaxed)
                    && self.inner.down.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(endpoints = %self.inner.endpoints, "rateLimit: Redis answers again; limits are shared again");
                }
                Ok(decision)
            }
            Err(e) => {
                REDIS_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                if !self.inner.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(endpoints = %self.inner.endpoints, error = %e.0, "rateLimit: Redis unavailable; limiting per instance until it answers");
                }
                Err(e)
            }
        }
    }

    async fn evaluate(
        &self,
        key: &[u8],
        rate: f64,
        burst: f64,
        max_delay: Duration,
        deadline: Instant,
    ) -> Result<Decision, RedisUnavailable> {
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.slots.len();
        let mut conn = self.connection(index, deadline).await?;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()) as f64;
        let ttl = ((burst / rate).ceil() as u64).saturating_add(1).max(1);
        let max_delay_us = max_delay.as_micros() as f64;
        let rate_us = rate / 1e6;
        let run = |name: &'static str, body: &'static str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body)
                .arg(1)
                .arg(key)
                .arg(rate_us)
                .arg(burst)
                .arg(ttl)
                .arg(now_us)
                .arg(max_delay_us);
            cmd
        };
        let call = async {
            let first = run("EVALSHA", script_hash())
                .query_async::<(i64, String, String)>(&mut conn)
                .await;
            match first {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    run("EVAL", SCRIPT)
                        .query_async::<(i64, String, String)>(&mut conn)
                        .await
                }
                other => other,
            }
        };
        let answer = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.drop_connection(index);
                return Err(RedisUnavailable(e.to_string()));
            }
            Err(_) => {
                self.drop_connection(index);
                return Err(RedisUnavailable("timed out".to_owned()));
            }
        };
        let (allowed, wait, remaining) = answer;
        let wait_us: f64 = wait.parse().unwrap_or(0.0);
        Ok(Decision {
            allowed: allowed != 0,
            wait: Duration::try_from_secs_f64(wait_us.max(0.0) / 1e6).unwrap_or(Duration::MAX),
            remaining: remaining.parse().unwrap_or(0.0),
        })
    }

    /// Slot `index`'s connection, connecting (at most until `deadline`) if due.
    async fn connection(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<MultiplexedConnection, RedisUnavailable> {
        let pending = match &*lock(&self.inner.slots[index]) {
            Slot::Ready(conn) => return Ok(conn.clone()),
            Slot::Connecting(rx) => Some(rx.clone()),
            Slot::Idle { retry_at, .. } => {
                if Instant::now() < *retry_at {
                    return Err(RedisUnavailable("reconnecting (backing off)".to_owned()));
                }
                None
            }
        };
        let mut done = match pending {
            Some(rx) => rx,
            None => start_connect(&self.inner, index)
                .ok_or_else(|| RedisUnavailable("no async runtime".to_owned()))?,
        };
        if self.inner.down.load(Ordering::Relaxed) {
            // During an outage nobody waits for a reconnection: a hung Redis
            // would otherwise cost every request its whole read timeout.
            return Err(RedisUnavailable("reconnecting".to_owned()));
        }
        let waited = tokio::time::timeout_at(deadline, done.wait_for(|finished| *finished)).await;
        if waited.is_err() {
            return Err(RedisUnavailable("timed out connecting".to_owned()));
        }
        match &*lock(&self.inner.slots[index]) {
            Slot::Ready(conn) => Ok(conn.clone()),
            _ => Err(RedisUnavailable(format!(
                "cannot connect to {}",
                self.inner.endpoints
            ))),
        }
    }

    /// Forgets a failed connection; the next request reconnects.
    fn drop_connection(&self, index: usize) {
        let mut slot = lock(&self.inner.slots[index]);
        if matches!(*slot, Slot::Ready(_)) {
            *slot = Slot::Idle {
                retry_at: Instant::now(),
                backoff: FIRST_BACKOFF,
            };
        }
    }
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts connecting slot `index` in a spawned task unless it is already
/// connected or connecting; the receiver turns true when the attempt is over.
fn start_connect(inner: &Arc<Inner>, index: usize) -> Option<watch::Receiver<bool>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let mut slot = lock(&inner.slots[index]);
    let backoff = match &*slot {
        Slot::Ready(_) => {
            let (_, rx) = watch::channel(true);
            return Some(rx);
        }
        Slot::Connecting(rx) => return Some(rx.clone()),
        Slot::Idle { backoff, .. } => *backoff,
    };
    let (tx, rx) = watch::channel(false);
    *slot = Slot::Connecting(rx.clone());
    drop(slot);
    let inner = Arc::clone(inner);
    handle.spawn(async move {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(inner.dial_timeout))
            .set_response_timeout(Some(inner.read_timeout));
        let mut connected = None;
        let mut last_error = String::new();
        for client in &inner.clients {
            let attempt = tokio::time::timeout(
                inner.dial_timeout + Duration::from_millis(100),
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await;
            match attempt {
                Ok(Ok(conn)) => {
                    connected = Some(conn);
                    break;
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "timed out".to_owned(),
            }
        }
        let next = match connected {
            Some(conn) => Slot::Ready(conn),
            None => {
                tracing::debug!(endpoints = %inner.endpoints, error = %last_error, "rateLimit: cannot connect to Redis");
                Slot::Idle {
                    retry_at: Instant::now() + backoff,
                    backoff: (backoff * 2).min(MAX_BACKOFF),
                }
            }
        };
        *lock(&inner.slots[index]) = next;
        let _ = tx.send(true);
    });
    Some(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        assert_eq!(parse_endpoint("redis:6379"), Ok(("redis".to_owned(), 6379)));
        assert_eq!(parse_endpoint("[::1]:7000"), Ok(("::1".to_owned(), 7000)));
        for bad in [
            "redis",
            "redis:",
            "redis:0",
            "redis:99999",
            ":6379",
            "::1:6379",
            "redis://a:1",
            "a b:1",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn options_are_checked_without_connecting() {
        assert!(RedisStore::new(RedisOptions::default()).is_ok());
        let bad = RedisOptions {
            endpoints: vec!["nope".to_owned()],
            ..RedisOptions::default()
        };
        assert!(RedisStore::new(bad).is_err());
        let pooled = RedisStore::new(RedisOptions {
            pool_size: 500,
            max_active_conns: 3,
            ..RedisOptions::default()
        })
        .expect("store");
        assert_eq!(pooled.inner.slots.len(), 3);
    }

    #[tokio::test]
    async fn a_hung_redis_costs_one_read_timeout_not_one_per_request() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let store = RedisStore::new(RedisOptions {
            endpoints: vec![addr.to_string()],
            read_timeout: Duration::from_millis(200),
            dial_timeout: Duration::from_secs(2),
            ..RedisOptions::default()
        })
        .expect("store");
        let started = std::time::Instant::now();
        let first = store.allow(b"k", 1.0, 1.0).await;
        assert!(first.is_err());
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
        let started = std::time::Instant::now();
        for _ in 0..20 {
            assert!(store.allow(b"k", 1.0, 1.0).await.is_err());
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        held.abort();
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_quickly_and_is_counted() {
        // A port nothing listens on: connection refused at once.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let store = RedisStore::new(RedisOptions {
            endpoints: vec![format!("127.0.0.1:{port}")],
            read_timeout: Duration::from_millis(500),
            ..RedisOptions::default()
        })
        .expect("store");
        let before = redis_fallbacks();
        let started = std::time::Instant::now();
        for _ in 0..5 {
            assert!(store.allow(b"k", 1.0, 1.0).await.is_err());
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(redis_fallbacks() >= before + 5);
    }
}
