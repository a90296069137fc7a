//! A listener's `tls.certificateRefs`: each becomes a loaded certificate from
//! a `kubernetes.io/tls` Secret, or the reason it cannot be used.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;

use super::conditions::reasons;
use super::index::Index;
use super::refs::{NamespacedName, RefFrom, RefTo};
use crate::gateway::types::SecretObjectReference;
use crate::gateway::{Gateway, GatewayKind, GROUP};
use crate::tls::{self, LoadedCert};

/// The Secret type whose `tls.crt` / `tls.key` sluice serves.
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// A certificate a listener serves.
#[derive(Debug, Clone)]
pub struct ResolvedCertificate {
    /// The Secret it was loaded from.
    pub secret: NamespacedName,
    /// The chain, key and names, ready for the SNI index.
    pub cert: LoadedCert,
}

/// Why a certificate reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertProblem {
    /// `RefNotPermitted` or `InvalidCertificateRef`.
    pub reason: &'static str,
    /// Which reference, and why.
    pub message: String,
}

/// Secrets already loaded in this resolution, by (namespace, name): several
/// listeners often share one certificate.
pub(super) type CertCache = HashMap<(String, String), Result<LoadedCert, String>>;

/// Resolves every reference of `refs` (of a listener of `gateway`): the
/// usable certificates, in order, and the problems of the others.
pub(super) fn resolve(
    gateway: &Gateway,
    refs: &[SecretObjectReference],
    index: &Index<'_>,
    cache: &mut CertCache,
) -> (Vec<ResolvedCertificate>, Vec<CertProblem>) {
    let mut certificates = Vec::new();
    let mut problems = Vec::new();
    for reference in refs {
        match resolve_one(gateway, reference, index, cache) {
            Ok(cert) => certificates.push(cert),
            Err(problem) => problems.push(problem),
        }
    }
    (certificates, problems)
}

fn resolve_one(
    gateway: &Gateway,
    reference: &SecretObjectReference,
    index: &Index<'_>,
    cache: &mut CertCache,
) -> Result<ResolvedCertificate, CertProblem> {
    let namespace = reference
        .namespace
        .as_deref()
        .unwrap_or_else(|| gateway.namespace());
    let id = NamespacedName::new(namespace, &reference.name);
    let invalid = |why: String| CertProblem {
        reason: reasons::INVALID_CERTIFICATE_REF,
        message: format!("certificateRef {id}: {why}"),
    };
    if !reference.group.is_empty() || reference.kind != "Secret" {
        return Err(invalid(format!(
            "unsupported kind {:?} in group {:?} (only core Secrets are)",
            reference.kind, reference.group
        )));
    }
    let permitted = index.grants.permits(
        RefFrom {
            group: GROUP,
            kind: Gateway::KIND,
            namespace: gateway.namespace(),
        },
        RefTo {
            group: "",
            kind: "Secret",
            namespace,
            name: &reference.name,
        },
    );
    if !permitted {
        return Err(CertProblem {
            reason: reasons::REF_NOT_PERMITTED,
            message: format!(
                "certificateRef {id}: no ReferenceGrant in {namespace:?} allows Gateways of {:?} to refer to it",
                gateway.namespace()
            ),
        });
    }
    let Some(secret) = index.secret(namespace, &reference.name) else {
        return Err(invalid("Secret not found".to_owned()));
    };
    let loaded = cache
        .entry((id.namespace.clone(), id.name.clone()))
        .or_insert_with(|| load(secret));
    match loaded {
        Ok(cert) => Ok(ResolvedCertificate {
            secret: id,
            cert: cert.clone(),
        }),
        Err(why) => Err(invalid(why.clone())),
    }
}

/// Loads a Secret's certificate. A Secret without `type` (a manifest file
/// that left it out) is accepted when its data is a certificate; any other
/// explicit type is refused.
fn load(secret: &Secret) -> Result<LoadedCert, String> {
    match secret.type_.as_deref() {
        None | Some(TLS_SECRET_TYPE) => {}
        Some(other) => return Err(format!("Secret type is {other:?}, not {TLS_SECRET_TYPE:?}")),
    }
    tls::load_tls_secret(secret).map_err(|e| e.to_string())
}
