//! `nginxAccess`: ingress-nginx's access phase in one step: the deny list,
//! the allow list and authentication (basic/digest from a Secret, external
//! auth), combined as nginx's `satisfy` says.
//!
//! nginx runs the access module first (`deny` entries, then `allow` entries
//! followed by `deny all`), then `auth_basic`/`auth_digest`, then
//! `auth_request`. With `satisfy all` (the default) every one must pass and
//! the first refusal answers (403 from the lists, 401 from auth). With
//! `satisfy any` one passing module is enough: a client the lists refuse
//! still gets in with valid credentials, and when everything refuses the 401
//! wins over the 403 (so browsers prompt).
//!
//! Secrets are read in the Ingress's namespace only: the build context can
//! read no other namespace, so an `auth-secret` naming another namespace is
//! refused (the routes answer 500).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, StatusCode};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::source::{parse_net, reply};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext, Terminal};

/// The annotation prefix, for error messages.
const P: &str = "nginx.ingress.kubernetes.io/";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    /// `any` or `all` (default).
    #[serde(default)]
    satisfy: Option<String>,
    /// Basic/digest authentication from a Secret.
    #[serde(default)]
    basic: Option<BasicConfig>,
    /// External authentication (`nginxExternalAuth`'s config).
    #[serde(default)]
    external: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BasicConfig {
    /// `basic` or `digest`.
    #[serde(rename = "type")]
    kind: String,
    /// `name` or `namespace/name`.
    secret: String,
    /// `auth-file` (default) or `auth-map`.
    #[serde(default)]
    secret_type: Option<String>,
    #[serde(default)]
    realm: Option<String>,
}

/// Builds an `nginxAccess` middleware.
pub(crate) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let nets = |list: &[String], cx: &dyn Context| {
        list.iter()
            .map(|n| parse_net(n).map_err(|e| cx.invalid(e)))
            .collect::<Result<Vec<IpNet>, _>>()
    };
    let allow = nets(&config.allow, cx)?;
    let deny = nets(&config.deny, cx)?;
    let any = match config.satisfy.as_deref() {
        None | Some("all") => false,
        Some("any") => true,
        Some(other) => return Err(cx.invalid(format!("satisfy {other:?} is not any or all"))),
    };
    let mut auth: Vec<Arc<dyn Middleware>> = Vec::new();
    // nginx's `proxy_set_header`s of the location apply even when `satisfy
    // any` skipped authentication: Authorization cleared, auth response
    // headers empty. The client never gets to set them.
    let mut strip = Vec::new();
    if let Some(basic) = &config.basic {
        auth.push(build_basic(basic, cx)?);
        strip.push(http::header::AUTHORIZATION);
    }
    if let Some(external) = &config.external {
        auth.push(super::external::build(external, cx)?);
        let names = external
            .get("responseHeaders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok());
        strip.extend(names);
    }
    Ok(Arc::new(NginxAccess {
        allow,
        deny,
        any,
        auth,
        strip,
    }))
}

/// basicAuth/digestAuth over the Secret's lines, as ingress-nginx writes its
/// password file (`auth` key, or one `user:value` line per key), clearing the
/// Authorization header towards the backend (`proxy_set_header Authorization ""`).
fn build_basic(
    config: &BasicConfig,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let lines = secret_lines(config, cx)?;
    let realm = config.realm.clone().unwrap_or_default();
    let section = json!({ "users": lines, "realm": realm, "removeHeader": true });
    match config.kind.as_str() {
        "basic" => crate::middleware::basic_auth::build(&section, cx),
        "digest" => crate::middleware::digest_auth::build(&section, cx),
        other => Err(cx.invalid(format!("{P}auth-type {other:?} is not basic or digest"))),
    }
}

/// The credential lines of the `auth-secret` Secret.
fn secret_lines(config: &BasicConfig, cx: &mut dyn Context) -> Result<Vec<String>, BuildError> {
    let (namespace, name) = match config.secret.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (cx.namespace().to_owned(), config.secret.clone()),
    };
    if namespace != cx.namespace() {
        return Err(cx.invalid(format!(
            "{P}auth-secret {:?} is in namespace {namespace:?}; sluice reads auth Secrets only in the Ingress's namespace ({:?})",
            config.secret,
            cx.namespace()
        )));
    }
    let secret = cx.secret(&name).ok_or_else(|| {
        cx.invalid(format!(
            "{P}auth-secret: secret {namespace}/{name} not found"
        ))
    })?;
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |bytes: &[u8], key: &str, cx: &dyn Context| {
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| {
            cx.invalid(format!(
                "secret {namespace}/{name}: key {key:?} is not UTF-8"
            ))
        })
    };
    let mut lines = Vec::new();
    match config.secret_type.as_deref().unwrap_or("auth-file") {
        "auth-file" => {
            let value = data.get("auth").ok_or_else(|| {
                cx.invalid(format!(
                    "{P}auth-secret: secret {namespace}/{name} has no key \"auth\" (auth-secret-type auth-file)"
                ))
            })?;
            let value = text(&value.0, "auth", cx)?;
            lines.extend(
                value
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        "auth-map" => {
            for (user, value) in data {
                let value = text(&value.0, user, cx)?;
                lines.push(format!("{user}:{}", value.trim()));
            }
        }
        other => {
            return Err(cx.invalid(format!(
                "{P}auth-secret-type {other:?} is not auth-file or auth-map"
            )))
        }
    }
    if lines.is_empty() {
        return Err(cx.invalid(format!(
            "{P}auth-secret: secret {namespace}/{name} holds no credentials"
        )));
    }
    Ok(lines)
}

/// The built `nginxAccess`.
#[derive(Debug)]
struct NginxAccess {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// `satisfy any`.
    any: bool,
    /// Authentication steps, in nginx's order (basic/digest, then external).
    auth: Vec<Arc<dyn Middleware>>,
    /// Request headers removed when `satisfy any` lets a client in on its address.
    strip: Vec<http::HeaderName>,
}

impl NginxAccess {
    /// The access module's verdict on `ip`: `Some(true)` when an `allow`
    /// entry matches (and no `deny` entry before it), `Some(false)` when it
    /// is refused, `None` when no entry decides (nginx's `NGX_DECLINED`).
    fn lists(&self, ip: IpAddr) -> Option<bool> {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Some(false);
        }
        if self.allow.is_empty() {
            return None;
        }
        Some(self.allow.iter().any(|n| n.contains(&ip)))
    }
}

/// The rest of the outer chain as the end of the inner auth chain.
struct Rest<'a>(Next<'a>);

impl Terminal for Rest<'_> {
    fn forward<'b>(
        &'b self,
        req: Request<RequestBody>,
        cx: &'b RequestContext,
    ) -> BoxFuture<'b, Outcome> {
        self.0.run(req, cx)
    }
}

impl Middleware for NginxAccess {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let verdict = self.lists(cx.client.remote.ip());
        if self.auth.is_empty() {
            return match verdict {
                Some(false) => forbidden(cx),
                _ => next.run(req, cx),
            };
        }
        match (self.any, verdict) {
            // satisfy any: an allow entry is enough; otherwise auth decides.
            (true, Some(true)) => {
                let mut req = req;
                for name in &self.strip {
                    req.headers_mut().remove(name);
                }
                return next.run(req, cx);
            }
            // satisfy all: the lists refuse before auth is asked.
            (false, Some(false)) => return forbidden(cx),
            _ => {}
        }
        Box::pin(async move {
            let rest = Rest(next);
            Next::new(&self.auth, &rest).run(req, cx).await
        })
    }
}

fn forbidden(cx: &RequestContext) -> BoxFuture<'static, Outcome> {
    tracing::debug!(client = %cx.client.remote, route = %cx.route.name, "nginx access: forbidden");
    let resp = reply(StatusCode::FORBIDDEN, "Forbidden");
    Box::pin(async move { Ok(resp) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::testing::{context_at, get, read, run_in, FakeBuild, Recorder};

    async fn status(mw: &Arc<dyn Middleware>, remote: &str, headers: &[(&str, &str)]) -> u16 {
        let backend = Recorder::default();
        let (status, _) =
            read(run_in(mw, &backend, get("/", headers), &context_at(remote, false)).await).await;
        status.as_u16()
    }

    #[tokio::test]
    async fn deny_beats_allow() {
        let mw = build(
            &json!({"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]}),
            &mut FakeBuild::default(),
        )
        .expect("built");
        assert_eq!(status(&mw, "10.2.0.1:1", &[]).await, 200);
        assert_eq!(status(&mw, "10.1.0.1:1", &[]).await, 403);
        assert_eq!(status(&mw, "192.0.2.1:1", &[]).await, 403);
    }

    #[test]
    fn bad_configs_fail() {
        for config in [
            json!({"allow": ["10.0.0.0/40"]}),
            json!({"satisfy": "some"}),
            json!({"basic": {"type": "basic", "secret": "missing"}}),
            json!({"basic": {"type": "basic", "secret": "other/creds"}}),
        ] {
            assert!(
                build(&config, &mut FakeBuild::default()).is_err(),
                "{config}"
            );
        }
    }
}
