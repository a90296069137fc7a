//! The Kubernetes provider's Gateway API sources against a fake API server.
//!
//! No real cluster runs here: these tests drive `run_kube_provider` through a
//! real `kube::Client` against `support/kube_api.rs`, an HTTP server that
//! speaks the real list/watch protocol with real API JSON. The fake serves
//! the Gateway API resources (`gateway.networking.k8s.io`: GatewayClass,
//! Gateway, HTTPRoute, BackendTLSPolicy `v1`, ReferenceGrant `v1` and
//! `v1beta1` over one set of objects) and Namespaces. It models a CRD only by
//! its effect on the resource paths: an uninstalled CRD (or an unserved
//! version) answers 404 and ends open watches; there are no discovery
//! documents, which sluice does not read.
//!
//! What is checked: the objects arrive decoded with the API server's
//! defaults, their changes and deletions arrive, a status write changes
//! nothing, a cluster without the CRDs is synced and empty until they are
//! installed, ReferenceGrants are read through `v1beta1` when `v1` is not
//! served, the CA ConfigMaps and Secrets a BackendTLSPolicy names are watched
//! by name, Namespaces (for `allowedRoutes` selectors) follow
//! `--watch-namespace`, and a 403 on these kinds (an older ClusterRole) does
//! not hold Ingresses back. Routing is not here: nothing compiles these
//! objects yet.

#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/kube_provider.rs"]
mod kube_provider;

use kube_provider::*;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::gateway::types::{FromNamespaces, HttpRouteMatch};
use sluice::router::Snapshot;
use sluice::watch::{KubeSettings, KubeStats};

const GROUP_V1: &str = "gateway.networking.k8s.io/v1";

/// `namespace/name` of each object, sorted (`/name` when cluster scoped).
fn names<'a>(
    metas: impl Iterator<Item = &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Vec<String> {
    let mut names: Vec<String> = metas
        .map(|m| {
            format!(
                "{}/{}",
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    names
}

fn classes(s: &Snapshot) -> Vec<String> {
    names(s.gateway_classes.iter().map(|o| &o.metadata))
}

fn gateways(s: &Snapshot) -> Vec<String> {
    names(s.gateways.iter().map(|o| &o.metadata))
}

fn routes(s: &Snapshot) -> Vec<String> {
    names(s.http_routes.iter().map(|o| &o.metadata))
}

fn grants(s: &Snapshot) -> Vec<String> {
    names(s.reference_grants.iter().map(|o| &o.metadata))
}

fn policies(s: &Snapshot) -> Vec<String> {
    names(s.backend_tls_policies.iter().map(|o| &o.metadata))
}

fn namespaces(s: &Snapshot) -> Vec<String> {
    names(s.namespaces.iter().map(|o| &o.metadata))
}

fn config_maps(s: &Snapshot) -> Vec<String> {
    names(s.config_maps.iter().map(|o| &o.metadata))
}

fn secrets(s: &Snapshot) -> Vec<String> {
    names(s.secrets.iter().map(|o| &o.metadata))
}

fn gateway_class(name: &str) -> Value {
    json!({
        "apiVersion": GROUP_V1, "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": "sluice.dev/gateway-controller"},
    })
}

fn gateway(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": GROUP_V1, "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"gatewayClassName": "sluice", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS",
             "tls": {"certificateRefs": [{"name": "web-tls"}]}},
        ]},
    })
}

fn http_route(ns: &str, name: &str, service: &str) -> Value {
    json!({
        "apiVersion": GROUP_V1, "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns,
                     "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                 "hostnames": ["web.example"],
                 "rules": [{"backendRefs": [{"name": service, "port": 80}]}]},
    })
}

fn reference_grant(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": GROUP_V1, "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}],
                 "to": [{"group": "", "kind": "Service"}]},
    })
}

fn backend_tls_policy(ns: &str, name: &str, ca: &[(&str, &str)]) -> Value {
    let refs: Vec<Value> = ca
        .iter()
        .map(|(kind, name)| json!({"group": "", "kind": kind, "name": name}))
        .collect();
    json!({
        "apiVersion": GROUP_V1, "kind": "BackendTLSPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                 "validation": {"caCertificateRefs": refs, "hostname": "web.apps.svc"}},
    })
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn config_map(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"ca.crt": format!("-----BEGIN CERTIFICATE----- {name}")},
    })
}

fn secret(ns: &str, name: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "data": {"ca.crt": "Y2E="},
    })
}

fn ingress(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"rules": [{"host": "web.example", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    })
}

fn seed(api: &FakeApi) {
    api.apply(gateway_class("sluice"));
    api.apply(gateway("infra", "gw"));
    api.apply(http_route("apps", "web", "web"));
    api.apply(reference_grant("backends", "routes"));
    api.apply(backend_tls_policy("apps", "web", &[]));
    api.apply(namespace("apps", json!({"shared": "true"})));
}

#[tokio::test]
async fn gateway_api_objects_arrive_change_and_go() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "every Gateway API kind", |s| {
        !s.gateway_classes.is_empty()
            && !s.gateways.is_empty()
            && !s.http_routes.is_empty()
            && !s.reference_grants.is_empty()
            && !s.backend_tls_policies.is_empty()
            && !s.namespaces.is_empty()
    })
    .await;
    assert!(p.stats.synced.load(Ordering::Acquire));
    let s = &first.snapshot;
    assert_eq!(classes(s), ["/sluice"]);
    assert_eq!(gateways(s), ["infra/gw"]);
    assert_eq!(routes(s), ["apps/web"]);
    assert_eq!(grants(s), ["backends/routes"]);
    assert_eq!(policies(s), ["apps/web"]);
    assert_eq!(namespaces(s), ["/apps"]);
    // Decoded with the API server's defaults, stripped like every object.
    let route = &s.http_routes[0];
    assert_eq!(route.spec.rules[0].matches, [HttpRouteMatch::default()]);
    assert_eq!(route.spec.rules[0].backend_refs[0].weight, 1);
    assert_eq!(route.spec.parent_refs[0].kind, "Gateway");
    assert!(route.metadata.managed_fields.is_none());
    assert!(route.metadata.resource_version.is_none());
    let gw = &s.gateways[0];
    assert_eq!(
        gw.metadata.generation,
        Some(1),
        "kept for observedGeneration"
    );
    assert_eq!(
        gw.spec.listeners[1].allowed_routes.namespaces.from,
        FromNamespaces::Same
    );
    let labels = s.namespaces[0].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels["shared"], "true");
    assert!(s.namespaces[0].status.is_none());

    // A change arrives; the other kinds keep their lists.
    let mut changed = http_route("apps", "web", "web-v2");
    changed["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(3);
    api.apply(changed);
    let updated = until(&mut p.updates, "the new backend", |s| {
        s.http_routes
            .first()
            .is_some_and(|r| r.spec.rules[0].backend_refs[0].name == "web-v2")
    })
    .await;
    assert_eq!(
        updated.snapshot.http_routes[0].spec.rules[0].backend_refs[0].weight,
        3
    );
    assert!(Arc::ptr_eq(
        &first.snapshot.gateways[0],
        &updated.snapshot.gateways[0]
    ));

    // A status write (as the status writer will do) changes nothing.
    let resource = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: GROUP_V1.into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    let routes_api: Api<DynamicObject> = Api::namespaced_with(api.client(), "apps", &resource);
    let status = json!({"status": {"parents": [{
        "controllerName": "sluice.dev/gateway-controller",
        "parentRef": {"name": "gw", "namespace": "infra"},
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                        "message": "", "observedGeneration": 1,
                        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}]}});
    routes_api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    assert_eq!(
        api.writes()[0].path,
        "/apis/gateway.networking.k8s.io/v1/namespaces/apps/httproutes/web/status"
    );
    api.apply(gateway("infra", "other"));
    let after = until(&mut p.updates, "the second Gateway", |s| {
        gateways(s) == ["infra/gw", "infra/other"]
    })
    .await;
    assert!(
        Arc::ptr_eq(
            &updated.snapshot.http_routes[0],
            &after.snapshot.http_routes[0]
        ),
        "a status-only change must leave the stored HTTPRoute as it was"
    );

    // Deletions arrive.
    assert!(api.delete("HTTPRoute", "apps", "web"));
    assert!(api.delete("GatewayClass", "", "sluice"));
    assert!(api.delete("ReferenceGrant", "backends", "routes"));
    until(&mut p.updates, "the deletions", |s| {
        s.http_routes.is_empty() && s.gateway_classes.is_empty() && s.reference_grants.is_empty()
    })
    .await;
}

#[tokio::test]
async fn missing_gateway_crds_are_synced_empty_then_picked_up() {
    let api = FakeApi::start_new().await;
    api.set_gateway_crds(false);
    api.apply(ingress("apps", "web"));
    seed(&api);
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "a first update without the CRDs", |s| {
        !s.ingresses.is_empty()
    })
    .await;
    assert!(p.stats.synced.load(Ordering::Acquire));
    let s = &first.snapshot;
    assert!(
        s.gateway_classes.is_empty()
            && s.gateways.is_empty()
            && s.http_routes.is_empty()
            && s.reference_grants.is_empty()
            && s.backend_tls_policies.is_empty()
    );
    assert_eq!(namespaces(s), ["/apps"], "Namespaces are built in");
    assert_eq!(
        KubeStats::get(&p.stats.watch_errors),
        0,
        "a missing CRD is not an error"
    );
    // The CRDs are installed later: the objects appear without a restart.
    api.set_gateway_crds(true);
    until(&mut p.updates, "the Gateway API objects", |s| {
        classes(s) == ["/sluice"]
            && gateways(s) == ["infra/gw"]
            && routes(s) == ["apps/web"]
            && grants(s) == ["backends/routes"]
            && policies(s) == ["apps/web"]
    })
    .await;
    // And removed again: the kinds empty.
    api.set_gateway_crds(false);
    let gone = until(&mut p.updates, "no Gateway API objects", |s| {
        s.gateway_classes.is_empty()
            && s.gateways.is_empty()
            && s.http_routes.is_empty()
            && s.reference_grants.is_empty()
            && s.backend_tls_policies.is_empty()
    })
    .await;
    assert_eq!(gone.snapshot.ingresses.len(), 1);
}

#[tokio::test]
async fn reference_grants_are_read_through_v1beta1_when_v1_is_not_served() {
    let api = FakeApi::start_new().await;
    // A cluster with Gateway API CRDs older than v1.5: ReferenceGrant v1beta1 only.
    api.set_served(GROUP_V1, "referencegrants", false);
    api.apply(reference_grant("backends", "old"));
    let mut p = start(&api, fast_settings());
    until(&mut p.updates, "the grant through v1beta1", |s| {
        grants(s) == ["backends/old"]
    })
    .await;
    // Changes keep arriving through v1beta1.
    api.apply(reference_grant("backends", "new"));
    until(&mut p.updates, "the second grant", |s| {
        grants(s) == ["backends/new", "backends/old"]
    })
    .await;
    // Upgraded CRDs that no longer serve v1beta1: v1 takes over.
    api.set_served(GROUP_V1, "referencegrants", true);
    api.set_served(
        "gateway.networking.k8s.io/v1beta1",
        "referencegrants",
        false,
    );
    api.delete("ReferenceGrant", "backends", "old");
    until(&mut p.updates, "the deletion, seen through v1", |s| {
        grants(s) == ["backends/new"]
    })
    .await;
    // Neither version served: synced and empty.
    api.set_served(GROUP_V1, "referencegrants", false);
    until(&mut p.updates, "no grants", |s| {
        s.reference_grants.is_empty()
    })
    .await;
}

#[tokio::test]
async fn backend_tls_policy_ca_bundles_are_watched_by_name() {
    let api = FakeApi::start_new().await;
    api.apply(config_map("apps", "ca"));
    api.apply(config_map("apps", "ca2"));
    api.apply(config_map("apps", "unrelated"));
    api.apply(secret("apps", "ca-secret", "Opaque"));
    api.apply(secret("apps", "other-opaque", "Opaque"));
    api.apply(backend_tls_policy("apps", "web", &[("ConfigMap", "ca")]));
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "the first update", |_| true).await;
    assert_eq!(
        config_maps(&first.snapshot),
        ["apps/ca"],
        "the first update waits for the named ConfigMap, and only that one"
    );
    // Its changes arrive.
    let mut renewed = config_map("apps", "ca");
    renewed["data"]["ca.crt"] = json!("renewed");
    api.apply(renewed);
    until(&mut p.updates, "the renewed CA", |s| {
        s.config_maps
            .iter()
            .any(|m| m.data.as_ref().is_some_and(|d| d["ca.crt"] == "renewed"))
    })
    .await;
    // Another reference (and an Opaque Secret, read as a CA too).
    api.apply(backend_tls_policy(
        "apps",
        "web",
        &[("ConfigMap", "ca2"), ("Secret", "ca-secret")],
    ));
    until(&mut p.updates, "the newly named CA bundles", |s| {
        config_maps(s) == ["apps/ca2"] && secrets(s) == ["apps/ca-secret"]
    })
    .await;
    // No policy, no CA bundle.
    api.delete("BackendTLSPolicy", "apps", "web");
    until(&mut p.updates, "no CA bundles", |s| {
        s.config_maps.is_empty() && s.secrets.is_empty()
    })
    .await;
}

#[tokio::test]
async fn namespaces_and_gateway_kinds_follow_watch_namespace() {
    let api = FakeApi::start_new().await;
    for ns in ["a", "b", "c"] {
        api.apply(namespace(ns, json!({"team": ns})));
        api.apply(gateway(ns, "gw"));
        api.apply(http_route(ns, "web", "web"));
    }
    api.apply(gateway_class("sluice"));
    let settings = KubeSettings {
        namespaces: vec!["a".into(), "b".into()],
        ..fast_settings()
    };
    let mut p = start(&api, settings);
    let first = until(&mut p.updates, "the first update", |_| true).await;
    let s = &first.snapshot;
    assert_eq!(namespaces(s), ["/a", "/b"]);
    assert_eq!(gateways(s), ["a/gw", "b/gw"]);
    assert_eq!(routes(s), ["a/web", "b/web"]);
    assert_eq!(classes(s), ["/sluice"], "GatewayClasses are cluster scoped");
    // A label change of a watched Namespace arrives; of another one, never.
    api.apply(namespace("c", json!({"team": "c", "shared": "true"})));
    api.apply(namespace("b", json!({"team": "b", "shared": "true"})));
    until(&mut p.updates, "b's new label", |s| {
        s.namespaces.iter().any(|n| {
            n.metadata.name.as_deref() == Some("b")
                && n.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("shared"))
        })
    })
    .await;
    let latest = p.updates.borrow().clone().expect("published");
    assert_eq!(namespaces(&latest.snapshot), ["/a", "/b"]);
    assert_eq!(
        api.lists("namespaces"),
        2,
        "one watcher per watched Namespace"
    );
}

#[tokio::test]
async fn forbidden_gateway_kinds_do_not_hold_ingresses_back() {
    let api = FakeApi::start_new().await;
    api.apply(ingress("apps", "web"));
    seed(&api);
    // The ClusterRole of an older install: no Namespaces, no HTTPRoutes.
    api.forbid("namespaces", true);
    api.forbid("httproutes", true);
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "a first update", |s| {
        !s.ingresses.is_empty()
    })
    .await;
    assert!(p.stats.synced.load(Ordering::Acquire));
    assert!(first.snapshot.http_routes.is_empty() && first.snapshot.namespaces.is_empty());
    assert_eq!(
        gateways(&first.snapshot),
        ["infra/gw"],
        "the permitted kinds load"
    );
    assert!(
        KubeStats::get(&p.stats.watch_errors) >= 2,
        "a 403 is counted as a watch error"
    );
    // The RBAC is fixed: the kinds load without a restart.
    api.forbid("namespaces", false);
    api.forbid("httproutes", false);
    until(&mut p.updates, "the HTTPRoute and the Namespace", |s| {
        routes(s) == ["apps/web"] && namespaces(s) == ["/apps"]
    })
    .await;
}
