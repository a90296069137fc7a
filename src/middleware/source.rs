//! Who sent a request, as Traefik's access middlewares see it: `ipStrategy`
//! (the client IP, from the connection or from `X-Forwarded-For`) and
//! `sourceCriterion` (an IP strategy, a request header or the Host), shared by
//! `ipAllowList`, `rateLimit` and `inFlightReq`; plus the sharded maps that
//! keep per-source state.
//!
//! **X-Forwarded-For as sluice hands it over.** By the time a middleware runs,
//! sluice has appended the connection's own address to `X-Forwarded-For`
//! (Traefik's proxy appends it later, after the middlewares). So that `depth`
//! and `excludedIPs` count the same entries as in Traefik, the last entry is
//! skipped when it is the connection's address: `depth: 1` is the address the
//! peer (a load balancer in front of sluice) reported, as in Traefik with
//! `forwardedHeaders.trustedIPs` covering that peer.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use http::{Request, Response, StatusCode};
use ipnet::{IpNet, Ipv6Net};
use serde::Deserialize;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::ClientInfo;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `ipStrategy` as written in a Middleware.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IpStrategyConfig {
    /// Take the `depth`-th `X-Forwarded-For` entry from the right (1 = rightmost).
    #[serde(default)]
    depth: i64,
    /// Take the rightmost `X-Forwarded-For` entry not in these CIDRs / IPs.
    #[serde(default, rename = "excludedIPs")]
    excluded_ips: Vec<String>,
    /// Mask an IPv6 client address to this prefix length.
    #[serde(default)]
    ipv6_subnet: Option<i64>,
}

/// How the client IP is chosen.
#[derive(Debug, Clone)]
enum Pick {
    /// The connection's address; `X-Forwarded-For` is ignored.
    RemoteAddr,
    /// The n-th `X-Forwarded-For` entry from the right (n ≥ 1).
    Depth(usize),
    /// The rightmost `X-Forwarded-For` entry outside these networks.
    Excluded(Vec<IpNet>),
}

/// A built `ipStrategy`.
#[derive(Debug, Clone)]
pub(super) struct IpStrategy {
    pick: Pick,
    ipv6_subnet: Option<u8>,
}

/// The client address an [`IpStrategy`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientIp<'r> {
    /// An IP address (canonical: IPv4-mapped IPv6 becomes IPv4; masked by `ipv6Subnet`).
    Ip(IpAddr),
    /// An `X-Forwarded-For` entry that is not an IP address.
    Other(&'r str),
    /// Nothing: `X-Forwarded-For` has fewer entries than `depth`, or every entry is excluded.
    Missing,
}

impl IpStrategy {
    /// The connection's address, unmasked: what an absent `ipStrategy` means.
    pub(super) fn remote_addr() -> Self {
        Self {
            pick: Pick::RemoteAddr,
            ipv6_subnet: None,
        }
    }

    /// Builds an `ipStrategy`; `None` (absent) and `{}` mean the connection's address.
    /// As in Traefik, a positive `depth` wins over `excludedIPs`.
    pub(super) fn build(config: Option<&IpStrategyConfig>) -> Result<Self, String> {
        let Some(config) = config else {
            return Ok(Self::remote_addr());
        };
        let ipv6_subnet = match config.ipv6_subnet {
            None => None,
            Some(n @ 0..=128) => Some(n as u8),
            Some(n) => {
                return Err(format!(
                    "ipStrategy.ipv6Subnet {n} is not between 0 and 128"
                ))
            }
        };
        let pick = if config.depth > 0 {
            Pick::Depth(usize::try_from(config.depth).unwrap_or(usize::MAX))
        } else if !config.excluded_ips.is_empty() {
            let nets = config
                .excluded_ips
                .iter()
                .map(|text| parse_net(text).map_err(|e| format!("ipStrategy.excludedIPs: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Pick::Excluded(nets)
        } else {
            Pick::RemoteAddr
        };
        Ok(Self { pick, ipv6_subnet })
    }

    /// The client address of a request arriving from `client` with `headers`.
    pub(super) fn client_ip<'r>(
        &self,
        headers: &'r HeaderMap,
        client: &ClientInfo,
    ) -> ClientIp<'r> {
        let found = match &self.pick {
            Pick::RemoteAddr => ClientIp::Ip(client.remote.ip().to_canonical()),
            Pick::Depth(depth) => {
                let entries = forwarded_for(headers, client);
                match entries.len().checked_sub(*depth).map(|i| entries[i]) {
                    Some(entry) if !entry.is_empty() => classify(entry),
                    _ => ClientIp::Missing,
                }
            }
            Pick::Excluded(nets) => forwarded_for(headers, client)
                .into_iter()
                .rev()
                .filter(|entry| !entry.is_empty())
                .map(classify)
                .find(|found| match found {
                    ClientIp::Ip(ip) => !nets.iter().any(|net| net.contains(ip)),
                    _ => true,
                })
                .unwrap_or(ClientIp::Missing),
        };
        match (found, self.ipv6_subnet) {
            (ClientIp::Ip(IpAddr::V6(ip)), Some(prefix)) => {
                let masked = Ipv6Net::new(ip, prefix).map_or(ip, |net| net.network());
                ClientIp::Ip(IpAddr::V6(masked))
            }
            (found, _) => found,
        }
    }
}

/// The `X-Forwarded-For` entries the client side reported, trimmed, without the
/// connection's own address that sluice appended (see the module docs). Like
/// Go's `Header.Get`, only the first field counts (sluice joins them into one).
fn forwarded_for<'r>(headers: &'r HeaderMap, client: &ClientInfo) -> Vec<&'r str> {
    let Some(value) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    let mut entries: Vec<&str> = value.split(',').map(str::trim).collect();
    let remote = client.remote.ip().to_canonical();
    if entries.last().and_then(|last| parse_ip(last)) == Some(remote) {
        entries.pop();
    }
    entries
}

fn classify(entry: &str) -> ClientIp<'_> {
    parse_ip(entry).map_or(ClientIp::Other(entry), ClientIp::Ip)
}

/// An IP address, or the IP of an `ip:port` / `[ip]:port` (Go's `SplitHostPort`
/// is tried first by Traefik's checker), canonical.
pub(super) fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`; host bits are ignored, as Go's
/// `ParseCIDR` does) or a single IP (a /32 or /128).
pub(super) fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not a valid CIDR"))?;
        return Ok(match net {
            // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                    .map_err(|_| format!("{text:?} is not a valid CIDR"))?,
                None => net,
            },
            other => other,
        }
        .trunc());
    }
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not a valid IP address or CIDR"))?;
    Ok(IpNet::from(ip.to_canonical()))
}

/// `sourceCriterion` as written in a Middleware: at most one of the three.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SourceCriterionConfig {
    #[serde(default)]
    ip_strategy: Option<IpStrategyConfig>,
    #[serde(default)]
    request_header_name: Option<String>,
    #[serde(default)]
    request_host: bool,
}

/// What a middleware groups requests by when `sourceCriterion` says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DefaultSource {
    /// The connection's address (`rateLimit`).
    RemoteAddr,
    /// The Host (`inFlightReq`).
    Host,
}

/// A built `sourceCriterion`.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// The client IP an `ipStrategy` picks.
    Ip(IpStrategy),
    /// A request header's value (absent: the empty key, shared by all such requests).
    Header(HeaderName),
    /// The Host the client addressed.
    Host,
}

impl Source {
    /// Builds a `sourceCriterion`; an absent or empty one means `default`.
    /// Setting more than one criterion is an error, as in Traefik.
    pub(super) fn build(
        config: Option<&SourceCriterionConfig>,
        default: DefaultSource,
    ) -> Result<Self, String> {
        let config = config.cloned().unwrap_or_default();
        let header = config
            .request_header_name
            .as_deref()
            .filter(|name| !name.is_empty());
        let set = usize::from(config.ip_strategy.is_some())
            + usize::from(header.is_some())
            + usize::from(config.request_host);
        if set > 1 {
            return Err(
                "sourceCriterion: ipStrategy, requestHeaderName and requestHost are mutually exclusive"
                    .to_owned(),
            );
        }
        if let Some(strategy) = &config.ip_strategy {
            return IpStrategy::build(Some(strategy)).map(Self::Ip);
        }
        if let Some(name) = header {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!("sourceCriterion.requestHeaderName {name:?} is not a header name")
            })?;
            return Ok(Self::Header(name));
        }
        if config.request_host {
            return Ok(Self::Host);
        }
        Ok(match default {
            DefaultSource::RemoteAddr => Self::Ip(IpStrategy::remote_addr()),
            DefaultSource::Host => Self::Host,
        })
    }

    /// The key of `req`'s source. Like Traefik, a source that cannot be found
    /// (no such header, `depth` beyond the list) is the empty key, one bucket
    /// shared by every such request.
    pub(super) fn key(&self, req: &Request<RequestBody>, client: &ClientInfo) -> SourceKey {
        match self {
            Self::Ip(strategy) => match strategy.client_ip(req.headers(), client) {
                ClientIp::Ip(ip) => SourceKey::Ip(ip),
                ClientIp::Other(text) => SourceKey::text(text.as_bytes()),
                ClientIp::Missing => SourceKey::text(b""),
            },
            Self::Header(name) => SourceKey::text(
                req.headers()
                    .get(name)
                    .map_or(&b""[..], HeaderValue::as_bytes),
            ),
            Self::Host => {
                let host = req.headers().get(HOST).map(HeaderValue::as_bytes);
                let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
                SourceKey::text(host.or(authority).unwrap_or(b""))
            }
        }
    }
}

/// The identity of a request source: per-source state is keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum SourceKey {
    /// A client IP (no allocation).
    Ip(IpAddr),
    /// A header value, a Host, or an `X-Forwarded-For` entry that is no IP.
    /// Copied, so a stored key never pins a connection's read buffer.
    Text(Box<[u8]>),
}

impl SourceKey {
    fn text(bytes: &[u8]) -> Self {
        Self::Text(bytes.into())
    }
}

/// Number of shards of a [`Shards`] map: enough that two cores rarely meet on one lock.
pub(super) const SHARDS: usize = 32;

/// Per-source state split over [`SHARDS`] mutex-guarded maps, so concurrent
/// requests from different sources rarely wait on the same lock. Hashing is
/// SipHash with random keys: sources are chosen by clients, and a predictable
/// hash would let them pile entries into one chain.
#[derive(Debug)]
pub(super) struct Shards<V> {
    pick: RandomState,
    shards: Box<[Mutex<HashMap<SourceKey, V>>]>,
}

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Self {
            pick: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<V> Shards<V> {
    /// Locks the shard `key` belongs to. Never hold the guard across an `.await`.
    pub(super) fn lock(&self, key: &SourceKey) -> MutexGuard<'_, HashMap<SourceKey, V>> {
        let index = (self.pick.hash_one(key) % SHARDS as u64) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries over all shards (takes every lock in turn).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// A response Traefik's middlewares make themselves: `status`, `body` as is,
/// no Content-Type (Traefik 3 does not sniff one for these).
pub(super) fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::testing::context_at;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_str(xff).expect("value"));
        h
    }

    fn strategy(json: serde_json::Value) -> IpStrategy {
        let config: IpStrategyConfig = serde_json::from_value(json).expect("config");
        IpStrategy::build(Some(&config)).expect("valid strategy")
    }

    fn ip(text: &str) -> ClientIp<'static> {
        ClientIp::Ip(text.parse().expect("ip"))
    }

    #[test]
    fn no_strategy_uses_the_connection_and_ignores_forwarded_for() {
        let cx = context_at("10.0.0.9:5000", false);
        let h = headers("1.2.3.4, 10.0.0.9");
        let s = IpStrategy::build(None).expect("strategy");
        assert_eq!(s.client_ip(&h, &cx.client), ip("10.0.0.9"));
        let empty = strategy(serde_json::json!({}));
        assert_eq!(empty.client_ip(&h, &cx.client), ip("10.0.0.9"));
    }

    #[test]
    fn ipv4_mapped_connections_count_as_ipv4() {
        let cx = context_at("[::ffff:192.0.2.7]:5000", false);
        let s = IpStrategy::remote_addr();
        assert_eq!(s.client_ip(&HeaderMap::new(), &cx.client), ip("192.0.2.7"));
    }

    #[test]
    fn depth_counts_from_the_right_without_sluices_own_entry() {
        // sluice appended the connection's address (10.0.0.9) last.
        let cx = context_at("10.0.0.9:5000", false);
        let h = headers("1.1.1.1, 2.2.2.2 ,3.3.3.3, 10.0.0.9");
        assert_eq!(
            strategy(serde_json::json!({"depth": 1})).client_ip(&h, &cx.client),
            ip("3.3.3.3")
        );
        assert_eq!(
            strategy(serde_json::json!({"depth": 2})).client_ip(&h, &cx.client),
            ip("2.2.2.2")
        );
        assert_eq!(
            strategy(serde_json::json!({"depth": 3})).client_ip(&h, &cx.client),
            ip("1.1.1.1")
        );
        // Beyond the list: nothing (the allow list rejects, limiters share one key).
        assert_eq!(
            strategy(serde_json::json!({"depth": 4})).client_ip(&h, &cx.client),
            ClientIp::Missing
        );
        // Only sluice's own entry: nothing at depth 1.
        let alone = headers("10.0.0.9");
        assert_eq!(
            strategy(serde_json::json!({"depth": 1})).client_ip(&alone, &cx.client),
            ClientIp::Missing
        );
        // No header at all (a middleware removed it).
        assert_eq!(
            strategy(serde_json::json!({"depth": 1})).client_ip(&HeaderMap::new(), &cx.client),
            ClientIp::Missing
        );
    }

    #[test]
    fn depth_keeps_the_last_entry_when_it_is_not_the_connection() {
        // A headers middleware replaced X-Forwarded-For: nothing of sluice's to skip.
        let cx = context_at("10.0.0.9:5000", false);
        let h = headers("1.1.1.1, 2.2.2.2");
        assert_eq!(
            strategy(serde_json::json!({"depth": 1})).client_ip(&h, &cx.client),
            ip("2.2.2.2")
        );
    }

    #[test]
    fn depth_wins_over_excluded_ips() {
        let cx = context_at("10.0.0.9:5000", false);
        let h = headers("1.1.1.1, 2.2.2.2, 10.0.0.9");
        let s = strategy(serde_json::json!({"depth": 1, "excludedIPs": ["2.2.2.2"]}));
        assert_eq!(s.client_ip(&h, &cx.client), ip("2.2.2.2"));
    }

    #[test]
    fn excluded_ips_take_the_rightmost_entry_outside_them() {
        let cx = context_at("10.0.0.9:5000", false);
        let h = headers("1.1.1.1, 203.0.113.5, , 192.168.1.2, 10.0.0.9");
        let s = strategy(serde_json::json!({"excludedIPs": ["192.168.0.0/16", "203.0.113.5"]}));
        assert_eq!(s.client_ip(&h, &cx.client), ip("1.1.1.1"));
        let all = strategy(serde_json::json!({"excludedIPs": ["0.0.0.0/0"]}));
        assert_eq!(all.client_ip(&h, &cx.client), ClientIp::Missing);
        // A non-IP entry is never "excluded": it is returned as is.
        let junk = headers("1.1.1.1, unknown, 10.0.0.9");
        assert_eq!(
            strategy(serde_json::json!({"excludedIPs": ["10.0.0.0/8"]}))
                .client_ip(&junk, &cx.client),
            ClientIp::Other("unknown")
        );
    }

    #[test]
    fn ipv6_entries_ports_and_subnets() {
        let cx = context_at("[2001:db8::1]:5000", false);
        let h = headers("[2001:db8:aa:bb:cc::7]:1234, 2001:db8::1");
        let s = strategy(serde_json::json!({"depth": 1}));
        assert_eq!(s.client_ip(&h, &cx.client), ip("2001:db8:aa:bb:cc::7"));
        let masked = strategy(serde_json::json!({"depth": 1, "ipv6Subnet": 64}));
        assert_eq!(masked.client_ip(&h, &cx.client), ip("2001:db8:aa:bb::"));
        // The remote address is masked too; IPv4 never is.
        let remote = strategy(serde_json::json!({"ipv6Subnet": 32}));
        assert_eq!(remote.client_ip(&h, &cx.client), ip("2001:db8::"));
        let v4 = context_at("192.0.2.1:1", false);
        assert_eq!(
            remote.client_ip(&HeaderMap::new(), &v4.client),
            ip("192.0.2.1")
        );
        assert!(IpStrategy::build(Some(
            &serde_json::from_value(serde_json::json!({"ipv6Subnet": 129})).expect("config")
        ))
        .is_err());
    }

    #[test]
    fn nets_parse_like_go() {
        assert_eq!(
            parse_net("10.1.2.3/8"),
            Ok("10.0.0.0/8".parse().expect("net"))
        );
        assert_eq!(
            parse_net("192.0.2.1"),
            Ok("192.0.2.1/32".parse().expect("net"))
        );
        assert_eq!(
            parse_net("2001:db8::1"),
            Ok("2001:db8::1/128".parse().expect("net"))
        );
        assert_eq!(
            parse_net("::ffff:10.0.0.0/104"),
            Ok("10.0.0.0/8".parse().expect("net"))
        );
        assert_eq!(
            parse_net("::ffff:10.0.0.1"),
            Ok("10.0.0.1/32".parse().expect("net"))
        );
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("banana").is_err());
        assert!(parse_net("").is_err());
    }

    fn source(json: serde_json::Value, default: DefaultSource) -> Result<Source, String> {
        let config: SourceCriterionConfig = serde_json::from_value(json).expect("config");
        Source::build(Some(&config), default)
    }

    #[test]
    fn source_criteria_defaults_and_exclusivity() {
        let cx = context_at("10.0.0.9:5000", false);
        let req = Request::get("/")
            .header("host", "a.example")
            .header("x-user", "alice")
            .body(RequestBody::empty())
            .expect("request");
        let rate = Source::build(None, DefaultSource::RemoteAddr).expect("source");
        assert_eq!(
            rate.key(&req, &cx.client),
            SourceKey::Ip("10.0.0.9".parse().expect("ip"))
        );
        let inflight = Source::build(None, DefaultSource::Host).expect("source");
        assert_eq!(
            inflight.key(&req, &cx.client),
            SourceKey::text(b"a.example")
        );
        // An empty criterion is no criterion.
        let empty = source(
            serde_json::json!({"requestHeaderName": ""}),
            DefaultSource::Host,
        );
        assert_eq!(
            empty.expect("source").key(&req, &cx.client),
            SourceKey::text(b"a.example")
        );
        let header = source(
            serde_json::json!({"requestHeaderName": "X-User"}),
            DefaultSource::Host,
        )
        .expect("source");
        assert_eq!(header.key(&req, &cx.client), SourceKey::text(b"alice"));
        let bare = get_without_headers();
        assert_eq!(header.key(&bare, &cx.client), SourceKey::text(b""));
        // `ipStrategy: {}` is set, so it conflicts with the others.
        for json in [
            serde_json::json!({"ipStrategy": {}, "requestHost": true}),
            serde_json::json!({"ipStrategy": {}, "requestHeaderName": "x"}),
            serde_json::json!({"requestHost": true, "requestHeaderName": "x"}),
        ] {
            assert!(source(json, DefaultSource::Host).is_err());
        }
        let ip =
            source(serde_json::json!({"ipStrategy": {}}), DefaultSource::Host).expect("source");
        assert_eq!(
            ip.key(&req, &cx.client),
            SourceKey::Ip("10.0.0.9".parse().expect("ip"))
        );
        assert!(source(
            serde_json::json!({"requestHeaderName": "bad header"}),
            DefaultSource::Host
        )
        .is_err());
    }

    fn get_without_headers() -> Request<RequestBody> {
        Request::get("/")
            .body(RequestBody::empty())
            .expect("request")
    }

    #[test]
    fn shards_spread_keys_and_count_them() {
        let shards: Shards<u32> = Shards::default();
        for i in 0..200u32 {
            let key = SourceKey::Ip(IpAddr::from([10, 0, (i >> 8) as u8, i as u8]));
            shards.lock(&key).insert(key.clone(), i);
        }
        assert_eq!(shards.len(), 200);
        let used = shards
            .shards
            .iter()
            .filter(|s| !s.lock().expect("lock").is_empty())
            .count();
        assert!(used > SHARDS / 2, "200 keys landed in only {used} shards");
    }
}
