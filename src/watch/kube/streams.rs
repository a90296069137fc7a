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
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::normalize::Watched;
use super::{KubeSettings, KubeStats};
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
    /// One ConfigMap (namespace, name): `--nginx-configmap`, or one an
    /// Ingress's `custom-headers`/`auth-proxy-set-headers` names.
    NamedConfigMap(String, String),
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
        }
    }

    fn start<K: Watched>(
        &self,
        stream: StreamId,
        target: &Target,
        api: Api<K>,
        config: watcher::Config,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let target = target.clone();
        tokio::spawn(async move { this.watch(stream, target, api, config).await })
    }

    /// Runs until the store task is gone. Only a missing CRD (404 on the list
    /// of Middlewares) leaves kube's watcher: the kind is reported absent and
    /// looked for again every `crd_recheck`.
    async fn watch<K: Watched>(
        self,
        stream: StreamId,
        target: Target,
        api: Api<K>,
        config: watcher::Config,
    ) {
        let may_be_absent = matches!(target, Target::Middlewares(_));
        loop {
            let backoff =
                JitteredBackoff::new(self.settings.backoff_min, self.settings.backoff_max);
            let mut events = watcher::watcher(api.clone(), config.clone())
                .backoff(backoff)
                .boxed();
            let mut failing = false;
            let mut listed = false;
            let absent = loop {
                let Some(item) = events.next().await else {
                    break false;
                };
                let event = match item {
                    Ok(event) => event,
                    Err(err) => {
                        if may_be_absent && is_not_found(&err) {
                            break true;
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
            if absent {
                tracing::info!(
                    ?target,
                    recheck = ?self.settings.crd_recheck,
                    "the Middleware CRD (traefik.io/v1alpha1) is not installed; looking again later"
                );
                let message = Message {
                    stream,
                    change: Change::Absent,
                };
                if self.tx.send(message).await.is_err() {
                    return;
                }
                drop(events);
                tokio::select! {
                    () = tokio::time::sleep(self.settings.crd_recheck) => {}
                    () = self.tx.closed() => return,
                }
            } else if self.tx.is_closed() {
                return;
            }
        }
    }
}

/// True when the server says the resource does not exist (its CRD is not installed).
fn is_not_found(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(::kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(::kube::Error::Api(status)) => status.code == 404,
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
