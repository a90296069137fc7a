//! ingress-nginx's annotations (`nginx.ingress.kubernetes.io/*`) on an
//! Ingress, compiled into the same middlewares `Middleware` objects build
//! (built once, state kept across reloads by the middleware builder), run
//! before the Ingress's `router.middlewares` chain.
//!
//! Each group of annotations has a module that reads the annotations and
//! pushes [`InlineStep`]s in ingress-nginx's phase order: redirects
//! (rewrite phase), CORS preflight, request limits (preaccess), allow/deny
//! lists and authentication (access, with `satisfy`), then request rewriting
//! and headers.
//!
//! Fail closed: a value that cannot be used on an annotation that protects
//! the route (auth, allow/deny lists, limits, snippets) is *refused*: the
//! Ingress's routes answer 500 with an `invalid_annotation` diagnostic naming
//! the annotation. A bad value on any other annotation is reported and the
//! annotation ignored.

mod access;
pub(crate) mod affinity;
mod aliases;
mod auth;
pub(crate) mod balance;
mod body;
pub(in crate::router) mod canary;
pub(in crate::router) mod client_cert;
mod config_headers;
mod cors;
mod errors;
pub(crate) mod global;
mod headers;
mod limits;
mod redirects;
mod regex_paths;
mod rewrite;
mod snippets;
pub(crate) mod timeouts;
mod upstream;

use std::collections::BTreeMap;

use crate::middleware::InlineStep;
use crate::router::Snapshot;

pub use global::references as global_references;
pub(crate) use global::Global;

pub(in crate::router) use aliases::{taken_hosts, with_aliases};
pub use regex_paths::location_pattern;
pub(in crate::router) use regex_paths::{regex_hosts, regex_rules};

/// The prefix every ingress-nginx annotation shares.
pub(super) const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// What an Ingress's ingress-nginx annotations compile to.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Translation {
    /// Middlewares to run first, in ingress-nginx's phase order.
    pub steps: Vec<InlineStep>,
    /// (annotation, reason) of protection annotations whose value cannot be
    /// used: the routes answer 500.
    pub refused: Vec<(String, String)>,
    /// (annotation, reason) of other annotations whose value cannot be used:
    /// reported, then ignored.
    pub ignored: Vec<(String, String)>,
}

/// The annotations of one Ingress, read by their name without the prefix.
pub(crate) struct Annotations<'a> {
    all: &'a BTreeMap<String, String>,
}

impl<'a> Annotations<'a> {
    /// Wraps an Ingress's `metadata.annotations`.
    pub(crate) fn new(all: &'a BTreeMap<String, String>) -> Self {
        Self { all }
    }

    /// The trimmed value of `nginx.ingress.kubernetes.io/<name>`, if set.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.all
            .iter()
            .find(|(k, _)| k.strip_prefix(PREFIX) == Some(name))
            .map(|(_, v)| v.trim())
    }

    /// A boolean annotation as ingress-nginx parses it (`"true"`/`"false"`);
    /// `Err` with the value for anything else.
    pub(crate) fn flag(&self, name: &str) -> Option<Result<bool, &'a str>> {
        self.get(name).map(|v| match v {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            other => Err(other),
        })
    }
}

impl Translation {
    /// Refuses the route over `annotation` (fail closed).
    pub(crate) fn refuse(&mut self, annotation: &str, reason: impl Into<String>) {
        self.refused
            .push((format!("{PREFIX}{annotation}"), reason.into()));
    }

    /// Reports `annotation` as unusable and ignores it.
    pub(crate) fn ignore(&mut self, annotation: &str, reason: impl Into<String>) {
        self.ignored
            .push((format!("{PREFIX}{annotation}"), reason.into()));
    }

    /// Adds a middleware step.
    pub(crate) fn step(&mut self, name: &str, kind: &str, config: serde_json::Value) {
        self.steps.push(InlineStep {
            name: name.to_owned(),
            kind: kind.to_owned(),
            config,
        });
    }
}

/// What the translation reads besides an Ingress's annotations.
pub(crate) struct Env<'a> {
    /// The Ingress's namespace.
    pub namespace: &'a str,
    /// The objects being compiled (the ConfigMaps annotations name).
    pub snapshot: &'a Snapshot,
    /// The controller ConfigMap's settings (`--nginx-configmap`).
    pub global: &'a Global,
    /// `--allow-cross-namespace`: annotations may name objects of other namespaces.
    pub allow_cross_namespace: bool,
}

impl Env<'_> {
    /// The data of the ConfigMap an annotation names (`namespace/name`, or a
    /// name in the Ingress's namespace), or why it cannot be used.
    pub(crate) fn config_map(&self, value: &str) -> Result<&BTreeMap<String, String>, String> {
        let (namespace, name) = global::split_name(value, self.namespace)
            .ok_or_else(|| format!("{value:?} is not a ConfigMap name or namespace/name"))?;
        if namespace != self.namespace && !self.allow_cross_namespace {
            return Err(format!(
                "the ConfigMap {namespace}/{name} is in another namespace (allowed only with --allow-cross-namespace, as ingress-nginx's allow-cross-namespace-resources)"
            ));
        }
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        global::config_map(self.snapshot, &namespace, &name)
            .map(|m| m.data.as_ref().unwrap_or(&EMPTY))
            .ok_or_else(|| format!("no ConfigMap {namespace}/{name}"))
    }
}

/// Compiles an Ingress's ingress-nginx annotations, with no ConfigMap.
#[cfg(test)]
pub(crate) fn translate(annotations: &BTreeMap<String, String>) -> Translation {
    let snapshot = Snapshot::default();
    let global = Global::default();
    translate_in(
        annotations,
        &Env {
            namespace: "default",
            snapshot: &snapshot,
            global: &global,
            allow_cross_namespace: false,
        },
    )
}

/// Compiles an Ingress's ingress-nginx annotations in `env`.
pub(crate) fn translate_in(annotations: &BTreeMap<String, String>, env: &Env<'_>) -> Translation {
    let mut out = Translation::default();
    if !annotations.keys().any(|k| k.starts_with(PREFIX)) {
        return out;
    }
    let a = Annotations::new(annotations);
    // ingress-nginx's phases: rewrite (redirects, snippets' returns), the
    // CORS preflight, preaccess (limits), access (allow/deny, auth, with
    // `satisfy`), then the request as forwarded (rewrite-target, body, headers).
    redirects::translate(&a, &mut out);
    snippets::translate(&a, &mut out);
    cors::translate(&a, &mut out);
    limits::translate(&a, env, &mut out);
    access::translate(&a, env, &mut out);
    auth::translate(&a, &mut out);
    rewrite::translate(&a, &mut out);
    body::translate(&a, &mut out);
    headers::translate(&a, &mut out);
    config_headers::translate(&a, env, &mut out);
    upstream::translate(&a, &mut out);
    // Last: the default backend stands in for the backend, and the
    // custom-errors step it puts first covers every answer (`error_page`).
    errors::translate(&a, env, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_nginx_annotation_means_nothing_to_do() {
        let mut other = BTreeMap::new();
        other.insert(
            "traefik.ingress.kubernetes.io/router.priority".to_owned(),
            "3".to_owned(),
        );
        assert_eq!(translate(&other), Translation::default());
    }
}
