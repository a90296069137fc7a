//! Client-certificate authentication: `auth-tls-secret`,
//! `auth-tls-verify-client`, `auth-tls-verify-depth`,
//! `auth-tls-error-page`, `auth-tls-match-cn` and
//! `auth-tls-pass-certificate-to-upstream`.
//!
//! In ingress-nginx these are settings of the nginx *server* (the host), not
//! of a location: the oldest Ingress of a host whose `auth-tls-secret` can be
//! used configures the host, and every path of that host, whatever Ingress
//! it comes from, is checked and gets the `ssl-client-*` headers. An
//! `auth-tls-secret` that cannot be used (missing Secret, no `ca.crt`, not a
//! CA) makes the whole host fail closed (nginx answers 403; sluice's routes
//! answer 500 with an `invalid_annotation` diagnostic).
//!
//! A [`Plan`] is that host-level view, made once per compile from every
//! served Ingress:
//!
//! - [`Plan::install`] gives the certificate index, per host, the
//!   [`HostClientAuth`] its handshakes use (hosts with `verify-client: off`
//!   ask for no certificate);
//! - [`Plan::apply`] gives each Ingress an `nginxClientCert` step with the
//!   policy of each of its hosts that has one, first in its chain (nginx
//!   checks the certificate before any phase runs), or its refusals.
//!
//! Values as ingress-nginx reads them: a bad `verify-client` is `on`, a bad
//! or `0` `verify-depth` is `1` (both reported); a bad error page, CN
//! pattern or pass-certificate flag rejects the Ingress (refused here).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::super::certs::{self, Secrets};
use super::super::host::HostPattern;
use super::super::ingress::Served;
use super::{Annotations, Translation, PREFIX};
use crate::middleware::InlineStep;
use crate::tls::client_auth::{ClientCa, HostClientAuth, VerifyClient};
use crate::tls::CertIndexBuilder;

/// The annotations of the group; any of them without `auth-tls-secret` is ignored.
const DEPENDENT: [&str; 5] = [
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-error-page",
    "auth-tls-match-cn",
    "auth-tls-pass-certificate-to-upstream",
];

/// The name of the step in the Ingress's chain.
const STEP: &str = "nginx-client-cert";

/// One Ingress's usable `auth-tls-*` settings.
#[derive(Debug, Clone)]
struct Settings {
    ca: ClientCa,
    mode: VerifyClient,
    depth: usize,
    error_page: Option<String>,
    match_cn: Option<String>,
    pass_certificate: bool,
}

impl Settings {
    /// The step's entry for `host`.
    fn entry(&self, host: &str) -> Value {
        let mut entry = Map::new();
        entry.insert("host".into(), json!(host));
        entry.insert("verifyClient".into(), json!(self.mode.as_str()));
        if let Some(page) = &self.error_page {
            entry.insert("errorPage".into(), json!(page));
        }
        if let Some(pattern) = &self.match_cn {
            entry.insert("matchCn".into(), json!(pattern));
        }
        entry.insert("passCertificate".into(), json!(self.pass_certificate));
        Value::Object(entry)
    }
}

/// What one Ingress's `auth-tls-*` annotations come to.
#[derive(Debug, Default)]
enum Own {
    /// No `auth-tls-secret`.
    #[default]
    Absent,
    /// Usable.
    Ready(Box<Settings>),
    /// The Secret (or its CA) cannot be used: the Ingress's hosts fail closed.
    BadSecret(String),
    /// Other values ingress-nginx rejects the Ingress for: (annotation, reason).
    Refused(Vec<(&'static str, String)>),
}

/// One served Ingress in the plan.
#[derive(Debug, Default)]
struct IngressPlan {
    own: Own,
    /// (annotation, reason) reported and ignored.
    ignored: Vec<(&'static str, String)>,
    /// The hosts of its rules and `server-alias`.
    hosts: Vec<HostPattern>,
}

/// The host-level view of every served Ingress's `auth-tls-*` annotations.
#[derive(Debug, Default)]
pub(in crate::router) struct Plan {
    /// By position in `served`; empty when no Ingress uses client certificates.
    ingresses: Vec<IngressPlan>,
    /// Host → the Ingress (position) whose settings it takes.
    owners: HashMap<HostPattern, usize>,
    /// Host → the first Ingress (position) whose Secret cannot be used.
    broken: HashMap<HostPattern, usize>,
    /// `Ingress ns/name` by position, for messages.
    names: Vec<String>,
}

impl Plan {
    /// Reads every served Ingress (oldest first), with the Secrets of the snapshot.
    pub(in crate::router) fn new(served: &[Served<'_>], secrets: &Secrets<'_>) -> Self {
        let none = std::collections::BTreeMap::new();
        let uses = |ing: &Served<'_>| {
            ing.ingress
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|all| {
                    all.keys()
                        .any(|k| k.starts_with(PREFIX) && k.contains("auth-tls-"))
                })
        };
        if !served.iter().any(uses) {
            return Self::default();
        }
        let mut plan = Self::default();
        for (i, ing) in served.iter().enumerate() {
            let all = ing.ingress.metadata.annotations.as_ref().unwrap_or(&none);
            let a = Annotations::new(all);
            let hosts = hosts_of(ing, &a);
            let mut ingress = IngressPlan {
                hosts,
                ..IngressPlan::default()
            };
            ingress.own = read(ing, &a, secrets, &mut ingress.ignored);
            if matches!(ingress.own, Own::Ready(_) | Own::BadSecret(_))
                && ingress.hosts.contains(&HostPattern::Any)
            {
                ingress.own = Own::Refused(vec![(
                    "auth-tls-secret",
                    "a rule without a host: client certificates are asked for by host name (SNI), so every rule needs a host".into(),
                )]);
            }
            match &ingress.own {
                Own::Ready(_) => {
                    for host in &ingress.hosts {
                        plan.owners.entry(host.clone()).or_insert(i);
                    }
                }
                Own::BadSecret(_) => {
                    for host in &ingress.hosts {
                        plan.broken.entry(host.clone()).or_insert(i);
                    }
                }
                Own::Absent | Own::Refused(_) => {}
            }
            plan.ingresses.push(ingress);
            plan.names.push(ing.object.to_string());
        }
        plan
    }

    /// Installs, per host, the client authentication its handshakes use.
    pub(in crate::router) fn install(&self, builder: &mut CertIndexBuilder) {
        let mut built: HashMap<usize, Arc<HostClientAuth>> = HashMap::new();
        let mut owners: Vec<(&HostPattern, usize)> =
            self.owners.iter().map(|(h, &i)| (h, i)).collect();
        owners.sort();
        for (host, owner) in owners {
            if self.broken.contains_key(host) {
                continue;
            }
            let Some(Own::Ready(settings)) = self.ingresses.get(owner).map(|p| &p.own) else {
                continue;
            };
            if settings.mode == VerifyClient::Off {
                continue;
            }
            let Some(name) = host.display() else {
                continue;
            };
            let auth = built.entry(owner).or_insert_with(|| {
                Arc::new(HostClientAuth::new(
                    settings.ca.clone(),
                    settings.depth,
                    settings.mode,
                ))
            });
            builder.client_auth(&name, auth.clone());
        }
    }

    /// Adds the Ingress at `index` (in `served`) its step, refusals and
    /// warnings. The step goes first: nginx checks the certificate before
    /// the rewrite phase.
    pub(in crate::router) fn apply(&self, index: usize, out: &mut Translation) {
        let Some(ingress) = self.ingresses.get(index) else {
            return;
        };
        for (annotation, reason) in &ingress.ignored {
            out.ignore(annotation, reason.clone());
        }
        match &ingress.own {
            Own::Refused(refusals) => {
                for (annotation, reason) in refusals {
                    out.refuse(annotation, reason.clone());
                }
                return;
            }
            Own::BadSecret(reason) => {
                out.refuse("auth-tls-secret", reason.clone());
                return;
            }
            Own::Absent | Own::Ready(_) => {}
        }
        for host in &ingress.hosts {
            let Some(&bad) = self.broken.get(host) else {
                continue;
            };
            let shown = host.display().unwrap_or_default();
            out.refuse(
                "auth-tls-secret",
                format!(
                    "host {shown} takes its client-certificate authentication from {}, whose auth-tls-secret cannot be used; the host fails closed",
                    self.names[bad]
                ),
            );
            return;
        }
        let mut entries = Vec::new();
        for host in &ingress.hosts {
            let Some(&owner) = self.owners.get(host) else {
                continue;
            };
            let Some(Own::Ready(settings)) = self.ingresses.get(owner).map(|p| &p.own) else {
                continue;
            };
            let Some(shown) = host.display() else {
                continue;
            };
            if owner != index && matches!(ingress.own, Own::Ready(_)) {
                out.ignore(
                    "auth-tls-secret",
                    format!(
                        "host {shown} already has client-certificate authentication from {}, which is older; its settings apply to the host",
                        self.names[owner]
                    ),
                );
            }
            entries.push(settings.entry(&shown));
        }
        if entries.is_empty() {
            return;
        }
        out.steps.insert(
            0,
            InlineStep {
                name: STEP.to_owned(),
                kind: "nginxClientCert".to_owned(),
                config: json!({ "hosts": entries }),
            },
        );
    }
}

/// The hosts of the Ingress's nginx server(s): its rule hosts and `server-alias`.
fn hosts_of(ing: &Served<'_>, a: &Annotations<'_>) -> Vec<HostPattern> {
    let rules = ing
        .ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default();
    let mut hosts: Vec<HostPattern> = Vec::new();
    let aliases = a
        .get("server-alias")
        .unwrap_or("")
        .split([',', ' '])
        .map(str::trim)
        .filter(|h| !h.is_empty());
    let named = rules
        .iter()
        .map(|r| r.host.as_deref())
        .chain(aliases.map(Some));
    for host in named {
        if let Ok(host) = HostPattern::parse(host) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// Reads one Ingress's `auth-tls-*` annotations.
fn read(
    ing: &Served<'_>,
    a: &Annotations<'_>,
    secrets: &Secrets<'_>,
    ignored: &mut Vec<(&'static str, String)>,
) -> Own {
    let Some(secret) = a.get("auth-tls-secret") else {
        for name in DEPENDENT {
            if a.get(name).is_some() {
                ignored.push((name, "it only applies with auth-tls-secret".into()));
            }
        }
        return Own::Absent;
    };
    let mut refused = Vec::new();
    let mode = match a.get("auth-tls-verify-client") {
        None | Some("") => VerifyClient::On,
        Some(value) => VerifyClient::parse(value).unwrap_or_else(|| {
            ignored.push((
                "auth-tls-verify-client",
                format!("{value:?} is not on, off, optional or optional_no_ca; on is used, as ingress-nginx does"),
            ));
            VerifyClient::On
        }),
    };
    let depth = match a.get("auth-tls-verify-depth") {
        None | Some("") => 1,
        Some(value) => match value.parse::<i64>() {
            Ok(0) => 1,
            Ok(depth) if depth > 0 => usize::try_from(depth).unwrap_or(usize::MAX),
            Ok(_) => {
                refused.push((
                    "auth-tls-verify-depth",
                    format!("{value:?} is negative (nginx's ssl_verify_depth would not load)"),
                ));
                1
            }
            Err(_) => {
                ignored.push((
                    "auth-tls-verify-depth",
                    format!("{value:?} is not a number; 1 is used, as ingress-nginx does"),
                ));
                1
            }
        },
    };
    let error_page = a.get("auth-tls-error-page").filter(|p| !p.is_empty());
    if let Some(page) = error_page {
        if let Err(reason) = check_error_page(page) {
            refused.push(("auth-tls-error-page", reason));
        }
    }
    let match_cn = a.get("auth-tls-match-cn").filter(|p| !p.is_empty());
    if let Some(pattern) = match_cn {
        if let Err(reason) = check_match_cn(pattern) {
            refused.push(("auth-tls-match-cn", reason));
        }
    }
    let pass_certificate = match a.flag("auth-tls-pass-certificate-to-upstream") {
        None => false,
        Some(Ok(flag)) => flag,
        Some(Err(value)) => {
            refused.push((
                "auth-tls-pass-certificate-to-upstream",
                format!("{value:?} is not true or false"),
            ));
            false
        }
    };
    let ca = match load_ca(ing, secret, secrets) {
        Ok(ca) => ca,
        Err(SecretProblem::Name(reason)) => {
            refused.push(("auth-tls-secret", reason));
            return Own::Refused(refused);
        }
        Err(SecretProblem::Unusable(reason)) => {
            if !refused.is_empty() {
                return Own::Refused(refused);
            }
            return Own::BadSecret(reason);
        }
    };
    if !refused.is_empty() {
        return Own::Refused(refused);
    }
    Own::Ready(Box::new(Settings {
        ca,
        mode,
        depth,
        error_page: error_page.map(str::to_owned),
        match_cn: match_cn.map(str::to_owned),
        pass_certificate,
    }))
}

/// Why an `auth-tls-secret` cannot be used.
enum SecretProblem {
    /// The value itself (as ingress-nginx's validation rejects the Ingress).
    Name(String),
    /// The Secret or its CA (nginx's server then answers 403).
    Unusable(String),
}

/// The CA of the Secret `value` names (`name` or `namespace/name`, in the
/// Ingress's namespace only, like `auth-secret`).
fn load_ca(
    ing: &Served<'_>,
    value: &str,
    secrets: &Secrets<'_>,
) -> Result<ClientCa, SecretProblem> {
    let (namespace, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (ing.namespace, value),
    };
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !part(namespace) || !part(name) {
        return Err(SecretProblem::Name(format!(
            "{value:?} is not a Secret name or namespace/name"
        )));
    }
    if namespace != ing.namespace {
        return Err(SecretProblem::Unusable(format!(
            "{value:?} is in namespace {namespace:?}; sluice reads auth Secrets only in the Ingress's namespace ({:?})",
            ing.namespace
        )));
    }
    let key = (namespace.to_owned(), name.to_owned());
    let ca = certs::ca_bytes(secrets, &key).map_err(SecretProblem::Unusable)?;
    let crl = secrets.get(&(namespace, name)).and_then(|s| {
        let data = s
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crl"))
            .map(|b| b.0.clone());
        data.or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get("ca.crl"))
                .map(|t| t.as_bytes().to_vec())
        })
    });
    ClientCa::from_pem(&ca, crl.as_deref())
        .map_err(|e| SecretProblem::Unusable(format!("Secret {namespace}/{name}: {e}")))
}

/// ingress-nginx's check of `auth-tls-error-page` (a URL or a path, no
/// query), plus sluice's: no named location (`@name`) exists outside nginx.
fn check_error_page(page: &str) -> Result<(), String> {
    if page.starts_with('@') {
        return Err(format!(
            "{page:?} names an nginx named location, which does not exist in sluice"
        ));
    }
    let rest = page
        .strip_prefix("https://")
        .or_else(|| page.strip_prefix("http://"))
        .unwrap_or(page);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority_ok = {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host_ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        host_ok && port_ok && (port.is_none() || !host.is_empty())
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let path_ok = path.is_empty()
        || path.split('/').skip(1).all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        }) && path.starts_with('/');
    let explicit_scheme = rest.len() != page.len();
    if !authority_ok || !path_ok || (explicit_scheme && authority.is_empty()) {
        return Err(format!(
            "{page:?} is not a URL or path ingress-nginx accepts (letters, digits, -, _ and . in path segments, no query)"
        ));
    }
    Ok(())
}

/// ingress-nginx's check of `auth-tls-match-cn`: `CN=` then a regex (the
/// whole value is matched against the subject).
fn check_match_cn(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with("CN=") {
        return Err(format!("{pattern:?} does not start with CN="));
    }
    regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("{pattern:?} is not a regex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_as_ingress_nginx_validates_them() {
        for ok in [
            "http://www.mysite.com/error-cert.html",
            "https://errors.test:8443/a/b_c/",
            "errors.test/cert",
            "/cert-error",
            "/",
            "https://errors.test",
        ] {
            assert_eq!(check_error_page(ok), Ok(()), "{ok}");
        }
        for bad in [
            "@cert_error",
            "https://errors.test/cert?from=x",
            "https://errors.test/a b",
            "https://",
            "https://x:port/",
            "ftp://x/",
            "/a//b",
        ] {
            assert!(check_error_page(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn match_cn_needs_the_prefix_and_a_regex() {
        assert_eq!(check_match_cn("CN=(alice|bob)"), Ok(()));
        assert!(check_match_cn("alice").is_err());
        assert!(check_match_cn("CN=(").is_err());
    }
}
