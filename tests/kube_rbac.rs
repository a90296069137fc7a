//! Every Kubernetes API call sluice makes is granted by `deploy/base`'s RBAC.
//!
//! No real cluster runs here: a real sluice (Kubernetes provider, status
//! publishing and leader election all on) runs against `support/kube_api.rs`,
//! an HTTP server that speaks the real list/watch protocol with real
//! Kubernetes JSON and records every request as RBAC sees it (group, resource,
//! verb, namespace). Each recorded call must be allowed by a rule of the
//! ClusterRole, or — in sluice's namespace — of the leader-election Role.

#[path = "support/kube_api.rs"]
mod kube_api;
mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube_api::{Call, FakeApi};
use serde_json::json;
use sluice::app::Source;
use sluice::status::{LeaseSettings, StatusSettings};
use sluice::watch::KubeSettings;

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base");

fn documents<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> Vec<T> {
    let text = std::fs::read_to_string(Path::new(BASE).join(file)).expect("read manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde_yaml_ng::Value::deserialize(doc).expect("YAML"))
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|v| serde_yaml_ng::from_value(v).expect("typed object"))
        .collect()
}

use serde::Deserialize;

fn allows(rule: &PolicyRule, call: &Call, name_ok: bool) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    has(&rule.api_groups, &call.group)
        && rule.resources.iter().flatten().any(|r| *r == call.resource)
        && rule.verbs.iter().any(|v| *v == call.verb || v == "*")
        && (rule.resource_names.as_ref().is_none_or(Vec::is_empty) || name_ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_call_is_granted_by_the_deployed_rbac() {
    let api = FakeApi::start_new().await;
    api.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "sluice", "namespace": "sluice"},
        "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}
    }));
    api.apply(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "app", "namespace": "apps"},
        "spec": {"ingressClassName": "sluice", "rules": [{"http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.write_kubeconfig(dir.path());
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(kubeconfig),
        ..KubeSettings::default()
    });
    settings.status.publish = StatusSettings {
        publish_service: Some(("sluice".into(), "sluice".into())),
        publish_addresses: Vec::new(),
        refresh: Duration::from_millis(100),
    };
    settings.status.lease = LeaseSettings {
        retry_period: Duration::from_millis(100),
        ..LeaseSettings::new("sluice".into(), "sluice-leader".into(), "replica".into())
    };
    let sluice = sluice::app::start(settings).await.expect("sluice starts");
    // Wait until every kind of call has happened: watches, the Lease created
    // and then renewed (update), a status write.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let renewed = |api: &FakeApi| {
        api.calls()
            .iter()
            .any(|c| c.resource == "leases" && c.verb == "update")
    };
    while api.writes().is_empty() || !renewed(&api) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status write or lease renewal happened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sluice.stop();
    sluice.wait().await;

    let cluster: Vec<ClusterRole> = documents("clusterrole.yaml", "ClusterRole");
    let roles: Vec<Role> = documents("leader-election-rbac.yaml", "Role");
    let role_namespace = roles
        .first()
        .and_then(|r| r.metadata.namespace.clone())
        .expect("the Role has a namespace");
    let mut calls = api.calls();
    calls.sort();
    calls.dedup();
    let verbs: Vec<&str> = calls.iter().map(|c| c.verb.as_str()).collect();
    for needed in ["list", "watch", "get", "create", "update", "patch"] {
        assert!(
            verbs.contains(&needed),
            "the run made no {needed} call: {calls:?}"
        );
    }
    let denied: Vec<&Call> = calls
        .iter()
        .filter(|call| {
            let by_cluster = cluster
                .iter()
                .flat_map(|c| c.rules.iter().flatten())
                .any(|rule| allows(rule, call, false));
            let by_role = call.namespace.as_deref() == Some(role_namespace.as_str())
                && roles
                    .iter()
                    .flat_map(|r| r.rules.iter().flatten())
                    // Only the Lease named by --election-id is used.
                    .any(|rule| allows(rule, call, true));
            !(by_cluster || by_role)
        })
        .collect();
    assert!(
        denied.is_empty(),
        "calls the RBAC does not grant: {denied:#?}"
    );
}
