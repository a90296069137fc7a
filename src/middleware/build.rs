//! From `Middleware` objects to ready-to-run middlewares, once per table.
//!
//! [`Builder`] lives beside the table (in the compiler's registries): it hands
//! back the *same* built middleware when a Middleware's spec and everything it
//! read (Secrets, Services) are unchanged, which is how rate-limit buckets and
//! circuit-breaker windows survive reloads. A [`Session`] is one compile's view:
//! it resolves references, memoises each Middleware built in that compile and
//! refuses reference cycles through `chain`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use k8s_openapi::api::core::v1::Secret;
use rustc_hash::FxHasher;
use thiserror::Error;

use super::chain::Chain;
use super::object::MiddlewareObject;
use super::reference::{split_list, Reference, ReferenceError};
use super::Middleware;
use crate::upstream::{Backend, PortRef, UpstreamClient};

/// Why a middleware (and so every route that references it) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// The reference itself is malformed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// No Middleware object has that name in the Ingress's namespace.
    #[error("middleware {0:?} not found in namespace {1:?}")]
    NotFound(String, String),
    /// The reference names a Middleware of another namespace.
    #[error("middleware {reference:?} is in namespace {target:?}, not {namespace:?}; cross-namespace references need --allow-cross-namespace")]
    CrossNamespace {
        /// The reference as written.
        reference: String,
        /// The namespace of the referencing object.
        namespace: String,
        /// The namespace of the Middleware it names.
        target: String,
    },
    /// The Middleware's spec has no section, or more than one.
    #[error("middleware {0}: spec must have exactly one middleware section, found {1}")]
    Sections(String, usize),
    /// The section names a middleware sluice does not know.
    #[error("middleware {0}: unknown middleware type {1:?}")]
    UnknownKind(String, String),
    /// The section is invalid (bad field, bad regex, missing Secret...).
    #[error("middleware {middleware} ({kind}): {reason}")]
    Invalid {
        /// `<namespace>/<name>`.
        middleware: String,
        /// The section name (`basicAuth`...).
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// `chain` references lead back to a Middleware being built.
    #[error("middleware {0}: chain references form a cycle")]
    Cycle(String),
}

/// A Service port a middleware sends requests to (the `errors` middleware's pages).
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    /// The Service's endpoints and balancer.
    pub backend: Arc<Backend>,
    /// The client that speaks to it.
    pub client: Arc<UpstreamClient>,
}

/// What a middleware may read while it is built; implemented by the compiler.
pub trait Environment {
    /// The Secret `name` in `namespace`.
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret>;
    /// The Middleware object `name` in `namespace`.
    fn middleware(&self, namespace: &str, name: &str) -> Option<&MiddlewareObject>;
    /// A Service port as a backend, with its endpoints installed by the publisher.
    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<ServiceTarget, String>;
}

type Key = (String, String, u64);

/// Built middlewares by identity, alive while a table uses them.
#[derive(Debug, Default)]
pub struct Builder {
    live: Mutex<HashMap<Key, Weak<dyn Middleware>>>,
}

impl Builder {
    /// One compile's session over `env`.
    pub fn session<'b, E: Environment>(
        &'b self,
        env: &'b mut E,
        allow_cross_namespace: bool,
    ) -> Session<'b, E> {
        Session {
            builder: self,
            env,
            allow_cross_namespace,
            built: HashMap::new(),
            building: Vec::new(),
        }
    }

    fn reuse(&self, key: Key, fresh: Arc<dyn Middleware>) -> Arc<dyn Middleware> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = live.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        if live.len() > 64 && live.len().is_power_of_two() {
            live.retain(|_, weak| weak.strong_count() > 0);
        }
        live.insert(key, Arc::downgrade(&fresh));
        fresh
    }
}

/// One compile's middleware building: resolution, memo, cycle detection.
pub struct Session<'b, E: Environment> {
    builder: &'b Builder,
    env: &'b mut E,
    allow_cross_namespace: bool,
    built: HashMap<(String, String), Result<Arc<dyn Middleware>, BuildError>>,
    building: Vec<(String, String)>,
}

/// A middleware that no `Middleware` object defines: built from an
/// annotation (ingress-nginx's), with a name of its own for the admin API
/// and for keeping its state across reloads.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineStep {
    /// A stable name, unique per Ingress and annotation group, e.g.
    /// `nginx-auth` (shown in the route's middleware list as `<ns>/<ingress>/<name>`).
    pub name: String,
    /// The middleware type, as a `spec` section name (`basicAuth`, `ipAllowList`...).
    pub kind: String,
    /// Its configuration, as a `Middleware` object's section would hold it.
    pub config: serde_json::Value,
}

impl<E: Environment> Session<'_, E> {
    /// The chain for an Ingress in `namespace` named `owner`: the `inline`
    /// steps first (its ingress-nginx annotations), then the references of
    /// the `router.middlewares` annotation `value`. A step that cannot be
    /// built makes the chain [`Chain::Broken`] (the route answers 500).
    pub fn chain_with(
        &mut self,
        namespace: &str,
        owner: &str,
        inline: &[InlineStep],
        value: Option<&str>,
    ) -> (Chain, Option<BuildError>) {
        if inline.is_empty() {
            return match value {
                Some(value) => self.chain(namespace, value),
                None => (Chain::Empty, None),
            };
        }
        let mut names: Vec<String> = inline
            .iter()
            .map(|step| format!("{namespace}/{owner}/{}", step.name))
            .collect();
        let mut steps = Vec::with_capacity(inline.len());
        let mut failed = None;
        for step in inline {
            // The object name keeps built state apart per Ingress and step.
            let object = format!("{owner}/{}", step.name);
            match self.build_spec(namespace, &object, &step.kind, &step.config) {
                Ok(built) => steps.push(built),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let (rest, rest_error) = match value {
            Some(value) if failed.is_none() => self.chain(namespace, value),
            _ => (Chain::Empty, None),
        };
        names.extend(rest.names().iter().cloned());
        let names: Arc<[String]> = names.into();
        if let Some(e) = failed.or(rest_error) {
            let chain = Chain::Broken {
                reason: e.to_string().into(),
                names,
            };
            return (chain, Some(e));
        }
        if let Chain::Ready { steps: more, .. } = &rest {
            steps.extend(more.iter().cloned());
        }
        let chain = Chain::Ready {
            steps: steps.into(),
            names,
        };
        (chain, None)
    }

    /// Builds one inline step of an object `owner` of `namespace` (its state
    /// kept per owner, step name and configuration).
    pub fn step(
        &mut self,
        namespace: &str,
        owner: &str,
        step: &InlineStep,
    ) -> Result<Arc<dyn Middleware>, BuildError> {
        let object = format!("{owner}/{}", step.name);
        self.build_spec(namespace, &object, &step.kind, &step.config)
    }

    /// The chain for an annotation value (`a@kubernetescrd,b@kubernetescrd`) on
    /// an object of `namespace`. Never fails: a reference that cannot be built
    /// makes a [`Chain::Broken`] (the route answers 500); the error is returned
    /// beside it for the diagnostics.
    pub fn chain(&mut self, namespace: &str, value: &str) -> (Chain, Option<BuildError>) {
        let names: Arc<[String]> = split_list(value).map(str::to_owned).collect();
        if names.is_empty() {
            return (Chain::Empty, None);
        }
        let mut steps = Vec::with_capacity(names.len());
        for name in names.iter() {
            match self.resolve(namespace, name) {
                Ok(step) => steps.push(step),
                Err(e) => {
                    let chain = Chain::Broken {
                        reason: e.to_string().into(),
                        names,
                    };
                    return (chain, Some(e));
                }
            }
        }
        let chain = Chain::Ready {
            steps: steps.into(),
            names,
        };
        (chain, None)
    }

    /// Builds the Middleware a reference written in `namespace` names.
    pub fn resolve(
        &mut self,
        namespace: &str,
        reference: &str,
    ) -> Result<Arc<dyn Middleware>, BuildError> {
        let parsed = Reference::parse(reference)?;
        let found = parsed
            .candidates(namespace)
            .find(|(ns, name)| self.env.middleware(ns, name).is_some())
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()));
        let Some((ns, name)) = found else {
            return Err(BuildError::NotFound(
                reference.to_owned(),
                namespace.to_owned(),
            ));
        };
        if ns != namespace && !self.allow_cross_namespace {
            return Err(BuildError::CrossNamespace {
                reference: reference.to_owned(),
                namespace: namespace.to_owned(),
                target: ns,
            });
        }
        self.build(ns, name)
    }

    fn build(&mut self, ns: String, name: String) -> Result<Arc<dyn Middleware>, BuildError> {
        let id = (ns, name);
        if let Some(done) = self.built.get(&id) {
            return done.clone();
        }
        let label = format!("{}/{}", id.0, id.1);
        if self.building.contains(&id) {
            return Err(BuildError::Cycle(label));
        }
        self.building.push(id.clone());
        let result = self.build_fresh(&id.0, &id.1, &label);
        self.building.pop();
        self.built.insert(id, result.clone());
        result
    }

    fn build_fresh(
        &mut self,
        ns: &str,
        name: &str,
        label: &str,
    ) -> Result<Arc<dyn Middleware>, BuildError> {
        let Some(object) = self.env.middleware(ns, name) else {
            return Err(BuildError::NotFound(name.to_owned(), ns.to_owned()));
        };
        if object.spec.len() != 1 {
            return Err(BuildError::Sections(label.to_owned(), object.spec.len()));
        }
        let Some((kind, config)) = object.spec.iter().next() else {
            return Err(BuildError::Sections(label.to_owned(), 0));
        };
        let (kind, config) = (kind.clone(), config.clone());
        self.build_spec(ns, name, &kind, &config)
    }

    /// Builds one middleware section `kind: config` as the object `ns/name`
    /// (reusing the instance built before for the same identity and spec).
    fn build_spec(
        &mut self,
        ns: &str,
        name: &str,
        kind: &str,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Middleware>, BuildError> {
        let label = format!("{ns}/{name}");
        let label = label.as_str();
        let (kind, config) = (kind.to_owned(), config.clone());
        let mut fingerprint = FxHasher::default();
        kind.hash(&mut fingerprint);
        config.to_string().hash(&mut fingerprint);
        let mut cx = BuildContext {
            session: self,
            namespace: ns,
            label,
            kind: &kind,
            fingerprint,
        };
        let fresh = super::kinds::build(&kind, &config, &mut cx)?;
        let key = (ns.to_owned(), name.to_owned(), cx.fingerprint.finish());
        Ok(self.builder.reuse(key, fresh))
    }
}

/// What one middleware kind's `build` function gets besides its config.
pub struct BuildContext<'s, 'b, E: Environment> {
    session: &'s mut Session<'b, E>,
    namespace: &'s str,
    label: &'s str,
    kind: &'s str,
    fingerprint: FxHasher,
}

/// The object-safe face of [`BuildContext`], so kinds need not be generic.
pub trait Context {
    /// The Middleware's namespace.
    fn namespace(&self) -> &str;
    /// A Secret of the Middleware's namespace (its content counts towards
    /// the identity of the built middleware: a changed Secret rebuilds it).
    fn secret(&mut self, name: &str) -> Option<Secret>;
    /// A Service port of the Middleware's namespace as a backend.
    fn service(&mut self, name: &str, port: &PortRef) -> Result<ServiceTarget, String>;
    /// A Service port of another namespace as a backend (a Gateway filter's
    /// backend the compiler already checked against ReferenceGrants).
    fn service_in(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<ServiceTarget, String>;
    /// Another Middleware, by a reference written in this Middleware's namespace (`chain`).
    fn middleware(&mut self, reference: &str) -> Result<Arc<dyn Middleware>, BuildError>;
    /// An [`BuildError::Invalid`] for this middleware.
    fn invalid(&self, reason: String) -> BuildError;
}

impl<E: Environment> Context for BuildContext<'_, '_, E> {
    fn namespace(&self) -> &str {
        self.namespace
    }

    fn secret(&mut self, name: &str) -> Option<Secret> {
        let secret = self.session.env.secret(self.namespace, name).cloned();
        name.hash(&mut self.fingerprint);
        if let Some(secret) = &secret {
            secret.type_.hash(&mut self.fingerprint);
            if let Some(data) = &secret.data {
                for (k, v) in data {
                    k.hash(&mut self.fingerprint);
                    v.0.hash(&mut self.fingerprint);
                }
            }
        }
        secret
    }

    fn service(&mut self, name: &str, port: &PortRef) -> Result<ServiceTarget, String> {
        name.hash(&mut self.fingerprint);
        port.hash(&mut self.fingerprint);
        let target = self.session.env.service(self.namespace, name, port)?;
        (Arc::as_ptr(&target.backend) as usize).hash(&mut self.fingerprint);
        (Arc::as_ptr(&target.client) as usize).hash(&mut self.fingerprint);
        Ok(target)
    }

    fn service_in(
        &mut self,
        namespace: &str,
        name: &str,
        port: &PortRef,
    ) -> Result<ServiceTarget, String> {
        namespace.hash(&mut self.fingerprint);
        name.hash(&mut self.fingerprint);
        port.hash(&mut self.fingerprint);
        let target = self.session.env.service(namespace, name, port)?;
        (Arc::as_ptr(&target.backend) as usize).hash(&mut self.fingerprint);
        (Arc::as_ptr(&target.client) as usize).hash(&mut self.fingerprint);
        Ok(target)
    }

    fn middleware(&mut self, reference: &str) -> Result<Arc<dyn Middleware>, BuildError> {
        let built = self.session.resolve(self.namespace, reference)?;
        (Arc::as_ptr(&built) as *const () as usize).hash(&mut self.fingerprint);
        Ok(built)
    }

    fn invalid(&self, reason: String) -> BuildError {
        BuildError::Invalid {
            middleware: self.label.to_owned(),
            kind: self.kind.to_owned(),
            reason,
        }
    }
}

/// Decodes a kind's config section into its typed form, or an `Invalid` error.
pub fn decode<T: serde::de::DeserializeOwned>(
    config: &serde_json::Value,
    cx: &dyn Context,
) -> Result<T, BuildError> {
    serde_json::from_value(config.clone()).map_err(|e| cx.invalid(e.to_string()))
}
