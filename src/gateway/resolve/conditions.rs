//! Status conditions (`metav1.Condition`) and the condition types and reasons
//! of the Gateway API that the resolution sets.
//!
//! A [`Condition`] is what the status writer merges into an object's status:
//! `lastTransitionTime` is left empty here (the writer keeps the old time when
//! `status` did not change, and sets "now" when it did), `observedGeneration`
//! is the object's `metadata.generation` at resolution time.

use serde::{Deserialize, Serialize};

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (never set by sluice; the API server's placeholder).
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            Self::True
        } else {
            Self::False
        }
    }
}

/// One condition, as in `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type (`Accepted`, `ResolvedRefs`...).
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// A CamelCase reason from the specification (`NotAllowedByListeners`...).
    pub reason: String,
    /// A human-readable explanation (may be empty).
    pub message: String,
    /// The object's `metadata.generation` this condition was computed from
    /// (`None` when the object carries none, as in some manifest files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last change of `status`: filled by the status
    /// writer, never by the resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    /// A condition of `type_` with `status`, `reason` and `message`, observed
    /// at `generation`.
    pub fn new(
        type_: &str,
        status: impl Into<ConditionStatus>,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status: status.into(),
            reason: reason.to_owned(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: None,
        }
    }

    /// Whether the condition's status is True.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// A condition's reason and message, for a condition whose status is known
/// from context (why something is refused).
pub(crate) type Refusal = (&'static str, String);

/// The condition of `type_` in `conditions`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Condition types.
pub mod types {
    /// Accepted (every kind).
    pub const ACCEPTED: &str = "Accepted";
    /// Programmed (Gateway, listener).
    pub const PROGRAMMED: &str = "Programmed";
    /// ResolvedRefs (listener, route, BackendTLSPolicy).
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Conflicted (listener).
    pub const CONFLICTED: &str = "Conflicted";
    /// OverlappingTLSConfig (listener; set only when True).
    pub const OVERLAPPING_TLS_CONFIG: &str = "OverlappingTLSConfig";
    /// SupportedVersion (GatewayClass).
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    /// PartiallyInvalid (route; set only when True).
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
}

/// Condition reasons.
pub mod reasons {
    /// Accepted=True (every kind).
    pub const ACCEPTED: &str = "Accepted";
    /// Programmed=True.
    pub const PROGRAMMED: &str = "Programmed";
    /// ResolvedRefs=True.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// SupportedVersion=True.
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    /// GatewayClass Accepted=False: a `parametersRef` sluice cannot use.
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    /// Gateway / listener Programmed=False, Gateway Accepted=False: invalid.
    pub const INVALID: &str = "Invalid";
    /// Gateway Accepted: some (True) or all (False) listeners are invalid.
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    /// Gateway Accepted=False: a requested address type sluice does not support.
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    /// Gateway Programmed=False: a requested address sluice cannot serve on.
    pub const ADDRESS_NOT_USABLE: &str = "AddressNotUsable";
    /// Gateway Programmed=False: no address of the requested type is known.
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    /// Listener Accepted=False: the port is not one sluice listens on for the protocol.
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    /// Listener Accepted=False: a protocol other than HTTP and HTTPS.
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    /// Listener / route Accepted=False: a value sluice does not know.
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    /// Listener Conflicted=True: the same hostname on the same port.
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    /// Listener Conflicted=True: different protocols on the same port.
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    /// Listener Conflicted=False.
    pub const NO_CONFLICTS: &str = "NoConflicts";
    /// Listener OverlappingTLSConfig=True.
    pub const OVERLAPPING_HOSTNAMES: &str = "OverlappingHostnames";
    /// Listener ResolvedRefs=False: a certificate reference that is missing or unusable.
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    /// Listener ResolvedRefs=False: a route kind sluice does not serve.
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    /// ResolvedRefs=False: a cross-namespace reference without a ReferenceGrant.
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// Route Accepted=False: no listener allows the route (namespace or kind).
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    /// Route Accepted=False: no listener hostname intersects the route's.
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    /// Route Accepted=False: no listener has the `sectionName` / `port` asked for.
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// Route Accepted=False: `RequestRedirect` and `URLRewrite` in one rule.
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    /// Route / BackendTLSPolicy ResolvedRefs=False: a reference to an unsupported group or kind.
    pub const INVALID_KIND: &str = "InvalidKind";
    /// Route ResolvedRefs=False: a reference to an object that does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    /// BackendTLSPolicy Accepted=False: an older policy targets the same port.
    pub const CONFLICTED: &str = "Conflicted";
    /// BackendTLSPolicy Accepted=False: the target does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// BackendTLSPolicy Accepted=False: every CA reference is invalid.
    pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";
    /// BackendTLSPolicy ResolvedRefs=False: a CA reference that is missing or unusable.
    pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_metav1_condition_without_transition_time() {
        let condition = Condition::new(
            types::ACCEPTED,
            false,
            reasons::NOT_ALLOWED_BY_LISTENERS,
            "no",
            Some(3),
        );
        assert_eq!(
            serde_json::to_value(&condition).expect("serializes"),
            serde_json::json!({
                "type": "Accepted",
                "status": "False",
                "reason": "NotAllowedByListeners",
                "message": "no",
                "observedGeneration": 3,
            })
        );
    }
}
