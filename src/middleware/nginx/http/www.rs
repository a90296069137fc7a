//! `nginxWwwRedirect`: ingress-nginx's `from-to-www-redirect`. For an
//! Ingress host `foo.com`, requests for `www.foo.com` are redirected to
//! `foo.com` (and for `www.foo.com`, requests for `foo.com` to it) with
//! 308 (`http-redirect-code`'s default), to
//! `$scheme://<host>:<port>$request_uri` with a trailing `/` of the target
//! dropped, as `ngx_srv_redirect.lua` writes it.
//!
//! The middleware reads the route's host at request time; it acts only when
//! a request for the other name reaches the route (the router must route
//! that name to the Ingress), and never for wildcard or host-less rules.

use std::sync::Arc;

use http::{Request, StatusCode};
use serde_json::Value;

use super::nginx_return::redirect;
use super::vars::{host_without_port, Vars};
use crate::body::RequestBody;
use crate::middleware::build::{BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// Builds an `nginxWwwRedirect` (no configuration).
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let hosts = match config.get("hosts") {
        None => Vec::new(),
        Some(Value::Array(hosts)) => hosts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect(),
        Some(other) => return Err(cx.invalid(format!("hosts: {other} is not a list"))),
    };
    Ok(Arc::new(WwwRedirect { hosts }))
}

/// The built `nginxWwwRedirect`.
#[derive(Debug)]
struct WwwRedirect {
    /// The Ingress's own hosts; requests for their other names (which the
    /// router serves on this Ingress's routes too) are redirected to them.
    hosts: Vec<String>,
}

/// The other name of `host`: `www.` added or removed.
pub(crate) fn other_name(host: &str) -> String {
    match host.strip_prefix("www.") {
        Some(bare) => bare.to_owned(),
        None => format!("www.{host}"),
    }
}

impl Middleware for WwwRedirect {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(route_host) = cx.route.host.as_deref().filter(|h| !h.contains('*')) else {
                return next.run(req, cx).await;
            };
            let vars = Vars::of(&req, cx.client.tls);
            let route_host = route_host.to_ascii_lowercase();
            let asked = vars.host();
            // The route may be the alias (the other name) the router added:
            // the target is the Ingress's own host whose other name was asked for.
            let target = if self.hosts.is_empty() {
                (asked == other_name(&route_host)).then(|| route_host.clone())
            } else if self.hosts.contains(&asked) {
                None
            } else {
                self.hosts.iter().find(|h| other_name(h) == asked).cloned()
            };
            let Some(route_host) = target else {
                return next.run(req, cx).await;
            };
            let port = match vars
                .http_host
                .strip_prefix(host_without_port(vars.http_host))
            {
                Some(p) if p.len() > 1 => p[1..].to_owned(),
                _ => if cx.client.tls { "443" } else { "80" }.to_owned(),
            };
            let mut uri = vars.path.to_owned();
            if let Some(q) = vars.query {
                uri.push('?');
                uri.push_str(q);
            }
            if uri.ends_with('/') {
                uri.pop();
            }
            let location = format!("{}://{route_host}:{port}{uri}", vars.scheme);
            Ok(redirect(StatusCode::PERMANENT_REDIRECT, &location))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};
    use crate::router::{EntryPoints, ObjectRef, Route, Target};
    use crate::upstream::{PoolSettings, UpstreamClient};

    fn route_for(host: &str) -> Arc<Route> {
        Arc::new(Route {
            name: "r".into(),
            host: Some(host.to_owned()),
            path: Some("/".to_owned()),
            kind: None,
            ingress: ObjectRef::namespaced("Ingress", "default", "r"),
            service: None,
            target: Target::Unavailable {
                status: 503,
                reason: "test".into(),
            },
            client: Arc::new(UpstreamClient::new(&PoolSettings::default())),
            entrypoints: EntryPoints::ALL,
            redirect_https: false,
            redirect_keeps_trailing_slash: false,
            middlewares: crate::middleware::Chain::default(),
            sticky: None,
            balance: None,
            pass_host_header: true,
            stats: Arc::default(),
        })
    }

    #[tokio::test]
    async fn the_other_name_is_redirected_to_the_rule_host() {
        let mw = testing::make(build, json!({})).unwrap();
        let backend = Recorder::ok();
        let mut cx = context(false);
        cx.route = route_for("foo.example");
        let resp = run_in(
            &mw,
            &backend,
            get("/a/?q", &[("host", "www.foo.example:8080")]),
            &cx,
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], "http://foo.example:8080/a/?q");
        let resp = run_in(&mw, &backend, get("/", &[("host", "www.foo.example")]), &cx)
            .await
            .unwrap();
        assert_eq!(resp.headers()["location"], "http://foo.example:80");
        let resp = run_in(&mw, &backend, get("/", &[("host", "foo.example")]), &cx)
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        cx.route = route_for("www.bar.example");
        let resp = run_in(&mw, &backend, get("/b/", &[("host", "bar.example")]), &cx)
            .await
            .unwrap();
        assert_eq!(resp.headers()["location"], "http://www.bar.example:80/b");
    }
}
