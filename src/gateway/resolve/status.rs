//! The desired `status` of each kind, shaped as the API's status schema so a
//! writer can merge-patch it (`{"status": <this>}`) and the admin API can show it.
//!
//! These are sluice's part of the status only. The writer must keep what
//! belongs to others: conditions of other types on GatewayClass and Gateway
//! (`listType=map` on `type`), and route `parents` / policy `ancestors`
//! entries whose `controllerName` is not [`super::super::CONTROLLER_NAME`].

use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use crate::gateway::types::{ParentReference, RouteGroupKind};

/// `GatewayClass.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    /// `Accepted` and `SupportedVersion`.
    pub conditions: Vec<Condition>,
    /// The features sluice supports, sorted by name (as the API requires).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_features: Vec<SupportedFeature>,
}

/// `GatewayClass.status.supportedFeatures[]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub struct SupportedFeature {
    /// The feature name (`HTTPRouteQueryParamMatching`...).
    pub name: String,
}

/// `Gateway.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Where the Gateway is reachable.
    pub addresses: Vec<GatewayStatusAddress>,
    /// `Accepted` and `Programmed`.
    pub conditions: Vec<Condition>,
    /// One entry per listener, in spec order.
    pub listeners: Vec<ListenerStatus>,
}

/// `Gateway.status.addresses[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GatewayStatusAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub value: String,
}

/// `Gateway.status.listeners[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The route kinds this listener serves (`HTTPRoute`, or none).
    pub supported_kinds: Vec<RouteGroupKind>,
    /// How many routes are attached and accepted.
    pub attached_routes: i32,
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted` (and
    /// `OverlappingTLSConfig` when true).
    pub conditions: Vec<Condition>,
}

/// `HTTPRoute.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RouteStatus {
    /// One entry per parentRef that names one of sluice's Gateways.
    pub parents: Vec<RouteParentStatus>,
}

/// `HTTPRoute.status.parents[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parentRef, as written in the route's spec (defaults applied).
    pub parent_ref: ParentReference,
    /// Always [`super::super::CONTROLLER_NAME`].
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs` (and `PartiallyInvalid` when true).
    pub conditions: Vec<Condition>,
}

/// `BackendTLSPolicy.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PolicyStatus {
    /// One entry per Gateway whose accepted routes send traffic to a target.
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// `BackendTLSPolicy.status.ancestors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The Gateway.
    pub ancestor_ref: ParentReference,
    /// Always [`super::super::CONTROLLER_NAME`].
    pub controller_name: String,
    /// `Accepted` and `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}
