//! Ingress semantics: which Ingresses are ours, their age, and their rules as plain data.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend, IngressClass};
use k8s_openapi::jiff::Timestamp;

use super::delta::address;
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
    pub object: &'a ObjectRef,
    /// The namespace (`default` when unset).
    pub namespace: &'a str,
    /// The name.
    pub name: &'a str,
    /// Whether it is an ingress-nginx canary (`canary: "true"`).
    pub canary: bool,
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

/// The Ingresses this controller serves, in snapshot order: those
/// [`ServedList`] selects (of our class, with a name).
pub(super) fn served<'a>(snapshot: &'a Snapshot, options: &CompileOptions) -> Vec<&'a Ingress> {
    let ours = our_classes(snapshot);
    snapshot
        .ingresses
        .iter()
        .filter(|ing| is_ours(ing, options, &ours) && identify(ing).is_ok())
        .map(|ing| &**ing)
        .collect()
}

/// The IngressClass names whose controller is sluice.
fn our_classes(snapshot: &Snapshot) -> HashSet<&str> {
    snapshot
        .ingress_classes
        .iter()
        .filter(|class| {
            class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER_NAME)
        })
        .filter_map(|class| class.metadata.name.as_deref())
        .collect()
}

/// A served Ingress's identity, read once per object.
#[derive(Debug)]
struct Entry {
    arc: Arc<Ingress>,
    object: ObjectRef,
    created: Option<Timestamp>,
    canary: bool,
}

impl Entry {
    /// Oldest first; a missing timestamp counts as newer than any set one;
    /// then namespace and name, so the order is total and stable.
    fn age_order(&self, other: &Self) -> Ordering {
        fn key(e: &Entry) -> (bool, Option<Timestamp>, Option<&str>, &str) {
            (
                e.created.is_none(),
                e.created,
                e.object.namespace.as_deref(),
                e.object.name.as_str(),
            )
        }
        key(self).cmp(&key(other))
    }
}

/// The Ingresses this controller serves, oldest first, kept from compile to
/// compile: patched with the Ingresses that came and went (by address) while
/// the IngressClasses and the class option are the same, so an unchanged
/// Ingress is not read again and a new one is placed by binary search.
#[derive(Debug, Default)]
pub(super) struct ServedList {
    entries: Vec<Entry>,
    /// Ingresses of our class without a name, with their diagnostic.
    unnamed: Vec<(Arc<Ingress>, Diagnostic)>,
    /// What the entries were selected from.
    ingresses: Vec<Arc<Ingress>>,
    classes: Vec<Arc<IngressClass>>,
    class: String,
}

impl ServedList {
    /// The list for `snapshot`, starting from `self` (the last compile's).
    pub(super) fn update(mut self, snapshot: &Snapshot, options: &CompileOptions) -> Self {
        let same_classes = self.class == options.ingress_class
            && self.classes.len() == snapshot.ingress_classes.len()
            && self
                .classes
                .iter()
                .zip(&snapshot.ingress_classes)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        let ours = our_classes(snapshot);
        let mut fresh = Vec::new();
        if same_classes {
            let d = super::delta::by_address(&self.ingresses, &snapshot.ingresses);
            if !d.removed.is_empty() {
                let gone: rustc_hash::FxHashSet<usize> = d.removed.iter().map(address).collect();
                self.entries.retain(|e| !gone.contains(&address(&e.arc)));
                self.unnamed
                    .retain(|(ing, _)| !gone.contains(&address(ing)));
            }
            fresh.extend(d.added.into_iter().cloned());
        } else {
            self.entries.clear();
            self.unnamed.clear();
            fresh.extend(snapshot.ingresses.iter().cloned());
        }
        let mut new: Vec<Entry> = Vec::new();
        for ing in fresh {
            if !is_ours(&ing, options, &ours) {
                continue;
            }
            match identify(&ing) {
                Ok((object, created)) => new.push(Entry {
                    canary: super::nginx::canary::annotated(&ing),
                    arc: ing,
                    object,
                    created,
                }),
                Err(diagnostic) => self.unnamed.push((ing, *diagnostic)),
            }
        }
        super::order::insert_sorted(&mut self.entries, new, Entry::age_order);
        self.ingresses = snapshot.ingresses.clone();
        self.classes = snapshot.ingress_classes.clone();
        self.class = options.ingress_class.clone();
        self
    }

    /// The served Ingresses, oldest first; the unnamed ones go to `diagnostics`.
    pub(super) fn served(&self, diagnostics: &mut Vec<Diagnostic>) -> Vec<Served<'_>> {
        diagnostics.extend(self.unnamed.iter().map(|(_, d)| d.clone()));
        self.entries
            .iter()
            .map(|e| Served {
                ingress: &e.arc,
                arc: &e.arc,
                object: &e.object,
                namespace: e.object.namespace.as_deref().unwrap_or("default"),
                name: &e.object.name,
                canary: e.canary,
            })
            .collect()
    }
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

/// `Ingress <namespace>/<name>` (`default` when the namespace is unset).
pub(super) fn object_of(ingress: &Ingress) -> ObjectRef {
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let name = ingress.metadata.name.as_deref().unwrap_or_default();
    ObjectRef::namespaced("Ingress", namespace, name)
}

/// An Ingress's identity and age, or the diagnostic for one without a name.
fn identify(ingress: &Ingress) -> Result<(ObjectRef, Option<Timestamp>), Box<Diagnostic>> {
    let object = object_of(ingress);
    if object.name.is_empty() {
        return Err(Box::new(Diagnostic::error(
            object,
            DiagnosticKind::InvalidObject,
            "Ingress has no metadata.name",
        )));
    }
    Ok((
        object,
        ingress.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ))
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
    /// possibly with another timestamp), Ingresses of other classes and
    /// without a name: the list kept from the compile before, with only the
    /// new objects placed, always equals a fresh one, which is a full sort.
    #[test]
    fn a_kept_served_list_equals_a_fresh_sort() {
        let mut next = super::super::order::rng(0x2545_f491_4f6c_dd1d);
        let options = CompileOptions::default();
        let mut current: Vec<Arc<Ingress>> = Vec::new();
        let mut kept = ServedList::default();
        let mut placed = 0;
        for step in 0..600 {
            match next(6) {
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
                2 => {
                    // Another class's Ingress, or one without a name.
                    let mut other = (*ingress("ns0", &format!("x{step}"), Some(1))).clone();
                    if next(2) == 0 {
                        other.spec = Some(k8s_openapi::api::networking::v1::IngressSpec {
                            ingress_class_name: Some("other".to_owned()),
                            ..Default::default()
                        });
                    } else {
                        other.metadata.name = None;
                    }
                    current.push(Arc::new(other));
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
            let before = kept.entries.len();
            kept = std::mem::take(&mut kept).update(&snapshot, &options);
            if before > 8 && kept.entries.len() <= before + 1 {
                placed += 1;
            }
            let fresh = ServedList::default().update(&snapshot, &options);
            let (mut kept_diags, mut fresh_diags) = (Vec::new(), Vec::new());
            let kept_names = names(&kept.served(&mut kept_diags));
            assert_eq!(
                kept_names,
                names(&fresh.served(&mut fresh_diags)),
                "step {step}"
            );
            assert_eq!(kept_diags.len(), fresh_diags.len(), "step {step}");
            let mut sorted: Vec<&Entry> = fresh.entries.iter().collect();
            sorted.sort_by(|a, b| a.age_order(b));
            let sorted: Vec<String> = sorted
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e.object.namespace.as_deref().unwrap_or(""),
                        e.object.name
                    )
                })
                .collect();
            assert_eq!(kept_names, sorted, "step {step}");
        }
        assert!(placed > 100, "the binary-search path ran {placed} times");
    }
}
