//! `ipAllowList` (and its deprecated v2 name `ipWhiteList`): only clients whose
//! IP is in `sourceRange` reach the backend; the others get `rejectStatusCode`
//! (403 by default) with the reason phrase as the body.
//!
//! The client IP comes from `ipStrategy` (see [`super::source`]): the
//! connection's address by default, or an `X-Forwarded-For` entry. A request
//! whose IP cannot be found (`depth` beyond the list, every entry excluded, an
//! entry that is no IP) is rejected. An empty or invalid `sourceRange` is a
//! build error, so routes using the middleware answer 500 rather than open up.

use std::sync::Arc;

use http::{Request, StatusCode};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::source::{parse_net, reply, ClientIp, IpStrategy, IpStrategyConfig};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    source_range: Vec<String>,
    #[serde(default)]
    ip_strategy: Option<IpStrategyConfig>,
    #[serde(default)]
    reject_status_code: Option<i64>,
}

/// Builds an `ipAllowList` / `ipWhiteList` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.source_range.is_empty() {
        return Err(cx.invalid("sourceRange is empty".to_owned()));
    }
    let ranges = config
        .source_range
        .iter()
        .map(|text| parse_net(text).map_err(|e| cx.invalid(format!("sourceRange: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let strategy = IpStrategy::build(config.ip_strategy.as_ref()).map_err(|e| cx.invalid(e))?;
    let reject = match config.reject_status_code {
        None | Some(0) => StatusCode::FORBIDDEN,
        Some(code) => u16::try_from(code)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|status| status.canonical_reason().is_some())
            .ok_or_else(|| cx.invalid(format!("rejectStatusCode {code} is not an HTTP status")))?,
    };
    Ok(Arc::new(IpAllowList {
        ranges,
        strategy,
        reject,
    }))
}

/// The built `ipAllowList`.
#[derive(Debug)]
struct IpAllowList {
    ranges: Vec<IpNet>,
    strategy: IpStrategy,
    reject: StatusCode,
}

impl IpAllowList {
    fn allows(&self, req: &Request<RequestBody>, cx: &RequestContext) -> bool {
        match self.strategy.client_ip(req.headers(), &cx.client) {
            ClientIp::Ip(ip) => self.ranges.iter().any(|net| net.contains(&ip)),
            ClientIp::Other(_) | ClientIp::Missing => false,
        }
    }
}

impl Middleware for IpAllowList {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        if self.allows(&req, cx) {
            return next.run(req, cx);
        }
        tracing::debug!(client = %cx.client.remote, route = %cx.route.name, "ipAllowList: rejected");
        let reason = self.reject.canonical_reason().unwrap_or("");
        let resp = reply(self.reject, reason);
        Box::pin(async move { Ok(resp) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::testing::{context_at, get, read, run_in, FakeBuild, Recorder};

    fn allow_list(config: serde_json::Value) -> Result<Arc<dyn Middleware>, BuildError> {
        build(&config, &mut FakeBuild::default())
    }

    async fn status(mw: &Arc<dyn Middleware>, remote: &str, headers: &[(&str, &str)]) -> u16 {
        let backend = Recorder::default();
        let (status, body) =
            read(run_in(mw, &backend, get("/", headers), &context_at(remote, false)).await).await;
        if status == StatusCode::OK {
            assert_eq!(backend.count(), 1);
        } else {
            assert_eq!(backend.count(), 0, "a rejected request reached the backend");
            assert_eq!(body, status.canonical_reason().unwrap_or(""));
        }
        status.as_u16()
    }

    #[tokio::test]
    async fn allows_ranges_and_single_ips_of_both_families() {
        let mw = allow_list(serde_json::json!({
            "sourceRange": ["192.168.1.0/24", "10.0.0.7", "2001:db8::/32", "::1"]
        }))
        .expect("built");
        assert_eq!(status(&mw, "192.168.1.200:1", &[]).await, 200);
        assert_eq!(status(&mw, "192.168.2.1:1", &[]).await, 403);
        assert_eq!(status(&mw, "10.0.0.7:1", &[]).await, 200);
        assert_eq!(status(&mw, "10.0.0.8:1", &[]).await, 403);
        assert_eq!(status(&mw, "[2001:db8:1::5]:1", &[]).await, 200);
        assert_eq!(status(&mw, "[2001:db9::5]:1", &[]).await, 403);
        assert_eq!(status(&mw, "[::1]:1", &[]).await, 200);
        // A dual-stack listener reports IPv4 clients as mapped IPv6.
        assert_eq!(status(&mw, "[::ffff:192.168.1.9]:1", &[]).await, 200);
    }

    #[tokio::test]
    async fn forwarded_for_is_ignored_without_a_strategy() {
        let mw = allow_list(serde_json::json!({"sourceRange": ["10.0.0.0/8"]})).expect("built");
        let spoofed = [("x-forwarded-for", "10.1.1.1, 203.0.113.9")];
        assert_eq!(status(&mw, "203.0.113.9:1", &spoofed).await, 403);
    }

    #[tokio::test]
    async fn depth_and_excluded_ips_pick_from_forwarded_for() {
        let depth = allow_list(serde_json::json!({
            "sourceRange": ["198.51.100.0/24"],
            "ipStrategy": {"depth": 2}
        }))
        .expect("built");
        // sluice appended the connection (10.0.0.1); depth 2 is 198.51.100.7.
        let xff = [("x-forwarded-for", "198.51.100.7, 10.9.9.9, 10.0.0.1")];
        assert_eq!(status(&depth, "10.0.0.1:1", &xff).await, 200);
        let short = [("x-forwarded-for", "10.9.9.9, 10.0.0.1")];
        assert_eq!(status(&depth, "10.0.0.1:1", &short).await, 403);
        let excluded = allow_list(serde_json::json!({
            "sourceRange": ["198.51.100.0/24"],
            "ipStrategy": {"excludedIPs": ["10.0.0.0/8"]}
        }))
        .expect("built");
        assert_eq!(status(&excluded, "10.0.0.1:1", &xff).await, 200);
        let junk = [("x-forwarded-for", "198.51.100.7, not-an-ip, 10.0.0.1")];
        assert_eq!(status(&excluded, "10.0.0.1:1", &junk).await, 403);
    }

    #[tokio::test]
    async fn ipv6_subnet_masks_before_matching() {
        let mw = allow_list(serde_json::json!({
            "sourceRange": ["2001:db8:1:2::"],
            "ipStrategy": {"ipv6Subnet": 64}
        }))
        .expect("built");
        assert_eq!(status(&mw, "[2001:db8:1:2:aaaa::1]:1", &[]).await, 200);
        assert_eq!(status(&mw, "[2001:db8:1:3::1]:1", &[]).await, 403);
    }

    #[tokio::test]
    async fn reject_status_code_is_configurable() {
        let mw = allow_list(serde_json::json!({
            "sourceRange": ["10.0.0.0/8"],
            "rejectStatusCode": 404
        }))
        .expect("built");
        assert_eq!(status(&mw, "192.0.2.1:1", &[]).await, 404);
        let resp = run_in(
            &mw,
            &Recorder::default(),
            get("/", &[]),
            &context_at("192.0.2.1:1", false),
        )
        .await
        .expect("response");
        assert!(resp.headers().get(http::header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn bad_configs_fail_closed() {
        for config in [
            serde_json::json!({}),
            serde_json::json!({"sourceRange": []}),
            serde_json::json!({"sourceRange": ["10.0.0.0/8", "10.0.0.0/40"]}),
            serde_json::json!({"sourceRange": ["example.com"]}),
            serde_json::json!({"sourceRange": "10.0.0.0/8"}),
            serde_json::json!({"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 999}),
            serde_json::json!({"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": -1}),
            serde_json::json!({"sourceRange": ["10.0.0.0/8"], "ipStrategy": {"excludedIPs": ["x"]}}),
            serde_json::json!({"sourceRange": ["10.0.0.0/8"], "ipStrategy": {"ipv6Subnet": 200}}),
        ] {
            assert!(allow_list(config.clone()).is_err(), "{config} was accepted");
        }
    }
}
