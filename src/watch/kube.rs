//! The Kubernetes API provider: watches the cluster and publishes the same
//! [`ProviderUpdate`]s as the manifest-file provider, so routing has one code
//! path whatever the objects' source.
//!
//! # How it works
//!
//! - One kube-runtime [`watcher`](::kube::runtime::watcher()) per watched kind
//!   (and per namespace when `--watch-namespace` names some): list, then watch
//!   from the list's `resourceVersion` with bookmarks; a `410 Gone` makes the
//!   watcher list again; errors back off exponentially (`streams.rs`).
//! - Each watcher feeds one channel read by a single task that keeps the
//!   objects per watcher (`state.rs`), normalised and stripped of bulk
//!   (`normalize.rs`: `managedFields`, `last-applied-configuration`,
//!   `resourceVersion`, Ingress `status`). An event that leaves an object equal
//!   to the stored one changes nothing, so a status write or a relist of
//!   unchanged objects publishes nothing.
//! - After a change the task waits for `debounce` of quiet (at most
//!   `max_delay` in all), then publishes a fresh [`ProviderUpdate`] whose lists
//!   share the `Arc`s of unchanged objects and, for kinds that did not change,
//!   the previous lists' `Arc`s: [`crate::router::only_endpoints_changed`]
//!   stays a pointer comparison, and a rollout touching hundreds of
//!   EndpointSlices becomes a few endpoint refreshes.
//! - Nothing is published before every watcher has listed once (`InitDone`),
//!   so the first table is complete and `/readyz` (200 after the first
//!   publish) means "every kind synced". An API-server outage publishes
//!   nothing: the last table keeps serving, errors are logged and counted in
//!   [`KubeStats`], and the watchers resume (or relist) when it is back.
//!
//! # Kinds
//!
//! Ingress (`--ingress-label-selector` applies here), IngressClass, Service,
//! EndpointSlice (`discovery.k8s.io/v1`; the compiler reads each endpoint's
//! `ready`/`terminating` conditions), Secret (see below),
//! `traefik.io/v1alpha1` Middleware, and the Gateway API
//! (`gateway.networking.k8s.io`): GatewayClass, Gateway, HTTPRoute,
//! BackendTLSPolicy (`v1`) and ReferenceGrant (`v1`, else `v1beta1` on a
//! cluster with older CRDs), decoded by [`crate::gateway::decode`] with the
//! same defaults as a file's (an object that does not decode is logged and
//! left out rather than failing its whole list). Namespaces are watched for
//! their labels (a listener's `allowedRoutes` selector), all of them, or with
//! `--watch-namespace` only the watched ones by name.
//!
//! A cluster without a CRD (Middleware, or any Gateway API kind) lists
//! nothing for that kind (404): it counts as synced and empty, and the list
//! is tried again every `crd_recheck`, so a CRD installed later is picked up
//! without a restart (and one removed later empties the kind). A `403` on a
//! Gateway API kind or on Namespaces (the ClusterRole of an older install)
//! is treated the same way, logged as a warning and counted as a watch
//! error, so Ingresses keep being served; the core kinds wait for their list.
//! Legacy `v1` Endpoints are not watched: EndpointSlices replace them.
//!
//! # Secrets and memory
//!
//! A cluster may hold thousands of Secrets routing never reads, Helm release
//! Secrets (`helm.sh/release.v1`, up to 1 MiB each) above all; watching every
//! Secret would keep all of them in memory. sluice watches only:
//!
//! - Secrets of type `kubernetes.io/tls` (field selector
//!   `type=kubernetes.io/tls`): what Ingress `tls` sections and
//!   `--default-cert-secret` name. A certificate stored in an `Opaque` Secret
//!   is not seen; `kubectl create secret tls` and cert-manager both write
//!   `kubernetes.io/tls`.
//! - Each Secret that a Middleware names (a `secret`, `caSecret`,
//!   `certSecret`... field anywhere in its spec: basicAuth, digestAuth,
//!   forwardAuth TLS), by one small watcher with the field selector
//!   `metadata.name=<name>,type!=kubernetes.io/tls` in the Middleware's
//!   namespace, started and stopped as Middlewares change. These are few.
//!   The same goes for the CA bundles a BackendTLSPolicy names
//!   (`caCertificateRefs`: Secrets this way, ConfigMaps by name likewise).
//!
//! Memory is then proportional to the Secrets routing can use, not to the
//! cluster. The cost is one watch per referenced Secret; a new reference
//! holds publishing for at most `sync_grace` while its watcher lists, so a
//! new auth Middleware does not serve a 500 for lack of its Secret.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::Client;

use super::UpdateSender;

mod normalize;
mod state;
mod streams;

pub use normalize::referenced_secrets;

/// How to reach the cluster and what to watch (`--kubeconfig`, `--context`,
/// `--watch-namespace`, `--ingress-label-selector`), plus timing knobs.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// A kubeconfig file; `None` tries `$KUBECONFIG`/`~/.kube/config`, then the
    /// in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current one.
    pub context: Option<String>,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// A label selector Ingresses must match (`app=web,tier!=internal`).
    pub ingress_label_selector: Option<String>,
    /// `--nginx-configmap`: the ingress-nginx controller ConfigMap to watch
    /// (namespace, name), with the ConfigMaps it names.
    pub nginx_configmap: Option<(String, String)>,
    /// How long the objects must stay quiet after a change before publishing.
    pub debounce: Duration,
    /// The longest wait from the first change to the publish, even if changes keep coming.
    pub max_delay: Duration,
    /// The first retry delay after a watch error (doubled per failure, with jitter).
    pub backoff_min: Duration,
    /// The longest retry delay after watch errors.
    pub backoff_max: Duration,
    /// How often a missing CRD (Middleware, Gateway API kinds) is looked for again.
    pub crd_recheck: Duration,
    /// After the first publish, how long a newly started Secret watcher may
    /// hold publishing while it lists.
    pub sync_grace: Duration,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            ingress_label_selector: None,
            nginx_configmap: None,
            debounce: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            backoff_min: Duration::from_millis(800),
            backoff_max: Duration::from_secs(30),
            crd_recheck: Duration::from_secs(30),
            sync_grace: Duration::from_secs(2),
        }
    }
}

/// Counters of the Kubernetes provider, read by the metrics exporter.
#[derive(Debug, Default)]
pub struct KubeStats {
    /// True once every watched kind has listed and the first update was published.
    pub synced: AtomicBool,
    /// Errors returned by watchers (failed lists and watches, error events,
    /// `410 Gone`); a missing CRD is not one.
    pub watch_errors: AtomicU64,
    /// Times a watcher delivered events again after failing.
    pub reconnects: AtomicU64,
    /// Lists after the first one of a watcher (after `410 Gone` or an outage).
    pub relists: AtomicU64,
    /// Watch events received (list items included).
    pub events: AtomicU64,
    /// Provider updates published.
    pub publishes: AtomicU64,
}

impl crate::metrics::ProviderCounters for KubeStats {
    fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            (
                "sluice_kube_watch_errors",
                "Kubernetes watch/list errors (API server unreachable, 410 Gone...)",
                Self::get(&self.watch_errors),
            ),
            (
                "sluice_kube_reconnects",
                "Kubernetes watches that resumed after failing",
                Self::get(&self.reconnects),
            ),
            (
                "sluice_kube_relists",
                "Kubernetes lists after a watcher's first (after 410 Gone or an outage)",
                Self::get(&self.relists),
            ),
            (
                "sluice_kube_events",
                "Kubernetes watch events received (list items included)",
                Self::get(&self.events),
            ),
            (
                "sluice_kube_updates_published",
                "Provider updates published from Kubernetes events",
                Self::get(&self.publishes),
            ),
        ]
    }
}

impl KubeStats {
    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why the Kubernetes provider could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig file could not be read or used.
    #[error("cannot use kubeconfig: {0}")]
    Kubeconfig(#[from] ::kube::config::KubeconfigError),
    /// Neither a kubeconfig nor the in-cluster environment was found.
    #[error("no Kubernetes configuration found: {0}")]
    Infer(#[from] ::kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] ::kube::Error),
    /// The publishing task panicked.
    #[error("Kubernetes provider task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Builds the API client: from `kubeconfig` (and `context`) when given, else
/// from `$KUBECONFIG`/`~/.kube/config` or the in-cluster service account.
///
/// # Errors
///
/// Fails when no configuration is found or it cannot be used.
pub async fn client(settings: &KubeSettings) -> Result<Client, KubeError> {
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&settings.kubeconfig, &settings.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)?;
            ::kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => ::kube::Config::from_kubeconfig(&options).await?,
        (None, None) => ::kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Watches the cluster through `client` and publishes on `updates` until
/// `updates` has no receivers.
///
/// Publishes nothing before every watched kind has listed once; afterwards
/// API errors never stop it (the last update stays, the watchers retry).
///
/// # Errors
///
/// Only if its publishing task panics.
pub async fn run_kube_provider(
    client: Client,
    settings: KubeSettings,
    updates: UpdateSender,
    stats: Arc<KubeStats>,
) -> Result<(), KubeError> {
    let task = tokio::spawn(state::run(client, settings, updates, stats));
    task.await?;
    Ok(())
}
