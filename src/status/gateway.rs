//! Gateway API status: sluice's part of the `status` of its GatewayClasses,
//! Gateways, HTTPRoutes and BackendTLSPolicies, written by the elected leader
//! only (next to the Ingress writer in [`super::run_status_writer`]).
//!
//! The desired status comes from [`resolve`]: every condition carries
//! `observedGeneration`, none a `lastTransitionTime`. The snapshot's objects
//! carry no status (`gateway::decode` drops it), so each pass **lists** the
//! kinds it has something to say about (one `LIST` per kind, not one `GET`
//! per object) and merges against what the API server holds:
//!
//! - GatewayClass `conditions` and Gateway `conditions`: a condition of the
//!   same type is replaced (so the API server's `Pending` "Waiting for
//!   controller" placeholders go), other types are kept;
//! - Gateway `addresses` and `listeners` are sluice's alone and replaced;
//! - HTTPRoute `parents` and BackendTLSPolicy `ancestors`: entries of other
//!   controllers are kept as they are, sluice's
//!   ([`crate::gateway::CONTROLLER_NAME`]) are replaced by the resolution's
//!   (none, for a watched route or policy the resolution no longer lists);
//! - `lastTransitionTime` is the current condition's when its `status` did
//!   not change, else now.
//!
//! An object is written (a merge patch of the `/status` subresource carrying
//! the listed `resourceVersion`, so a concurrent writer makes it a 409 and the
//! next pass merges again) only when the merged status differs from the
//! current one, and only when the listed object's `metadata.generation` is the
//! one the resolution saw (else a newer update is on its way). A pass whose
//! desired status equals the previous clean pass's is skipped until `refresh`
//! has passed, so endpoint churn costs no API calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::gateway::resolve::{
    resolve, Condition, GatewayClassStatus, GatewayStatus, PolicyAncestorStatus, ResolveSettings,
    RouteParentStatus,
};
use crate::gateway::types::ParentReference;
use crate::gateway::{
    BackendTlsPolicy, Gateway, GatewayClass, GatewayKind, HttpRoute, CONTROLLER_NAME, GROUP,
};
use crate::router::Snapshot;

/// The API version the status is written through.
const VERSION: &str = "v1";

/// What can go wrong writing one kind's status.
#[derive(Debug, thiserror::Error)]
pub enum GatewayStatusError {
    /// An API call failed.
    #[error("{kind}: {source}")]
    Api {
        /// The kind.
        kind: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The desired status did not serialize (a bug).
    #[error("{kind}: cannot serialize the status: {source}")]
    Serialize {
        /// The kind.
        kind: &'static str,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// The listener ports the resolution maps to sluice's entrypoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPorts {
    /// The port of `--http-addr`.
    pub http: u16,
    /// The port of `--https-addr`.
    pub https: u16,
}

impl Default for GatewayPorts {
    /// 80 and 443.
    fn default() -> Self {
        Self {
            http: 80,
            https: 443,
        }
    }
}

/// sluice's part of one object's status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ours {
    Class(GatewayClassStatus),
    Gateway(GatewayStatus),
    Route(Vec<RouteParentStatus>),
    Policy(Vec<PolicyAncestorStatus>),
}

/// One object to bring up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    namespace: String,
    name: String,
    generation: Option<i64>,
    ours: Ours,
}

/// What the writer remembers between passes (cleared when leadership is lost).
#[derive(Debug, Default)]
pub struct GatewayStatusState {
    last: Option<(Vec<Desired>, Instant)>,
}

impl GatewayStatusState {
    /// Forgets the last pass (a new leader may have written something else).
    pub fn clear(&mut self) {
        self.last = None;
    }
}

/// Brings sluice's part of the status of every Gateway API object of
/// `snapshot` up to date (see the module docs), while `leading`.
pub async fn write_gateway_status(
    client: &Client,
    snapshot: &Snapshot,
    ports: GatewayPorts,
    addresses: Vec<String>,
    refresh: Duration,
    leading: &watch::Receiver<bool>,
    state: &mut GatewayStatusState,
) {
    let settings = ResolveSettings {
        http_port: ports.http,
        https_port: ports.https,
        addresses,
        supported_features: crate::gateway::supported_features(),
        addresses_unknown: false,
    };
    let desired = desired(snapshot, &settings);
    if let Some((last, at)) = &state.last {
        if *last == desired && at.elapsed() < refresh {
            return;
        }
    }
    let mut clean = true;
    for kind in [Kind::Class, Kind::Gateway, Kind::Route, Kind::Policy] {
        let todo: Vec<&Desired> = desired.iter().filter(|d| kind.owns(&d.ours)).collect();
        if todo.is_empty() {
            continue;
        }
        if let Err(e) = write_kind(client, kind, &todo, leading).await {
            tracing::warn!(error = %e, "gateway status: write failed; will retry");
            clean = false;
        }
    }
    state.last = clean.then(|| (desired, Instant::now()));
}

/// The four kinds with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Class,
    Gateway,
    Route,
    Policy,
}

impl Kind {
    fn owns(self, ours: &Ours) -> bool {
        matches!(
            (self, ours),
            (Kind::Class, Ours::Class(_))
                | (Kind::Gateway, Ours::Gateway(_))
                | (Kind::Route, Ours::Route(_))
                | (Kind::Policy, Ours::Policy(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Class => GatewayClass::KIND,
            Kind::Gateway => Gateway::KIND,
            Kind::Route => HttpRoute::KIND,
            Kind::Policy => BackendTlsPolicy::KIND,
        }
    }

    fn resource(self) -> ApiResource {
        let plural = match self {
            Kind::Class => GatewayClass::PLURAL,
            Kind::Gateway => Gateway::PLURAL,
            Kind::Route => HttpRoute::PLURAL,
            Kind::Policy => BackendTlsPolicy::PLURAL,
        };
        ApiResource {
            group: GROUP.to_owned(),
            version: VERSION.to_owned(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: self.name().to_owned(),
            plural: plural.to_owned(),
        }
    }
}

/// sluice's part of the status of each object it has something to say about:
/// its classes and Gateways, and every route and policy of the snapshot
/// (nothing, when the resolution does not list it: sluice's old entries go).
fn desired(snapshot: &Snapshot, settings: &ResolveSettings) -> Vec<Desired> {
    let resolution = resolve(snapshot, settings);
    let mut out = Vec::new();
    for c in &resolution.classes {
        out.push(Desired {
            namespace: String::new(),
            name: c.class.name().to_owned(),
            generation: c.class.metadata.generation,
            ours: Ours::Class(c.status.clone()),
        });
    }
    for g in &resolution.gateways {
        out.push(Desired {
            namespace: g.id.namespace.clone(),
            name: g.id.name.clone(),
            generation: g.gateway.metadata.generation,
            ours: Ours::Gateway(g.status.clone()),
        });
    }
    for route in &snapshot.http_routes {
        let parents = resolution
            .route(route.namespace(), route.name())
            .map(|r| r.status.parents.clone())
            .unwrap_or_default();
        out.push(Desired {
            namespace: route.namespace().to_owned(),
            name: route.name().to_owned(),
            generation: route.metadata.generation,
            ours: Ours::Route(parents),
        });
    }
    for policy in &snapshot.backend_tls_policies {
        let ancestors = resolution
            .policies
            .iter()
            .find(|p| p.id.namespace == policy.namespace() && p.id.name == policy.name())
            .map(|p| p.status.ancestors.clone())
            .unwrap_or_default();
        out.push(Desired {
            namespace: policy.namespace().to_owned(),
            name: policy.name().to_owned(),
            generation: policy.metadata.generation,
            ours: Ours::Policy(ancestors),
        });
    }
    out
}

/// Lists `kind` once and patches each object of `todo` whose merged status differs.
async fn write_kind(
    client: &Client,
    kind: Kind,
    todo: &[&Desired],
    leading: &watch::Receiver<bool>,
) -> Result<(), GatewayStatusError> {
    let name = kind.name();
    let resource = kind.resource();
    let api = |ns: &str| -> Api<DynamicObject> {
        if ns.is_empty() {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
    };
    let listed = api("")
        .list(&ListParams::default())
        .await
        .map_err(|source| GatewayStatusError::Api { kind: name, source })?;
    let current: HashMap<(String, String), DynamicObject> = listed
        .items
        .into_iter()
        .filter_map(|o| {
            let key = (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone()?,
            );
            Some((key, o))
        })
        .collect();
    let now = now();
    let mut failed: Option<GatewayStatusError> = None;
    for want in todo {
        let Some(object) = current.get(&(want.namespace.clone(), want.name.clone())) else {
            continue; // Deleted since the snapshot.
        };
        if object.metadata.generation != want.generation {
            continue; // Changed since the snapshot: the next update resolves it.
        }
        let status = object.data.get("status").cloned().unwrap_or(Value::Null);
        let merged = merge(&status, &want.ours, &now)
            .map_err(|source| GatewayStatusError::Serialize { kind: name, source })?;
        if merged == status {
            continue;
        }
        // Losing the lease stops writing at once, even mid-pass.
        if !*leading.borrow() {
            return Ok(());
        }
        let body = json!({
            "metadata": { "resourceVersion": object.metadata.resource_version },
            "status": merged,
        });
        match api(&want.namespace)
            .patch_status(&want.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                tracing::info!(kind = name, namespace = %want.namespace, name = %want.name, "gateway status: written")
            }
            Err(source) => failed = Some(GatewayStatusError::Api { kind: name, source }),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Now, as `metav1.Time` writes it (RFC 3339, seconds, UTC).
fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The object's new status: `current` with sluice's part replaced by `ours`.
fn merge(current: &Value, ours: &Ours, now: &str) -> Result<Value, serde_json::Error> {
    let mut out: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    match ours {
        Ours::Class(s) => {
            let conditions = merge_conditions(out.get("conditions"), &s.conditions, now)?;
            out.insert("conditions".into(), conditions);
            if !s.supported_features.is_empty() {
                out.insert(
                    "supportedFeatures".into(),
                    serde_json::to_value(&s.supported_features)?,
                );
            }
        }
        Ours::Gateway(s) => {
            let conditions = merge_conditions(out.get("conditions"), &s.conditions, now)?;
            out.insert("conditions".into(), conditions);
            if s.addresses.is_empty() {
                out.remove("addresses");
            } else {
                out.insert("addresses".into(), serde_json::to_value(&s.addresses)?);
            }
            let old = list(out.get("listeners"));
            let mut listeners = Vec::new();
            for l in &s.listeners {
                let before = old.iter().find(|o| o["name"].as_str() == Some(&l.name));
                let mut l = l.clone();
                stamp(
                    &mut l.conditions,
                    before
                        .map(|b| list(b.get("conditions")))
                        .unwrap_or_default(),
                    now,
                );
                listeners.push(serde_json::to_value(&l)?);
            }
            out.insert("listeners".into(), Value::Array(listeners));
        }
        Ours::Route(parents) => {
            let entries = merge_entries(
                out.get("parents"),
                parents,
                "parentRef",
                |p| &p.parent_ref,
                |p| &mut p.conditions,
                now,
            )?;
            insert_entries(&mut out, "parents", entries);
        }
        Ours::Policy(ancestors) => {
            let entries = merge_entries(
                out.get("ancestors"),
                ancestors,
                "ancestorRef",
                |a| &a.ancestor_ref,
                |a| &mut a.conditions,
                now,
            )?;
            insert_entries(&mut out, "ancestors", entries);
        }
    }
    if out.is_empty() && current.is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Object(out))
}

/// Sets `field` to `entries`, unless both it is absent and `entries` empty
/// (a route nobody has written to stays without status).
fn insert_entries(out: &mut Map<String, Value>, field: &str, entries: Value) {
    let empty = entries.as_array().is_some_and(Vec::is_empty);
    if !empty || out.contains_key(field) {
        out.insert(field.to_owned(), entries);
    }
}

/// The array at `value`, or nothing.
fn list(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Fills `lastTransitionTime`: the current condition's of the same type when
/// its status is the same, else `now`.
fn stamp(conditions: &mut [Condition], current: Vec<Value>, now: &str) {
    for c in conditions {
        let status = serde_json::to_value(c.status).ok();
        let kept = current
            .iter()
            .find(|o| o["type"].as_str() == Some(&c.type_))
            .filter(|o| status.as_ref() == o.get("status"))
            .and_then(|o| o["lastTransitionTime"].as_str());
        c.last_transition_time = Some(kept.unwrap_or(now).to_owned());
    }
}

/// `current` conditions with each of `ours` replacing the one of its type (in
/// place), the new types appended.
fn merge_conditions(
    current: Option<&Value>,
    ours: &[Condition],
    now: &str,
) -> Result<Value, serde_json::Error> {
    let current = list(current);
    let mut ours = ours.to_vec();
    stamp(&mut ours, current.clone(), now);
    let mut out = Vec::new();
    for c in &current {
        match ours.iter().find(|o| c["type"].as_str() == Some(&o.type_)) {
            Some(o) => out.push(serde_json::to_value(o)?),
            None => out.push(c.clone()),
        }
    }
    for o in &ours {
        if !current.iter().any(|c| c["type"].as_str() == Some(&o.type_)) {
            out.push(serde_json::to_value(o)?);
        }
    }
    Ok(Value::Array(out))
}

/// Route `parents` / policy `ancestors`: other controllers' entries kept in
/// place, sluice's replaced by `ours` (conditions stamped against sluice's
/// current entry for the same reference).
fn merge_entries<T: Clone + Serialize + DeserializeOwned>(
    current: Option<&Value>,
    ours: &[T],
    ref_field: &str,
    reference: impl Fn(&T) -> &ParentReference,
    conditions: impl Fn(&mut T) -> &mut Vec<Condition>,
    now: &str,
) -> Result<Value, serde_json::Error> {
    let current = list(current);
    let is_ours = |e: &Value| e["controllerName"].as_str() == Some(CONTROLLER_NAME);
    let mut out: Vec<Value> = current.iter().filter(|e| !is_ours(e)).cloned().collect();
    for entry in ours {
        let mut entry = entry.clone();
        let before = current.iter().filter(|e| is_ours(e)).find(|e| {
            e.get(ref_field)
                .and_then(|r| serde_json::from_value::<ParentReference>(r.clone()).ok())
                .is_some_and(|r| r == *reference(&entry))
        });
        let old = before
            .map(|b| list(b.get("conditions")))
            .unwrap_or_default();
        stamp(conditions(&mut entry), old, now);
        out.push(serde_json::to_value(&entry)?);
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::resolve::{ConditionStatus, ListenerStatus};

    const THEN: &str = "2026-01-01T00:00:00Z";
    const NOW: &str = "2026-12-07T12:00:00Z";

    fn cond(type_: &str, ok: bool) -> Condition {
        Condition::new(type_, ok, "Reason", "", Some(2))
    }

    fn parent(name: &str) -> ParentReference {
        serde_json::from_value(json!({
            "group": GROUP, "kind": "Gateway", "name": name
        }))
        .expect("a parentRef")
    }

    #[test]
    fn pending_placeholders_are_replaced_and_other_types_kept() {
        let current = json!({"conditions": [
            {"type": "Accepted", "status": "Unknown", "reason": "Pending",
             "message": "Waiting for controller", "lastTransitionTime": THEN},
            {"type": "Custom", "status": "True", "reason": "X", "message": "",
             "lastTransitionTime": THEN},
        ]});
        let ours = Ours::Class(GatewayClassStatus {
            conditions: vec![cond("Accepted", true), cond("SupportedVersion", true)],
            supported_features: Vec::new(),
        });
        let merged = merge(&current, &ours, NOW).expect("merges");
        let c = merged["conditions"].as_array().expect("conditions");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0]["status"], "True");
        assert_eq!(c[0]["lastTransitionTime"], NOW);
        assert_eq!(c[0]["observedGeneration"], 2);
        assert_eq!(c[1]["type"], "Custom");
        assert_eq!(c[2]["type"], "SupportedVersion");
    }

    #[test]
    fn unchanged_status_keeps_its_time_and_merges_to_the_same_value() {
        let ours = Ours::Gateway(GatewayStatus {
            addresses: Vec::new(),
            conditions: vec![cond("Accepted", true), cond("Programmed", false)],
            listeners: vec![ListenerStatus {
                name: "http".into(),
                supported_kinds: Vec::new(),
                attached_routes: 1,
                conditions: vec![cond("Accepted", true)],
            }],
        });
        let first = merge(&Value::Null, &ours, THEN).expect("merges");
        let again = merge(&first, &ours, NOW).expect("merges");
        assert_eq!(first, again, "nothing changed: nothing to write");
        let Ours::Gateway(mut changed) = ours else {
            unreachable!()
        };
        changed.conditions[1].status = ConditionStatus::True;
        let third = merge(&first, &Ours::Gateway(changed), NOW).expect("merges");
        assert_eq!(third["conditions"][0]["lastTransitionTime"], THEN);
        assert_eq!(third["conditions"][1]["lastTransitionTime"], NOW);
        assert_eq!(
            third["listeners"][0]["conditions"][0]["lastTransitionTime"],
            THEN
        );
    }

    #[test]
    fn other_controllers_parents_are_kept_and_ours_replaced() {
        let current = json!({"parents": [
            {"parentRef": {"group": GROUP, "kind": "Gateway", "name": "theirs"},
             "controllerName": "example.com/other", "conditions": []},
            {"parentRef": {"group": GROUP, "kind": "Gateway", "name": "gone"},
             "controllerName": CONTROLLER_NAME, "conditions": []},
        ]});
        let ours = Ours::Route(vec![RouteParentStatus {
            parent_ref: parent("web"),
            controller_name: CONTROLLER_NAME.into(),
            conditions: vec![cond("Accepted", true)],
        }]);
        let merged = merge(&current, &ours, NOW).expect("merges");
        let p = merged["parents"].as_array().expect("parents");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0]["controllerName"], "example.com/other");
        assert_eq!(p[1]["parentRef"]["name"], "web");
        let cleared = merge(&merged, &Ours::Route(Vec::new()), NOW).expect("merges");
        assert_eq!(cleared["parents"].as_array().map(Vec::len), Some(1));
    }
}
