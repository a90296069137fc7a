//! Object identities and ReferenceGrant checks.
//!
//! A reference to an object in another namespace is permitted only when a
//! `ReferenceGrant` in the referent's namespace lists the referring object's
//! group, kind and namespace in `from`, and the referent's group, kind (and,
//! if given, name) in `to`. References within one namespace need no grant.
//! `v1` and `v1beta1` grants are the same type once decoded.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::gateway::ReferenceGrant;

/// A namespaced object's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NamespacedName {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl NamespacedName {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The referring side of a reference: the kind and namespace of the object
/// that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefFrom<'a> {
    /// The referring object's API group (`gateway.networking.k8s.io`).
    pub group: &'a str,
    /// The referring object's kind (`HTTPRoute`, `Gateway`).
    pub kind: &'a str,
    /// The referring object's namespace.
    pub namespace: &'a str,
}

/// The referent of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefTo<'a> {
    /// The referent's API group (`""` for core kinds).
    pub group: &'a str,
    /// The referent's kind (`Service`, `Secret`).
    pub kind: &'a str,
    /// The referent's namespace.
    pub namespace: &'a str,
    /// The referent's name.
    pub name: &'a str,
}

/// The snapshot's ReferenceGrants, indexed by namespace.
#[derive(Debug, Default)]
pub struct ReferenceGrants<'a> {
    by_namespace: HashMap<&'a str, Vec<&'a ReferenceGrant>>,
}

impl<'a> ReferenceGrants<'a> {
    /// Indexes `grants`.
    pub fn new(grants: &'a [Arc<ReferenceGrant>]) -> Self {
        let mut by_namespace: HashMap<&str, Vec<&ReferenceGrant>> = HashMap::new();
        for grant in grants {
            by_namespace
                .entry(grant.namespace())
                .or_default()
                .push(grant);
        }
        Self { by_namespace }
    }

    /// Whether the reference from `from` to `to` is permitted: same
    /// namespace, or a grant in `to.namespace` allows it.
    pub fn permits(&self, from: RefFrom<'_>, to: RefTo<'_>) -> bool {
        if from.namespace == to.namespace {
            return true;
        }
        self.by_namespace
            .get(to.namespace)
            .into_iter()
            .flatten()
            .any(|grant| grants(grant, from, to))
    }
}

/// Whether one grant (which must live in `to.namespace`) allows the reference.
fn grants(grant: &ReferenceGrant, from: RefFrom<'_>, to: RefTo<'_>) -> bool {
    let from_ok = grant
        .spec
        .from
        .iter()
        .any(|f| f.group == from.group && f.kind == from.kind && f.namespace == from.namespace);
    let to_ok = grant.spec.to.iter().any(|t| {
        t.group == to.group && t.kind == to.kind && t.name.as_deref().is_none_or(|n| n == to.name)
    });
    from_ok && to_ok
}

/// Whether the reference from `from` to `to` is permitted by `grants` (see
/// [`ReferenceGrants::permits`]; index once with [`ReferenceGrants::new`]
/// when checking many references).
pub fn reference_permitted(
    grants: &[Arc<ReferenceGrant>],
    from: RefFrom<'_>,
    to: RefTo<'_>,
) -> bool {
    ReferenceGrants::new(grants).permits(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::decode;

    fn grant(yaml: &str) -> Arc<ReferenceGrant> {
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("YAML");
        Arc::new(decode(value).expect("decodes"))
    }

    #[test]
    fn grants_match_from_and_to_exactly() {
        let grants = [grant(
            "
metadata: {name: g, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: '', kind: Service}, {group: '', kind: Secret, name: tls}]
",
        )];
        let route = RefFrom {
            group: "gateway.networking.k8s.io",
            kind: "HTTPRoute",
            namespace: "apps",
        };
        let to = |kind, name| RefTo {
            group: "",
            kind,
            namespace: "backends",
            name,
        };
        assert!(reference_permitted(&grants, route, to("Service", "any")));
        assert!(reference_permitted(&grants, route, to("Secret", "tls")));
        assert!(!reference_permitted(&grants, route, to("Secret", "other")));
        let gateway = RefFrom {
            kind: "Gateway",
            ..route
        };
        assert!(!reference_permitted(&grants, gateway, to("Service", "any")));
        let elsewhere = RefFrom {
            namespace: "other",
            ..route
        };
        assert!(!reference_permitted(
            &grants,
            elsewhere,
            to("Service", "any")
        ));
        // The same namespace needs no grant.
        let local = RefTo {
            namespace: "apps",
            ..to("Service", "any")
        };
        assert!(reference_permitted(&[], route, local));
    }
}
