//! `nginxLimit`: ingress-nginx's `limit-rps`, `limit-rpm`,
//! `limit-connections` and `limit-allowlist`/`limit-whitelist`.
//!
//! Per client IP (the connection's address, nginx's `$binary_remote_addr`):
//!
//! - `rps`/`rpm`: nginx's `limit_req ... burst=<rate × multiplier> nodelay`,
//!   a leaky bucket in thousandths of a request, computed as nginx does:
//!   `excess = max(0, excess - rate × elapsed + 1)`, starting at 0; a request
//!   whose excess would pass `burst` is refused (and not counted). So an idle
//!   client gets `1 + burst` requests at once, then `rate`.
//! - `connections`: nginx's `limit_conn`: requests of the client in progress
//!   at once (counted until the response head is back).
//! - Clients in `allowlist` are never limited.
//!
//! Refusals answer 503 (ingress-nginx's `limit-req-status-code` and
//! `limit-conn-status-code` defaults). State is per replica and lives in the
//! built middleware, which the builder keeps across reloads while the
//! annotations are unchanged.
//! TODO: a shared store (Redis) for limits across replicas.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use http::{Request, StatusCode};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::source::{parse_net, reply};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// Clients remembered per bucket set before idle ones are dropped.
const PURGE_AT: usize = 16_384;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    rps: u64,
    #[serde(default)]
    rpm: u64,
    #[serde(default)]
    burst_multiplier: Option<u64>,
    #[serde(default)]
    connections: u64,
    #[serde(default)]
    allowlist: Vec<String>,
    /// The status of a `limit-rps`/`limit-rpm` refusal
    /// (`limit-req-status-code`), 503 when unset.
    #[serde(default)]
    status: Option<u16>,
    /// The status of a `limit-connections` refusal
    /// (`limit-conn-status-code`), 503 when unset.
    #[serde(default)]
    connections_status: Option<u16>,
}

/// Builds an `nginxLimit` middleware.
pub(crate) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let multiplier = config.burst_multiplier.unwrap_or(5);
    let allowlist = config
        .allowlist
        .iter()
        .map(|n| parse_net(n).map_err(|e| cx.invalid(format!("limit-allowlist: {e}"))))
        .collect::<Result<Vec<IpNet>, _>>()?;
    let bucket = |rate: u64, per_secs: f64| {
        (rate > 0).then(|| Bucket {
            // Thousandths of a request per second.
            rate: rate as f64 * 1000.0 / per_secs,
            burst: rate.saturating_mul(multiplier) as f64 * 1000.0,
            clients: Mutex::new(HashMap::new()),
        })
    };
    let buckets: Vec<Bucket> = [bucket(config.rps, 1.0), bucket(config.rpm, 60.0)]
        .into_iter()
        .flatten()
        .collect();
    if buckets.is_empty() && config.connections == 0 {
        return Err(cx.invalid("nginxLimit needs rps, rpm or connections".to_owned()));
    }
    let status = |code: Option<u16>| match code {
        None => Ok(StatusCode::SERVICE_UNAVAILABLE),
        Some(code) => StatusCode::from_u16(code)
            .map_err(|_| cx.invalid(format!("limit status {code} is not an HTTP status"))),
    };
    let (status, connections_status) = (status(config.status)?, status(config.connections_status)?);
    Ok(Arc::new(NginxLimit {
        status,
        connections_status,
        buckets,
        connections: config.connections,
        in_flight: Arc::new(Mutex::new(HashMap::new())),
        allowlist,
    }))
}

#[derive(Debug)]
struct Bucket {
    /// Drain rate in thousandths of a request per second.
    rate: f64,
    /// Burst in thousandths of a request.
    burst: f64,
    /// Client → (excess in thousandths, last accepted request).
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Bucket {
    /// The excess `ip` would have after a request now; `None` when the
    /// request must be refused.
    fn check(&self, ip: IpAddr, now: Instant) -> Option<f64> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((excess, last)) = clients.get(&ip) else {
            return Some(0.0);
        };
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        // nginx clamps after adding this request: a drained bucket starts
        // again at 0, so `1 + burst` pass at once again.
        let next = (*excess - self.rate * elapsed + 1000.0).max(0.0);
        (next <= self.burst).then_some(next)
    }

    /// Records an admitted request of `ip`.
    fn commit(&self, ip: IpAddr, now: Instant, excess: f64) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= PURGE_AT {
            let rate = self.rate;
            clients.retain(|_, (excess, last)| {
                *excess - rate * now.saturating_duration_since(*last).as_secs_f64() + 1000.0 > 0.0
            });
        }
        clients.insert(ip, (excess, now));
    }

    /// Whether `ip` may make a request now (counting it when it may).
    #[cfg(test)]
    fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let Some(excess) = self.check(ip, now) else {
            return false;
        };
        self.commit(ip, now, excess);
        true
    }
}

/// The built `nginxLimit`.
#[derive(Debug)]
struct NginxLimit {
    /// What a request over the rate answers.
    status: StatusCode,
    /// What a request over the connection limit answers.
    connections_status: StatusCode,
    buckets: Vec<Bucket>,
    connections: u64,
    in_flight: Arc<Mutex<HashMap<IpAddr, u64>>>,
    allowlist: Vec<IpNet>,
}

/// Releases one in-flight slot when the request is done (or dropped).
struct Slot {
    ip: IpAddr,
    table: Arc<Mutex<HashMap<IpAddr, u64>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = table.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

impl NginxLimit {
    /// `limit-rps`/`limit-rpm` through the `--rate-limit-redis` store: one
    /// bucket per Ingress, limit and client shared by every replica; the
    /// replica's own bucket decides while Redis does not answer.
    async fn handle_shared<'a>(
        &'a self,
        store: &'static crate::middleware::redis_store::RedisStore,
        ip: IpAddr,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> Outcome {
        let ingress = &cx.route.ingress;
        let now = Instant::now();
        for (i, bucket) in self.buckets.iter().enumerate() {
            let key = format!(
                "sluice:nginx-limit:{}/{}:{i}:{ip}",
                ingress.namespace.as_deref().unwrap_or(""),
                ingress.name
            );
            // Thousandths to requests; the leaky bucket's 1 + burst at once.
            let (rate, burst) = (bucket.rate / 1000.0, bucket.burst / 1000.0 + 1.0);
            let allowed = match store.allow(key.as_bytes(), rate, burst).await {
                Ok(decision) => decision.allowed,
                Err(_) => match bucket.check(ip, now) {
                    Some(excess) => {
                        bucket.commit(ip, now, excess);
                        true
                    }
                    None => false,
                },
            };
            if !allowed {
                tracing::debug!(client = %ip, route = %cx.route.name, "nginx limit-rps/rpm (shared): refused");
                return Self::refusal(self.status).await;
            }
        }
        if self.connections == 0 {
            return next.run(req, cx).await;
        }
        self.with_connection_limit(ip, req, cx, next).await
    }
}

impl Middleware for NginxLimit {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let ip = cx.client.remote.ip().to_canonical();
        if self.allowlist.iter().any(|n| n.contains(&ip)) {
            return next.run(req, cx);
        }
        if let (Some(store), false) = (
            crate::middleware::redis_store::global(),
            self.buckets.is_empty(),
        ) {
            return Box::pin(self.handle_shared(store, ip, req, cx, next));
        }
        let now = Instant::now();
        // As nginx's limit_req with several zones: a refused request counts in none.
        let mut excess = [0.0; 2];
        for (bucket, slot) in self.buckets.iter().zip(excess.iter_mut()) {
            match bucket.check(ip, now) {
                Some(next) => *slot = next,
                None => {
                    tracing::debug!(client = %ip, route = %cx.route.name, "nginx limit-rps/rpm: refused");
                    return Self::refusal(self.status);
                }
            }
        }
        for (bucket, next) in self.buckets.iter().zip(excess) {
            bucket.commit(ip, now, next);
        }
        if self.connections == 0 {
            return next.run(req, cx);
        }
        Box::pin(self.with_connection_limit(ip, req, cx, next))
    }
}

impl NginxLimit {
    /// `limit-connections`: the request runs while `ip` has fewer than the
    /// limit in progress (its slot is freed when it ends or is dropped).
    async fn with_connection_limit<'a>(
        &'a self,
        ip: IpAddr,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> Outcome {
        let refused = {
            let mut table = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = table.entry(ip).or_insert(0);
            let refused = *n >= self.connections;
            if !refused {
                *n += 1;
            }
            refused
        };
        if refused {
            tracing::debug!(client = %ip, route = %cx.route.name, "nginx limit-connections: refused");
            return Self::refusal(self.connections_status).await;
        }
        let slot = Slot {
            ip,
            table: Arc::clone(&self.in_flight),
        };
        let out = next.run(req, cx).await;
        drop(slot);
        out
    }
}

impl NginxLimit {
    /// The answer to a refused request, `status` (503 unless the controller
    /// ConfigMap's `limit-req-status-code` / `limit-conn-status-code` says otherwise).
    fn refusal(status: StatusCode) -> BoxFuture<'static, Outcome> {
        // nginx's own wording for its 503 page.
        let text = if status == StatusCode::SERVICE_UNAVAILABLE {
            "Service Temporarily Unavailable"
        } else {
            status.canonical_reason().unwrap_or("Limited")
        };
        let resp = reply(status, text);
        Box::pin(async move { Ok(resp) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn leaky_bucket_allows_one_plus_burst_then_the_rate() {
        let b = Bucket {
            rate: 1000.0,
            burst: 2000.0,
            clients: Mutex::new(HashMap::new()),
        };
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let t = Instant::now();
        assert!(b.admit(ip, t));
        assert!(b.admit(ip, t));
        assert!(b.admit(ip, t));
        assert!(!b.admit(ip, t));
        assert!(b.admit(ip, t + Duration::from_millis(1000)));
        assert!(!b.admit(ip, t + Duration::from_millis(1000)));
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(b.admit(other, t));
    }
}
