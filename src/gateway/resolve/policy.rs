//! BackendTLSPolicy: which policy applies to which Service port, whether it
//! is usable, and its status on each Gateway (ancestor) whose accepted routes
//! send traffic to one of its targets.
//!
//! Targets are Services in the policy's namespace, optionally one named port
//! (`sectionName`). When several policies target the same Service and
//! section, the oldest (then the first by namespace/name) wins and the others
//! are `Conflicted`. A policy for a named port wins over one for the whole
//! Service on that port. A winning policy that is not usable (no valid CA, an
//! invalid hostname...) still applies: connections to its targets fail (5xx),
//! never fall back to plain text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::conditions::{reasons, types, Condition, Refusal};
use super::hostname;
use super::index::Index;
use super::refs::NamespacedName;
use super::status::{PolicyAncestorStatus, PolicyStatus};
use crate::gateway::types::{ParentReference, SubjectAltName, SubjectAltNameType};
use crate::gateway::{BackendTlsPolicy, Gateway, GatewayKind, CONTROLLER_NAME, GROUP};
use crate::tls;

/// The most ancestors a policy status holds (the API's limit).
const MAX_ANCESTORS: usize = 16;

/// The `wellKnownCACertificates` value sluice supports.
const SYSTEM: &str = "System";

/// The key under which ConfigMaps and Secrets hold a CA bundle.
const CA_KEY: &str = "ca.crt";

/// What a backend's certificate is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaTrust {
    /// The platform's trust store (`wellKnownCACertificates: System`).
    System,
    /// These PEM CA certificates (the valid `caCertificateRefs`, concatenated).
    Pem(Vec<u8>),
}

/// How to speak TLS to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The SNI sent, and the name verified when `subject_alt_names` is empty.
    pub hostname: String,
    /// Names of which the backend's certificate must carry one.
    pub subject_alt_names: Vec<SubjectAltName>,
    /// The CAs.
    pub trust: CaTrust,
}

/// The policy that applies to a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls {
    /// The policy.
    pub policy: NamespacedName,
    /// How to verify the backend, or why the policy is unusable (then every
    /// connection to the port fails with a 5xx answer).
    pub verification: Result<Verification, String>,
}

/// One BackendTLSPolicy.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    /// The policy.
    pub policy: Arc<BackendTlsPolicy>,
    /// Its identity.
    pub id: NamespacedName,
    /// Its status (ancestors: the Gateways using its targets, by name).
    pub status: PolicyStatus,
}

/// The policies, and the one that applies to each (namespace, Service, port).
pub(super) struct Policies {
    /// Every policy, by namespace/name.
    pub resolved: Vec<ResolvedPolicy>,
    /// (namespace, Service, port number) → the policy that applies.
    pub by_port: HashMap<(String, String, i32), BackendTls>,
}

/// Where accepted routes send traffic: (namespace, Service) → (Gateway
/// index, Service port) pairs.
pub(super) type Usage = HashMap<(String, String), BTreeSet<(usize, i32)>>;

/// One policy's verdict, before ancestors.
struct Verdict {
    /// `Accepted`: Ok, or (reason, message).
    accepted: Result<(), Refusal>,
    /// `ResolvedRefs`: Ok, or (reason, message).
    resolved: Result<(), Refusal>,
    /// What applies to its targets.
    tls: BackendTls,
    /// (Service, section) targets that exist.
    targets: Vec<(String, Option<String>)>,
}

/// Resolves every policy. `gateways` are sluice's Gateways by index (for
/// ancestor references).
pub(super) fn resolve(
    policies: &[Arc<BackendTlsPolicy>],
    index: &Index<'_>,
    usage: &Usage,
    gateways: &[Arc<Gateway>],
) -> Policies {
    let mut sorted: Vec<&Arc<BackendTlsPolicy>> = policies.iter().collect();
    sorted.sort_by(|a, b| {
        let age = |p: &BackendTlsPolicy| p.metadata.creation_timestamp.clone();
        // No timestamp (a file): after every timestamped policy.
        let (ta, tb) = (age(a), age(b));
        (ta.is_none(), ta)
            .cmp(&(tb.is_none(), tb))
            .then_with(|| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())))
    });
    let mut verdicts: Vec<Verdict> = sorted.iter().map(|p| judge(p, index)).collect();

    // Precedence: the first (oldest) policy per (namespace, Service, section) wins.
    let mut winners: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for (i, (policy, verdict)) in sorted.iter().zip(&verdicts).enumerate() {
        for (service, section) in &verdict.targets {
            let key = (
                policy.namespace().to_owned(),
                service.clone(),
                section.clone(),
            );
            winners.entry(key).or_insert(i);
        }
    }
    for (i, (policy, verdict)) in sorted.iter().zip(verdicts.iter_mut()).enumerate() {
        let lost: Vec<String> = verdict
            .targets
            .iter()
            .filter(|(service, section)| {
                let key = (
                    policy.namespace().to_owned(),
                    service.clone(),
                    section.clone(),
                );
                winners.get(&key) != Some(&i)
            })
            .map(|(service, section)| target_name(service, section.as_deref()))
            .collect();
        if !lost.is_empty() && verdict.accepted.is_ok() {
            verdict.accepted = Err((
                reasons::CONFLICTED,
                format!("an older BackendTLSPolicy targets {}", lost.join(", ")),
            ));
        }
    }

    let by_port = effective(&verdicts, &winners, index);
    let resolved = sorted
        .iter()
        .zip(&verdicts)
        .map(|(policy, verdict)| ResolvedPolicy {
            policy: Arc::clone(policy),
            id: NamespacedName::new(policy.namespace(), policy.name()),
            status: status(policy, verdict, usage, gateways, index),
        })
        .collect();
    Policies { resolved, by_port }
}

fn target_name(service: &str, section: Option<&str>) -> String {
    match section {
        Some(section) => format!("Service {service:?} port {section:?}"),
        None => format!("Service {service:?}"),
    }
}

/// The named port of `service` numbered `port`.
fn port_name(service: &Service, port: i32) -> Option<&str> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == port)?
        .name
        .as_deref()
}

/// Which policy applies to each port of each targeted Service: the winner
/// for the port's name, else the winner for the whole Service.
fn effective(
    verdicts: &[Verdict],
    winners: &HashMap<(String, String, Option<String>), usize>,
    index: &Index<'_>,
) -> HashMap<(String, String, i32), BackendTls> {
    let mut by_port = HashMap::new();
    let services: BTreeSet<(&str, &str)> = winners
        .keys()
        .map(|(ns, service, _)| (ns.as_str(), service.as_str()))
        .collect();
    for (namespace, name) in services {
        let Some(service) = index.service(namespace, name) else {
            continue;
        };
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        for port in ports {
            let key = |section: Option<&str>| {
                (
                    namespace.to_owned(),
                    name.to_owned(),
                    section.map(str::to_owned),
                )
            };
            let winner = port
                .name
                .as_deref()
                .and_then(|section| winners.get(&key(Some(section))))
                .or_else(|| winners.get(&key(None)));
            if let Some(&i) = winner {
                by_port.insert(
                    (namespace.to_owned(), name.to_owned(), port.port),
                    verdicts[i].tls.clone(),
                );
            }
        }
    }
    by_port
}

/// Validates one policy: its targets, CAs, hostname and names.
fn judge(policy: &BackendTlsPolicy, index: &Index<'_>) -> Verdict {
    let namespace = policy.namespace();
    let id = NamespacedName::new(namespace, policy.name());
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for target in &policy.spec.target_refs {
        let service = (target.group.is_empty() && target.kind == "Service")
            .then(|| index.service(namespace, &target.name))
            .flatten();
        let section_ok = |s: &Service| {
            target.section_name.as_deref().is_none_or(|section| {
                s.spec
                    .as_ref()
                    .and_then(|spec| spec.ports.as_ref())
                    .is_some_and(|ports| ports.iter().any(|p| p.name.as_deref() == Some(section)))
            })
        };
        match service {
            Some(s) if section_ok(s) => {
                targets.push((target.name.clone(), target.section_name.clone()))
            }
            _ => missing.push(format!(
                "{}/{} {:?}{}",
                target.group,
                target.kind,
                target.name,
                target
                    .section_name
                    .as_deref()
                    .map(|s| format!(" port {s:?}"))
                    .unwrap_or_default()
            )),
        }
    }
    let (trust, resolved) = trust(policy, index);
    let checks = validation_problem(policy);
    let accepted = if !missing.is_empty() {
        Err((
            reasons::TARGET_NOT_FOUND,
            format!("targets not found: {}", missing.join(", ")),
        ))
    } else if let Err(why) = &checks {
        Err((reasons::INVALID, why.clone()))
    } else if let Err((reason, why)) = &trust {
        Err((*reason, why.clone()))
    } else {
        Ok(())
    };
    let verification = match (&checks, &trust) {
        (Err(why), _) | (Ok(()), Err((_, why))) => Err(why.clone()),
        (Ok(()), Ok(trust)) => Ok(Verification {
            hostname: policy.spec.validation.hostname.to_ascii_lowercase(),
            subject_alt_names: policy.spec.validation.subject_alt_names.clone(),
            trust: trust.clone(),
        }),
    };
    Verdict {
        accepted,
        resolved,
        tls: BackendTls {
            policy: id,
            verification,
        },
        targets,
    }
}

/// `hostname` and `subjectAltNames`: Ok, or why the policy is `Invalid`.
fn validation_problem(policy: &BackendTlsPolicy) -> Result<(), String> {
    let validation = &policy.spec.validation;
    match hostname::normalize(&validation.hostname) {
        Ok(h) if h.starts_with("*.") => {
            return Err(format!("hostname {h:?} must not be a wildcard"))
        }
        Ok(_) => {}
        Err(e) => return Err(format!("hostname: {e}")),
    }
    for san in &validation.subject_alt_names {
        let ok = match san.type_ {
            SubjectAltNameType::Hostname => san.hostname.as_deref().is_some_and(|h| !h.is_empty()),
            SubjectAltNameType::Uri => san.uri.as_deref().is_some_and(|u| u.contains(':')),
            SubjectAltNameType::Other(_) => false,
        };
        if !ok {
            return Err(format!("invalid subjectAltNames entry {san:?}"));
        }
    }
    Ok(())
}

/// The CAs (Ok, or the `Accepted=False` reason and message) and the
/// `ResolvedRefs` verdict.
fn trust(
    policy: &BackendTlsPolicy,
    index: &Index<'_>,
) -> (Result<CaTrust, Refusal>, Result<(), Refusal>) {
    let validation = &policy.spec.validation;
    let refs = &validation.ca_certificate_refs;
    match (
        validation.well_known_ca_certificates.as_deref(),
        refs.is_empty(),
    ) {
        (Some(_), false) => {
            let why = "set caCertificateRefs or wellKnownCACertificates, not both".to_owned();
            return (Err((reasons::INVALID, why)), Ok(()));
        }
        (Some(SYSTEM), true) => return (Ok(CaTrust::System), Ok(())),
        (Some(other), true) => {
            let why = format!("wellKnownCACertificates {other:?} is not supported (System is)");
            return (Err((reasons::INVALID, why)), Ok(()));
        }
        (None, true) => {
            let why = "caCertificateRefs or wellKnownCACertificates is required".to_owned();
            return (Err((reasons::INVALID, why)), Ok(()));
        }
        (None, false) => {}
    }
    let namespace = policy.namespace();
    let mut pem = Vec::new();
    let mut problems: Vec<Refusal> = Vec::new();
    for reference in refs {
        let what = format!(
            "caCertificateRef {} {namespace}/{}",
            reference.kind, reference.name
        );
        let bundle: Result<Vec<u8>, Refusal> =
            match (reference.group.as_str(), reference.kind.as_str()) {
                ("", "ConfigMap") => index
                    .config_map(namespace, &reference.name)
                    .ok_or_else(|| "not found".to_owned())
                    .and_then(|cm| {
                        cm.data
                            .as_ref()
                            .and_then(|d| d.get(CA_KEY))
                            .map(|s| s.as_bytes().to_vec())
                            .or_else(|| cm.binary_data.as_ref()?.get(CA_KEY).map(|b| b.0.clone()))
                            .ok_or_else(|| format!("no {CA_KEY:?} key"))
                    })
                    .map_err(|why| {
                        (
                            reasons::INVALID_CA_CERTIFICATE_REF,
                            format!("{what}: {why}"),
                        )
                    }),
                ("", "Secret") => index
                    .secret(namespace, &reference.name)
                    .ok_or_else(|| "not found".to_owned())
                    .and_then(|s| {
                        s.data
                            .as_ref()
                            .and_then(|d| d.get(CA_KEY))
                            .map(|b| b.0.clone())
                            .or_else(|| {
                                s.string_data
                                    .as_ref()?
                                    .get(CA_KEY)
                                    .map(|v| v.as_bytes().to_vec())
                            })
                            .ok_or_else(|| format!("no {CA_KEY:?} key"))
                    })
                    .map_err(|why| {
                        (
                            reasons::INVALID_CA_CERTIFICATE_REF,
                            format!("{what}: {why}"),
                        )
                    }),
                (group, kind) => Err((
                    reasons::INVALID_KIND,
                    format!(
                    "{what}: kind {kind:?} in group {group:?} is not supported (ConfigMap, Secret)"
                ),
                )),
            };
        match bundle.and_then(|b| {
            tls::verifying_client_config(&b, &[])
                .map(|_| b)
                .map_err(|e| (reasons::INVALID_CA_CERTIFICATE_REF, format!("{what}: {e}")))
        }) {
            Ok(bundle) => {
                pem.extend_from_slice(&bundle);
                if !pem.ends_with(b"\n") {
                    pem.push(b'\n');
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    let resolved = match problems.first() {
        None => Ok(()),
        Some((reason, _)) => Err((
            *reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    };
    let trust = if pem.is_empty() {
        let why = resolved
            .as_ref()
            .err()
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        Err((reasons::NO_VALID_CA_CERTIFICATE, why))
    } else {
        Ok(CaTrust::Pem(pem))
    };
    (trust, resolved)
}

/// The policy's status: one ancestor per Gateway (by namespace/name, at most
/// 16) whose accepted routes send traffic to one of its targets.
fn status(
    policy: &BackendTlsPolicy,
    verdict: &Verdict,
    usage: &Usage,
    gateways: &[Arc<Gateway>],
    index: &Index<'_>,
) -> PolicyStatus {
    let namespace = policy.namespace();
    let mut ancestors: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (service, section) in &verdict.targets {
        let Some(used) = usage.get(&(namespace.to_owned(), service.clone())) else {
            continue;
        };
        let object = index.service(namespace, service);
        for &(gateway, port) in used {
            let section_ok = section
                .as_deref()
                .is_none_or(|section| object.and_then(|s| port_name(s, port)) == Some(section));
            if let (true, Some(g)) = (section_ok, gateways.get(gateway)) {
                ancestors.insert((g.namespace(), g.name()), gateway);
            }
        }
    }
    let generation = policy.metadata.generation;
    let accepted = match &verdict.accepted {
        Ok(()) => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "", generation),
        Err((reason, message)) => {
            Condition::new(types::ACCEPTED, false, reason, message.clone(), generation)
        }
    };
    let resolved = match &verdict.resolved {
        Ok(()) => Condition::new(
            types::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            "",
            generation,
        ),
        Err((reason, message)) => Condition::new(
            types::RESOLVED_REFS,
            false,
            reason,
            message.clone(),
            generation,
        ),
    };
    PolicyStatus {
        ancestors: ancestors
            .keys()
            .take(MAX_ANCESTORS)
            .map(|(ns, name)| PolicyAncestorStatus {
                ancestor_ref: ParentReference {
                    group: GROUP.to_owned(),
                    kind: Gateway::KIND.to_owned(),
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                    section_name: None,
                    port: None,
                },
                controller_name: CONTROLLER_NAME.to_owned(),
                conditions: vec![accepted.clone(), resolved.clone()],
            })
            .collect(),
    }
}
