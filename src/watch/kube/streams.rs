//! One task per watcher: runs kube-runtime's watcher with backoff and turns
//! its events into [`Message`]s for the store task.

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject};
use ::kube::runtime::utils::Backoff;
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::Client;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::normalize::{GatewayResource, Watched};
use super::{KubeSettings, KubeStats};
use crate::gateway::{
    self, BackendTlsPolicy, Gateway, GatewayClass, GatewayKind, HttpRoute, ReferenceGrant,
};
use crate::watch::{Object, ObjectKey};

/// Identifies one watcher (one kind in one namespace, or one named Secret).
pub(super) type StreamId = u64;

/// What a watcher tells the store task.
#[derive(Debug)]
pub(super) enum Change {
    /// A (re)list starts: collect the following `InitApply`s.
    Init,
    /// An object from the list.
    InitApply(ObjectKey, Object),
    /// The list is complete: it replaces everything this watcher held.
    InitDone,
    /// An object was added or modified.
    Apply(ObjectKey, Object),
    /// An object was deleted.
    Delete(ObjectKey),
    /// The kind does not exist on the server (CRD not installed): synced and empty.
    Absent,
}

/// A [`Change`] and the watcher it came from.
#[derive(Debug)]
pub(super) struct Message {
    pub stream: StreamId,
    pub change: Change,
}

/// What one watcher watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Target {
    /// Ingresses (with the label selector) in a namespace, or all.
    Ingresses(Option<String>),
    /// IngressClasses (cluster scoped).
    IngressClasses,
    /// Services in a namespace, or all.
    Services(Option<String>),
    /// EndpointSlices in a namespace, or all.
    EndpointSlices(Option<String>),
    /// `kubernetes.io/tls` Secrets in a namespace, or all.
    TlsSecrets(Option<String>),
    /// Middlewares in a namespace, or all.
    Middlewares(Option<String>),
    /// One Secret a Middleware references (namespace, name), unless it is a TLS Secret.
    NamedSecret(String, String),
    /// One ConfigMap (namespace, name): `--nginx-configmap`, one an
    /// Ingress's `custom-headers`/`auth-proxy-set-headers` names, or a CA
    /// bundle a BackendTLSPolicy names.
    NamedConfigMap(String, String),
    /// Namespaces: all, or the one named (`--watch-namespace`), for
    /// `allowedRoutes` label selectors.
    Namespaces(Option<String>),
    /// Gateway API GatewayClasses (cluster scoped).
    GatewayClasses,
    /// Gateway API Gateways in a namespace, or all.
    Gateways(Option<String>),
    /// Gateway API HTTPRoutes in a namespace, or all.
    HttpRoutes(Option<String>),
    /// Gateway API ReferenceGrants (`v1`, else `v1beta1`) in a namespace, or all.
    ReferenceGrants(Option<String>),
    /// Gateway API BackendTLSPolicies in a namespace, or all.
    BackendTlsPolicies(Option<String>),
}

impl Target {
    /// The CRD that defines the kind, for kinds a cluster may lack
    /// (`Change::Absent` when it does); `None` for built-in kinds.
    fn crd(&self) -> Option<&'static str> {
        Some(match self {
            Self::Middlewares(_) => "middlewares.traefik.io (traefik.io/v1alpha1)",
            Self::GatewayClasses => "gatewayclasses.gateway.networking.k8s.io (v1)",
            Self::Gateways(_) => "gateways.gateway.networking.k8s.io (v1)",
            Self::HttpRoutes(_) => "httproutes.gateway.networking.k8s.io (v1)",
            Self::ReferenceGrants(_) => "referencegrants.gateway.networking.k8s.io (v1 or v1beta1)",
            Self::BackendTlsPolicies(_) => "backendtlspolicies.gateway.networking.k8s.io (v1)",
            _ => return None,
        })
    }

    /// Kinds sluice serves Ingresses without: the Gateway API kinds and
    /// Namespaces. A `403 Forbidden` on them (the ClusterRole of an older
    /// install, updated without its RBAC) counts as synced and empty, looked
    /// at again every `crd_recheck`, instead of holding every publish (and
    /// `/readyz`) back; it is logged and counted as a watch error.
    fn optional(&self) -> bool {
        matches!(
            self,
            Self::Namespaces(_)
                | Self::GatewayClasses
                | Self::Gateways(_)
                | Self::HttpRoutes(_)
                | Self::ReferenceGrants(_)
                | Self::BackendTlsPolicies(_)
        )
    }
}

/// Why kube's watcher was left.
enum Exit {
    /// The store task is gone, or the stream ended.
    Closed,
    /// 404: the CRD (or this version of it) is not installed.
    NotFound,
    /// 403 on an optional kind ([`Target::optional`]).
    Forbidden,
}

/// The `traefik.io/v1alpha1` `Middleware` resource.
fn middleware_resource() -> ApiResource {
    ApiResource {
        group: "traefik.io".to_owned(),
        version: "v1alpha1".to_owned(),
        api_version: "traefik.io/v1alpha1".to_owned(),
        kind: "Middleware".to_owned(),
        plural: "middlewares".to_owned(),
    }
}

/// The resource of a Gateway API kind in one of its versions.
fn gateway_resource<K: GatewayKind>(version: &str) -> ApiResource {
    ApiResource {
        group: gateway::GROUP.to_owned(),
        version: version.to_owned(),
        api_version: format!("{}/{version}", gateway::GROUP),
        kind: K::KIND.to_owned(),
        plural: K::PLURAL.to_owned(),
    }
}

/// Everything a watcher task needs besides its target.
#[derive(Clone)]
pub(super) struct Spawner {
    pub client: Client,
    pub settings: Arc<KubeSettings>,
    pub stats: Arc<KubeStats>,
    pub tx: mpsc::Sender<Message>,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Watched + ::kube::Resource<Scope = ::kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl Spawner {
    /// Starts the watcher task for `target`, reporting as `stream`.
    pub fn spawn(&self, stream: StreamId, target: &Target) -> JoinHandle<()> {
        let client = &self.client;
        let base = watcher::Config::default().any_semantic();
        match target {
            Target::Ingresses(ns) => {
                let mut config = base;
                if let Some(selector) = &self.settings.ingress_label_selector {
                    config = config.labels(selector);
                }
                let api: Api<Ingress> = api(client, ns.as_deref());
                self.start(stream, target, api, config)
            }
            Target::IngressClasses => {
                let api: Api<IngressClass> = Api::all(client.clone());
                self.start(stream, target, api, base)
            }
            Target::Services(ns) => {
                let api: Api<Service> = api(client, ns.as_deref());
                self.start(stream, target, api, base)
            }
            Target::EndpointSlices(ns) => {
                let api: Api<EndpointSlice> = api(client, ns.as_deref());
                self.start(stream, target, api, base)
            }
            Target::TlsSecrets(ns) => {
                let api: Api<Secret> = api(client, ns.as_deref());
                self.start(stream, target, api, base.fields("type=kubernetes.io/tls"))
            }
            Target::NamedSecret(ns, name) => {
                let api: Api<Secret> = Api::namespaced(client.clone(), ns);
                let fields = format!("metadata.name={name},type!=kubernetes.io/tls");
                self.start(stream, target, api, base.fields(&fields))
            }
            Target::NamedConfigMap(ns, name) => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                let fields = format!("metadata.name={name}");
                self.start(stream, target, api, base.fields(&fields))
            }
            Target::Middlewares(ns) => {
                let resource = middleware_resource();
                let api: Api<DynamicObject> = match ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                self.start(stream, target, api, base)
            }
            Target::Namespaces(name) => {
                let api: Api<Namespace> = Api::all(client.clone());
                let config = match name {
                    Some(name) => base.fields(&format!("metadata.name={name}")),
                    None => base,
                };
                self.start(stream, target, api, config)
            }
            Target::GatewayClasses => {
                self.start_gateway::<GatewayClass>(stream, target, None, base)
            }
            Target::Gateways(ns) => {
                self.start_gateway::<Gateway>(stream, target, ns.as_deref(), base)
            }
            Target::HttpRoutes(ns) => {
                self.start_gateway::<HttpRoute>(stream, target, ns.as_deref(), base)
            }
            Target::ReferenceGrants(ns) => {
                self.start_gateway::<ReferenceGrant>(stream, target, ns.as_deref(), base)
            }
            Target::BackendTlsPolicies(ns) => {
                self.start_gateway::<BackendTlsPolicy>(stream, target, ns.as_deref(), base)
            }
        }
    }

    fn start<K: Watched>(
        &self,
        stream: StreamId,
        target: &Target,
        api: Api<K>,
        config: watcher::Config,
    ) -> JoinHandle<()> {
        self.start_versions(stream, target, vec![api], config)
    }

    /// Watches a Gateway API kind through its first served version
    /// ([`GatewayKind::VERSIONS`], preferred first).
    fn start_gateway<K: GatewayKind>(
        &self,
        stream: StreamId,
        target: &Target,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> JoinHandle<()>
    where
        Object: From<Arc<K>>,
    {
        let apis: Vec<Api<GatewayResource<K>>> = K::VERSIONS
            .iter()
            .map(|version| {
                let resource = gateway_resource::<K>(version);
                match namespace {
                    Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                    None => Api::all_with(self.client.clone(), &resource),
                }
            })
            .collect();
        self.start_versions(stream, target, apis, config)
    }

    fn start_versions<K: Watched>(
        &self,
        stream: StreamId,
        target: &Target,
        apis: Vec<Api<K>>,
        config: watcher::Config,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let target = target.clone();
        tokio::spawn(async move { this.watch(stream, target, apis, config).await })
    }

    /// Runs until the store task is gone. Only a missing CRD (404 on the list
    /// of a kind with [`Target::crd`]) or a 403 on an optional kind
    /// ([`Target::optional`]) leaves kube's watcher: after a 404 the next of
    /// `apis` (another version of the kind) is tried at once, and when none is
    /// served, or after a 403, the kind is reported absent (synced and empty)
    /// and looked at again every `crd_recheck`.
    async fn watch<K: Watched>(
        self,
        stream: StreamId,
        target: Target,
        apis: Vec<Api<K>>,
        config: watcher::Config,
    ) {
        let crd = target.crd();
        let may_be_absent = crd.is_some();
        let optional = target.optional();
        // The version in use, and how many versions answered 404 in a row.
        let mut version = 0;
        let mut missing = 0;
        // Whether the absence was logged at info/warn level already.
        let mut reported = false;
        loop {
            let Some(api) = apis.get(version) else {
                return;
            };
            let backoff =
                JitteredBackoff::new(self.settings.backoff_min, self.settings.backoff_max);
            let mut events = watcher::watcher(api.clone(), config.clone())
                .backoff(backoff)
                .boxed();
            let mut failing = false;
            let mut listed = false;
            let exit = loop {
                let Some(item) = events.next().await else {
                    break Exit::Closed;
                };
                let event = match item {
                    Ok(event) => event,
                    Err(err) => {
                        if may_be_absent && is_status(&err, 404) {
                            break Exit::NotFound;
                        }
                        if optional && is_status(&err, 403) {
                            KubeStats::add(&self.stats.watch_errors);
                            break Exit::Forbidden;
                        }
                        KubeStats::add(&self.stats.watch_errors);
                        if failing {
                            tracing::debug!(?target, "watch still failing: {err}");
                        } else {
                            tracing::warn!(?target, "watch failed, retrying with backoff: {err}");
                            failing = true;
                        }
                        continue;
                    }
                };
                if failing {
                    failing = false;
                    KubeStats::add(&self.stats.reconnects);
                    tracing::info!(?target, "watch recovered");
                }
                // kube's watcher says `Init` before it lists: only what
                // follows proves the version is served.
                if !matches!(event, Event::Init) {
                    missing = 0;
                    if reported {
                        reported = false;
                        tracing::info!(?target, "the kind can be listed now");
                    }
                }
                let change = match event {
                    Event::Init => {
                        if listed {
                            KubeStats::add(&self.stats.relists);
                            tracing::info!(?target, "listing again");
                        }
                        listed = true;
                        Some(Change::Init)
                    }
                    Event::InitApply(object) => object
                        .into_object()
                        .map(|(key, object)| Change::InitApply(key, object)),
                    Event::InitDone => Some(Change::InitDone),
                    Event::Apply(object) => object
                        .into_object()
                        .map(|(key, object)| Change::Apply(key, object)),
                    Event::Delete(object) => object.key().map(Change::Delete),
                };
                KubeStats::add(&self.stats.events);
                let Some(change) = change else { continue };
                if self.tx.send(Message { stream, change }).await.is_err() {
                    return;
                }
            };
            drop(events);
            let recheck = self.settings.crd_recheck;
            match exit {
                Exit::Closed if self.tx.is_closed() => return,
                Exit::Closed => continue,
                Exit::NotFound => {
                    missing += 1;
                    if missing < apis.len() {
                        // Another version of the kind may be served: try it now.
                        version = (version + 1) % apis.len();
                        tracing::debug!(?target, version, "version not served, trying the next");
                        continue;
                    }
                    missing = 0;
                    version = 0;
                    let crd = crd.unwrap_or("?");
                    if reported {
                        tracing::debug!(?target, ?recheck, "the {crd} CRD is still not installed");
                    } else {
                        tracing::info!(
                            ?target,
                            ?recheck,
                            "the {crd} CRD is not installed; looking again later"
                        );
                        reported = true;
                    }
                }
                Exit::Forbidden => {
                    missing = 0;
                    version = 0;
                    if reported {
                        tracing::debug!(?target, ?recheck, "still not permitted to list");
                    } else {
                        tracing::warn!(
                            ?target,
                            ?recheck,
                            "not permitted to list this kind (403): counted as empty until \
                             sluice's ClusterRole grants list and watch on it \
                             (deploy/base/clusterrole.yaml); looking again later"
                        );
                        reported = true;
                    }
                }
            }
            let message = Message {
                stream,
                change: Change::Absent,
            };
            if self.tx.send(message).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(recheck) => {}
                () = self.tx.closed() => return,
            }
        }
    }
}

/// True when the server answered a list or watch with `code`: 404 (the
/// resource does not exist: its CRD is not installed) or 403 (not permitted).
fn is_status(err: &watcher::Error, code: u16) -> bool {
    match err {
        watcher::Error::InitialListFailed(::kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(::kube::Error::Api(status)) => status.code == code,
        _ => false,
    }
}

/// Exponential backoff (factor 2) between `min` and `max` with up to 25 %
/// jitter; reset by kube's `StreamBackoff` after every successful event.
struct JitteredBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl JitteredBackoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }
}

impl Iterator for JitteredBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        Some((base + jitter).min(self.max))
    }
}

impl Backoff for JitteredBackoff {
    fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut backoff =
            JitteredBackoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<Duration> = (&mut backoff).take(5).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(125));
        assert!(delays[1] >= Duration::from_millis(200));
        assert_eq!(delays[4], Duration::from_millis(500));
        backoff.reset();
        assert!(backoff.next().expect("endless") <= Duration::from_millis(125));
    }
}
