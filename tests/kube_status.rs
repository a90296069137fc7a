//! Ingress status publishing and leader election, end to end.
//!
//! No real cluster runs here: two real sluice instances are started with
//! `--kubeconfig` pointing at `support/kube_api.rs`, an HTTP server that speaks
//! the real list/watch protocol with real Kubernetes JSON, serves a
//! `coordination.k8s.io/v1` Lease with create/replace and resourceVersion
//! conflicts, and records every status write. The kube Client under test talks
//! to it exactly as it would to an API server.

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

/// A sluice replica named `identity`, publishing the `sluice/sluice` Service.
async fn replica(api: &FakeApi, dir: &tempfile::TempDir, identity: &str) -> Running {
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..KubeSettings::default()
    });
    settings.status.publish = StatusSettings {
        publish_service: Some(("sluice".into(), "sluice".into())),
        publish_addresses: Vec::new(),
        refresh: Duration::from_millis(200),
    };
    settings.status.lease = LeaseSettings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseSettings::new("sluice".into(), "sluice-leader".into(), identity.into())
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

fn ingress(name: &str, class: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "ingressClassName": class,
            "rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}
            }]}}]
        }
    })
}

fn publish_service(ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "sluice", "namespace": "sluice"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.50", "ports": [{"name": "web", "port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
    })
}

fn lb_ips(api: &FakeApi, name: &str) -> Vec<String> {
    api.get("Ingress", "apps", name)
        .and_then(|i| i["status"]["loadBalancer"]["ingress"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["ip"].as_str().map(str::to_owned))
        .collect()
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get("Lease", "sluice", "sluice-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

fn status_writes_to(api: &FakeApi, name: &str) -> usize {
    api.writes()
        .iter()
        .filter(|w| w.path.ends_with(&format!("/ingresses/{name}/status")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_status_and_only_for_its_class() {
    let api = FakeApi::start_new().await;
    api.apply(publish_service("203.0.113.7"));
    api.apply(ingress("mine", "sluice"));
    api.apply(ingress("theirs", "nginx"));
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let a = replica(&api, &dir_a, "replica-a").await;
    let b = replica(&api, &dir_b, "replica-b").await;

    eventually("the status to be published", || {
        lb_ips(&api, "mine") == ["203.0.113.7"]
    })
    .await;
    let leader = holder(&api).expect("a lease holder");
    assert!(leader == "replica-a" || leader == "replica-b", "{leader}");
    // Other classes are never touched.
    assert!(lb_ips(&api, "theirs").is_empty());
    assert_eq!(status_writes_to(&api, "theirs"), 0);
    // Status subresource merge patches, and only one so far (no rewrite of an unchanged value).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let writes: Vec<_> = api
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/ingresses/mine/status"))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert!(
        writes[0].content_type.contains("merge-patch"),
        "{}",
        writes[0].content_type
    );

    // The Service's address changes: the leader follows.
    api.apply(publish_service("203.0.113.8"));
    eventually("the new address", || {
        lb_ips(&api, "mine") == ["203.0.113.8"]
    })
    .await;
    assert_eq!(status_writes_to(&api, "mine"), 2);

    // The leader goes away: the other replica takes the lease over and keeps
    // the status current.
    let (leaving, staying, staying_name) = if leader == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    leaving.stop();
    leaving.wait().await;
    eventually("the other replica to lead", || {
        holder(&api).as_deref() == Some(staying_name)
    })
    .await;
    api.apply(publish_service("203.0.113.9"));
    eventually("the new leader's write", || {
        lb_ips(&api, "mine") == ["203.0.113.9"]
    })
    .await;
    assert!(lb_ips(&api, "theirs").is_empty());
    drop(staying);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_get_the_lease_never_writes() {
    let api = FakeApi::start_new().await;
    api.apply(publish_service("203.0.113.7"));
    api.apply(ingress("mine", "sluice"));
    // Someone else holds a fresh lease and keeps renewing it.
    let lease = |renew: &str| {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "sluice-leader", "namespace": "sluice"},
            "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 2, "renewTime": renew}
        })
    };
    let now = || {
        k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    api.apply(lease(&now()));
    let dir = tempfile::tempdir().expect("tempdir");
    let follower = replica(&api, &dir, "replica-a").await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        api.apply(lease(&now()));
    }
    assert_eq!(status_writes_to(&api, "mine"), 0);
    assert_eq!(holder(&api).as_deref(), Some("someone-else"));
    // The other holder stops renewing: the replica takes over and writes.
    eventually("a takeover", || {
        holder(&api).as_deref() == Some("replica-a")
    })
    .await;
    eventually("the status", || lb_ips(&api, "mine") == ["203.0.113.7"]).await;
    drop(follower);
}
