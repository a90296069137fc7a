//! Ingress semantics: which Ingresses are ours, their age, and their rules as plain data.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend};
use k8s_openapi::jiff::Timestamp;

use super::host::HostPattern;
use super::{
    CompileOptions, Diagnostic, DiagnosticKind, ObjectRef, PathKind, Snapshot, CONTROLLER_NAME,
};
use crate::upstream::{BackendKey, PortRef};

/// The legacy annotation that named an Ingress's class before `spec.ingressClassName`.
pub(super) const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// An Ingress this controller serves, with what the compiler needs at hand.
#[derive(Debug)]
pub(super) struct Served<'a> {
    /// The object.
    pub ingress: &'a Ingress,
    /// The same object as the snapshot holds it (what memos keep).
    pub arc: &'a Arc<Ingress>,
    /// `Ingress <namespace>/<name>`, for diagnostics and routes.
    pub object: ObjectRef,
    /// The namespace (`default` when unset).
    pub namespace: &'a str,
    /// The name.
    pub name: &'a str,
    created: Option<Timestamp>,
}

impl Served<'_> {
    /// Oldest first; a missing timestamp counts as newer than any set one; then
    /// namespace and name, so the order is total and stable.
    fn age_order(&self, other: &Self) -> Ordering {
        let key = |s: &Self| (s.created.is_none(), s.created, s.namespace, s.name);
        key(self).cmp(&key(other))
    }
}

/// One rule path: host, path and type, and the backend it names.
#[derive(Debug, Clone)]
pub(super) struct Rule<'a> {
    /// The rule's host.
    pub host: HostPattern,
    /// The path as written (`/` when absent or empty).
    pub path: String,
    /// Whether the path was written (Traefik leaves the path matcher out of the
    /// rule otherwise, which changes the rule's length, its default priority).
    pub written: bool,
    /// The path type, `ImplementationSpecific` read by the Ingress's `router.pathmatcher`.
    pub kind: PathKind,
    /// Where it sends requests.
    pub backend: &'a IngressBackend,
}

/// The Ingresses this controller serves, in snapshot order ([`in_age_order`]
/// sorts them).
pub(super) fn served<'a>(
    snapshot: &'a Snapshot,
    options: &CompileOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Served<'a>> {
    let ours: HashSet<&str> = snapshot
        .ingress_classes
        .iter()
        .filter(|class| {
            class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER_NAME)
        })
        .filter_map(|class| class.metadata.name.as_deref())
        .collect();
    snapshot
        .ingresses
        .iter()
        .filter(|ing| is_ours(ing, options, &ours))
        .filter_map(|ing| identify(ing, diagnostics))
        .collect()
}

/// `served` oldest first (see [`Served::age_order`]), reusing `previous`, the
/// order of the last compile's served Ingresses: those still served keep
/// their relative order (their keys are the same objects' keys), and only
/// the others are sorted and placed by binary search, so one changed Ingress
/// costs a few comparisons rather than a sort of them all. `previous` holds
/// the objects, so no address in it can be reused by a new one.
pub(super) fn in_age_order<'a>(
    served: Vec<Served<'a>>,
    previous: &[Arc<Ingress>],
) -> Vec<Served<'a>> {
    super::order::keep_order(
        served,
        previous,
        |ing| Arc::as_ptr(ing.arc) as *const () as usize,
        Served::age_order,
    )
}

/// The class rules, as ingress-nginx applies them: when `spec.ingressClassName`
/// is set it decides alone (our class name, or an IngressClass whose controller
/// is us); only when it is absent is the legacy annotation consulted (naming our
/// class); an Ingress with neither is served.
fn is_ours(ingress: &Ingress, options: &CompileOptions, ours: &HashSet<&str>) -> bool {
    let field = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    if let Some(class) = field {
        return class == options.ingress_class || ours.contains(class);
    }
    let annotation = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CLASS_ANNOTATION))
        .map(String::as_str);
    annotation.is_none_or(|class| class == options.ingress_class)
}

fn identify<'a>(arc: &'a Arc<Ingress>, diagnostics: &mut Vec<Diagnostic>) -> Option<Served<'a>> {
    let ingress: &'a Ingress = arc;
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let Some(name) = ingress.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        let object = ObjectRef::namespaced("Ingress", namespace, "");
        diagnostics.push(Diagnostic::error(
            object,
            DiagnosticKind::InvalidObject,
            "Ingress has no metadata.name",
        ));
        return None;
    };
    Some(Served {
        ingress,
        arc,
        object: ObjectRef::namespaced("Ingress", namespace, name),
        namespace,
        name,
        created: ingress.metadata.creation_timestamp.as_ref().map(|t| t.0),
    })
}

/// The Ingress's rule paths; invalid hosts and paths become diagnostics and are
/// left out. `implementation` is how `ImplementationSpecific` paths match
/// (`None`: the Ingress's `router.pathmatcher` is invalid, already reported, and
/// those paths are left out).
pub(super) fn rules<'a>(
    served: &Served<'a>,
    implementation: Option<PathKind>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Rule<'a>> {
    let mut out = Vec::new();
    let rules = served
        .ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_deref())
        .unwrap_or_default();
    for rule in rules {
        let host = match HostPattern::parse(rule.host.as_deref()) {
            Ok(host) => host,
            Err(message) => {
                diagnostics.push(invalid(served, message));
                continue;
            }
        };
        let paths = rule
            .http
            .as_ref()
            .map(|h| h.paths.as_slice())
            .unwrap_or_default();
        for path in paths {
            match rule_path(&host, path, implementation) {
                Ok(Some((path_str, kind))) => out.push(Rule {
                    host: host.clone(),
                    path: path_str,
                    written: path.path.as_deref().is_some_and(|p| !p.is_empty()),
                    kind,
                    backend: &path.backend,
                }),
                Ok(None) => {}
                Err(message) => diagnostics.push(invalid(served, message)),
            }
        }
    }
    out
}

/// A rule path's path and type. The API server requires `pathType` (a missing
/// one deserialises as `""`), so an empty or unknown type is invalid, never a
/// guess; `ImplementationSpecific` is read as `implementation` says (`Ok(None)`:
/// left out, the invalid annotation is reported once for the Ingress).
///
/// A regex path must start with `/` (as the API server requires of every
/// path) or with `^`.
fn rule_path(
    host: &HostPattern,
    path: &HTTPIngressPath,
    implementation: Option<PathKind>,
) -> Result<Option<(String, PathKind)>, String> {
    let written = path
        .path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let kind = match path.path_type.as_str() {
        "Exact" => PathKind::Exact,
        "Prefix" => PathKind::Prefix,
        "ImplementationSpecific" => match implementation {
            Some(kind) => kind,
            None => return Ok(None),
        },
        "" => {
            let host = host
                .display()
                .map_or("any host".to_owned(), |h| format!("host {h}"));
            return Err(format!(
                "{host}, path {written:?}: pathType is missing \
                 (required: Exact, Prefix or ImplementationSpecific)"
            ));
        }
        other => return Err(format!("unknown pathType {other:?}")),
    };
    let regex_start = kind == PathKind::Regex && written.starts_with('^');
    if !written.starts_with('/') && !regex_start {
        return Err(format!("path {written:?} does not start with `/`"));
    }
    Ok(Some((written.to_owned(), kind)))
}

/// The Service port a backend names, in the Ingress's namespace.
pub(super) fn backend_key(
    served: &Served<'_>,
    backend: &IngressBackend,
) -> Result<BackendKey, Box<Diagnostic>> {
    let Some(service) = &backend.service else {
        let what = if backend.resource.is_some() {
            "a resource backend"
        } else {
            "an empty backend"
        };
        return Err(Box::new(invalid(
            served,
            format!("{what} is not supported; use service"),
        )));
    };
    let port = service.port.as_ref();
    let port = match (
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.as_deref()),
    ) {
        (Some(number), _) => PortRef::Number(number),
        (None, Some(name)) if !name.is_empty() => PortRef::Name(name.to_owned()),
        _ => {
            return Err(Box::new(invalid(
                served,
                format!("backend service {:?} names no port", service.name),
            )))
        }
    };
    if service.name.is_empty() {
        return Err(Box::new(invalid(
            served,
            "backend service has no name".to_owned(),
        )));
    }
    Ok(BackendKey {
        namespace: served.namespace.to_owned(),
        service: service.name.clone(),
        port,
        cluster_ip: service_upstream(served),
    })
}

/// ingress-nginx's `service-upstream: "true"`: the Ingress's backends are
/// its Services' ClusterIPs (a bad value reads as false; `sluice check` and
/// the compiler report it).
fn service_upstream(served: &Served<'_>) -> bool {
    served
        .ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nginx.ingress.kubernetes.io/service-upstream"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn invalid(served: &Served<'_>, message: String) -> Diagnostic {
    Diagnostic::error(
        served.object.clone(),
        DiagnosticKind::InvalidObject,
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ingress(namespace: &str, name: &str, created: Option<i64>) -> Arc<Ingress> {
        Arc::new(Ingress {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                creation_timestamp: created
                    .map(|s| Time(Timestamp::from_second(s).expect("in range"))),
                ..ObjectMeta::default()
            },
            ..Ingress::default()
        })
    }

    fn names(served: &[Served<'_>]) -> Vec<String> {
        served
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect()
    }

    /// Random adds, removals and replacements (new objects of the same name,
    /// possibly with another timestamp): the order kept from the compile
    /// before, with only the new objects placed, is always a full sort's.
    #[test]
    fn a_kept_order_equals_a_fresh_sort() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut current: Vec<Arc<Ingress>> = Vec::new();
        let mut previous: Vec<Arc<Ingress>> = Vec::new();
        let mut placed = 0;
        for step in 0..300 {
            match next(4) {
                0 if !current.is_empty() => {
                    let i = usize::try_from(next(current.len() as u64)).expect("small");
                    current.remove(i);
                }
                1 if !current.is_empty() => {
                    let i = usize::try_from(next(current.len() as u64)).expect("small");
                    let (ns, name) = (
                        current[i].metadata.namespace.clone().unwrap_or_default(),
                        current[i].metadata.name.clone().unwrap_or_default(),
                    );
                    let created = (next(3) > 0).then(|| i64::try_from(next(50)).expect("small"));
                    current[i] = ingress(&ns, &name, created);
                }
                _ => {
                    let created = (next(3) > 0).then(|| i64::try_from(next(50)).expect("small"));
                    let ns = format!("ns{}", next(5));
                    current.push(ingress(&ns, &format!("ing{step}"), created));
                }
            }
            let snapshot = Snapshot {
                ingresses: current.clone(),
                ..Snapshot::default()
            };
            let mut diagnostics = Vec::new();
            let found = served(&snapshot, &CompileOptions::default(), &mut diagnostics);
            if found.len() > 8 && found.len() - 1 <= previous.len() {
                placed += 1;
            }
            let kept = in_age_order(found, &previous);
            let mut fresh = served(&snapshot, &CompileOptions::default(), &mut diagnostics);
            fresh.sort_by(Served::age_order);
            assert_eq!(names(&kept), names(&fresh), "step {step}");
            previous = kept.iter().map(|s| s.arc.clone()).collect();
        }
        assert!(placed > 100, "the binary-search path ran {placed} times");
    }
}
