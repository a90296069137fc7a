//! Gateway API status writing, end to end.
//!
//! No real cluster runs here: a real sluice instance is started with
//! `--kubeconfig` pointing at `support/kube_api.rs`, an HTTP server that speaks
//! the real list/watch protocol with real Kubernetes JSON, serves the
//! `gateway.networking.k8s.io/v1` kinds and a `coordination.k8s.io/v1` Lease,
//! and records every write to a `/status` subresource (applying it to the
//! object as the API server does). The kube Client under test talks to it
//! exactly as it would to an API server.

#[path = "support/kube_api.rs"]
mod kube_api;
mod support;

use std::time::Duration;

use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::app::{Running, Source};
use sluice::status::{LeaseSettings, StatusSettings};
use sluice::watch::KubeSettings;

const PATIENCE: Duration = Duration::from_secs(10);
const CONTROLLER: &str = "sluice.dev/gateway-controller";
const GROUP: &str = "gateway.networking.k8s.io";

/// A sluice replica publishing a fixed address, refreshing every 200 ms.
async fn replica(api: &FakeApi, dir: &tempfile::TempDir) -> Running {
    replica_publishing(api, dir, vec!["203.0.113.7".into()]).await
}

/// A sluice replica publishing `addresses` (none: neither
/// `--publish-status-address` nor `--publish-service`), refreshing every 200 ms.
async fn replica_publishing(
    api: &FakeApi,
    dir: &tempfile::TempDir,
    addresses: Vec<String>,
) -> Running {
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..KubeSettings::default()
    });
    settings.status.publish = StatusSettings {
        publish_service: None,
        publish_addresses: addresses,
        refresh: Duration::from_millis(200),
    };
    settings.status.lease = LeaseSettings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseSettings::new("sluice".into(), "sluice-leader".into(), "replica-a".into())
    };
    let running = sluice::app::start(settings).await.expect("sluice starts");
    eventually("ready", || running.is_ready()).await;
    running
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"));
}

/// The API server's placeholder on a new object.
fn pending(types: &[&str]) -> Value {
    let conditions: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "type": t, "status": "Unknown", "reason": "Pending",
                "message": "Waiting for controller", "observedGeneration": 1,
                "lastTransitionTime": "1970-01-01T00:00:00Z"
            })
        })
        .collect();
    json!({ "conditions": conditions })
}

fn class(name: &str, controller: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name, "generation": 1},
        "spec": {"controllerName": controller},
        "status": pending(&["Accepted"]),
    })
}

fn gateway() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "web", "namespace": "apps", "generation": 3},
        "spec": {
            "gatewayClassName": "sluice",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]
        },
        "status": pending(&["Accepted", "Programmed"]),
    })
}

fn route(name: &str, gateway: &str, status: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "apps", "generation": 2},
        "spec": {
            "parentRefs": [{"name": gateway}],
            "hostnames": [format!("{name}.example.com")],
            "rules": [{"backendRefs": [{"name": "backend", "port": 80}]}]
        },
        "status": status,
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend", "namespace": "apps"},
        "spec": {"clusterIP": "10.96.0.60", "ports": [{"name": "http", "port": 80}]}
    })
}

/// Another controller's entry, which sluice must keep.
fn their_parent() -> Value {
    json!({
        "parentRef": {"group": GROUP, "kind": "Gateway", "name": "elsewhere"},
        "controllerName": "example.com/other",
        "conditions": [{
            "type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
            "observedGeneration": 2, "lastTransitionTime": "2020-01-01T00:00:00Z"
        }]
    })
}

fn writes_to(api: &FakeApi, suffix: &str) -> usize {
    api.writes()
        .iter()
        .filter(|w| w.path.ends_with(suffix))
        .count()
}

fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions}"))
}

fn status(api: &FakeApi, kind: &str, ns: &str, name: &str) -> Value {
    api.get(kind, ns, name)
        .map(|o| o["status"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_writes_class_gateway_and_route_status_once() {
    let api = FakeApi::start_new().await;
    api.apply(service());
    api.apply(class("sluice", CONTROLLER));
    api.apply(class("other", "example.com/other"));
    api.apply(gateway());
    api.apply(route(
        "attached",
        "web",
        json!({"parents": [their_parent()]}),
    ));
    api.apply(route("orphan", "missing", Value::Null));
    let dir = tempfile::tempdir().expect("tempdir");
    let _sluice = replica(&api, &dir).await;

    eventually("the route's status to be written", || {
        writes_to(&api, "/httproutes/attached/status") > 0
    })
    .await;

    // The class: Accepted=True replaces the API server's placeholder.
    let class_status = status(&api, "GatewayClass", "", "sluice");
    let accepted = condition(&class_status["conditions"], "Accepted");
    assert_eq!(accepted["status"], "True", "{class_status}");
    assert_eq!(accepted["observedGeneration"], 1);
    assert_ne!(accepted["reason"], "Pending");
    assert!(accepted["lastTransitionTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && !t.starts_with("1970")));

    // The Gateway: Accepted, Programmed, the published address, the listener.
    let gw = status(&api, "Gateway", "apps", "web");
    for type_ in ["Accepted", "Programmed"] {
        let c = condition(&gw["conditions"], type_);
        assert_eq!(c["status"], "True", "{type_}: {gw}");
        assert_eq!(c["observedGeneration"], 3);
    }
    assert_eq!(
        gw["addresses"],
        json!([{"type": "IPAddress", "value": "203.0.113.7"}])
    );
    let listeners = gw["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 1, "{gw}");
    assert_eq!(listeners[0]["name"], "http");
    assert_eq!(listeners[0]["attachedRoutes"], 1, "{gw}");
    assert_eq!(
        listeners[0]["supportedKinds"][0]["kind"], "HTTPRoute",
        "{gw}"
    );
    assert_eq!(
        condition(&listeners[0]["conditions"], "Programmed")["status"],
        "True"
    );

    // The route: the other controller's entry kept, ours added.
    let rs = status(&api, "HTTPRoute", "apps", "attached");
    let parents = rs["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 2, "{rs}");
    assert_eq!(parents[0], their_parent());
    let ours = &parents[1];
    assert_eq!(ours["controllerName"], CONTROLLER);
    assert_eq!(ours["parentRef"]["name"], "web");
    for type_ in ["Accepted", "ResolvedRefs"] {
        let c = condition(&ours["conditions"], type_);
        assert_eq!(c["status"], "True", "{type_}: {rs}");
        assert_eq!(c["observedGeneration"], 2);
    }

    // Merge patches of the status subresource.
    let write = api
        .writes()
        .into_iter()
        .find(|w| w.path.ends_with("/httproutes/attached/status"))
        .expect("a route write");
    assert_eq!(write.method, "PATCH");
    assert!(
        write.content_type.contains("merge-patch"),
        "{}",
        write.content_type
    );
    assert!(write
        .path
        .starts_with("/apis/gateway.networking.k8s.io/v1/namespaces/apps/"));

    // Nothing changes for several refresh periods: nothing more is written.
    let before = api.writes().len();
    let class_time = accepted["lastTransitionTime"].clone();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(api.writes().len(), before, "{:?}", api.writes());
    assert_eq!(writes_to(&api, "/gatewayclasses/sluice/status"), 1);
    assert_eq!(writes_to(&api, "/gateways/web/status"), 1);
    assert_eq!(writes_to(&api, "/httproutes/attached/status"), 1);

    // Other controllers' classes and routes to no Gateway of ours: untouched.
    assert_eq!(writes_to(&api, "/gatewayclasses/other/status"), 0);
    assert_eq!(writes_to(&api, "/httproutes/orphan/status"), 0);
    assert_eq!(
        condition(
            &status(&api, "GatewayClass", "", "other")["conditions"],
            "Accepted"
        )["reason"],
        "Pending"
    );
    assert!(status(&api, "HTTPRoute", "apps", "orphan").is_null());

    // The route moves to the missing Gateway: sluice's entry goes, theirs stays,
    // and the listener counts no route.
    let mut moved = route("attached", "missing", Value::Null);
    moved["metadata"]["generation"] = json!(3);
    moved["status"] = status(&api, "HTTPRoute", "apps", "attached");
    api.apply(moved);
    eventually("sluice's parent entry to go", || {
        status(&api, "HTTPRoute", "apps", "attached")["parents"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    })
    .await;
    assert_eq!(
        status(&api, "HTTPRoute", "apps", "attached")["parents"][0],
        their_parent()
    );
    eventually("the listener to count no route", || {
        status(&api, "Gateway", "apps", "web")["listeners"][0]["attachedRoutes"] == 0
    })
    .await;
    // The Gateway's own conditions did not change: their times are kept.
    let class_status = status(&api, "GatewayClass", "", "sluice");
    assert_eq!(
        condition(&class_status["conditions"], "Accepted")["lastTransitionTime"],
        class_time
    );
}

/// Without `--publish-service` or `--publish-status-address` no Ingress
/// address is published, but the Gateway API status is written all the same
/// (Gateways need their conditions whatever the Ingresses get).
#[tokio::test]
async fn gateway_status_is_written_without_published_addresses() {
    let api = FakeApi::start_new().await;
    api.apply(service());
    api.apply(class("sluice", CONTROLLER));
    api.apply(gateway());
    api.apply(route("attached", "web", Value::Null));
    // An Ingress sluice serves, carrying an address someone published.
    api.apply(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "site", "namespace": "apps"},
        "spec": {"rules": [{"host": "site.example", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}
        }]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}},
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let _sluice = replica_publishing(&api, &dir, Vec::new()).await;
    eventually("the route's status to be written", || {
        writes_to(&api, "/httproutes/attached/status") > 0
    })
    .await;
    let gateway_status = status(&api, "Gateway", "apps", "web");
    assert_eq!(
        condition(&gateway_status["conditions"], "Programmed")["status"],
        "True",
        "{gateway_status}"
    );
    let ingress_writes = api
        .writes()
        .iter()
        .filter(|w| w.path.contains("/ingresses/"))
        .count();
    assert_eq!(
        ingress_writes, 0,
        "no Ingress status (nor clearing) without addresses"
    );
}
