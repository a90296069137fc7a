//! Attaching an HTTPRoute to its parents: each `parentRefs` entry that names
//! one of sluice's Gateways selects listeners (all, or by `sectionName` and
//! `port`), keeps those whose `allowedRoutes` admit the route, and attaches
//! to those whose hostname intersects the route's. The entry's `Accepted`
//! condition says how far it got.

use std::collections::HashMap;

use super::conditions::{reasons, types, Condition, Refusal};
use super::hostname;
use super::index::Index;
use super::listeners::ListenerOutcome;
use super::rules::RuleError;
use super::status::RouteParentStatus;
use crate::gateway::types::ParentReference;
use crate::gateway::{Gateway, GatewayKind, HttpRoute, CONTROLLER_NAME, GROUP};

/// A route attached to one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attachment {
    /// The Gateway: an index into the resolution's Gateways.
    pub gateway: usize,
    /// The listener: an index into that Gateway's listeners.
    pub listener: usize,
    /// The effective hostnames (empty: every host).
    pub hostnames: Vec<String>,
}

/// What holds for a route whatever its parent.
pub(super) struct RouteFacts<'a> {
    /// The route's hostnames, lowercase, or why one is invalid.
    pub hostnames: Result<Vec<String>, String>,
    /// The first dropped rule's error, when every rule is dropped.
    pub all_rules_dropped: Option<&'a RuleError>,
    /// `PartiallyInvalid` message ("Dropped Rule ..."), when some rules are dropped.
    pub partially_invalid: Option<String>,
    /// The route's `ResolvedRefs` condition.
    pub resolved_refs: Condition,
}

/// The route's hostnames, validated and lowercased.
pub(super) fn route_hostnames(route: &HttpRoute) -> Result<Vec<String>, String> {
    route
        .spec
        .hostnames
        .iter()
        .map(|h| hostname::normalize(h).map_err(|e| e.to_string()))
        .collect()
}

/// Sluice's Gateways by (namespace, name): their index and listeners.
pub(super) type Gateways<'a> = HashMap<(&'a str, &'a str), (usize, &'a [ListenerOutcome])>;

/// The route's status entries (one per parentRef naming one of sluice's
/// Gateways, in spec order, repeats left out) and its attachments.
pub(super) fn attach(
    route: &HttpRoute,
    facts: &RouteFacts<'_>,
    gateways: &Gateways<'_>,
    index: &Index<'_>,
) -> (Vec<RouteParentStatus>, Vec<Attachment>) {
    let generation = route.metadata.generation;
    let mut parents: Vec<RouteParentStatus> = Vec::new();
    let mut attachments: Vec<Attachment> = Vec::new();
    for parent in &route.spec.parent_refs {
        if parent.group != GROUP || parent.kind != Gateway::KIND {
            continue;
        }
        let namespace = parent.namespace.as_deref().unwrap_or(route.namespace());
        let Some(&(gateway, listeners)) = gateways.get(&(namespace, parent.name.as_str())) else {
            continue;
        };
        if parents.iter().any(|p| p.parent_ref == *parent) {
            continue;
        }
        let accepted = match select(route, parent, facts, listeners, index) {
            Ok(found) => {
                for (listener, hostnames) in found {
                    let attachment = Attachment {
                        gateway,
                        listener,
                        hostnames,
                    };
                    if !attachments.contains(&attachment) {
                        attachments.push(attachment);
                    }
                }
                Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "", generation)
            }
            Err((reason, message)) => {
                Condition::new(types::ACCEPTED, false, reason, message, generation)
            }
        };
        let mut conditions = vec![accepted, facts.resolved_refs.clone()];
        if let (true, Some(message)) = (conditions[0].is_true(), &facts.partially_invalid) {
            conditions.push(Condition::new(
                types::PARTIALLY_INVALID,
                true,
                reasons::UNSUPPORTED_VALUE,
                message.clone(),
                generation,
            ));
        }
        parents.push(RouteParentStatus {
            parent_ref: parent.clone(),
            controller_name: CONTROLLER_NAME.to_owned(),
            conditions,
        });
    }
    (parents, attachments)
}

/// The listeners (index, effective hostnames) a parentRef attaches to, or the
/// `Accepted=False` reason and message.
fn select(
    route: &HttpRoute,
    parent: &ParentReference,
    facts: &RouteFacts<'_>,
    listeners: &[ListenerOutcome],
    index: &Index<'_>,
) -> Result<Vec<(usize, Vec<String>)>, Refusal> {
    let candidates: Vec<usize> = (0..listeners.len())
        .filter(|&i| {
            let l = &listeners[i].listener;
            parent.section_name.as_deref().is_none_or(|s| s == l.name)
                && parent.port.is_none_or(|p| p == l.port)
        })
        .collect();
    if candidates.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("named {s:?} on port {p}"),
            (Some(s), None) => format!("named {s:?}"),
            (None, Some(p)) => format!("on port {p}"),
            (None, None) => "at all".to_owned(),
        };
        return Err((
            reasons::NO_MATCHING_PARENT,
            format!("the Gateway has no listener {what}"),
        ));
    }
    let kind_ok: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| listeners[i].listener.accepts_http_routes)
        .collect();
    let allowed: Vec<usize> = kind_ok
        .iter()
        .copied()
        .filter(|&i| {
            listeners[i]
                .listener
                .admits_namespace(route.namespace(), index)
        })
        .collect();
    if allowed.is_empty() {
        let message = if kind_ok.is_empty() {
            "no selected listener allows HTTPRoutes".to_owned()
        } else {
            format!(
                "no selected listener allows routes from namespace {:?}",
                route.namespace()
            )
        };
        return Err((reasons::NOT_ALLOWED_BY_LISTENERS, message));
    }
    let route_hosts = facts
        .hostnames
        .as_ref()
        .map_err(|why| (reasons::UNSUPPORTED_VALUE, why.clone()))?;
    let found: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .filter_map(|i| {
            let listener = &listeners[i].listener;
            Some((
                i,
                hostname::effective(listener.hostname.as_deref(), route_hosts)?,
            ))
        })
        .collect();
    if found.is_empty() {
        return Err((
            reasons::NO_MATCHING_LISTENER_HOSTNAME,
            "no selected listener's hostname intersects the route's hostnames".to_owned(),
        ));
    }
    if let Some(error) = facts.all_rules_dropped {
        return Err((
            error.reason,
            format!("every rule is invalid: {}", error.message),
        ));
    }
    Ok(found)
}
