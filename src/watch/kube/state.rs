//! The store task: objects per watcher, coalescing, and publishing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::kube::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::normalize::{ca_certificate_refs, referenced_secrets};
use super::streams::{Change, Message, Spawner, StreamId, Target};
use super::{KubeSettings, KubeStats};
use crate::router::Snapshot;
use crate::watch::{Object, ObjectKey, ProviderUpdate, UpdateSender};

/// How many watcher messages may wait for the store task.
const CHANNEL: usize = 4096;

/// What one watcher contributes.
struct Partition {
    target: Target,
    objects: BTreeMap<ObjectKey, Object>,
    /// Objects of a list in progress (between `Init` and `InitDone`).
    listing: Option<BTreeMap<ObjectKey, Object>>,
    synced: bool,
    started: Instant,
    task: JoinHandle<()>,
}

/// Bit per snapshot list, to rebuild only the lists that changed.
mod dirty {
    pub const INGRESSES: u16 = 1;
    pub const CLASSES: u16 = 1 << 1;
    pub const SERVICES: u16 = 1 << 2;
    pub const SLICES: u16 = 1 << 3;
    pub const SECRETS: u16 = 1 << 4;
    pub const MIDDLEWARES: u16 = 1 << 5;
    pub const CONFIG_MAPS: u16 = 1 << 6;
    pub const NAMESPACES: u16 = 1 << 7;
    pub const GATEWAY_CLASSES: u16 = 1 << 8;
    pub const GATEWAYS: u16 = 1 << 9;
    pub const HTTP_ROUTES: u16 = 1 << 10;
    pub const REFERENCE_GRANTS: u16 = 1 << 11;
    pub const BACKEND_TLS_POLICIES: u16 = 1 << 12;
    pub const ALL: u16 = (1 << 13) - 1;
    /// The kinds whose objects name Secrets or ConfigMaps to watch by name.
    pub const NAMING: u16 = INGRESSES | MIDDLEWARES | CONFIG_MAPS | BACKEND_TLS_POLICIES;
}

fn bit(target: &Target) -> u16 {
    match target {
        Target::Ingresses(_) => dirty::INGRESSES,
        Target::IngressClasses => dirty::CLASSES,
        Target::Services(_) => dirty::SERVICES,
        Target::EndpointSlices(_) => dirty::SLICES,
        Target::TlsSecrets(_) | Target::NamedSecret(..) => dirty::SECRETS,
        Target::Middlewares(_) => dirty::MIDDLEWARES,
        Target::NamedConfigMap(..) => dirty::CONFIG_MAPS,
        Target::Namespaces(_) => dirty::NAMESPACES,
        Target::GatewayClasses => dirty::GATEWAY_CLASSES,
        Target::Gateways(_) => dirty::GATEWAYS,
        Target::HttpRoutes(_) => dirty::HTTP_ROUTES,
        Target::ReferenceGrants(_) => dirty::REFERENCE_GRANTS,
        Target::BackendTlsPolicies(_) => dirty::BACKEND_TLS_POLICIES,
    }
}

struct State {
    spawner: Spawner,
    settings: Arc<KubeSettings>,
    partitions: BTreeMap<StreamId, Partition>,
    /// The watcher of each Secret and ConfigMap referenced by name
    /// ([`Target::NamedSecret`], [`Target::NamedConfigMap`]).
    named: BTreeMap<Target, StreamId>,
    next_id: StreamId,
    /// Lists that changed since the last publish.
    dirty: u16,
    last: Option<Arc<ProviderUpdate>>,
}

/// When to publish: the first change after a quiet period goes out at once
/// (a single change pays no debounce); changes that come while a burst is in
/// progress (within `debounce` of the last publish or change) wait for
/// `debounce` of quiet, at most `max_delay` after the burst's first change,
/// so a rollout of hundreds of objects is a handful of publications.
#[derive(Debug, Default)]
pub(super) struct Burst {
    /// The first unpublished change, the latest one, and whether the first
    /// came after a quiet period (then it is due at once).
    pending: Option<(Instant, Instant, bool)>,
    /// When the last update went out.
    last_publish: Option<Instant>,
}

impl Burst {
    /// Records a change at `now`.
    pub(super) fn changed(&mut self, now: Instant, debounce: Duration) {
        self.pending = Some(match self.pending {
            Some((first, _, leading)) => (first, now, leading),
            None => {
                let quiet = self
                    .last_publish
                    .is_none_or(|at| now.saturating_duration_since(at) >= debounce);
                (now, now, quiet)
            }
        });
    }

    /// When the pending changes are due (`None`: nothing pending).
    pub(super) fn due(&self, debounce: Duration, max_delay: Duration) -> Option<Instant> {
        self.pending.map(|(first, last, leading)| {
            if leading {
                first
            } else {
                (last + debounce).min(first + max_delay)
            }
        })
    }

    /// Records a publish at `now`.
    pub(super) fn published(&mut self, now: Instant) {
        self.pending = None;
        self.last_publish = Some(now);
    }
}

/// Runs the store task until `updates` has no receivers.
pub(super) async fn run(
    client: Client,
    settings: KubeSettings,
    updates: UpdateSender,
    stats: Arc<KubeStats>,
) {
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    let settings = Arc::new(settings);
    let spawner = Spawner {
        client,
        settings: settings.clone(),
        stats: stats.clone(),
        tx,
    };
    let mut state = State {
        spawner,
        settings: settings.clone(),
        partitions: BTreeMap::new(),
        named: BTreeMap::new(),
        next_id: 0,
        dirty: 0,
        last: None,
    };
    for target in initial_targets(&settings) {
        state.start(target);
    }
    let mut burst = Burst::default();
    loop {
        let deadline = burst
            .due(settings.debounce, settings.max_delay)
            .and_then(|due| state.publishable_at(due));
        tokio::select! {
            () = updates.closed() => break,
            message = rx.recv() => {
                let Some(message) = message else { break };
                let mut changed = state.apply(message);
                // Drain what is already queued before looking at the clock.
                while let Ok(message) = rx.try_recv() {
                    changed |= state.apply(message);
                }
                if changed {
                    burst.changed(Instant::now(), settings.debounce);
                }
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let now = Instant::now();
                if state.publishable(now) {
                    burst.published(now);
                    if !state.publish(&updates, &stats) {
                        break;
                    }
                }
            }
        }
    }
    for partition in state.partitions.values() {
        partition.task.abort();
    }
}

/// The watchers started at once: every kind, per namespace when namespaces are given.
fn initial_targets(settings: &KubeSettings) -> Vec<Target> {
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        let unique: BTreeSet<&String> = settings.namespaces.iter().collect();
        unique.into_iter().cloned().map(Some).collect()
    };
    let mut targets = vec![Target::IngressClasses, Target::GatewayClasses];
    for scope in scopes {
        targets.push(Target::Ingresses(scope.clone()));
        targets.push(Target::Services(scope.clone()));
        targets.push(Target::EndpointSlices(scope.clone()));
        targets.push(Target::TlsSecrets(scope.clone()));
        targets.push(Target::Middlewares(scope.clone()));
        // With --watch-namespace, only the watched Namespaces themselves
        // (routes come from nowhere else).
        targets.push(Target::Namespaces(scope.clone()));
        targets.push(Target::Gateways(scope.clone()));
        targets.push(Target::HttpRoutes(scope.clone()));
        targets.push(Target::ReferenceGrants(scope.clone()));
        targets.push(Target::BackendTlsPolicies(scope));
    }
    targets
}

impl State {
    fn start(&mut self, target: Target) -> StreamId {
        let id = self.next_id;
        self.next_id += 1;
        let task = self.spawner.spawn(id, &target);
        tracing::debug!(?target, "watching");
        self.partitions.insert(
            id,
            Partition {
                target,
                objects: BTreeMap::new(),
                listing: None,
                synced: false,
                started: Instant::now(),
                task,
            },
        );
        id
    }

    /// Applies one watcher message; true when what would be published changed.
    fn apply(&mut self, message: Message) -> bool {
        // Messages of a stopped watcher may still be queued.
        let Some(partition) = self.partitions.get_mut(&message.stream) else {
            return false;
        };
        let bit = bit(&partition.target);
        let changed = match message.change {
            Change::Init => {
                partition.listing = Some(BTreeMap::new());
                false
            }
            Change::InitApply(key, object) => {
                partition
                    .listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, object);
                false
            }
            Change::InitDone => {
                let mut listed = partition.listing.take().unwrap_or_default();
                // Keep the old Arc of every object the list returned unchanged.
                for (key, object) in &mut listed {
                    if let Some(old) = partition.objects.get(key) {
                        if old == object {
                            *object = old.clone();
                        }
                    }
                }
                let first = !partition.synced;
                partition.synced = true;
                let differs = !same_objects(&partition.objects, &listed);
                partition.objects = listed;
                if first {
                    tracing::debug!(target = ?partition.target, objects = partition.objects.len(), "listed");
                }
                differs || first
            }
            Change::Apply(key, object) => match partition.objects.get(&key) {
                Some(old) if *old == object => false,
                _ => {
                    partition.objects.insert(key, object);
                    true
                }
            },
            Change::Delete(key) => partition.objects.remove(&key).is_some(),
            Change::Absent => {
                let first = !partition.synced;
                partition.synced = true;
                partition.listing = None;
                let had = !partition.objects.is_empty();
                partition.objects.clear();
                had || first
            }
        };
        if changed {
            self.dirty |= bit;
            if bit & dirty::NAMING != 0 {
                self.reconcile_named();
            }
        }
        changed
    }

    /// Starts a watcher for each Secret and ConfigMap referenced by name (by
    /// the Middlewares, the Ingresses' ingress-nginx annotations,
    /// `--nginx-configmap` and the ConfigMaps it names, and the CA bundles of
    /// BackendTLSPolicies) and stops the watchers of those no longer referenced.
    fn reconcile_named(&mut self) {
        let watched: Option<BTreeSet<&String>> = (!self.settings.namespaces.is_empty())
            .then(|| self.settings.namespaces.iter().collect());
        let in_scope = |(ns, _): &(String, String)| watched.as_ref().is_none_or(|w| w.contains(ns));
        let mut wanted: BTreeSet<Target> = BTreeSet::new();
        let mut config_maps: BTreeSet<(String, String)> = BTreeSet::new();
        if let Some(global) = &self.settings.nginx_configmap {
            // The controller's own ConfigMap is read wherever it lives.
            config_maps.insert(global.clone());
        }
        // Services and EndpointSlices (most of the objects) name nothing
        // and are not walked.
        for partition in self
            .partitions
            .values()
            .filter(|p| bit(&p.target) & dirty::NAMING != 0)
        {
            for object in partition.objects.values() {
                match object {
                    Object::Ingress(ingress) => {
                        let refs = nginx_references(ingress);
                        wanted.extend(
                            refs.secrets
                                .into_iter()
                                .filter(in_scope)
                                .map(|(ns, name)| Target::NamedSecret(ns, name)),
                        );
                        config_maps.extend(refs.config_maps.into_iter().filter(in_scope));
                    }
                    Object::BackendTlsPolicy(policy) => {
                        let bundles = ca_certificate_refs(policy);
                        config_maps.extend(bundles.config_maps.into_iter().filter(in_scope));
                        wanted.extend(
                            bundles
                                .secrets
                                .into_iter()
                                .filter(in_scope)
                                .map(|(ns, name)| Target::NamedSecret(ns, name)),
                        );
                    }
                    Object::Middleware(middleware) => wanted.extend(
                        referenced_secrets(middleware)
                            .into_iter()
                            .filter(in_scope)
                            .map(|(ns, name)| Target::NamedSecret(ns, name)),
                    ),
                    Object::ConfigMap(map)
                        if self
                            .settings
                            .nginx_configmap
                            .as_ref()
                            .is_some_and(|(ns, name)| {
                                map.metadata.namespace.as_deref() == Some(ns.as_str())
                                    && map.metadata.name.as_deref() == Some(name.as_str())
                            }) =>
                    {
                        config_maps.extend(crate::router::nginx::global_references(map));
                    }
                    _ => {}
                }
            }
        }
        wanted.extend(
            config_maps
                .into_iter()
                .map(|(ns, name)| Target::NamedConfigMap(ns, name)),
        );
        let gone: Vec<Target> = self
            .named
            .keys()
            .filter(|key| !wanted.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(id) = self.named.remove(&key) {
                if let Some(partition) = self.partitions.remove(&id) {
                    partition.task.abort();
                    if !partition.objects.is_empty() {
                        self.dirty |= bit(&key);
                    }
                }
            }
        }
        for key in wanted {
            if !self.named.contains_key(&key) {
                let id = self.start(key.clone());
                self.named.insert(key, id);
            }
        }
    }

    /// Whether an update may go out at `now`: every watcher has listed once;
    /// after the first publish, a watcher started less than `sync_grace` ago
    /// that has not listed yet holds publishing (until the grace runs out).
    fn publishable(&self, now: Instant) -> bool {
        self.publishable_at(now).is_some_and(|at| at <= now)
    }

    /// The earliest instant, not before `wanted`, at which an update may go out;
    /// `None` while some watcher has never listed before the first publish.
    fn publishable_at(&self, wanted: Instant) -> Option<Instant> {
        let mut at = wanted;
        for partition in self.partitions.values().filter(|p| !p.synced) {
            // Before the first publish, every watcher must have listed.
            self.last.as_ref()?;
            at = at.max(partition.started + self.settings.sync_grace);
        }
        Some(at)
    }

    /// Builds and sends the update; false once nobody listens.
    fn publish(&mut self, updates: &UpdateSender, stats: &KubeStats) -> bool {
        let started = std::time::Instant::now();
        let dirty = if self.last.is_some() {
            self.dirty
        } else {
            dirty::ALL
        };
        let previous = self.last.as_ref().map(|u| &u.snapshot);
        let mut snapshot = Snapshot::default();
        macro_rules! list {
            ($field:ident, $bit:expr, $variant:ident) => {
                snapshot.$field = match previous {
                    Some(prev) if dirty & $bit == 0 => prev.$field.clone(),
                    _ => self.collect(|object| match object {
                        Object::$variant(o) => Some(o.clone()),
                        _ => None,
                    }),
                };
            };
        }
        list!(ingresses, dirty::INGRESSES, Ingress);
        list!(ingress_classes, dirty::CLASSES, IngressClass);
        list!(services, dirty::SERVICES, Service);
        list!(endpoint_slices, dirty::SLICES, EndpointSlice);
        list!(secrets, dirty::SECRETS, Secret);
        list!(middlewares, dirty::MIDDLEWARES, Middleware);
        list!(config_maps, dirty::CONFIG_MAPS, ConfigMap);
        list!(namespaces, dirty::NAMESPACES, Namespace);
        list!(gateway_classes, dirty::GATEWAY_CLASSES, GatewayClass);
        list!(gateways, dirty::GATEWAYS, Gateway);
        list!(http_routes, dirty::HTTP_ROUTES, HttpRoute);
        list!(reference_grants, dirty::REFERENCE_GRANTS, ReferenceGrant);
        list!(
            backend_tls_policies,
            dirty::BACKEND_TLS_POLICIES,
            BackendTlsPolicy
        );
        self.dirty = 0;
        if let Some(prev) = previous {
            if same_snapshot(prev, &snapshot) {
                return !updates.is_closed();
            }
        }
        let update = Arc::new(ProviderUpdate {
            snapshot,
            diagnostics: Vec::new(),
        });
        let first = self.last.is_none();
        self.last = Some(update.clone());
        KubeStats::add(&stats.publishes);
        if first {
            stats.synced.store(true, Ordering::Release);
        }
        let s = &update.snapshot;
        tracing::info!(
            ingresses = s.ingresses.len(),
            services = s.services.len(),
            endpoint_slices = s.endpoint_slices.len(),
            secrets = s.secrets.len(),
            middlewares = s.middlewares.len(),
            gateways = s.gateways.len(),
            http_routes = s.http_routes.len(),
            elapsed = ?started.elapsed(),
            "{}",
            if first { "cluster synced" } else { "cluster objects changed" }
        );
        updates.send(Some(update)).is_ok()
    }

    /// Every object for which `pick` returns something, in watcher order.
    fn collect<T>(&self, pick: impl Fn(&Object) -> Option<Arc<T>>) -> Vec<Arc<T>> {
        self.partitions
            .values()
            .flat_map(|p| p.objects.values())
            .filter_map(pick)
            .collect()
    }
}

fn same_objects(a: &BTreeMap<ObjectKey, Object>, b: &BTreeMap<ObjectKey, Object>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, oa), (kb, ob))| ka == kb && same_object(oa, ob))
}

fn same_object(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Ingress(x), Object::Ingress(y)) => Arc::ptr_eq(x, y),
        (Object::IngressClass(x), Object::IngressClass(y)) => Arc::ptr_eq(x, y),
        (Object::Service(x), Object::Service(y)) => Arc::ptr_eq(x, y),
        (Object::EndpointSlice(x), Object::EndpointSlice(y)) => Arc::ptr_eq(x, y),
        (Object::Endpoints(x), Object::Endpoints(y)) => Arc::ptr_eq(x, y),
        (Object::Secret(x), Object::Secret(y)) => Arc::ptr_eq(x, y),
        (Object::Middleware(x), Object::Middleware(y)) => Arc::ptr_eq(x, y),
        (Object::ConfigMap(x), Object::ConfigMap(y)) => Arc::ptr_eq(x, y),
        (Object::Namespace(x), Object::Namespace(y)) => Arc::ptr_eq(x, y),
        (Object::GatewayClass(x), Object::GatewayClass(y)) => Arc::ptr_eq(x, y),
        (Object::Gateway(x), Object::Gateway(y)) => Arc::ptr_eq(x, y),
        (Object::HttpRoute(x), Object::HttpRoute(y)) => Arc::ptr_eq(x, y),
        (Object::ReferenceGrant(x), Object::ReferenceGrant(y)) => Arc::ptr_eq(x, y),
        (Object::BackendTlsPolicy(x), Object::BackendTlsPolicy(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

fn same_list<T>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

fn same_snapshot(a: &Snapshot, b: &Snapshot) -> bool {
    same_list(&a.ingresses, &b.ingresses)
        && same_list(&a.ingress_classes, &b.ingress_classes)
        && same_list(&a.services, &b.services)
        && same_list(&a.endpoint_slices, &b.endpoint_slices)
        && same_list(&a.endpoints, &b.endpoints)
        && same_list(&a.secrets, &b.secrets)
        && same_list(&a.middlewares, &b.middlewares)
        && same_list(&a.config_maps, &b.config_maps)
        && same_list(&a.namespaces, &b.namespaces)
        && same_list(&a.gateway_classes, &b.gateway_classes)
        && same_list(&a.gateways, &b.gateways)
        && same_list(&a.http_routes, &b.http_routes)
        && same_list(&a.reference_grants, &b.reference_grants)
        && same_list(&a.backend_tls_policies, &b.backend_tls_policies)
}

/// The Secrets and ConfigMaps an Ingress's ingress-nginx annotations name.
struct NginxReferences {
    secrets: Vec<(String, String)>,
    config_maps: Vec<(String, String)>,
}

/// What an Ingress's ingress-nginx annotations name by `namespace/name` (or a
/// bare name in the Ingress's namespace): the auth user list (`auth-secret`),
/// the CA of client (`auth-tls-secret`) and backend (`proxy-ssl-secret`)
/// certificates, usually Opaque Secrets the `kubernetes.io/tls` watcher does
/// not see; and the header lists (`custom-headers`, `auth-proxy-set-headers`).
fn nginx_references(ingress: &k8s_openapi::api::networking::v1::Ingress) -> NginxReferences {
    let mut refs = NginxReferences {
        secrets: Vec::new(),
        config_maps: Vec::new(),
    };
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return refs;
    };
    let own = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let named = |key: &str| {
        let value = annotations
            .get(&format!("nginx.ingress.kubernetes.io/{key}"))?
            .trim();
        match value.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Some((ns.to_owned(), name.to_owned()))
            }
            None if !value.is_empty() => Some((own.to_owned(), value.to_owned())),
            _ => None,
        }
    };
    refs.secrets = ["auth-secret", "auth-tls-secret", "proxy-ssl-secret"]
        .into_iter()
        .filter_map(named)
        .collect();
    refs.config_maps = ["custom-headers", "auth-proxy-set-headers"]
        .into_iter()
        .filter_map(named)
        .collect();
    refs
}
