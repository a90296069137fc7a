//! `chain`: a Middleware that runs other Middlewares, in order, as one step.

use std::sync::Arc;

use http::Request;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext, Terminal};
use crate::body::RequestBody;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    middlewares: Vec<Member>,
}

/// One member of `middlewares`: a reference string as in the
/// `router.middlewares` annotation (`a`, `other-b@kubernetescrd`), or the
/// object form of Traefik's CRD (`{name: b, namespace: other}`).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a middleware reference string or an object with name and optional namespace"
)]
enum Member {
    Reference(String),
    Object(MemberObject),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberObject {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

impl Member {
    /// The reference this member stands for, written in the chain's namespace
    /// `own`. An object becomes `<namespace>-<name>@kubernetescrd`, whose first
    /// candidate is exactly that Middleware; another namespace than the chain's
    /// is a cross-namespace reference like any other.
    fn reference(&self, own: &str) -> Result<String, String> {
        match self {
            Self::Reference(text) => Ok(text.clone()),
            Self::Object(object) => {
                let name = object.name.trim();
                if name.is_empty() || name.contains('@') {
                    return Err(format!("middlewares: invalid name {:?}", object.name));
                }
                let namespace = object
                    .namespace
                    .as_deref()
                    .map(str::trim)
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(own);
                Ok(format!(
                    "{namespace}-{name}@{}",
                    super::reference::CRD_PROVIDER
                ))
            }
        }
    }
}

/// Builds a `chain` from its config: each reference is resolved in the chain's namespace.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let mut steps = Vec::with_capacity(config.middlewares.len());
    for member in &config.middlewares {
        let reference = member
            .reference(cx.namespace())
            .map_err(|reason| cx.invalid(reason))?;
        steps.push(cx.middleware(&reference)?);
    }
    Ok(Arc::new(Nested {
        steps: steps.into(),
    }))
}

/// The built `chain`.
#[derive(Debug)]
struct Nested {
    steps: Arc<[Arc<dyn Middleware>]>,
}

/// Continues with the outer chain once the nested one has run.
struct Continue<'a>(Next<'a>);

impl Terminal for Continue<'_> {
    fn forward<'x>(
        &'x self,
        req: Request<RequestBody>,
        cx: &'x RequestContext,
    ) -> BoxFuture<'x, Outcome> {
        self.0.run(req, cx)
    }
}

impl Middleware for Nested {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let outer = Continue(next);
            Next::new(&self.steps, &outer).run(req, cx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{Builder, Environment, MiddlewareObject, ServiceTarget};
    use crate::upstream::PortRef;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    /// Middleware objects only.
    #[derive(Default)]
    struct Objects(Vec<MiddlewareObject>);

    impl Objects {
        fn with(mut self, namespace: &str, name: &str, spec: Value) -> Self {
            self.0.push(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": spec,
                }))
                .expect("object"),
            );
            self
        }
    }

    impl Environment for Objects {
        fn secret(&self, _: &str, _: &str) -> Option<&Secret> {
            None
        }

        fn middleware(&self, namespace: &str, name: &str) -> Option<&MiddlewareObject> {
            self.0
                .iter()
                .find(|o| o.namespace() == namespace && o.name() == name)
        }

        fn service(&mut self, _: &str, name: &str, _: &PortRef) -> Result<ServiceTarget, String> {
            Err(format!("no service {name}"))
        }
    }

    fn members() -> Objects {
        Objects::default()
            .with("default", "a", json!({"chain": {"middlewares": []}}))
            .with("default", "b-c", json!({"chain": {"middlewares": []}}))
            .with("other", "b", json!({"chain": {"middlewares": []}}))
    }

    fn resolve(env: &mut Objects, cross: bool) -> Result<Arc<dyn Middleware>, BuildError> {
        Builder::default()
            .session(env, cross)
            .resolve("default", "outer")
    }

    #[test]
    fn objects_name_members_in_the_chain_namespace_by_default() {
        for middlewares in [
            json!([{"name": "a"}, {"name": "b-c"}]),
            json!([{"name": "a", "namespace": "default"}, "b-c"]),
            json!(["a", "default-b-c@kubernetescrd"]),
        ] {
            let mut env = members().with(
                "default",
                "outer",
                json!({"chain": {"middlewares": middlewares}}),
            );
            assert!(resolve(&mut env, false).is_ok(), "{middlewares}");
        }
    }

    #[test]
    fn an_object_in_another_namespace_is_cross_namespace() {
        let spec = json!({"chain": {"middlewares": [{"name": "b", "namespace": "other"}]}});
        let mut env = members().with("default", "outer", spec.clone());
        assert!(matches!(
            resolve(&mut env, false),
            Err(BuildError::CrossNamespace { target, .. }) if target == "other"
        ));
        let mut env = members().with("default", "outer", spec);
        assert!(resolve(&mut env, true).is_ok());
    }

    #[test]
    fn missing_and_malformed_members_are_refused() {
        for (middlewares, expected) in [
            (json!([{"name": "missing"}]), "not found"),
            (
                json!([{"namespace": "default"}]),
                "a middleware reference string or an object",
            ),
            (
                json!([{"name": "a", "nmespace": "x"}]),
                "a middleware reference string or an object",
            ),
            (json!([{"name": ""}]), "invalid name"),
            (json!([{"name": "a@file"}]), "invalid name"),
            (json!([42]), "a middleware reference string or an object"),
        ] {
            let mut env = members().with(
                "default",
                "outer",
                json!({"chain": {"middlewares": middlewares}}),
            );
            let err = resolve(&mut env, true).expect_err("refused");
            assert!(err.to_string().contains(expected), "{middlewares}: {err}");
        }
    }

    #[test]
    fn object_references_are_exact() {
        let member = |v: Value| serde_json::from_value::<Member>(v).expect("member");
        assert_eq!(
            member(json!({"name": "x"})).reference("ns"),
            Ok("ns-x@kubernetescrd".to_owned())
        );
        assert_eq!(
            member(json!({"name": "x", "namespace": "other"})).reference("ns"),
            Ok("other-x@kubernetescrd".to_owned())
        );
        assert_eq!(
            member(json!("y@kubernetescrd")).reference("ns"),
            Ok("y@kubernetescrd".to_owned())
        );
    }
}
