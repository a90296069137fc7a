//! `nginxCanary`: ingress-nginx's canary Ingresses (see
//! `router::nginx::canary`). Requests the policy picks go to the canary's
//! Service; the others continue to the route's own backend.

use std::sync::Arc;

use http::{Request, Response};
use rand::Rng;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::ProxyError;
use crate::middleware::build::{decode, BuildError, Context, ServiceTarget};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::upstream::PortRef;

/// Builds `kind` if this module owns it.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    (kind == "nginxCanary").then(|| canary(config, cx))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleConfig {
    host: String,
    path: String,
    service: String,
    port: Value,
    header: Option<String>,
    header_value: Option<String>,
    header_pattern: Option<String>,
    cookie: Option<String>,
    weight: u32,
    weight_total: u32,
}

#[derive(Deserialize)]
struct Config {
    rules: Vec<RuleConfig>,
}

/// One canary rule: which requests (host + path of the main route) and how to choose.
#[derive(Debug)]
struct Rule {
    host: String,
    path: String,
    target: ServiceTarget,
    header: Option<http::HeaderName>,
    header_value: Option<String>,
    header_pattern: Option<Regex>,
    cookie: Option<String>,
    weight: u32,
    weight_total: u32,
}

/// The built canary step.
#[derive(Debug)]
struct Canary {
    rules: Vec<Rule>,
}

fn canary(config: &Value, cx: &mut dyn Context) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let mut rules = Vec::new();
    for rule in config.rules {
        let port = match &rule.port {
            Value::Number(n) => PortRef::Number(
                n.as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| cx.invalid(format!("bad port {n}")))?,
            ),
            Value::String(name) => PortRef::Name(name.clone()),
            other => return Err(cx.invalid(format!("bad port {other}"))),
        };
        let target = cx
            .service(&rule.service, &port)
            .map_err(|e| cx.invalid(format!("canary Service {}: {e}", rule.service)))?;
        let header = match rule.header.as_deref() {
            Some(name) => Some(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                cx.invalid(format!("canary-by-header {name:?} is not a header name"))
            })?),
            None => None,
        };
        let header_pattern = match rule.header_pattern.as_deref() {
            Some(p) => Some(
                Regex::new(p).map_err(|e| cx.invalid(format!("canary-by-header-pattern: {e}")))?,
            ),
            None => None,
        };
        rules.push(Rule {
            host: rule.host,
            path: rule.path,
            target,
            header,
            header_value: rule.header_value,
            header_pattern,
            cookie: rule.cookie,
            weight: rule.weight,
            weight_total: rule.weight_total.max(1),
        });
    }
    Ok(Arc::new(Canary { rules }))
}

impl Rule {
    /// ingress-nginx's precedence: header, then cookie, then weight.
    fn chooses(&self, req: &Request<RequestBody>) -> bool {
        if let Some(name) = &self.header {
            if let Some(value) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
                if let Some(wanted) = &self.header_value {
                    if value == wanted {
                        return true;
                    }
                } else if let Some(pattern) = &self.header_pattern {
                    if pattern.is_match(value) {
                        return true;
                    }
                } else if value == "always" {
                    return true;
                } else if value == "never" {
                    return false;
                }
            }
        }
        if let Some(cookie) = &self.cookie {
            match cookie_value(req, cookie) {
                Some("always") => return true,
                Some("never") => return false,
                _ => {}
            }
        }
        self.weight > 0 && rand::rng().random_range(0..self.weight_total) < self.weight
    }
}

/// The value of the cookie `name` in the request's `Cookie` fields.
fn cookie_value<'r>(req: &'r Request<RequestBody>, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Middleware for Canary {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let route = &cx.route;
        let host = route.host.as_deref().unwrap_or("");
        let path = route.path.as_deref().unwrap_or("/");
        let rule = self
            .rules
            .iter()
            .find(|r| r.host == host && crate::router::nginx::location_pattern(path) == r.path);
        match rule {
            Some(rule) if rule.chooses(&req) => Box::pin(to_canary(&rule.target, req)),
            _ => next.run(req, cx),
        }
    }
}

/// Sends `req` to one of the canary Service's endpoints.
async fn to_canary(target: &ServiceTarget, mut req: Request<RequestBody>) -> Outcome {
    let Some(endpoint) = target.backend.pick() else {
        return Err(ProxyError::NoEndpoints.into());
    };
    *req.version_mut() = target.client.version();
    match target.client.send(endpoint, req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            crate::middleware::errors::strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, ResponseBody::Upstream(body)))
        }
        Err(e) => Err(ProxyError::from(e).into()),
    }
}
