//! Kubernetes provider latency: from a watch event to the published update,
//! with 10,000 Ingresses, 10,000 Services and 20,000 endpoints (10,000
//! EndpointSlices of two endpoints) in the fake API server of
//! `tests/support/kube_api.rs` (the real list/watch protocol over HTTP; no
//! real cluster runs here).
//!
//! Reports: the first sync, single EndpointSlice changes (event applied in
//! the API server -> update published, then the endpoint refresh the
//! publisher runs for it), a single Ingress change, and a 500-slice rollout.
//! Run: `flock /work/bench.lock cargo bench --bench kube_events`
//! (`-- --quick` for fewer rounds). Under `cargo test` (no `--bench`
//! argument) it runs as a small smoke test: 300 Ingresses, 3 rounds.

#[allow(missing_docs)]
#[path = "../tests/support/kube_api.rs"]
mod kube_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::router::{self, CompileOptions, Registries, Snapshot};
use sluice::upstream::PoolSettings;
use sluice::watch::{run_kube_provider, KubeSettings, KubeStats, ProviderUpdate};
use tokio::sync::watch;

const FULL: usize = 10_000;
const NAMESPACES: usize = 50;

type Updates = watch::Receiver<Option<Arc<ProviderUpdate>>>;

fn ns(i: usize) -> String {
    format!("team-{}", i % NAMESPACES)
}

fn ingress(i: usize) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": format!("app-{i}"), "namespace": ns(i),
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(600)}},
        "spec": {"rules": [{"host": format!("app-{i}.example.com"), "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": format!("app-{i}"), "port": {"number": 80}}},
        }]}}]},
    })
}

fn service(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": format!("app-{i}"), "namespace": ns(i)},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })
}

fn slice(i: usize, generation: usize) -> Value {
    let ip = |n: usize| {
        format!(
            "10.{}.{}.{}",
            generation % 200,
            (2 * i + n) / 250,
            (2 * i + n) % 250 + 1
        )
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("app-{i}-abcde"), "namespace": ns(i),
                     "labels": {"kubernetes.io/service-name": format!("app-{i}")}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip(0)], "conditions": {"ready": true, "serving": true, "terminating": false}},
            {"addresses": [ip(1)], "conditions": {"ready": true, "serving": true, "terminating": false}},
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

fn first_addr(s: &Snapshot, i: usize) -> Option<String> {
    let name = format!("app-{i}-abcde");
    let namespace = ns(i);
    s.endpoint_slices
        .iter()
        .find(|e| {
            e.metadata.name.as_deref() == Some(name.as_str())
                && e.metadata.namespace.as_deref() == Some(namespace.as_str())
        })
        .and_then(|e| e.endpoints.first())
        .and_then(|ep| ep.addresses.first().cloned())
}

async fn until(updates: &mut Updates, pred: impl Fn(&Snapshot) -> bool) -> Arc<ProviderUpdate> {
    loop {
        if let Some(update) = updates.borrow_and_update().clone() {
            if pred(&update.snapshot) {
                return update;
            }
        }
        updates.changed().await.expect("provider alive");
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<44} n={:<3} min {:>8.2?} p50 {:>8.2?} p95 {:>8.2?} max {:>8.2?}",
        samples.len(),
        samples[0],
        pick(0.5),
        pick(0.95),
        samples[samples.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let quick = std::env::args().any(|a| a == "--quick");
    let (objects, rounds) = match (bench, quick) {
        (false, _) => (300, 3),
        (true, true) => (FULL, 10),
        (true, false) => (FULL, 40),
    };
    let rollout = objects.min(500);
    let api = FakeApi::with_bookmarks(Duration::from_secs(60)).await;
    let load = Instant::now();
    api.apply(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                     "metadata": {"name": "sluice"}, "spec": {"controller": "sluice"}}),
    );
    for i in 0..objects {
        api.apply(ingress(i));
        api.apply(service(i));
        api.apply(slice(i, 0));
    }
    println!(
        "loaded {objects} Ingresses, {objects} Services, {} EndpointSlices ({} endpoints) in {:.2?}",
        objects,
        2 * objects,
        load.elapsed()
    );

    // Production defaults (20 ms debounce, 200 ms cap).
    let settings = KubeSettings::default();
    println!(
        "settings: debounce {:?}, max_delay {:?}",
        settings.debounce, settings.max_delay
    );
    let (tx, mut updates) = watch::channel(None);
    let stats = Arc::new(KubeStats::default());
    let started = Instant::now();
    let provider = tokio::spawn(run_kube_provider(api.client(), settings, tx, stats.clone()));
    let first = until(&mut updates, |_| true).await;
    println!(
        "first sync (list {} objects in pages of 500, publish): {:.2?}",
        3 * objects + 1,
        started.elapsed()
    );

    let registries = Registries::new(PoolSettings::default());
    let options = CompileOptions::default();
    let compile = Instant::now();
    let compiled = router::compile(&first.snapshot, &options, &registries);
    println!(
        "full compile of the first update ({} routes' table): {:.2?}",
        compiled.endpoints.len(),
        compile.elapsed()
    );
    // The registries hold backends weakly: keep the compiled table alive.
    let _live = compiled;

    // Single EndpointSlice changes.
    let mut event = Vec::new();
    let mut refresh = Vec::new();
    let mut previous = first;
    for round in 0..rounds {
        let i = (round * 2_459) % objects;
        let want = slice(i, round + 1)["endpoints"][0]["addresses"][0]
            .as_str()
            .expect("addr")
            .to_owned();
        let t0 = Instant::now();
        api.apply(slice(i, round + 1));
        let update = until(&mut updates, |s| {
            first_addr(s, i).as_deref() == Some(want.as_str())
        })
        .await;
        event.push(t0.elapsed());
        assert!(router::only_endpoints_changed(
            &previous.snapshot,
            &update.snapshot
        ));
        let t1 = Instant::now();
        let sets = router::refresh_endpoints(&previous.snapshot, &update.snapshot, &registries);
        refresh.push(t1.elapsed());
        assert_eq!(sets.len(), 1, "one Service's endpoints changed");
        for (backend, set) in sets {
            backend.set_endpoints(set);
        }
        previous = update;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    summary("EndpointSlice change -> update published", event);
    summary("  then endpoint refresh (publisher, no compile)", refresh);

    // Single Ingress changes, each followed by the publisher's compile
    // (which starts from the last one).
    let mut ingress_event = Vec::new();
    let mut ingress_compile = Vec::new();
    let mut tables = Vec::new();
    for round in 0..rounds.min(10) {
        let i = (round * 7_919) % objects;
        let mut changed = ingress(i);
        let host = format!("moved-{round}.example.com");
        changed["spec"]["rules"][0]["host"] = json!(host.clone());
        let t0 = Instant::now();
        api.apply(changed);
        previous = until(&mut updates, |s| {
            s.ingresses.iter().any(|ing| {
                ing.spec
                    .as_ref()
                    .and_then(|spec| spec.rules.as_ref())
                    .is_some_and(|rules| rules[0].host.as_deref() == Some(host.as_str()))
            })
        })
        .await;
        ingress_event.push(t0.elapsed());
        let t1 = Instant::now();
        let compiled = router::compile(&previous.snapshot, &options, &registries);
        ingress_compile.push(t1.elapsed());
        assert!(
            compiled
                .table
                .lookup(router::EntryPoint::Web, &host, "/")
                .is_some(),
            "the moved Ingress is served on {host}"
        );
        // Kept alive, as the published table would be.
        tables.push(compiled);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    summary("Ingress change -> update published", ingress_event);
    summary("  then the compile (publisher)", ingress_compile);

    // A rollout: 500 slices replaced at once.
    let publishes = KubeStats::get(&stats.publishes);
    let t0 = Instant::now();
    for i in 0..rollout {
        api.apply(slice(i, 150));
    }
    let applied = t0.elapsed();
    let want = |i: usize| {
        slice(i, 150)["endpoints"][0]["addresses"][0]
            .as_str()
            .map(str::to_owned)
    };
    let done = until(&mut updates, |s| {
        (0..rollout).all(|i| first_addr(s, i) == want(i))
    })
    .await;
    let all = t0.elapsed();
    let t1 = Instant::now();
    let sets = router::refresh_endpoints(&previous.snapshot, &done.snapshot, &registries);
    println!(
        "{rollout}-slice rollout: applied in {applied:.2?}, all published after {all:.2?} in {} updates; refresh of {} Services {:.2?}",
        KubeStats::get(&stats.publishes) - publishes,
        sets.len(),
        t1.elapsed()
    );
    provider.abort();
}
