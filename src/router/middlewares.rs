//! The `router.middlewares` annotation: each served Ingress's middleware chain,
//! built from the snapshot's `Middleware` objects.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustc_hash::FxHashMap as HashMap;

use super::annotations;
use super::backend::Resolver;
use super::certs::Secrets;
use super::ingress::Served;
use super::nginx;
use super::{Diagnostic, DiagnosticKind, Registries, Snapshot};
use crate::middleware::{Chain, Environment, MiddlewareObject, ServiceTarget};
use crate::upstream::{Backend, BackendKey, BackendProtocol, ClientKey, PortRef};

/// Traefik's annotation naming a router's middlewares, in order.
pub(super) const ROUTER_MIDDLEWARES: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// Resolves a Service port to its live backend (once per compile, queueing its
/// endpoint set for the publisher): the compiler's memo behind a callback.
pub(super) type ResolveBackend<'x> = dyn FnMut(&BackendKey) -> Result<Arc<Backend>, String> + 'x;

/// What the compiler lends the middleware builder.
pub(super) struct Env<'x, 'a> {
    pub resolver: &'x Resolver<'a>,
    pub secrets: &'x Secrets<'a>,
    pub registries: &'a Registries,
    resolve: &'x mut ResolveBackend<'x>,
    middlewares: HashMap<(&'a str, &'a str), &'a MiddlewareObject>,
}

impl<'x, 'a> Env<'x, 'a> {
    pub(super) fn new(
        snapshot: &'a Snapshot,
        resolver: &'x Resolver<'a>,
        secrets: &'x Secrets<'a>,
        registries: &'a Registries,
        resolve: &'x mut ResolveBackend<'x>,
    ) -> Self {
        let middlewares = snapshot
            .middlewares
            .iter()
            .map(|m| ((m.namespace(), m.name()), &**m))
            .collect();
        Self {
            resolver,
            secrets,
            registries,
            resolve,
            middlewares,
        }
    }
}

impl Env<'_, '_> {
    /// The live backend of a Service port, resolved once per compile (its
    /// endpoint set queued for the publisher).
    pub(super) fn backend(&mut self, key: &BackendKey) -> Result<Arc<Backend>, String> {
        (self.resolve)(key)
    }
}

impl Environment for Env<'_, '_> {
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    fn middleware(&self, namespace: &str, name: &str) -> Option<&MiddlewareObject> {
        self.middlewares.get(&(namespace, name)).copied()
    }

    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<ServiceTarget, String> {
        let key = self.resolver.canonical(BackendKey {
            namespace: namespace.to_owned(),
            cluster_ip: false,
            service: name.to_owned(),
            port: port.clone(),
        });
        let backend = (self.resolve)(&key)?;
        let protocol = self
            .resolver
            .service_annotation(&key, annotations::SERVERS_SCHEME)
            .and_then(annotations::servers_scheme)
            .unwrap_or(BackendProtocol::Http);
        let client = self
            .registries
            .clients
            .get(&ClientKey {
                protocol,
                verify: None,
                timeouts: Default::default(),
            })
            .map_err(|e| e.to_string())?;
        Ok(ServiceTarget { backend, client })
    }
}

/// One chain per served Ingress (same order as `served`); references that
/// cannot be built are reported and make that Ingress's chain broken (500).
pub(super) fn chains(
    served: &[Served<'_>],
    env: &mut Env<'_, '_>,
    nginx_env: &nginx::Env<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Chain> {
    let registries = env.registries;
    let client_certs = nginx::client_cert::Plan::new(served, env.secrets);
    let canaries = nginx::canary::canaries(served);
    let mut session = registries
        .middlewares
        .session(env, nginx_env.allow_cross_namespace);
    let none = std::collections::BTreeMap::new();
    served
        .iter()
        .enumerate()
        .map(|(index, ing)| {
            let annotations = ing.ingress.metadata.annotations.as_ref().unwrap_or(&none);
            let value = annotations.get(ROUTER_MIDDLEWARES).map(String::as_str);
            let mut nginx = nginx::translate_in(
                annotations,
                &nginx::Env {
                    namespace: ing.namespace,
                    ..*nginx_env
                },
            );
            client_certs.apply(index, &mut nginx);
            for step in nginx
                .steps
                .iter_mut()
                .filter(|s| s.kind == "nginxWwwRedirect")
            {
                // The redirect targets are the Ingress's own hosts (the router
                // also serves their other names on its routes).
                let hosts: Vec<String> = ing
                    .ingress
                    .spec
                    .as_ref()
                    .and_then(|s| s.rules.as_deref())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r.host.as_deref())
                    .filter(|h| !h.starts_with('*'))
                    .map(str::to_ascii_lowercase)
                    .collect();
                step.config = serde_json::json!({ "hosts": hosts });
            }
            let (canary, canary_problems) = nginx::canary::step_for(ing, &canaries);
            for problem in canary_problems {
                diagnostics.push(Diagnostic::warning(
                    ing.object.clone(),
                    DiagnosticKind::InvalidAnnotation,
                    format!("{problem}; the canary is left out"),
                ));
            }
            if let Some(step) = canary {
                // Last of the annotation steps: canary requests pass the main
                // Ingress's auth, limits and rewrites first, as they share its
                // nginx location in ingress-nginx.
                nginx.steps.push(step);
            }
            for (annotation, reason) in &nginx.ignored {
                let message = format!("{annotation}: {reason}; the annotation is ignored");
                tracing::warn!(object = %ing.object, "{message}");
                diagnostics.push(Diagnostic::warning(
                    ing.object.clone(),
                    DiagnosticKind::InvalidAnnotation,
                    message,
                ));
            }
            if !nginx.refused.is_empty() {
                // Fail closed: a protection that cannot be built is not skipped.
                let mut reasons = Vec::new();
                for (annotation, reason) in &nginx.refused {
                    let message = format!(
                        "{annotation}: {reason}; the Ingress's routes answer 500 until it is fixed"
                    );
                    tracing::warn!(object = %ing.object, "{message}");
                    diagnostics.push(Diagnostic::error(
                        ing.object.clone(),
                        DiagnosticKind::InvalidAnnotation,
                        message,
                    ));
                    reasons.push(format!("{annotation}: {reason}"));
                }
                return Chain::Broken {
                    reason: reasons.join("; ").into(),
                    names: nginx.refused.iter().map(|(a, _)| a.clone()).collect(),
                };
            }
            let object = ing.ingress.metadata.name.as_deref().unwrap_or("");
            let (chain, error) = session.chain_with(ing.namespace, object, &nginx.steps, value);
            if let Some(error) = error {
                let source = if value.is_some() && nginx.steps.is_empty() {
                    ROUTER_MIDDLEWARES
                } else {
                    "middlewares"
                };
                let message =
                    format!("{source}: {error}; the Ingress's routes answer 500 until it is fixed");
                tracing::warn!(object = %ing.object, "{message}");
                diagnostics.push(Diagnostic::error(
                    ing.object.clone(),
                    DiagnosticKind::InvalidMiddleware,
                    message,
                ));
            }
            chain
        })
        .collect()
}
