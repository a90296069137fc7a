//! Backend resolution: a Service port to its endpoint set, the way kube-proxy reads
//! EndpointSlices (or legacy Endpoints when a Service has no slice).

use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::annotations::{self, NATIVE_LB};
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

type Key<'a> = (&'a str, &'a str);

fn same_arc<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// Services, slices and Endpoints indexed by namespace and (Service) name.
#[derive(Debug)]
pub(super) struct Resolver<'a> {
    services: HashMap<Key<'a>, &'a Arc<Service>>,
    slices: HashMap<Key<'a>, Vec<&'a Arc<EndpointSlice>>>,
    endpoints: HashMap<Key<'a>, &'a Arc<Endpoints>>,
}

/// The objects a backend's resolution reads, by identity: equal inputs (same
/// `Arc`s) resolve to the same result, which is what lets a compile reuse the
/// previous one's work.
#[derive(Debug, Clone, Default)]
pub(super) struct Inputs {
    service: Option<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    endpoints: Option<Arc<Endpoints>>,
}

impl Inputs {
    /// Whether `self` holds exactly the objects `resolver` has for `key` (by pointer).
    pub(super) fn same_as(&self, resolver: &Resolver<'_>, key: &BackendKey) -> bool {
        let id = (key.namespace.as_str(), key.service.as_str());
        let slices = resolver.slices.get(&id).map_or(&[][..], Vec::as_slice);
        same_arc(self.service.as_ref(), resolver.services.get(&id).copied())
            && same_arc(
                self.endpoints.as_ref(),
                resolver.endpoints.get(&id).copied(),
            )
            && self.slices.len() == slices.len()
            && self
                .slices
                .iter()
                .zip(slices)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key<'_>> {
    Some((
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref()?,
    ))
}

impl<'a> Resolver<'a> {
    /// Indexes the snapshot once per compile.
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        // Sized up front: growing maps of 10,000s of entries rehashes them all.
        let mut services =
            HashMap::with_capacity_and_hasher(snapshot.services.len(), Default::default());
        services.extend(
            snapshot
                .services
                .iter()
                .filter_map(|s| Some((key_of(&s.metadata)?, s))),
        );
        let mut endpoints =
            HashMap::with_capacity_and_hasher(snapshot.endpoints.len(), Default::default());
        endpoints.extend(
            snapshot
                .endpoints
                .iter()
                .filter_map(|e| Some((key_of(&e.metadata)?, e))),
        );
        let mut slices: HashMap<Key<'a>, Vec<&'a Arc<EndpointSlice>>> =
            HashMap::with_capacity_and_hasher(snapshot.endpoint_slices.len(), Default::default());
        for slice in &snapshot.endpoint_slices {
            let meta = &slice.metadata;
            let service = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                let namespace = meta.namespace.as_deref().unwrap_or("default");
                slices
                    .entry((namespace, service.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        Self {
            services,
            slices,
            endpoints,
        }
    }

    /// The objects resolving `key` reads, to recognise them next time.
    pub(super) fn inputs(&self, key: &BackendKey) -> Inputs {
        let id = (key.namespace.as_str(), key.service.as_str());
        Inputs {
            service: self.services.get(&id).map(|s| Arc::clone(s)),
            slices: self
                .slices
                .get(&id)
                .map(|v| v.iter().map(|s| Arc::clone(s)).collect())
                .unwrap_or_default(),
            endpoints: self.endpoints.get(&id).map(|e| Arc::clone(e)),
        }
    }

    /// An annotation of the Service a backend key names, if the Service exists.
    pub(super) fn service_annotation(&self, key: &BackendKey, annotation: &str) -> Option<&'a str> {
        let service = self
            .services
            .get(&(key.namespace.as_str(), key.service.as_str()))?;
        service
            .metadata
            .annotations
            .as_ref()?
            .get(annotation)
            .map(String::as_str)
    }

    /// The address of the Service object a backend key names (0: none), to
    /// recognise it in the next compile.
    pub(super) fn service_address(&self, key: &BackendKey) -> usize {
        self.services
            .get(&(key.namespace.as_str(), key.service.as_str()))
            .map_or(0, |s| Arc::as_ptr(s) as usize)
    }

    /// The `appProtocol` of a Service port (by number), if the Service lists
    /// the port with one.
    pub(super) fn app_protocol(
        &self,
        namespace: &str,
        service: &str,
        port: i32,
    ) -> Option<&'a str> {
        let service = self.services.get(&(namespace, service))?;
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
        let id = (key.namespace.as_str(), key.service.as_str());
        let number = self.services.get(&id).and_then(|service| {
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
        let id = (key.namespace.as_str(), key.service.as_str());
        let Some(service) = self.services.get(&id) else {
            return Err(unresolved(
                DiagnosticKind::MissingService,
                format!("service {}/{} not found", id.0, id.1),
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
        let mut addrs = match self.slices.get(&id) {
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
