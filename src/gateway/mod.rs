//! Kubernetes Gateway API objects (`gateway.networking.k8s.io`): the types
//! sluice reads, how they are decoded, and the defaults the API server would
//! have filled.
//!
//! - [`types`]: hand-written serde types for GatewayClass, Gateway, HTTPRoute,
//!   ReferenceGrant (`v1` and `v1beta1`) and BackendTLSPolicy (`v1`): the
//!   standard channel of Gateway API v1.6 plus HTTPRoute's experimental
//!   `retry`. `status` is never read.
//! - [`defaults`]: one function per kind for the defaults that concern whole
//!   lists (a route without rules, a rule without matches); field defaults
//!   come from the types' `Default` impls while decoding.
//! - [`decode`]: the one way both providers turn API JSON into a typed object
//!   (nulls pruned, decoded, defaulted), so a file and the API server give the
//!   compiler the same object.
//!
//! This module reads nothing else of sluice: the providers (`watch/`) store
//! these objects in the [`crate::router::Snapshot`], and the compiler reads them there.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub mod defaults;
pub mod resolve;
pub mod types;

pub use types::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The `GatewayClass.spec.controllerName` of the classes sluice serves.
pub const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";

/// The Gateway API features sluice implements, as the conformance suite
/// names them (`pkg/features`), for GatewayClass `status.supportedFeatures`.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "Gateway",
    "GatewayHTTPListenerIsolation",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteBackendURLRewrite",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

/// [`SUPPORTED_FEATURES`] as owned strings, for
/// [`resolve::ResolveSettings::supported_features`].
pub fn supported_features() -> Vec<String> {
    SUPPORTED_FEATURES.iter().map(|f| (*f).to_owned()).collect()
}

/// A Gateway API kind sluice reads: its names on the API server, and decoding.
pub trait GatewayKind:
    DeserializeOwned + Serialize + Clone + PartialEq + Debug + Send + Sync + 'static
{
    /// The kind, as in `kind:` (`HTTPRoute`).
    const KIND: &'static str;
    /// The resource name in API paths (`httproutes`).
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// The versions read, preferred first (the Kubernetes provider falls back
    /// to the next when the server does not serve one).
    const VERSIONS: &'static [&'static str];

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;

    /// The object's metadata, to change.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// Applies this kind's function of [`defaults`].
    fn apply_defaults(&mut self);

    /// Whether `api_version` (`gateway.networking.k8s.io/v1`) is one of [`Self::VERSIONS`].
    fn reads_api_version(api_version: &str) -> bool {
        api_version
            .strip_prefix(GROUP)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|version| Self::VERSIONS.contains(&version))
    }
}

macro_rules! kind {
    ($type:ty, $kind:literal, $plural:literal, $namespaced:literal, $versions:expr, $defaults:path) => {
        impl GatewayKind for $type {
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;
            const VERSIONS: &'static [&'static str] = $versions;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }

            fn apply_defaults(&mut self) {
                $defaults(self);
            }
        }

        impl $type {
            /// The object's name (`""` if unset).
            pub fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or("")
            }

            /// The object's namespace (`default` if unset; cluster-scoped kinds have none).
            pub fn namespace(&self) -> &str {
                self.metadata.namespace.as_deref().unwrap_or("default")
            }
        }
    };
}

kind!(
    GatewayClass,
    "GatewayClass",
    "gatewayclasses",
    false,
    &["v1"],
    defaults::gateway_class
);
kind!(
    Gateway,
    "Gateway",
    "gateways",
    true,
    &["v1"],
    defaults::gateway
);
kind!(
    HttpRoute,
    "HTTPRoute",
    "httproutes",
    true,
    &["v1"],
    defaults::http_route
);
kind!(
    ReferenceGrant,
    "ReferenceGrant",
    "referencegrants",
    true,
    &["v1", "v1beta1"],
    defaults::reference_grant
);
kind!(
    BackendTlsPolicy,
    "BackendTLSPolicy",
    "backendtlspolicies",
    true,
    &["v1"],
    defaults::backend_tls_policy
);

/// Why an object could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct DecodeError {
    /// The kind being decoded.
    pub kind: &'static str,
    /// What serde said (with the field's path where it knows it).
    pub source: serde_json::Error,
}

/// Decodes one object from API JSON as the API server would store it: `null`
/// fields pruned (the API server prunes them from non-nullable fields before
/// defaulting), the rest decoded with the CRD's field defaults, then the
/// kind's list defaults applied. `status` and unknown fields are ignored.
///
/// # Errors
///
/// A field of the wrong type (a string where a number belongs, a list where a
/// mapping belongs).
pub fn decode<K: GatewayKind>(mut value: Value) -> Result<K, DecodeError> {
    if let Value::Object(map) = &mut value {
        map.remove("status");
    }
    prune_nulls(&mut value);
    let mut object: K = serde_json::from_value(value).map_err(|source| DecodeError {
        kind: K::KIND,
        source,
    })?;
    object.apply_defaults();
    Ok(object)
}

/// Removes every mapping entry whose value is `null`, at any depth (`weight:`
/// with nothing after it in YAML means "absent", as on the API server).
pub fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// Why a Gateway API duration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Gateway API duration {0:?} (expected up to 4 of <1-5 digits><h|m|s|ms>, such as 1m30s)")]
pub struct DurationError(pub String);

/// Parses a Gateway API duration (GEP-2257: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`,
/// such as `10s`, `1h30m`, `500ms`; `0s` is zero), as used by
/// `timeouts.request`, `timeouts.backendRequest` and `retry.backoff`.
///
/// # Errors
///
/// Anything outside that syntax (`1.5s`, `10`, `1d`, five components).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = || DurationError(text.to_owned());
    let mut rest = text.as_bytes();
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 5 || parts == 4 {
            return Err(fail());
        }
        let mut number: u64 = 0;
        for b in &rest[..digits] {
            number = number * 10 + u64::from(b - b'0');
        }
        rest = &rest[digits..];
        let (unit, len) = match rest {
            [b'm', b's', ..] => (Duration::from_millis(1), 2),
            [b'h', ..] => (Duration::from_secs(3600), 1),
            [b'm', ..] => (Duration::from_secs(60), 1),
            [b's', ..] => (Duration::from_secs(1), 1),
            _ => return Err(fail()),
        };
        rest = &rest[len..];
        // At most 99999 h, far from overflowing.
        total += unit * u32::try_from(number).map_err(|_| fail())?;
        parts += 1;
    }
    if parts == 0 {
        return Err(fail());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_gep_2257() {
        let ok = [
            ("0s", Duration::ZERO),
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m1s1ms", Duration::from_millis(61_001)),
            ("1h1m1s1ms", Duration::from_millis(3_661_001)),
            ("99999h", Duration::from_secs(99_999 * 3600)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "10",
            "1.5s",
            "1d",
            "s",
            "-1s",
            "100000s",
            "1h1m1s1ms1h",
            " 1s",
            "1S",
            "1us",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn api_versions_read_per_kind() {
        assert!(HttpRoute::reads_api_version("gateway.networking.k8s.io/v1"));
        assert!(!HttpRoute::reads_api_version(
            "gateway.networking.k8s.io/v1beta1"
        ));
        assert!(ReferenceGrant::reads_api_version(
            "gateway.networking.k8s.io/v1beta1"
        ));
        assert!(!Gateway::reads_api_version("networking.k8s.io/v1"));
        assert!(!Gateway::reads_api_version("gateway.networking.k8s.iov1"));
    }

    #[test]
    fn nulls_are_absent_and_status_is_ignored() {
        let route: HttpRoute = decode(serde_json::json!({
            "metadata": {"name": "r", "namespace": "apps"},
            "spec": {
                "parentRefs": [{"name": "gw", "kind": null}],
                "rules": [{"backendRefs": [{"name": "web", "port": 80, "weight": null}]}],
            },
            "status": {"parents": [{"controllerName": "x", "parentRef": {"name": 7}}]},
        }))
        .expect("decodes");
        assert_eq!(route.spec.parent_refs[0].kind, "Gateway");
        assert_eq!(route.spec.rules[0].backend_refs[0].weight, 1);
        assert_eq!((route.namespace(), route.name()), ("apps", "r"));
    }

    #[test]
    fn wrong_types_fail_with_the_kind() {
        let err = decode::<Gateway>(serde_json::json!({
            "metadata": {"name": "g"},
            "spec": {"listeners": [{"name": "http", "port": "eighty"}]},
        }))
        .expect_err("a string port");
        assert!(err.to_string().starts_with("Gateway: "), "{err}");
    }
}
