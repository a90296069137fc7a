//! Backend resolution: a Service port to its endpoint set, the way kube-proxy reads
//! EndpointSlices (or legacy Endpoints when a Service has no slice).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::annotations::{self, NATIVE_LB};
use super::compile::Lists;
use super::delta::{delta, Delta};
use super::{DiagnosticKind, Snapshot};
use crate::upstream::{BackendKey, EndpointCondition, EndpointSet, ExternalName, PortRef};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a backend cannot be resolved: the diagnostic kind and a message.
#[derive(Debug, Clone)]
pub(super) struct Unresolved {
    /// `MissingService`, `MissingPort` or `InvalidObject`.
    pub kind: DiagnosticKind,
    /// What is missing, naming the Service.
    pub reason: String,
}

/// A Service's identity, namespace and name, owned: the key of the
/// [`ServiceIndex`] maps, looked up with a borrowed [`SvcRef`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SvcId {
    namespace: Box<str>,
    name: Box<str>,
}

/// A borrowed [`SvcId`], to look one up without allocating.
#[derive(Debug, Clone, Copy)]
pub(super) struct SvcRef<'q> {
    namespace: &'q str,
    name: &'q str,
}

impl<'q> SvcRef<'q> {
    /// The Service `name` in `namespace`.
    pub(super) fn new(namespace: &'q str, name: &'q str) -> Self {
        Self { namespace, name }
    }

    /// The Service a backend key names.
    pub(super) fn of(key: &'q BackendKey) -> Self {
        Self {
            namespace: &key.namespace,
            name: &key.service,
        }
    }

    fn owned(self) -> SvcId {
        SvcId {
            namespace: self.namespace.into(),
            name: self.name.into(),
        }
    }
}

// `SvcId` and `SvcRef` hash alike, so either finds the other's entries.
impl Hash for SvcId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_pair(&self.namespace, &self.name, state);
    }
}

impl Hash for SvcRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_pair(self.namespace, self.name, state);
    }
}

fn hash_pair<H: Hasher>(namespace: &str, name: &str, state: &mut H) {
    namespace.hash(state);
    name.hash(state);
}

impl hashbrown::Equivalent<SvcId> for SvcRef<'_> {
    fn equivalent(&self, key: &SvcId) -> bool {
        *key.namespace == *self.namespace && *key.name == *self.name
    }
}

type Map<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// The Services whose objects (the Service, its EndpointSlices or its
/// Endpoints) came, went or changed between two compiles, as
/// [`service_hash`]es: checking a memo against them reads no name. Two
/// Services may share a hash; that only makes a memo be rebuilt.
pub(super) type ChangedServices = rustc_hash::FxHashSet<u64>;

/// The hash of a Service's identity, as [`ChangedServices`] and memos keep it.
pub(super) fn service_hash(service: SvcRef<'_>) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(service)
}

/// Whether `changed` (`None`: everything, as after a fresh index) names the
/// Service of `key`: what a memo resolved against it is then stale.
pub(super) fn touched(changed: Option<&ChangedServices>, key: &BackendKey) -> bool {
    changed.is_none_or(|c| c.contains(&service_hash(SvcRef::of(key))))
}

/// Services, slices and Endpoints indexed by namespace and (Service) name:
/// built once, then kept from compile to compile and patched with what came
/// and went ([`ServiceIndex::patch`]), so a change costs what it touches.
#[derive(Debug, Default)]
pub(super) struct ServiceIndex {
    services: Map<SvcId, Arc<Service>>,
    slices: Map<SvcId, Vec<Arc<EndpointSlice>>>,
    endpoints: Map<SvcId, Arc<Endpoints>>,
}

/// Whether the object an index holds is the one a delta removed: the same
/// `Arc`, or an equal object (a delta pairs an object replaced by an equal
/// one as unchanged, so the index may hold the earlier of the two).
fn same<T: PartialEq>(held: &Arc<T>, removed: &Arc<T>) -> bool {
    Arc::ptr_eq(held, removed) || **held == **removed
}

fn id_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<SvcRef<'_>> {
    Some(SvcRef {
        namespace: meta.namespace.as_deref().unwrap_or("default"),
        name: meta.name.as_deref()?,
    })
}

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
fn slice_service(slice: &EndpointSlice) -> Option<SvcRef<'_>> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(SvcRef {
        namespace: meta.namespace.as_deref().unwrap_or("default"),
        name: service,
    })
}

impl ServiceIndex {
    /// Indexes every Service, EndpointSlice and Endpoints of `snapshot`.
    pub(super) fn build(snapshot: &Snapshot) -> Self {
        let mut index = Self {
            // Sized up front: growing maps of 10,000s of entries rehashes them all.
            services: Map::with_capacity_and_hasher(snapshot.services.len(), Default::default()),
            slices: Map::with_capacity_and_hasher(
                snapshot.endpoint_slices.len(),
                Default::default(),
            ),
            endpoints: Map::with_capacity_and_hasher(snapshot.endpoints.len(), Default::default()),
        };
        let mut ignored = ChangedServices::default();
        index.add_all(
            &snapshot.services,
            &snapshot.endpoint_slices,
            &snapshot.endpoints,
            &mut ignored,
        );
        index
    }

    /// Applies what came and went since the snapshot this index was built
    /// for; returns the Services it touched.
    fn patch(
        &mut self,
        services: &Delta<'_, Service>,
        slices: &Delta<'_, EndpointSlice>,
        endpoints: &Delta<'_, Endpoints>,
    ) -> ChangedServices {
        let mut changed = ChangedServices::default();
        for service in &services.removed {
            if let Some(id) = id_of(&service.metadata) {
                if self.services.get(&id).is_some_and(|s| same(s, service)) {
                    self.services.remove(&id);
                }
                changed.insert(service_hash(id));
            }
        }
        for slice in &slices.removed {
            if let Some(id) = slice_service(slice) {
                if let Some(list) = self.slices.get_mut(&id) {
                    list.retain(|s| !same(s, slice));
                    if list.is_empty() {
                        // No slice left: the legacy Endpoints apply again.
                        self.slices.remove(&id);
                    }
                }
                changed.insert(service_hash(id));
            }
        }
        for object in &endpoints.removed {
            if let Some(id) = id_of(&object.metadata) {
                if self.endpoints.get(&id).is_some_and(|e| same(e, object)) {
                    self.endpoints.remove(&id);
                }
                changed.insert(service_hash(id));
            }
        }
        self.add_all(
            services.added.iter().copied(),
            slices.added.iter().copied(),
            endpoints.added.iter().copied(),
            &mut changed,
        );
        changed
    }

    /// Indexes these objects, noting their Services in `changed`.
    fn add_all<'o>(
        &mut self,
        services: impl IntoIterator<Item = &'o Arc<Service>>,
        slices: impl IntoIterator<Item = &'o Arc<EndpointSlice>>,
        endpoints: impl IntoIterator<Item = &'o Arc<Endpoints>>,
        changed: &mut ChangedServices,
    ) {
        for service in services {
            self.add_service(service, changed);
        }
        for slice in slices {
            self.add_slice(slice, changed);
        }
        for object in endpoints {
            self.add_endpoints(object, changed);
        }
    }

    fn add_service(&mut self, service: &Arc<Service>, changed: &mut ChangedServices) {
        if let Some(id) = id_of(&service.metadata) {
            changed.insert(service_hash(id));
            self.services.insert(id.owned(), service.clone());
        }
    }

    fn add_slice(&mut self, slice: &Arc<EndpointSlice>, changed: &mut ChangedServices) {
        if let Some(id) = slice_service(slice) {
            changed.insert(service_hash(id));
            match self.slices.get_mut(&id) {
                Some(list) => list.push(slice.clone()),
                None => {
                    self.slices.insert(id.owned(), vec![slice.clone()]);
                }
            }
        }
    }

    fn add_endpoints(&mut self, endpoints: &Arc<Endpoints>, changed: &mut ChangedServices) {
        if let Some(id) = id_of(&endpoints.metadata) {
            changed.insert(service_hash(id));
            self.endpoints.insert(id.owned(), endpoints.clone());
        }
    }

    /// Patches the index of `lists` into the index of `snapshot`; returns the
    /// Services it touched.
    pub(super) fn patch_to(&mut self, lists: &Lists, snapshot: &Snapshot) -> ChangedServices {
        self.patch(
            &delta(&lists.services, &snapshot.services),
            &delta(&lists.slices, &snapshot.endpoint_slices),
            &delta(&lists.endpoints, &snapshot.endpoints),
        )
    }

    /// A resolver reading this index.
    pub(super) fn resolver(&self) -> Resolver<'_> {
        Resolver { index: self }
    }
}

/// Resolves backends against a [`ServiceIndex`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolver<'a> {
    index: &'a ServiceIndex,
}

impl<'a> Resolver<'a> {
    fn service(&self, namespace: &str, name: &str) -> Option<&'a Arc<Service>> {
        self.index.services.get(&SvcRef { namespace, name })
    }

    /// An annotation of the Service a backend key names, if the Service exists.
    pub(super) fn service_annotation(&self, key: &BackendKey, annotation: &str) -> Option<&'a str> {
        self.service(&key.namespace, &key.service)?
            .metadata
            .annotations
            .as_ref()?
            .get(annotation)
            .map(String::as_str)
    }

    /// The `appProtocol` of a Service port (by number), if the Service lists
    /// the port with one.
    pub(super) fn app_protocol(
        &self,
        namespace: &str,
        service: &str,
        port: i32,
    ) -> Option<&'a str> {
        let service = self.service(namespace, service)?;
        let ports = service.spec.as_ref()?.ports.as_deref()?;
        ports
            .iter()
            .find(|p| p.port == port)?
            .app_protocol
            .as_deref()
    }

    /// The key a Service port's backend is shared under: when the Service exists
    /// and lists the port, the port is its `port` number however the Ingress named
    /// it, so a reference by name and one by number share one [`Backend`]
    /// (one balancer, one pool). Otherwise the key is returned as written.
    ///
    /// [`Backend`]: crate::upstream::Backend
    pub(super) fn canonical(&self, key: BackendKey) -> BackendKey {
        let number = self
            .service(&key.namespace, &key.service)
            .and_then(|service| {
                let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
                find_port(ports.unwrap_or_default(), &key.port).map(|p| p.port)
            });
        match number {
            Some(number) => BackendKey {
                port: PortRef::Number(number),
                ..key
            },
            None => key,
        }
    }

    /// Whether the Service a key names asks for Traefik's native load balancing
    /// (`service.nativelb: "true"`): requests go to its ClusterIP, so its
    /// endpoints do not matter. A value that is not a boolean reads as false
    /// (the compiler reports it).
    pub(super) fn native_lb(&self, key: &BackendKey) -> bool {
        annotations::native_lb(self.service_annotation(key, NATIVE_LB)).unwrap_or(false)
    }

    /// The endpoint set of a Service port, or why there is none.
    ///
    /// With `service.nativelb`, the set is the Service's ClusterIP and the
    /// Service port (`port`, not `targetPort`); a headless Service has none.
    pub(super) fn resolve(&self, key: &BackendKey) -> Result<EndpointSet, Unresolved> {
        let id = SvcRef::of(key);
        let Some(service) = self.index.services.get(&id) else {
            return Err(unresolved(
                DiagnosticKind::MissingService,
                format!("service {}/{} not found", key.namespace, key.service),
            ));
        };
        let spec = service.spec.as_ref();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let port = find_port(ports, &key.port);
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return external(key, spec.and_then(|s| s.external_name.as_deref()), port);
        }
        let Some(port) = port else {
            return Err(missing_port(key));
        };
        if key.cluster_ip || self.native_lb(key) {
            return native(key, spec.and_then(|s| s.cluster_ip.as_deref()), port);
        }
        let single_unnamed = ports.len() == 1 && port.name.as_deref().unwrap_or("").is_empty();
        let want = PortWant {
            name: port.name.as_deref().unwrap_or(""),
            single_unnamed,
        };
        let mut conditions: Vec<EndpointCondition>;
        let mut addrs = match self.index.slices.get(&id) {
            Some(slices) => {
                conditions = slices
                    .iter()
                    .flat_map(|s| slice_conditions(s, &want))
                    .collect();
                let ready: Vec<SocketAddr> = slices
                    .iter()
                    .flat_map(|s| slice_addrs(s, &want, is_ready))
                    .collect();
                if ready.is_empty() {
                    // No ready endpoint: fall back to terminating endpoints that
                    // still serve, as kube-proxy does, so a Service whose pods
                    // are all being replaced drains instead of answering 503.
                    slices
                        .iter()
                        .flat_map(|s| slice_addrs(s, &want, is_serving_while_terminating))
                        .collect()
                } else {
                    ready
                }
            }
            None => {
                let ready = self
                    .index
                    .endpoints
                    .get(&id)
                    .map(|e| legacy_addrs(e, &want))
                    .unwrap_or_default();
                conditions = ready
                    .iter()
                    .map(|a| condition(*a, true, true, false))
                    .collect();
                ready
            }
        };
        addrs.sort_unstable();
        addrs.dedup();
        conditions.sort_unstable();
        conditions.dedup_by_key(|c| c.addr);
        Ok(EndpointSet {
            addrs,
            external: None,
            conditions,
        })
    }
}

fn unresolved(kind: DiagnosticKind, reason: String) -> Unresolved {
    Unresolved { kind, reason }
}

fn missing_port(key: &BackendKey) -> Unresolved {
    let reason = format!(
        "service {}/{} has no port {}",
        key.namespace, key.service, key.port
    );
    unresolved(DiagnosticKind::MissingPort, reason)
}

fn find_port<'p>(ports: &'p [ServicePort], want: &PortRef) -> Option<&'p ServicePort> {
    ports.iter().find(|p| match want {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

/// An ExternalName Service: the DNS name and the port's number (a number the
/// Service does not list is used as is: such Services often list no ports).
fn external(
    key: &BackendKey,
    host: Option<&str>,
    port: Option<&ServicePort>,
) -> Result<EndpointSet, Unresolved> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        let reason = format!(
            "ExternalName service {}/{} has no spec.externalName",
            key.namespace, key.service
        );
        return Err(unresolved(DiagnosticKind::InvalidObject, reason));
    };
    let number = match (port, &key.port) {
        (Some(port), _) => port.port,
        (None, PortRef::Number(n)) => *n,
        (None, PortRef::Name(_)) => return Err(missing_port(key)),
    };
    let port = u16::try_from(number).map_err(|_| missing_port(key))?;
    let external = Some(ExternalName {
        host: host.to_owned(),
        port,
    });
    Ok(EndpointSet {
        addrs: Vec::new(),
        external,
        conditions: Vec::new(),
    })
}

/// The one endpoint of a `service.nativelb` Service (or of an Ingress's
/// `service-upstream`): its ClusterIP and the Service port.
fn native(
    key: &BackendKey,
    cluster_ip: Option<&str>,
    port: &ServicePort,
) -> Result<EndpointSet, Unresolved> {
    let service = format!("{}/{}", key.namespace, key.service);
    let ip = match cluster_ip.map(str::trim) {
        None | Some("" | "None") => {
            let reason = if key.cluster_ip {
                format!(
                    "nginx.ingress.kubernetes.io/service-upstream sends to the clusterIP of \
                     service {service}, which is headless (no clusterIP); its routes answer 503"
                )
            } else {
                format!(
                    "service {service} asks for {NATIVE_LB} but is headless (no clusterIP); \
                     its routes answer 503"
                )
            };
            return Err(unresolved(DiagnosticKind::InvalidAnnotation, reason));
        }
        Some(ip) => ip.parse::<IpAddr>().map_err(|_| {
            let reason = format!("service {service} has an invalid clusterIP {ip:?}");
            unresolved(DiagnosticKind::InvalidObject, reason)
        })?,
    };
    let number = u16::try_from(port.port).map_err(|_| missing_port(key))?;
    let addr = SocketAddr::new(ip, number);
    Ok(EndpointSet {
        addrs: vec![addr],
        external: None,
        conditions: vec![condition(addr, true, true, false)],
    })
}

/// Which endpoint port serves a Service port: same name (absent is ""), or the
/// only port when the Service has a single unnamed port.
struct PortWant<'a> {
    name: &'a str,
    single_unnamed: bool,
}

impl PortWant<'_> {
    fn pick<'p, P>(&self, ports: &'p [P], name: impl Fn(&P) -> &str) -> Option<&'p P> {
        match ports {
            [only] if self.single_unnamed => Some(only),
            _ => ports.iter().find(|p| name(p) == self.name),
        }
    }
}

fn condition(addr: SocketAddr, ready: bool, serving: bool, terminating: bool) -> EndpointCondition {
    EndpointCondition {
        addr,
        ready,
        serving,
        terminating,
    }
}

/// Every endpoint of `slice` on the wanted port with its conditions, as the
/// EndpointSlice API defines their defaults (ready unset: true; serving unset:
/// same as ready; terminating unset: false).
fn slice_conditions(slice: &EndpointSlice, want: &PortWant<'_>) -> Vec<EndpointCondition> {
    let Some(port) = slice_port(slice, want) else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .filter_map(|e| {
            let ip = e.addresses.first()?.parse::<IpAddr>().ok()?;
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready) != Some(false);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating) == Some(true);
            Some(condition(
                SocketAddr::new(ip, port),
                ready,
                serving,
                terminating,
            ))
        })
        .collect()
}

/// The slice's port number for the wanted Service port (IP slices only).
fn slice_port(slice: &EndpointSlice, want: &PortWant<'_>) -> Option<u16> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return None;
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    want.pick(ports, |p| p.name.as_deref().unwrap_or(""))
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok())
}

fn slice_addrs(
    slice: &EndpointSlice,
    want: &PortWant<'_>,
    usable: fn(&Endpoint) -> bool,
) -> Vec<SocketAddr> {
    let Some(port) = slice_port(slice, want) else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .filter(|e| usable(e))
        // Addresses of one endpoint are fungible; kube-proxy uses the first.
        .filter_map(|e| e.addresses.first()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// Ready and not terminating (an unset condition counts as ready / not terminating).
fn is_ready(endpoint: &Endpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    conditions.and_then(|c| c.ready) != Some(false)
        && conditions.and_then(|c| c.terminating) != Some(true)
}

/// Terminating but still serving (`serving: true`): used only when no endpoint is ready.
fn is_serving_while_terminating(endpoint: &Endpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    conditions.and_then(|c| c.terminating) == Some(true)
        && conditions.and_then(|c| c.serving) == Some(true)
}

fn legacy_addrs(endpoints: &Endpoints, want: &PortWant<'_>) -> Vec<SocketAddr> {
    let subsets = endpoints.subsets.as_deref().unwrap_or_default();
    subsets.iter().flat_map(|s| subset_addrs(s, want)).collect()
}

fn subset_addrs(subset: &EndpointSubset, want: &PortWant<'_>) -> Vec<SocketAddr> {
    let ports = subset.ports.as_deref().unwrap_or_default();
    let port = want.pick(ports, |p| p.name.as_deref().unwrap_or(""));
    let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
        return Vec::new();
    };
    let addresses = subset.addresses.as_deref().unwrap_or_default();
    addresses
        .iter()
        .filter_map(|a| a.ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}
