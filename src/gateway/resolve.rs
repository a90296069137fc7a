//! Gateway API resolution: which Gateways are sluice's, which listeners are
//! valid and where they are served, which HTTPRoutes attach where with which
//! hostnames, what every reference resolves to, and the status the
//! specification (and its conformance suite) expects on each object.
//!
//! [`resolve`] is a pure function of the [`Snapshot`] and [`ResolveSettings`]:
//! no data plane, no routing table, no API writes. Its [`Resolution`] serves
//! two readers:
//!
//! - a **compiler** walks [`Resolution::programmed_listeners`]: each
//!   listener's entrypoint, hostname and certificates, and its
//!   [`AttachedRoute`]s (an index into [`Resolution::routes`], the rules to
//!   serve, the effective hostnames). Each [`ResolvedRule`] says what its
//!   backendRefs and filters resolved to (an unresolved backend's weight
//!   share answers 500, an unresolved `ExtensionRef` answers 500), and
//!   [`Resolution::backend_tls`] the BackendTLSPolicy of a Service port;
//! - a **status writer** (and the admin API) takes the `status` of every
//!   [`ResolvedClass`], [`ResolvedGateway`], [`ResolvedRoute`] and
//!   [`ResolvedPolicy`]: sluice's part of the API's status schema, every
//!   condition carrying the object's `metadata.generation` and no
//!   `lastTransitionTime` (the writer keeps the old one when the status did
//!   not change). The writer merges: it keeps other controllers' route
//!   `parents` and policy `ancestors`, and removes sluice's entries from
//!   objects this resolution no longer lists.
//!
//! Submodules own one step each: [`listeners`] (ports, protocols, TLS,
//! conflicts), `gateway` (class and Gateway conditions, addresses),
//! [`rules`] (rule validity, backend and filter references), `attach`
//! (parentRefs, allowedRoutes, hostname intersection), [`policy`]
//! (BackendTLSPolicy), [`refs`] (ReferenceGrant checks), [`hostname`],
//! [`selector`] (label selectors), [`conditions`] and [`status`] (the output
//! schema).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::gateway::{Gateway, GatewayClass, HttpRoute};
use crate::router::Snapshot;

mod attach;
mod certs;
pub mod conditions;
mod gateway;
pub mod hostname;
mod index;
pub mod listeners;
pub mod policy;
pub mod refs;
pub mod rules;
pub mod selector;
pub mod status;

#[cfg(test)]
mod tests;

pub use certs::ResolvedCertificate;
pub use conditions::{Condition, ConditionStatus};
pub use listeners::{AttachedRoute, Entrypoint, ResolvedListener};
pub use policy::{BackendTls, CaTrust, ResolvedPolicy, Verification};
pub use refs::{reference_permitted, NamespacedName, RefFrom, RefTo, ReferenceGrants};
pub use rules::{FilterTarget, RefError, ResolvedBackend, ResolvedRule, RuleError, ServicePort};
pub use status::{
    GatewayClassStatus, GatewayStatus, GatewayStatusAddress, ListenerStatus, PolicyAncestorStatus,
    PolicyStatus, RouteParentStatus, RouteStatus, SupportedFeature,
};

use attach::{Attachment, RouteFacts};
use conditions::{reasons, types};
use listeners::ListenerOutcome;

/// What the resolution needs besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveSettings {
    /// The port of `--http-addr`: HTTP listeners on it (or on 80) are served.
    pub http_port: u16,
    /// The port of `--https-addr`: HTTPS listeners on it (or on 443) are served.
    pub https_port: u16,
    /// The addresses sluice is reachable on (`--publish-status-address`, or
    /// the `--publish-service` Service's): IPs or host names.
    pub addresses: Vec<String>,
    /// The Gateway API features sluice supports (GatewayClass `supportedFeatures`).
    pub supported_features: Vec<String>,
    /// `addresses` is not known here (the compiler, while the status writer
    /// reads `--publish-service`): a Gateway's `spec.addresses` are taken as
    /// given, so a Gateway the status writer programs is also served.
    pub addresses_unknown: bool,
}

impl Default for ResolveSettings {
    /// Ports 80 and 443, no address, no feature.
    fn default() -> Self {
        Self {
            http_port: 80,
            https_port: 443,
            addresses: Vec::new(),
            supported_features: Vec::new(),
            addresses_unknown: false,
        }
    }
}

/// One of sluice's GatewayClasses (`spec.controllerName` is
/// [`crate::gateway::CONTROLLER_NAME`]).
#[derive(Debug, Clone)]
pub struct ResolvedClass {
    /// The class.
    pub class: Arc<GatewayClass>,
    /// Whether it is accepted (its Gateways are served).
    pub accepted: bool,
    /// Its status.
    pub status: GatewayClassStatus,
}

/// A Gateway of one of sluice's classes.
#[derive(Debug, Clone)]
pub struct ResolvedGateway {
    /// The Gateway.
    pub gateway: Arc<Gateway>,
    /// Its identity.
    pub id: NamespacedName,
    /// Whether it is accepted (`Accepted=True`).
    pub accepted: bool,
    /// Whether it is programmed (`Programmed=True`): only then are its
    /// listeners served.
    pub programmed: bool,
    /// Its listeners, in spec order (a repeated name: the first only).
    pub listeners: Vec<ResolvedListener>,
    /// Its status.
    pub status: GatewayStatus,
}

/// An HTTPRoute with at least one parentRef naming one of sluice's Gateways.
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    /// The route.
    pub route: Arc<HttpRoute>,
    /// Its identity.
    pub id: NamespacedName,
    /// Its rules, in spec order (a dropped one says why).
    pub rules: Vec<ResolvedRule>,
    /// Its status: sluice's entries of `parents`.
    pub status: RouteStatus,
}

/// Everything [`resolve`] decided.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// sluice's GatewayClasses, by name.
    pub classes: Vec<ResolvedClass>,
    /// Gateways of sluice's classes, by namespace/name.
    pub gateways: Vec<ResolvedGateway>,
    /// HTTPRoutes naming sluice's Gateways, by namespace/name.
    pub routes: Vec<ResolvedRoute>,
    /// Every BackendTLSPolicy, by age then namespace/name.
    pub policies: Vec<ResolvedPolicy>,
    /// The policy of each (namespace, Service, port number).
    backend_tls: HashMap<(String, String, i32), BackendTls>,
}

impl Resolution {
    /// Every served listener with its Gateway, Gateways by namespace/name,
    /// listeners in spec order.
    pub fn programmed_listeners(
        &self,
    ) -> impl Iterator<Item = (&ResolvedGateway, &ResolvedListener)> {
        self.gateways.iter().flat_map(|g| {
            g.listeners
                .iter()
                .filter(|l| l.programmed)
                .map(move |l| (g, l))
        })
    }

    /// The BackendTLSPolicy that applies to a Service port: the winning
    /// policy for the port's name, else for the whole Service.
    pub fn backend_tls(&self, service: &ServicePort) -> Option<&BackendTls> {
        self.backend_tls.get(&(
            service.namespace.clone(),
            service.name.clone(),
            service.port,
        ))
    }

    /// The Gateway `namespace/name`, if it is one of sluice's.
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&ResolvedGateway> {
        self.gateways
            .iter()
            .find(|g| g.id.namespace == namespace && g.id.name == name)
    }

    /// The route `namespace/name`, if it names one of sluice's Gateways.
    pub fn route(&self, namespace: &str, name: &str) -> Option<&ResolvedRoute> {
        self.routes
            .iter()
            .find(|r| r.id.namespace == namespace && r.id.name == name)
    }
}

/// A Gateway being resolved.
struct GatewayWork {
    gateway: Arc<Gateway>,
    outcomes: Vec<ListenerOutcome>,
    verdict: gateway::GatewayVerdict,
}

/// Resolves the Gateway API objects of `snapshot` (see the module docs).
pub fn resolve(snapshot: &Snapshot, settings: &ResolveSettings) -> Resolution {
    let index = index::Index::new(snapshot);

    let mut classes: Vec<(ResolvedClass, Result<(), String>)> = snapshot
        .gateway_classes
        .iter()
        .filter(|c| gateway::is_ours(c))
        .map(|class| {
            let (status, verdict) = gateway::class_status(class, &settings.supported_features);
            let resolved = ResolvedClass {
                class: Arc::clone(class),
                accepted: verdict.is_ok(),
                status,
            };
            (resolved, verdict)
        })
        .collect();
    classes.sort_by(|a, b| a.0.class.name().cmp(b.0.class.name()));
    let class_verdicts: HashMap<&str, Result<(), &str>> = classes
        .iter()
        .map(|(c, v)| {
            (
                c.class.name(),
                v.as_ref().map(|_| ()).map_err(String::as_str),
            )
        })
        .collect();

    let ours = gateway::typed_addresses(&settings.addresses);
    let ours = if settings.addresses_unknown {
        None
    } else {
        Some(ours)
    };
    let mut cache = certs::CertCache::new();
    let mut gateways: Vec<&Arc<Gateway>> = snapshot
        .gateways
        .iter()
        .filter(|g| class_verdicts.contains_key(g.spec.gateway_class_name.as_str()))
        .collect();
    gateways.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    let mut work: Vec<GatewayWork> = gateways
        .into_iter()
        .map(|g| {
            let class = class_verdicts
                .get(g.spec.gateway_class_name.as_str())
                .copied()
                .unwrap_or(Ok(()));
            let mut outcomes = listeners::resolve(g, settings, &index, &mut cache);
            let verdict = gateway::verdict(g, class, &outcomes, ours.as_deref());
            let programmed = verdict
                .programmed
                .as_ref()
                .map(|_| ())
                .map_err(String::as_str);
            listeners::program(&mut outcomes, programmed, g.metadata.generation);
            GatewayWork {
                gateway: Arc::clone(g),
                outcomes,
                verdict,
            }
        })
        .collect();

    let (routes, attachments) = resolve_routes(snapshot, &index, &work);
    let usage = attach_routes(&mut work, &routes, attachments);

    let gateway_objects: Vec<Arc<Gateway>> = work.iter().map(|w| Arc::clone(&w.gateway)).collect();
    let policies = policy::resolve(
        &snapshot.backend_tls_policies,
        &index,
        &usage,
        &gateway_objects,
    );

    Resolution {
        classes: classes.into_iter().map(|(c, _)| c).collect(),
        gateways: work.into_iter().map(finish_gateway).collect(),
        routes,
        policies: policies.resolved,
        backend_tls: policies.by_port,
    }
}

/// Resolves every route naming one of the Gateways in `work`: the routes (by
/// namespace/name) and, per route, its attachments.
fn resolve_routes(
    snapshot: &Snapshot,
    index: &index::Index<'_>,
    work: &[GatewayWork],
) -> (Vec<ResolvedRoute>, Vec<Vec<Attachment>>) {
    let lookup: attach::Gateways<'_> = work
        .iter()
        .enumerate()
        .map(|(i, w)| {
            (
                (w.gateway.namespace(), w.gateway.name()),
                (i, w.outcomes.as_slice()),
            )
        })
        .collect();
    let mut sorted: Vec<&Arc<HttpRoute>> = snapshot.http_routes.iter().collect();
    sorted.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    let mut routes = Vec::new();
    let mut attachments = Vec::new();
    for route in sorted {
        let rules = rules::resolve(route, index);
        let facts = route_facts(route, &rules);
        let (parents, attached) = attach::attach(route, &facts, &lookup, index);
        if parents.is_empty() {
            continue;
        }
        routes.push(ResolvedRoute {
            route: Arc::clone(route),
            id: NamespacedName::new(route.namespace(), route.name()),
            rules,
            status: RouteStatus { parents },
        });
        attachments.push(attached);
    }
    (routes, attachments)
}

/// The most reference problems a `ResolvedRefs` message lists.
const MAX_LISTED: usize = 8;

/// What holds for a route whatever its parent.
fn route_facts<'a>(route: &HttpRoute, rules: &'a [ResolvedRule]) -> RouteFacts<'a> {
    let generation = route.metadata.generation;
    let dropped: Vec<(usize, &RuleError)> = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.dropped.as_ref()?)))
        .collect();
    let all_rules_dropped = (!rules.is_empty() && dropped.len() == rules.len())
        .then(|| dropped.first().map(|(_, e)| *e))
        .flatten();
    let partially_invalid = (!dropped.is_empty() && all_rules_dropped.is_none()).then(|| {
        dropped
            .iter()
            .map(|(i, e)| {
                let name = route.spec.rules[*i]
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                format!("Dropped Rule {i}{name}: {}", e.message)
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    let errors: Vec<&RefError> = rules.iter().flat_map(ResolvedRule::ref_errors).collect();
    let resolved_refs = match errors.first() {
        None => Condition::new(
            types::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            "",
            generation,
        ),
        Some(first) => {
            let mut listed: Vec<String> = Vec::new();
            for error in &errors {
                let text = error.to_string();
                if !listed.contains(&text) && listed.len() < MAX_LISTED {
                    listed.push(text);
                }
            }
            Condition::new(
                types::RESOLVED_REFS,
                false,
                first.reason(),
                listed.join("; "),
                generation,
            )
        }
    };
    RouteFacts {
        hostnames: attach::route_hostnames(route),
        all_rules_dropped,
        partially_invalid,
        resolved_refs,
    }
}

/// Puts each route on the listeners it attached to (and counts it), and
/// returns where accepted routes send traffic, for BackendTLSPolicy ancestors.
fn attach_routes(
    work: &mut [GatewayWork],
    routes: &[ResolvedRoute],
    attachments: Vec<Vec<Attachment>>,
) -> policy::Usage {
    let mut usage = policy::Usage::new();
    for (r, attached) in attachments.into_iter().enumerate() {
        let route = &routes[r];
        let served: Vec<usize> = (0..route.rules.len())
            .filter(|&i| route.rules[i].dropped.is_none())
            .collect();
        let mut gateways = BTreeSet::new();
        for a in attached {
            gateways.insert(a.gateway);
            let outcome = &mut work[a.gateway].outcomes[a.listener];
            outcome.status.attached_routes += 1;
            outcome.listener.routes.push(AttachedRoute {
                route: r,
                rules: served.clone(),
                hostnames: a.hostnames,
            });
        }
        for &i in &served {
            let rule = &route.rules[i];
            let targets = rule
                .backends
                .iter()
                .flat_map(|b| std::iter::once(&b.target).chain(mirrors(&b.filters)))
                .chain(mirrors(&rule.filters));
            for service in targets.filter_map(|t| t.as_ref().ok()) {
                let used = usage
                    .entry((service.namespace.clone(), service.name.clone()))
                    .or_default();
                used.extend(gateways.iter().map(|&g| (g, service.port)));
            }
        }
    }
    usage
}

fn mirrors(filters: &[FilterTarget]) -> impl Iterator<Item = &Result<ServicePort, RefError>> {
    filters.iter().filter_map(|f| match f {
        FilterTarget::Mirror(target) => Some(target),
        _ => None,
    })
}

fn finish_gateway(work: GatewayWork) -> ResolvedGateway {
    let accepted =
        conditions::find(&work.verdict.conditions, types::ACCEPTED).is_some_and(Condition::is_true);
    let (listeners, statuses): (Vec<_>, Vec<_>) = work
        .outcomes
        .into_iter()
        .map(|o| (o.listener, o.status))
        .unzip();
    ResolvedGateway {
        id: NamespacedName::new(work.gateway.namespace(), work.gateway.name()),
        gateway: work.gateway,
        accepted,
        programmed: work.verdict.programmed.is_ok(),
        listeners,
        status: GatewayStatus {
            addresses: work.verdict.addresses,
            conditions: work.verdict.conditions,
            listeners: statuses,
        },
    }
}
