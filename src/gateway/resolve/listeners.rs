//! A Gateway's listeners: protocol, port → entrypoint, hostname, TLS
//! certificates, allowed routes, conflicts between listeners, and each
//! listener's status conditions.
//!
//! sluice listens where it already listens: an `HTTP` listener on port 80 or
//! the `--http-addr` port is served on the HTTP entrypoint, an `HTTPS`
//! listener on 443 or the `--https-addr` port on the HTTPS entrypoint; any
//! other port is `PortUnavailable`, any other protocol `UnsupportedProtocol`.
//! Conflicts are judged per entrypoint, since that is what sluice can tell
//! apart: two listeners of one Gateway with the same hostname on ports 80 and
//! the `--http-addr` port are served on one socket and so conflict.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use super::certs::{self, CertCache, ResolvedCertificate};
use super::conditions::{reasons, types, Condition};
use super::hostname;
use super::index::Index;
use super::selector;
use super::status::ListenerStatus;
use super::ResolveSettings;
use crate::gateway::types::{FromNamespaces, Listener, ProtocolType, RouteGroupKind, TlsModeType};
use crate::gateway::{Gateway, GatewayKind, HttpRoute, GROUP};

/// Where sluice serves a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Entrypoint {
    /// The cleartext HTTP listener (`--http-addr`).
    Http,
    /// The TLS listener (`--https-addr`).
    Https,
}

/// A route attached to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedRoute {
    /// The route: an index into [`super::Resolution::routes`].
    pub route: usize,
    /// The rules to serve: indexes into the route's `spec.rules` (the valid ones).
    pub rules: Vec<usize>,
    /// The hosts the route serves on this listener (the intersection of the
    /// route's and the listener's hostnames); empty means every host.
    pub hostnames: Vec<String>,
}

/// Which namespaces' routes a listener admits.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AllowedNamespaces {
    /// Every namespace.
    All,
    /// The Gateway's own namespace.
    Same(String),
    /// Namespaces whose labels match.
    Selector(LabelSelector),
    /// None (an invalid `allowedRoutes.namespaces`).
    Nothing,
}

/// One listener of a Gateway, as sluice serves it.
#[derive(Debug, Clone)]
pub struct ResolvedListener {
    /// The listener's name (a route's `sectionName`).
    pub name: String,
    /// The port in the Gateway's spec.
    pub port: i32,
    /// The protocol in the Gateway's spec.
    pub protocol: ProtocolType,
    /// Where it is served; `None` when the protocol or port is not served.
    pub entrypoint: Option<Entrypoint>,
    /// The hostname (lowercase); `None` matches every host.
    pub hostname: Option<String>,
    /// The certificates (HTTPS), in `certificateRefs` order, the unusable
    /// ones left out.
    pub certificates: Vec<ResolvedCertificate>,
    /// Whether the listener is served: Accepted, not conflicted, served on an
    /// entrypoint, with a certificate if HTTPS, on a programmed Gateway. A
    /// compiler serves the routes of programmed listeners only.
    pub programmed: bool,
    /// The accepted routes attached to this listener, in route order.
    pub routes: Vec<AttachedRoute>,
    /// Which namespaces' routes may attach.
    pub(super) allowed: AllowedNamespaces,
    /// Whether `HTTPRoute` is among the supported kinds.
    pub(super) accepts_http_routes: bool,
}

impl ResolvedListener {
    /// Whether routes of `namespace` may attach (namespace rule only).
    pub(super) fn admits_namespace(&self, namespace: &str, index: &Index<'_>) -> bool {
        match &self.allowed {
            AllowedNamespaces::All => true,
            AllowedNamespaces::Same(own) => own == namespace,
            AllowedNamespaces::Selector(selector) => index.namespace_matches(namespace, selector),
            AllowedNamespaces::Nothing => false,
        }
    }
}

/// A listener after validation, before the Gateway's verdict.
#[derive(Debug)]
pub(super) struct ListenerOutcome {
    /// The listener.
    pub listener: ResolvedListener,
    /// Its status, without `Programmed` and with `attachedRoutes` 0.
    pub status: ListenerStatus,
    /// Why it cannot be served (`None`: it can).
    pub unready: Option<String>,
}

/// What validating one listener found, before conflicts are known.
struct Checked<'a> {
    spec: &'a Listener,
    hostname: Option<String>,
    entrypoint: Option<Entrypoint>,
    /// The first reason for Accepted=False (reason, message).
    rejected: Option<(&'static str, String)>,
    /// Conflicted=True (reason, message).
    conflict: Option<(&'static str, String)>,
    supported_kinds: Vec<RouteGroupKind>,
    invalid_kinds: Vec<String>,
    certificates: Vec<ResolvedCertificate>,
    cert_problems: Vec<certs::CertProblem>,
    allowed: AllowedNamespaces,
    overlapping: Vec<String>,
}

/// The name of a protocol, as in the spec.
pub(super) fn protocol_name(protocol: &ProtocolType) -> &str {
    match protocol {
        ProtocolType::Http => "HTTP",
        ProtocolType::Https => "HTTPS",
        ProtocolType::Tls => "TLS",
        ProtocolType::Tcp => "TCP",
        ProtocolType::Udp => "UDP",
        ProtocolType::Other(other) => other,
    }
}

fn http_route_kind() -> RouteGroupKind {
    RouteGroupKind {
        group: GROUP.to_owned(),
        kind: HttpRoute::KIND.to_owned(),
    }
}

/// Validates every listener of `gateway` (the first of a repeated name only).
pub(super) fn resolve(
    gateway: &Gateway,
    settings: &ResolveSettings,
    index: &Index<'_>,
    cache: &mut CertCache,
) -> Vec<ListenerOutcome> {
    let mut names = HashSet::new();
    let mut checked: Vec<Checked<'_>> = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| names.insert(l.name.as_str()))
        .map(|l| check(gateway, l, settings, index, cache))
        .collect();
    mark_protocol_conflicts(&mut checked);
    mark_hostname_conflicts(&mut checked);
    mark_overlapping_tls(&mut checked);
    let generation = gateway.metadata.generation;
    checked
        .into_iter()
        .map(|c| outcome(c, generation))
        .collect()
}

fn check<'a>(
    gateway: &Gateway,
    spec: &'a Listener,
    settings: &ResolveSettings,
    index: &Index<'_>,
    cache: &mut CertCache,
) -> Checked<'a> {
    let mut rejected: Option<(&'static str, String)> = None;
    let mut reject = |reason, message: String| {
        rejected.get_or_insert((reason, message));
    };
    let served = matches!(spec.protocol, ProtocolType::Http | ProtocolType::Https);
    if !served {
        reject(
            reasons::UNSUPPORTED_PROTOCOL,
            format!(
                "protocol {:?} is not supported (sluice serves HTTP and HTTPS)",
                protocol_name(&spec.protocol)
            ),
        );
    }
    let hostname = match spec.hostname.as_deref().map(hostname::normalize) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            reject(reasons::UNSUPPORTED_VALUE, e.to_string());
            None
        }
    };
    let allowed = match allowed_namespaces(gateway, spec) {
        Ok(allowed) => allowed,
        Err(message) => {
            reject(reasons::UNSUPPORTED_VALUE, message);
            AllowedNamespaces::Nothing
        }
    };
    let (mut certificates, mut cert_problems) = (Vec::new(), Vec::new());
    if spec.protocol == ProtocolType::Https {
        match &spec.tls {
            Some(tls) if tls.mode != TlsModeType::Terminate => reject(
                reasons::UNSUPPORTED_VALUE,
                format!(
                    "tls.mode {:?} is not supported on HTTPS (only Terminate)",
                    tls.mode
                ),
            ),
            Some(tls) if !tls.certificate_refs.is_empty() => {
                (certificates, cert_problems) =
                    certs::resolve(gateway, &tls.certificate_refs, index, cache);
            }
            _ => cert_problems.push(certs::CertProblem {
                reason: reasons::INVALID_CERTIFICATE_REF,
                message: "an HTTPS listener needs tls.certificateRefs".to_owned(),
            }),
        }
    }
    let entrypoint = if served {
        let entrypoint = entrypoint_for(spec, settings);
        if entrypoint.is_none() {
            reject(reasons::PORT_UNAVAILABLE, port_message(spec, settings));
        }
        entrypoint
    } else {
        None
    };
    let (supported_kinds, invalid_kinds) = route_kinds(spec, served);
    Checked {
        spec,
        hostname,
        entrypoint,
        rejected,
        conflict: None,
        supported_kinds,
        invalid_kinds,
        certificates,
        cert_problems,
        allowed,
        overlapping: Vec::new(),
    }
}

/// The entrypoint for a listener's protocol and port.
fn entrypoint_for(spec: &Listener, settings: &ResolveSettings) -> Option<Entrypoint> {
    let port = spec.port;
    match spec.protocol {
        ProtocolType::Http if port == 80 || port == i32::from(settings.http_port) => {
            Some(Entrypoint::Http)
        }
        ProtocolType::Https if port == 443 || port == i32::from(settings.https_port) => {
            Some(Entrypoint::Https)
        }
        _ => None,
    }
}

fn port_message(spec: &Listener, settings: &ResolveSettings) -> String {
    let (name, well_known, own, flag) = if spec.protocol == ProtocolType::Https {
        ("HTTPS", 443, settings.https_port, "--https-addr")
    } else {
        ("HTTP", 80, settings.http_port, "--http-addr")
    };
    format!(
        "port {} is not available for {name}: sluice serves {name} on port {well_known} and on its {flag} port {own}",
        spec.port
    )
}

fn allowed_namespaces(gateway: &Gateway, spec: &Listener) -> Result<AllowedNamespaces, String> {
    let namespaces = &spec.allowed_routes.namespaces;
    match &namespaces.from {
        FromNamespaces::All => Ok(AllowedNamespaces::All),
        FromNamespaces::Same => Ok(AllowedNamespaces::Same(gateway.namespace().to_owned())),
        FromNamespaces::Selector => {
            let selector = namespaces
                .selector
                .as_ref()
                .ok_or("allowedRoutes.namespaces.from is Selector but no selector is given")?;
            selector::validate(selector)
                .map_err(|e| format!("allowedRoutes.namespaces.selector: {e}"))?;
            Ok(AllowedNamespaces::Selector(selector.clone()))
        }
        FromNamespaces::Other(other) => Err(format!(
            "allowedRoutes.namespaces.from {other:?} is not supported (All, Same, Selector)"
        )),
    }
}

/// The supported kinds, and the `allowedRoutes.kinds` that are not.
fn route_kinds(spec: &Listener, served: bool) -> (Vec<RouteGroupKind>, Vec<String>) {
    let ours = http_route_kind();
    let kinds = &spec.allowed_routes.kinds;
    if kinds.is_empty() {
        return (if served { vec![ours] } else { Vec::new() }, Vec::new());
    }
    let mut supported = Vec::new();
    let mut invalid = Vec::new();
    for kind in kinds {
        if served && *kind == ours {
            if !supported.contains(kind) {
                supported.push(kind.clone());
            }
        } else {
            invalid.push(format!("{}/{}", kind.group, kind.kind));
        }
    }
    (supported, invalid)
}

/// Listeners on one port with different protocols all conflict (only among
/// the protocols sluice serves: the others are refused anyway).
fn mark_protocol_conflicts(checked: &mut [Checked<'_>]) {
    let mut protocols: HashMap<i32, HashSet<&ProtocolType>> = HashMap::new();
    for c in checked.iter() {
        if matches!(c.spec.protocol, ProtocolType::Http | ProtocolType::Https) {
            protocols
                .entry(c.spec.port)
                .or_default()
                .insert(&c.spec.protocol);
        }
    }
    let conflicted: HashSet<i32> = protocols
        .into_iter()
        .filter(|(_, set)| set.len() > 1)
        .map(|(port, _)| port)
        .collect();
    for c in checked.iter_mut() {
        if conflicted.contains(&c.spec.port)
            && matches!(c.spec.protocol, ProtocolType::Http | ProtocolType::Https)
        {
            c.conflict = Some((
                reasons::PROTOCOL_CONFLICT,
                format!(
                    "port {} is used by both HTTP and HTTPS listeners",
                    c.spec.port
                ),
            ));
        }
    }
}

/// Listeners served on one entrypoint with the same hostname (or both
/// without) all conflict.
fn mark_hostname_conflicts(checked: &mut [Checked<'_>]) {
    let mut groups: HashMap<(Entrypoint, Option<&str>), Vec<usize>> = HashMap::new();
    for (i, c) in checked.iter().enumerate() {
        if let (Some(entrypoint), None, None) = (c.entrypoint, &c.rejected, &c.conflict) {
            groups
                .entry((entrypoint, c.hostname.as_deref()))
                .or_default()
                .push(i);
        }
    }
    let mut marks: Vec<(usize, String)> = Vec::new();
    for ((_, hostname), members) in groups {
        if members.len() < 2 {
            continue;
        }
        let names: Vec<&str> = members
            .iter()
            .map(|&i| checked[i].spec.name.as_str())
            .collect();
        let host = hostname.unwrap_or("(every host)");
        for &i in &members {
            marks.push((
                i,
                format!(
                    "listeners {} are served on one port with the same hostname {host}",
                    names.join(", ")
                ),
            ));
        }
    }
    for (i, message) in marks {
        checked[i].conflict = Some((reasons::HOSTNAME_CONFLICT, message));
    }
}

/// HTTPS listeners whose hostnames can match the same request host.
fn mark_overlapping_tls(checked: &mut [Checked<'_>]) {
    let https: Vec<usize> = (0..checked.len())
        .filter(|&i| {
            let c = &checked[i];
            c.entrypoint == Some(Entrypoint::Https) && c.rejected.is_none() && c.conflict.is_none()
        })
        .collect();
    for &a in &https {
        for &b in &https {
            if a != b
                && hostname::overlap(
                    checked[a].hostname.as_deref(),
                    checked[b].hostname.as_deref(),
                )
            {
                let other = checked[b].spec.name.clone();
                checked[a].overlapping.push(other);
            }
        }
    }
}

fn outcome(c: Checked<'_>, generation: Option<i64>) -> ListenerOutcome {
    let condition = |type_, status: bool, reason: &str, message: String| {
        Condition::new(type_, status, reason, message, generation)
    };
    let mut conditions = Vec::with_capacity(5);
    let mut unready = None;
    conditions.push(match (&c.rejected, &c.conflict) {
        (Some((reason, message)), _) | (None, Some((reason, message))) => {
            unready = Some(format!("{reason}: {message}"));
            condition(types::ACCEPTED, false, reason, message.clone())
        }
        (None, None) => condition(types::ACCEPTED, true, reasons::ACCEPTED, String::new()),
    });
    conditions.push(match &c.conflict {
        Some((reason, message)) => condition(types::CONFLICTED, true, reason, message.clone()),
        None => condition(
            types::CONFLICTED,
            false,
            reasons::NO_CONFLICTS,
            String::new(),
        ),
    });
    conditions.push(resolved_refs(&c, generation));
    if !c.overlapping.is_empty() {
        conditions.push(condition(
            types::OVERLAPPING_TLS_CONFIG,
            true,
            reasons::OVERLAPPING_HOSTNAMES,
            format!(
                "the hostname overlaps those of HTTPS listeners {}",
                c.overlapping.join(", ")
            ),
        ));
    }
    if unready.is_none() {
        if c.supported_kinds.is_empty() {
            unready = Some("no supported route kind is allowed".to_owned());
        } else if c.spec.protocol == ProtocolType::Https && c.certificates.is_empty() {
            unready = Some("no usable certificate".to_owned());
        }
    }
    let accepts_http_routes = c.supported_kinds.contains(&http_route_kind());
    ListenerOutcome {
        status: ListenerStatus {
            name: c.spec.name.clone(),
            supported_kinds: c.supported_kinds,
            attached_routes: 0,
            conditions,
        },
        listener: ResolvedListener {
            name: c.spec.name.clone(),
            port: c.spec.port,
            protocol: c.spec.protocol.clone(),
            entrypoint: c.entrypoint,
            hostname: c.hostname,
            certificates: c.certificates,
            programmed: false,
            routes: Vec::new(),
            allowed: c.allowed,
            accepts_http_routes,
        },
        unready,
    }
}

/// ResolvedRefs: certificate problems first (RefNotPermitted before
/// InvalidCertificateRef), then route kinds; the message lists them all.
fn resolved_refs(c: &Checked<'_>, generation: Option<i64>) -> Condition {
    let mut messages: Vec<String> = c.cert_problems.iter().map(|p| p.message.clone()).collect();
    if !c.invalid_kinds.is_empty() {
        messages.push(format!(
            "unsupported route kinds: {} (sluice serves {GROUP}/HTTPRoute)",
            c.invalid_kinds.join(", ")
        ));
    }
    let reason = if c
        .cert_problems
        .iter()
        .any(|p| p.reason == reasons::REF_NOT_PERMITTED)
    {
        reasons::REF_NOT_PERMITTED
    } else if !c.cert_problems.is_empty() {
        reasons::INVALID_CERTIFICATE_REF
    } else if !c.invalid_kinds.is_empty() {
        reasons::INVALID_ROUTE_KINDS
    } else {
        return Condition::new(
            types::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            String::new(),
            generation,
        );
    };
    Condition::new(
        types::RESOLVED_REFS,
        false,
        reason,
        messages.join("; "),
        generation,
    )
}

/// Sets each listener's `Programmed` once the Gateway's verdict is known:
/// served iff the listener can be and the Gateway is programmed (`Err`
/// holds why the Gateway is not).
pub(super) fn program(
    outcomes: &mut [ListenerOutcome],
    gateway: Result<(), &str>,
    generation: Option<i64>,
) {
    for outcome in outcomes {
        let why = match (&outcome.unready, gateway) {
            (Some(why), _) => Some(why.clone()),
            (None, Err(why)) => Some(format!("the Gateway is not programmed: {why}")),
            (None, Ok(())) => None,
        };
        outcome.listener.programmed = why.is_none();
        let condition = match why {
            None => Condition::new(
                types::PROGRAMMED,
                true,
                reasons::PROGRAMMED,
                String::new(),
                generation,
            ),
            Some(why) => {
                Condition::new(types::PROGRAMMED, false, reasons::INVALID, why, generation)
            }
        };
        // Accepted, Programmed, ResolvedRefs, Conflicted...: after Accepted.
        outcome.status.conditions.insert(1, condition);
    }
}
