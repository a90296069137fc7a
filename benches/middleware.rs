//! Criterion: the cost per request of a typical middleware chain —
//! stripPrefix + headers + basicAuth (bcrypt, cached after the first check) +
//! rateLimit (a limit far above the load) — against the same request sent
//! straight to the terminal. Built through the real builder from real
//! Middleware objects; the terminal answers 200 without I/O, so the figure is
//! the engine plus the four middlewares and nothing else.
//!
//! `cargo bench --bench middleware`

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice::body::{RequestBody, ResponseBody};
use sluice::middleware::support::detached_route;
use sluice::middleware::{
    BoxFuture, Builder, Chain, Environment, MiddlewareObject, Next, Outcome, RequestContext,
    ServiceTarget, Terminal,
};
use sluice::proxy::ClientInfo;
use sluice::upstream::PortRef;

/// The snapshot the chain is built from.
struct Env {
    middlewares: HashMap<(String, String), MiddlewareObject>,
}

impl Environment for Env {
    fn secret(&self, _namespace: &str, _name: &str) -> Option<&Secret> {
        None
    }

    fn middleware(&self, namespace: &str, name: &str) -> Option<&MiddlewareObject> {
        self.middlewares
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    fn service(&mut self, _: &str, _: &str, _: &PortRef) -> Result<ServiceTarget, String> {
        Err("no services in this bench".to_owned())
    }
}

fn object(name: &str, spec: serde_json::Value) -> ((String, String), MiddlewareObject) {
    let object = MiddlewareObject {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        spec: spec.as_object().cloned().unwrap_or_default(),
    };
    (("default".to_owned(), name.to_owned()), object)
}

/// Answers 200 at once.
struct Ok200;

impl Terminal for Ok200 {
    fn forward<'a>(
        &'a self,
        _req: Request<RequestBody>,
        _cx: &'a RequestContext,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Ok(Response::new(ResponseBody::empty())) })
    }
}

fn request() -> Request<RequestBody> {
    Request::get("/api/users/42?x=1")
        .header("host", "apps.example.com")
        .header("authorization", "Basic YmVuY2g6YmVuY2g=")
        .header("user-agent", "criterion")
        .body(RequestBody::empty())
        .expect("request")
}

fn chain(c: &mut Criterion) {
    let hash = bcrypt::hash("bench", 5).expect("bcrypt");
    let mut env = Env {
        middlewares: [
            object("strip", serde_json::json!({"stripPrefix": {"prefixes": ["/api"]}})),
            object(
                "hdrs",
                serde_json::json!({"headers": {
                    "customRequestHeaders": {"X-Bench": "1"},
                    "customResponseHeaders": {"X-Bench-Resp": "1"}
                }}),
            ),
            object(
                "auth",
                serde_json::json!({"basicAuth": {"users": [format!("bench:{hash}")]}}),
            ),
            object(
                "limit",
                serde_json::json!({"rateLimit": {"average": 1_000_000_000u64, "burst": 1_000_000_000u64}}),
            ),
        ]
        .into_iter()
        .collect(),
    };
    let builder = Builder::default();
    let (chain, error) = builder.session(&mut env, false).chain(
        "default",
        "default-strip@kubernetescrd,default-hdrs@kubernetescrd,default-auth@kubernetescrd,default-limit@kubernetescrd",
    );
    assert!(error.is_none(), "{error:?}");
    let Chain::Ready { steps, .. } = chain else {
        panic!("chain not ready: {chain:?}");
    };
    let cx = RequestContext {
        client: ClientInfo::new("10.1.2.3:40000".parse().expect("addr"), false),
        route: detached_route("bench"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The first check runs bcrypt; every later one hits the success cache.
    let first = runtime.block_on(Next::new(&steps, &Ok200).run(request(), &cx));
    assert_eq!(first.map(|r| r.status().as_u16()).ok(), Some(200));

    let mut group = c.benchmark_group("middleware");
    group.bench_function("terminal only (baseline)", |b| {
        let none: Arc<[Arc<dyn sluice::middleware::Middleware>]> = Arc::new([]);
        b.iter(|| runtime.block_on(Next::new(&none, &Ok200).run(request(), &cx)));
    });
    group.bench_function("stripPrefix+headers+basicAuth(cached)+rateLimit", |b| {
        b.iter(|| runtime.block_on(Next::new(&steps, &Ok200).run(request(), &cx)));
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
