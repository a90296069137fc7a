//! Routing benchmarks on an Altinn-shaped cluster: 10,000 Ingresses, 9,000 of them
//! `/{org}/{app}` Prefix paths on 5 shared hosts, 1,000 with hosts of their own,
//! each with a Service and an EndpointSlice of two endpoints.
//!
//! `compile/*` measures a compile from scratch, one after an Ingress edit (what a
//! file change costs) and one with nothing changed; `lookup/*` measure the request-path lookup
//! for hits on shared hosts, own hosts, and misses.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice::router::{compile, CompileOptions, EntryPoint, Registries, Snapshot};

const SHARED_HOSTS: [&str; 5] = [
    "tt02.apps.altinn.no",
    "apps.altinn.no",
    "at22.apps.altinn.cloud",
    "at23.apps.altinn.cloud",
    "yt01.apps.altinn.cloud",
];
const SHARED: usize = 9_000;
const OWN: usize = 1_000;
const ORGS: usize = 90;

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn ingress(namespace: &str, name: &str, host: &str, path: &str) -> Ingress {
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: name.to_owned(),
            port: Some(ServiceBackendPort {
                number: Some(80),
                name: None,
            }),
        }),
        resource: None,
    };
    let http = HTTPIngressRuleValue {
        paths: vec![HTTPIngressPath {
            backend,
            path: Some(path.to_owned()),
            path_type: "Prefix".to_owned(),
        }],
    };
    let rule = IngressRule {
        host: Some(host.to_owned()),
        http: Some(http),
    };
    Ingress {
        metadata: meta(namespace, name),
        spec: Some(IngressSpec {
            rules: Some(vec![rule]),
            ..IngressSpec::default()
        }),
        status: None,
    }
}

fn service(namespace: &str, name: &str) -> Service {
    let port = ServicePort {
        name: Some("http".to_owned()),
        port: 80,
        ..ServicePort::default()
    };
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            ports: Some(vec![port]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn slice(namespace: &str, name: &str, n: usize) -> EndpointSlice {
    let mut metadata = meta(namespace, &format!("{name}-abcde"));
    let labels = BTreeMap::from([("kubernetes.io/service-name".to_owned(), name.to_owned())]);
    metadata.labels = Some(labels);
    let ip = |k: usize| format!("10.{}.{}.{}", n / 250 % 250, n % 250, k);
    let endpoint = |k| Endpoint {
        addresses: vec![ip(k)],
        ..Endpoint::default()
    };
    EndpointSlice {
        address_type: "IPv4".to_owned(),
        endpoints: vec![endpoint(1), endpoint(2)],
        metadata,
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(8080),
            ..EndpointPort::default()
        }]),
    }
}

/// The org and app of shared Ingress `i`.
fn org_app(i: usize) -> (String, String) {
    (format!("org{}", i % ORGS), format!("app{i}"))
}

fn own_host(i: usize) -> String {
    format!("app{i}.own.example.com")
}

fn altinn_snapshot() -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..SHARED + OWN {
        let (namespace, name, host, path) = if i < SHARED {
            let (org, app) = org_app(i);
            (
                org.clone(),
                app.clone(),
                SHARED_HOSTS[i % SHARED_HOSTS.len()].to_owned(),
                format!("/{org}/{app}"),
            )
        } else {
            (
                "own".to_owned(),
                format!("app{i}"),
                own_host(i),
                "/".to_owned(),
            )
        };
        snapshot
            .ingresses
            .push(Arc::new(ingress(&namespace, &name, &host, &path)));
        snapshot.services.push(Arc::new(service(&namespace, &name)));
        snapshot
            .endpoint_slices
            .push(Arc::new(slice(&namespace, &name, i)));
    }
    snapshot
}

fn requests() -> [Vec<(String, String)>; 3] {
    let shared = (0..SHARED).step_by(97).map(|i| {
        let (org, app) = org_app(i);
        let host = SHARED_HOSTS[i % SHARED_HOSTS.len()];
        (
            host.to_owned(),
            format!("/{org}/{app}/api/v1/instances/{i}"),
        )
    });
    let own = (SHARED..SHARED + OWN)
        .step_by(13)
        .map(|i| (own_host(i), "/index.html".to_owned()));
    let misses = (0..64).map(|i| {
        let host = if i % 2 == 0 {
            SHARED_HOSTS[i % 5].to_owned()
        } else {
            format!("nobody{i}.example.org")
        };
        (host, format!("/org{i}/missing/thing"))
    });
    [shared.collect(), own.collect(), misses.collect()]
}

fn bench(c: &mut Criterion) {
    let snapshot = altinn_snapshot();
    let registries = Registries::default();
    let options = CompileOptions::default();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    // From scratch: registries that have seen no compile (as at start).
    group.bench_function("altinn_10k_ingresses", |b| {
        b.iter_batched(
            Registries::default,
            |registries| compile(black_box(&snapshot), &options, &registries),
            criterion::BatchSize::PerIteration,
        );
    });
    // A file change: every other compile sees one Ingress with an edited path
    // (the other objects are the same `Arc`s, as the file provider keeps them).
    let mut edited = snapshot.clone();
    let (org, app) = org_app(SHARED / 2);
    let host = SHARED_HOSTS[(SHARED / 2) % SHARED_HOSTS.len()];
    edited.ingresses[SHARED / 2] = Arc::new(ingress(&org, &app, host, &format!("/{org}/{app}-v2")));
    let mut flip = [&snapshot, &edited].into_iter().cycle();
    group.bench_function("altinn_10k_one_ingress_edited", |b| {
        b.iter(|| {
            let next = flip.next().expect("cycle never ends");
            compile(black_box(next), &options, &registries)
        });
    });
    group.bench_function("altinn_10k_unchanged", |b| {
        b.iter(|| compile(black_box(&snapshot), &options, &registries));
    });
    group.finish();

    let compiled = compile(&snapshot, &options, &registries);
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics.first()
    );
    let table = compiled.table;
    let [shared, own, misses] = requests();
    let mut group = c.benchmark_group("lookup");
    for (name, requests, hit) in [
        ("shared_host_hit", &shared, true),
        ("own_host_hit", &own, true),
        ("miss", &misses, false),
    ] {
        for (host, path) in requests {
            assert_eq!(
                table.lookup(EntryPoint::Web, host, path).is_some(),
                hit,
                "{host} {path}"
            );
        }
        let mut next = requests.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                let (host, path) = next.next().expect("cycle never ends");
                table
                    .lookup(EntryPoint::Web, black_box(host), black_box(path))
                    .is_some()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
