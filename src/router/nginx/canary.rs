//! Canary Ingresses (`canary: "true"`): an Ingress with the same host and
//! path as a main Ingress sends some requests to its own Service instead,
//! chosen as ingress-nginx chooses: `canary-by-header` first (`always` /
//! `never`, or `canary-by-header-value` / `-pattern`), then
//! `canary-by-cookie` (`always` / `never`), then `canary-weight` out of
//! `canary-weight-total` (default 100).
//!
//! The canary Ingress makes no routes of its own; its rules become one
//! `nginxCanary` step at the head of the main Ingress's chain, which sends
//! the chosen requests to the canary's Service. As in ingress-nginx, the
//! canary Ingress's other annotations are not applied.

use serde_json::{json, Value};

use super::super::ingress::Served;
use super::{Annotations, PREFIX};
use crate::middleware::InlineStep;

/// Whether `ing` is a canary Ingress.
pub(in crate::router) fn is_canary(ing: &Served<'_>) -> bool {
    ing.canary
}

/// Whether an Ingress's annotations make it a canary (read once per object:
/// [`Served::canary`]).
pub(in crate::router) fn annotated(ingress: &k8s_openapi::api::networking::v1::Ingress) -> bool {
    ingress
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|all| Annotations::new(all).flag("canary") == Some(Ok(true)))
}

/// The served Ingresses that are canaries (`canary: "true"`).
pub(in crate::router) fn canaries<'s, 'a>(served: &'s [Served<'a>]) -> Vec<&'s Served<'a>> {
    served.iter().filter(|ing| is_canary(ing)).collect()
}

/// The canary step for `main`: the rules of every canary Ingress in its
/// namespace sharing one of its host + path pairs; problems beside.
///
/// `canaries` are the served canary Ingresses ([`canaries`], found once per
/// compile, so that a compile costs the number of Ingresses times the number
/// of canaries, not the square of the Ingresses).
pub(in crate::router) fn step_for(
    main: &Served<'_>,
    canaries: &[&Served<'_>],
) -> (Option<InlineStep>, Vec<String>) {
    let mut problems = Vec::new();
    if canaries.is_empty() || is_canary(main) {
        return (None, problems);
    }
    let mains = pairs(main);
    let mut rules: Vec<Value> = Vec::new();
    for canary in canaries.iter().filter(|c| c.namespace == main.namespace) {
        let Some(all) = canary.ingress.metadata.annotations.as_ref() else {
            continue;
        };
        let a = Annotations::new(all);
        let policy = match policy(&a) {
            Ok(policy) => policy,
            Err(reason) => {
                problems.push(format!("{}: {reason}", canary.object));
                continue;
            }
        };
        for (host, path, service, port) in pairs_with_backend(canary) {
            if mains.iter().any(|(h, p)| *h == host && *p == path) {
                let mut rule = policy.clone();
                rule["host"] = json!(host);
                rule["path"] = json!(path);
                rule["service"] = json!(service);
                rule["port"] = port;
                rules.push(rule);
            }
        }
    }
    if rules.is_empty() {
        return (None, problems);
    }
    let step = InlineStep {
        name: "nginx-canary".to_owned(),
        kind: "nginxCanary".to_owned(),
        config: json!({ "rules": rules }),
    };
    (Some(step), problems)
}

/// The choice annotations of a canary Ingress as the step's config.
fn policy(a: &Annotations<'_>) -> Result<Value, String> {
    let weight = match a.get("canary-weight") {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| format!("{PREFIX}canary-weight: {v:?} is not a whole number"))?,
    };
    let total = match a.get("canary-weight-total") {
        None => 100,
        Some(v) => v.parse::<u32>().ok().filter(|t| *t > 0).ok_or_else(|| {
            format!("{PREFIX}canary-weight-total: {v:?} is not a positive whole number")
        })?,
    };
    if let Some(pattern) = a.get("canary-by-header-pattern") {
        regex::Regex::new(pattern)
            .map_err(|e| format!("{PREFIX}canary-by-header-pattern: {pattern:?}: {e}"))?;
    }
    Ok(json!({
        "header": a.get("canary-by-header"),
        "headerValue": a.get("canary-by-header-value"),
        "headerPattern": a.get("canary-by-header-pattern"),
        "cookie": a.get("canary-by-cookie"),
        "weight": weight,
        "weightTotal": total,
    }))
}

/// The (host, path) pairs of an Ingress's rules (`""` for any host).
fn pairs(ing: &Served<'_>) -> Vec<(String, String)> {
    pairs_with_backend(ing)
        .into_iter()
        .map(|(h, p, _, _)| (h, p))
        .collect()
}

/// (host, path, Service, port) of each rule path with a Service backend.
fn pairs_with_backend(ing: &Served<'_>) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    let rules = ing
        .ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default();
    for rule in rules {
        let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
        for path in rule
            .http
            .as_ref()
            .map(|h| h.paths.as_slice())
            .unwrap_or_default()
        {
            let Some(service) = path.backend.service.as_ref() else {
                continue;
            };
            let port = match service.port.as_ref() {
                Some(p) => match (&p.name, p.number) {
                    (Some(name), _) if !name.is_empty() => json!(name),
                    (_, Some(number)) => json!(number),
                    _ => continue,
                },
                None => continue,
            };
            let written = path
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_owned());
            out.push((host.clone(), written, service.name.clone(), port));
        }
    }
    out
}
