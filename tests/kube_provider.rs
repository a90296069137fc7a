//! The Kubernetes provider against a fake API server.
//!
//! No real cluster runs here: these tests drive `run_kube_provider` against
//! an HTTP server (`support/kube_api.rs`) that speaks the real list/watch
//! protocol with real API JSON (lists with resourceVersion and paging,
//! chunked ADDED/MODIFIED/DELETED/BOOKMARK/ERROR watch streams, `410 Gone`,
//! dropped connections, outages, a CRD that is absent then present), through
//! a real `kube::Client` over HTTP. They check the published
//! `ProviderUpdate`s; routing through the data plane is in `kube_routing.rs`.

#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/kube_provider.rs"]
mod kube_provider;

use kube_provider::*;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::router::{only_endpoints_changed, Snapshot};
use sluice::watch::{KubeSettings, KubeStats};

/// Waits until `cond` holds, polling (for counters of the fake and the stats).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"));
}

fn names(metas: impl Iterator<Item = ObjectMeta>) -> Vec<String> {
    let mut names: Vec<String> = metas
        .map(|m| {
            format!(
                "{}/{}",
                m.namespace.unwrap_or_default(),
                m.name.unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    names
}

fn ingresses(s: &Snapshot) -> Vec<String> {
    names(s.ingresses.iter().map(|o| o.metadata.clone()))
}

fn services(s: &Snapshot) -> Vec<String> {
    names(s.services.iter().map(|o| o.metadata.clone()))
}

fn secrets(s: &Snapshot) -> Vec<String> {
    names(s.secrets.iter().map(|o| o.metadata.clone()))
}

fn middlewares(s: &Snapshot) -> Vec<String> {
    names(s.middlewares.iter().map(|o| o.metadata.clone()))
}

fn slice_addrs(s: &Snapshot, ns: &str, name: &str) -> Vec<String> {
    s.endpoint_slices
        .iter()
        .filter(|e| {
            e.metadata.namespace.as_deref() == Some(ns) && e.metadata.name.as_deref() == Some(name)
        })
        .flat_map(|e| e.endpoints.iter().flat_map(|ep| ep.addresses.clone()))
        .collect()
}

fn ingress(ns: &str, name: &str, host: &str, service: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"a\":\"big blob\"}",
            },
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "networking.k8s.io/v1"}],
        },
        "spec": {
            "ingressClassName": "sluice",
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}},
            }]}}],
        },
    })
}

fn service(ns: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": 8080, "protocol": "TCP"}],
                 "selector": {"app": name}},
    })
}

fn slice(ns: &str, name: &str, service: &str, addrs: &[&str]) -> Value {
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true, "serving": true, "terminating": false}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

fn secret(ns: &str, name: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": type_,
        "data": {"key": "dmFsdWU="},
    })
}

fn class(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": "sluice.dev/ingress-controller"},
    })
}

fn middleware(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

fn seed(api: &FakeApi) {
    api.apply(class("sluice"));
    api.apply(ingress("apps", "web", "web.example", "web"));
    api.apply(service("apps", "web", 80));
    api.apply(slice("apps", "web-1", "web", &["10.0.0.1", "10.0.0.2"]));
    api.apply(secret("apps", "web-tls", "kubernetes.io/tls"));
    api.apply(middleware(
        "apps",
        "strip",
        json!({"stripPrefix": {"prefixes": ["/api"]}}),
    ));
}

#[tokio::test]
async fn objects_created_updated_deleted_propagate() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "the seeded objects", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    let s = &first.snapshot;
    assert_eq!(s.ingress_classes.len(), 1);
    assert_eq!(services(s), ["apps/web"]);
    assert_eq!(slice_addrs(s, "apps", "web-1"), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(secrets(s), ["apps/web-tls"]);
    assert_eq!(middlewares(s), ["apps/strip"]);
    assert!(p.stats.synced.load(Ordering::Acquire));
    // Bulk is gone before anything is stored.
    let web = &s.ingresses[0];
    assert!(web.metadata.managed_fields.is_none());
    assert!(web.metadata.annotations.is_none());
    assert!(web.metadata.resource_version.is_none());
    assert!(web.metadata.uid.is_some(), "identity fields stay");

    // Create.
    api.apply(ingress("apps", "api", "api.example", "web"));
    let created = until(&mut p.updates, "the new Ingress", |s| {
        ingresses(s) == ["apps/api", "apps/web"]
    })
    .await;
    // Update.
    api.apply(service("apps", "web", 81));
    let port = |s: &Snapshot| {
        s.services[0]
            .spec
            .as_ref()
            .and_then(|spec| spec.ports.as_ref())
            .map(|ports| ports[0].port)
    };
    let updated = until(&mut p.updates, "the Service's new port", |s| {
        port(s) == Some(81)
    })
    .await;
    // Unchanged lists keep the same objects (cheap comparisons downstream).
    assert!(Arc::ptr_eq(
        &created.snapshot.ingresses[0],
        &updated.snapshot.ingresses[0]
    ));
    // Delete.
    assert!(api.delete("Ingress", "apps", "web"));
    api.delete("Middleware", "apps", "strip");
    until(&mut p.updates, "the deletions", |s| {
        ingresses(s) == ["apps/api"] && s.middlewares.is_empty()
    })
    .await;
}

#[tokio::test]
async fn nothing_is_published_before_every_kind_has_synced() {
    let api = FakeApi::start_new().await;
    seed(&api);
    api.fail("secrets", true);
    let mut p = start(&api, fast_settings());
    // Every other kind lists; the Secrets keep failing and being retried.
    eventually("the other kinds listed and Secrets retried", || {
        [
            "ingresses",
            "ingressclasses",
            "services",
            "endpointslices",
            "middlewares",
        ]
        .iter()
        .all(|k| api.lists(k) >= 1)
            && api.requests("secrets") >= 3
    })
    .await;
    assert!(
        p.updates.borrow().is_none(),
        "published before Secrets synced"
    );
    assert!(!p.stats.synced.load(Ordering::Acquire));
    assert!(KubeStats::get(&p.stats.watch_errors) >= 2);
    api.fail("secrets", false);
    let first = until(&mut p.updates, "the first update", |_| true).await;
    assert_eq!(
        secrets(&first.snapshot),
        ["apps/web-tls"],
        "the first update is complete"
    );
    assert_eq!(ingresses(&first.snapshot), ["apps/web"]);
    assert!(p.stats.synced.load(Ordering::Acquire));
}

#[tokio::test]
async fn endpoint_burst_coalesces_into_few_endpoint_only_updates() {
    let api = FakeApi::start_new().await;
    seed(&api);
    for i in 0..500 {
        api.apply(slice("apps", &format!("bulk-{i}"), "web", &["10.1.0.1"]));
    }
    let mut p = start(&api, fast_settings());
    let before = until(&mut p.updates, "the seeded slices", |s| {
        s.endpoint_slices.len() == 501
    })
    .await;
    let publishes = KubeStats::get(&p.stats.publishes);
    // A rollout: every slice's pod replaced.
    for i in 0..500 {
        api.apply(slice("apps", &format!("bulk-{i}"), "web", &["10.2.0.1"]));
    }
    let after = until(&mut p.updates, "every slice's new endpoint", |s| {
        (0..500).all(|i| slice_addrs(s, "apps", &format!("bulk-{i}")) == ["10.2.0.1"])
    })
    .await;
    let made = KubeStats::get(&p.stats.publishes) - publishes;
    eprintln!("500 EndpointSlice changes made {made} updates");
    assert!(
        made <= 25,
        "500 changes made {made} updates; bursts must coalesce"
    );
    assert!(only_endpoints_changed(&before.snapshot, &after.snapshot));
    assert!(Arc::ptr_eq(
        &before.snapshot.ingresses[0],
        &after.snapshot.ingresses[0]
    ));
}

#[tokio::test]
async fn status_writes_are_recorded_and_do_not_change_the_snapshot() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    let before = until(&mut p.updates, "the seeded Ingress", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    let ingresses_api: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(api.client(), "apps");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    ingresses_api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    let writes = api.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(
        writes[0].path,
        "/apis/networking.k8s.io/v1/namespaces/apps/ingresses/web/status"
    );
    assert_eq!(writes[0].content_type, "application/merge-patch+json");
    assert_eq!(writes[0].body, status);
    assert_eq!(
        api.get("Ingress", "apps", "web").expect("stored")["status"],
        status["status"]
    );
    // A later change on the same watch stream arrives after the status event.
    api.apply(ingress("apps", "later", "later.example", "web"));
    let after = until(&mut p.updates, "the later Ingress", |s| {
        ingresses(s).len() == 2
    })
    .await;
    let web = after
        .snapshot
        .ingresses
        .iter()
        .find(|i| i.metadata.name.as_deref() == Some("web"))
        .expect("web");
    assert!(
        Arc::ptr_eq(web, &before.snapshot.ingresses[0]),
        "a status-only change must leave the stored Ingress as it was"
    );
}

#[tokio::test]
async fn api_server_outage_keeps_the_last_update_and_resumes() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    until(&mut p.updates, "the seeded objects", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    let errors = KubeStats::get(&p.stats.watch_errors);
    api.stop();
    // Changes made while sluice cannot see them.
    api.apply(ingress("apps", "during", "during.example", "web"));
    api.delete("Service", "apps", "web");
    eventually("watch errors during the outage", || {
        KubeStats::get(&p.stats.watch_errors) > errors + 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !p.updates.has_changed().expect("provider alive"),
        "an outage must not publish anything"
    );
    let last = p.updates.borrow().clone().expect("still the last update");
    assert_eq!(ingresses(&last.snapshot), ["apps/web"]);
    assert_eq!(services(&last.snapshot), ["apps/web"]);
    api.start().await;
    until(&mut p.updates, "the changes made during the outage", |s| {
        ingresses(s) == ["apps/during", "apps/web"] && s.services.is_empty()
    })
    .await;
    assert!(KubeStats::get(&p.stats.reconnects) >= 1);
    // And it keeps watching.
    api.apply(service("apps", "back", 80));
    until(&mut p.updates, "a change after the outage", |s| {
        services(s) == ["apps/back"]
    })
    .await;
}

#[tokio::test]
async fn gone_410_makes_the_watchers_list_again() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    until(&mut p.updates, "the seeded objects", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    let lists = api.lists("ingresses");
    // Open watches get an ERROR event with a 410 Status.
    api.expire();
    eventually("a relist after 410", || api.lists("ingresses") > lists).await;
    api.apply(ingress("apps", "after", "after.example", "web"));
    until(&mut p.updates, "a change after the relist", |s| {
        ingresses(s) == ["apps/after", "apps/web"]
    })
    .await;
    assert!(KubeStats::get(&p.stats.relists) >= 1);

    // A deletion the watch never saw (history compacted while away) is found by the relist.
    api.stop();
    api.delete("Ingress", "apps", "web");
    api.compact();
    let lists = api.lists("ingresses");
    api.start().await;
    until(&mut p.updates, "the deletion found by relisting", |s| {
        ingresses(s) == ["apps/after"]
    })
    .await;
    assert!(api.lists("ingresses") > lists);
}

#[tokio::test]
async fn dropped_connections_resume_watching() {
    let api = FakeApi::start_new().await;
    seed(&api);
    let mut p = start(&api, fast_settings());
    until(&mut p.updates, "the seeded objects", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    let watches = api.watches("ingresses");
    api.drop_connections();
    api.apply(ingress("apps", "next", "next.example", "web"));
    until(
        &mut p.updates,
        "a change after the connections dropped",
        |s| ingresses(s) == ["apps/next", "apps/web"],
    )
    .await;
    assert!(api.watches("ingresses") > watches, "the watch was reopened");
}

#[tokio::test]
async fn middleware_crd_absent_then_present() {
    let api = FakeApi::start_new().await;
    api.set_crd(false);
    api.apply(ingress("apps", "web", "web.example", "web"));
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "a first update without the CRD", |s| {
        ingresses(s) == ["apps/web"]
    })
    .await;
    assert!(first.snapshot.middlewares.is_empty());
    assert!(p.stats.synced.load(Ordering::Acquire));
    // The CRD is installed later.
    api.set_crd(true);
    api.apply(middleware(
        "apps",
        "strip",
        json!({"stripPrefix": {"prefixes": ["/api"]}}),
    ));
    let found = until(&mut p.updates, "the Middleware", |s| {
        middlewares(s) == ["apps/strip"]
    })
    .await;
    assert!(found.snapshot.middlewares[0]
        .spec
        .contains_key("stripPrefix"));
    // And uninstalled again.
    api.set_crd(false);
    until(&mut p.updates, "no Middlewares", |s| {
        s.middlewares.is_empty()
    })
    .await;
}

#[tokio::test]
async fn only_tls_secrets_and_secrets_middlewares_reference_are_kept() {
    let api = FakeApi::start_new().await;
    api.apply(secret("apps", "web-tls", "kubernetes.io/tls"));
    api.apply(secret(
        "apps",
        "sh.helm.release.v1.web.v1",
        "helm.sh/release.v1",
    ));
    api.apply(secret("apps", "unrelated", "Opaque"));
    api.apply(secret("apps", "users", "Opaque"));
    api.apply(middleware(
        "apps",
        "auth",
        json!({"basicAuth": {"secret": "users"}}),
    ));
    let mut p = start(&api, fast_settings());
    let first = until(&mut p.updates, "the first update", |_| true).await;
    assert_eq!(
        secrets(&first.snapshot),
        ["apps/users", "apps/web-tls"],
        "the first update waits for the referenced Secret"
    );
    // A change to the referenced Secret arrives.
    let mut users = secret("apps", "users", "Opaque");
    users["data"]["key"] = json!("bmV3");
    api.apply(users);
    until(&mut p.updates, "the new Secret data", |s| {
        s.secrets.iter().any(|secret| {
            secret.metadata.name.as_deref() == Some("users")
                && secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d["key"].0 == b"new".to_vec())
        })
    })
    .await;
    // A new reference starts watching that Secret.
    api.apply(middleware(
        "apps",
        "auth",
        json!({"basicAuth": {"secret": "unrelated"}}),
    ));
    until(&mut p.updates, "the newly referenced Secret", |s| {
        secrets(s) == ["apps/unrelated", "apps/web-tls"]
    })
    .await;
    // No reference, no Secret.
    api.delete("Middleware", "apps", "auth");
    until(&mut p.updates, "only the TLS Secret", |s| {
        secrets(s) == ["apps/web-tls"]
    })
    .await;
    // An Ingress's backend-verification CA (ingress-nginx's proxy-ssl-secret,
    // an Opaque Secret) is watched too.
    let mut verified = ingress("apps", "verified", "verified.example", "web");
    verified["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/proxy-ssl-secret": "apps/unrelated"});
    api.apply(verified);
    until(&mut p.updates, "the CA Secret an Ingress names", |s| {
        secrets(s) == ["apps/unrelated", "apps/web-tls"]
    })
    .await;
    // So are the user list of ingress-nginx's auth-type basic (auth-secret)
    // and a client-certificate CA (auth-tls-secret).
    let mut guarded = ingress("apps", "guarded", "guarded.example", "web");
    guarded["metadata"]["annotations"] = json!({
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": "users",
    });
    api.apply(guarded);
    until(&mut p.updates, "the auth-secret an Ingress names", |s| {
        secrets(s) == ["apps/unrelated", "apps/users", "apps/web-tls"]
    })
    .await;
}

/// The ConfigMaps of a snapshot, as `namespace/name`, sorted.
fn config_maps(s: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> = s
        .config_maps
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.metadata.namespace.as_deref().unwrap_or(""),
                m.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

fn config_map(ns: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    })
}

#[tokio::test]
async fn only_configmaps_named_by_the_flag_or_an_ingress_are_watched() {
    let api = FakeApi::start_new().await;
    api.apply(config_map(
        "ingress-nginx",
        "controller",
        json!({"proxy-body-size": "8m", "add-headers": "ingress-nginx/response"}),
    ));
    api.apply(config_map("ingress-nginx", "response", json!({"X-A": "1"})));
    api.apply(config_map("apps", "headers", json!({"X-B": "2"})));
    api.apply(config_map("apps", "unrelated", json!({"big": "data"})));
    let settings = KubeSettings {
        nginx_configmap: Some(("ingress-nginx".into(), "controller".into())),
        ..fast_settings()
    };
    let mut p = start(&api, settings);
    until(
        &mut p.updates,
        "the controller ConfigMap and what it names",
        |s| config_maps(s) == ["ingress-nginx/controller", "ingress-nginx/response"],
    )
    .await;
    // An Ingress's custom-headers starts a watch of that ConfigMap only.
    let mut annotated = ingress("apps", "web", "web.example", "web");
    annotated["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/custom-headers": "headers"});
    api.apply(annotated);
    until(&mut p.updates, "the ConfigMap an Ingress names", |s| {
        config_maps(s)
            == [
                "apps/headers",
                "ingress-nginx/controller",
                "ingress-nginx/response",
            ]
    })
    .await;
    // Its changes arrive.
    api.apply(config_map("apps", "headers", json!({"X-B": "3"})));
    until(&mut p.updates, "the new header value", |s| {
        s.config_maps.iter().any(|m| {
            m.metadata.name.as_deref() == Some("headers")
                && m.data.as_ref().is_some_and(|d| d["X-B"] == "3")
        })
    })
    .await;
    // The controller ConfigMap stops naming `response`: it is dropped.
    api.apply(config_map(
        "ingress-nginx",
        "controller",
        json!({"proxy-body-size": "8m"}),
    ));
    until(&mut p.updates, "no response-headers ConfigMap", |s| {
        config_maps(s) == ["apps/headers", "ingress-nginx/controller"]
    })
    .await;
    assert!(api.lists("configmaps") >= 3);
}

#[tokio::test]
async fn watch_namespaces_and_ingress_label_selector() {
    let api = FakeApi::start_new().await;
    for ns in ["a", "b", "c"] {
        let mut labelled = ingress(ns, "shown", "shown.example", "web");
        labelled["metadata"]["labels"] = json!({"expose": "yes"});
        api.apply(labelled);
        api.apply(ingress(ns, "hidden", "hidden.example", "web"));
        api.apply(service(ns, "web", 80));
    }
    let settings = KubeSettings {
        namespaces: vec!["a".into(), "b".into()],
        ingress_label_selector: Some("expose=yes".into()),
        ..fast_settings()
    };
    let mut p = start(&api, settings);
    let first = until(&mut p.updates, "the first update", |_| true).await;
    assert_eq!(ingresses(&first.snapshot), ["a/shown", "b/shown"]);
    assert_eq!(services(&first.snapshot), ["a/web", "b/web"]);
    // An Ingress that gains the label appears; one in an unwatched namespace never does.
    let mut relabelled = ingress("b", "hidden", "hidden.example", "web");
    relabelled["metadata"]["labels"] = json!({"expose": "yes"});
    api.apply(relabelled);
    let mut elsewhere = ingress("c", "new", "new.example", "web");
    elsewhere["metadata"]["labels"] = json!({"expose": "yes"});
    api.apply(elsewhere);
    // Losing the label removes it.
    api.apply(ingress("a", "shown", "shown.example", "web"));
    until(&mut p.updates, "the label changes", |s| {
        ingresses(s) == ["b/hidden", "b/shown"]
    })
    .await;
}
