//! Certificates: `spec.tls[]` of served Ingresses, compiled into the SNI index the
//! HTTPS listener reads, plus the hosts each Ingress's TLS section covers (for
//! ingress-nginx style redirects).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use super::host::HostPattern;
use super::ingress::Served;
use super::{Diagnostic, DiagnosticKind, ObjectRef, Registries, Snapshot};
use crate::tls::{self, CertIndex, CertInfo, LoadedCert};

/// Secrets by (namespace, name).
pub(super) type Secrets<'a> = HashMap<(&'a str, &'a str), &'a Secret>;

/// Indexes the snapshot's Secrets.
pub(super) fn index_secrets(snapshot: &Snapshot) -> Secrets<'_> {
    snapshot
        .secrets
        .iter()
        .filter_map(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            Some(((ns, s.metadata.name.as_deref()?), &**s))
        })
        .collect()
}

/// The certificate index and, per served Ingress, the hosts its TLS section covers.
pub(super) struct CompiledCerts {
    pub index: CertIndex,
    /// Per served Ingress (same order as the `served` slice): the hosts its TLS section covers.
    pub covered: Vec<Vec<HostPattern>>,
}

/// Compiles every served Ingress's TLS section (oldest Ingress first wins a host).
pub(super) fn compile_certs(
    served: &[Served<'_>],
    listeners: &[super::gateway::ListenerCert],
    secrets: &Secrets<'_>,
    default_secret: Option<&(String, String)>,
    registries: &Registries,
    now: i64,
    diagnostics: &mut Vec<Diagnostic>,
) -> CompiledCerts {
    let mut builder = CertIndex::builder();
    let mut loaded: HashMap<(String, String), Option<LoadedCert>> = HashMap::new();
    let mut owners: HashMap<String, ObjectRef> = HashMap::new();
    let mut covered = Vec::with_capacity(served.len());
    for ing in served {
        let sections = ing
            .ingress
            .spec
            .as_ref()
            .and_then(|s| s.tls.as_deref())
            .unwrap_or_default();
        let mut hosts_of_ingress = Vec::new();
        for section in sections {
            let Some(name) = section.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                // A TLS section without a Secret names hosts for the default certificate.
                hosts_of_ingress.extend(patterns(section.hosts.as_deref().unwrap_or_default()));
                continue;
            };
            let key = (ing.namespace.to_owned(), name.to_owned());
            let cert = loaded
                .entry(key.clone())
                .or_insert_with(|| load(secrets, &key, ing.object, now, diagnostics))
                .clone();
            let Some(cert) = cert else { continue };
            let hosts: Vec<String> = match section.hosts.as_deref() {
                Some(hosts) if !hosts.is_empty() => {
                    hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
                }
                _ => cert.dns_names.clone(),
            };
            for host in &hosts {
                install(&mut builder, &mut owners, host, &cert, ing, diagnostics);
            }
            hosts_of_ingress.extend(patterns(&hosts));
            builder.info(CertInfo {
                secret: Some(key),
                hosts,
                not_after: cert.not_after,
                is_default: false,
                issuer: cert.issuer.clone(),
                subject: cert.subject.clone(),
                used_by: Some(ing.object.clone()),
            });
        }
        covered.push(hosts_of_ingress);
    }
    super::nginx::client_cert::Plan::new(served, secrets).install(&mut builder);
    let listener_default = install_listeners(&mut builder, listeners, diagnostics);
    install_default(
        &mut builder,
        secrets,
        default_secret,
        registries,
        now,
        diagnostics,
        listener_default,
    );
    CompiledCerts {
        index: builder.build(),
        covered,
    }
}

fn install(
    builder: &mut tls::CertIndexBuilder,
    owners: &mut HashMap<String, ObjectRef>,
    host: &str,
    cert: &LoadedCert,
    ing: &Served<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if builder.insert(host, cert.key.clone()) {
        owners.insert(host.to_owned(), ing.object.clone());
        return;
    }
    let Some(owner) = owners.get(host) else {
        return;
    };
    if owner != ing.object {
        diagnostics.push(Diagnostic::error(
            ing.object.clone(),
            DiagnosticKind::Conflict,
            format!("host {host} already has a certificate from {owner}, which is older and wins"),
        ));
    }
}

/// Installs the certificates of Gateway HTTPS listeners under their
/// listener's hostname (after the Ingresses', so an Ingress that already
/// holds a host keeps it); returns the first certificate of a listener
/// without hostname, which serves unknown SNI unless `--default-cert-secret`
/// names another.
fn install_listeners(
    builder: &mut tls::CertIndexBuilder,
    listeners: &[super::gateway::ListenerCert],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<LoadedCert> {
    let mut default = None;
    let mut served: HashMap<(ObjectRef, Option<String>), ()> = HashMap::new();
    for listener in listeners {
        // A listener serves its first usable certificate (one per name).
        if served
            .insert((listener.gateway.clone(), listener.hostname.clone()), ())
            .is_some()
        {
            continue;
        }
        let hosts = match &listener.hostname {
            Some(host) => {
                if !builder.insert(host, listener.cert.key.clone()) {
                    diagnostics.push(Diagnostic::warning(
                        listener.gateway.clone(),
                        DiagnosticKind::Conflict,
                        format!("host {host} already has a certificate; the listener's certificate from Secret {}/{} is not served for it", listener.secret.0, listener.secret.1),
                    ));
                }
                vec![host.clone()]
            }
            None => {
                default.get_or_insert_with(|| listener.cert.clone());
                Vec::new()
            }
        };
        builder.info(CertInfo {
            secret: Some(listener.secret.clone()),
            hosts,
            not_after: listener.cert.not_after,
            is_default: false,
            issuer: listener.cert.issuer.clone(),
            subject: listener.cert.subject.clone(),
            used_by: Some(listener.gateway.clone()),
        });
    }
    default
}

fn install_default(
    builder: &mut tls::CertIndexBuilder,
    secrets: &Secrets<'_>,
    default_secret: Option<&(String, String)>,
    registries: &Registries,
    now: i64,
    diagnostics: &mut Vec<Diagnostic>,
    listener_default: Option<LoadedCert>,
) {
    if let Some(key) = default_secret {
        let object = ObjectRef::namespaced("Secret", &key.0, &key.1);
        if let Some(cert) = load(secrets, key, &object, now, diagnostics) {
            builder.default_cert(cert.key.clone());
            builder.info(CertInfo {
                secret: Some(key.clone()),
                hosts: cert.dns_names.clone(),
                not_after: cert.not_after,
                is_default: true,
                issuer: cert.issuer.clone(),
                subject: cert.subject.clone(),
                used_by: None,
            });
            return;
        }
    }
    if let Some(cert) = listener_default {
        // Its info was recorded with the listener.
        builder.default_cert(cert.key);
        return;
    }
    if let Some(cert) = registries.generated_default_cert() {
        builder.default_cert(cert.key.clone());
        builder.info(CertInfo {
            secret: None,
            hosts: Vec::new(),
            not_after: cert.not_after,
            is_default: true,
            issuer: cert.issuer.clone(),
            subject: cert.subject.clone(),
            used_by: None,
        });
    }
}

/// Loads a TLS Secret; problems become diagnostics on `user` (the Ingress or flag).
fn load(
    secrets: &Secrets<'_>,
    key: &(String, String),
    user: &ObjectRef,
    now: i64,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<LoadedCert> {
    let Some(secret) = secrets.get(&(key.0.as_str(), key.1.as_str())) else {
        diagnostics.push(Diagnostic::error(
            user.clone(),
            DiagnosticKind::MissingSecret,
            format!(
                "TLS Secret {}/{} does not exist; its hosts get the default certificate",
                key.0, key.1
            ),
        ));
        return None;
    };
    let secret_ref = ObjectRef::namespaced("Secret", &key.0, &key.1);
    match tls::load_tls_secret(secret) {
        Ok(cert) => {
            if cert.is_expired_at(now) {
                diagnostics.push(Diagnostic::warning(
                    secret_ref,
                    DiagnosticKind::ExpiredCertificate,
                    format!(
                        "certificate expired (not after {}); still served",
                        cert.not_after
                    ),
                ));
            }
            Some(cert)
        }
        Err(e) => {
            diagnostics.push(Diagnostic::error(
                secret_ref,
                DiagnosticKind::InvalidSecret,
                format!("TLS Secret used by {user} cannot be used: {e}; its hosts get the default certificate"),
            ));
            None
        }
    }
}

fn patterns(hosts: &[String]) -> Vec<HostPattern> {
    hosts
        .iter()
        .filter_map(|h| HostPattern::parse(Some(h)).ok())
        .collect()
}

/// Whether a TLS section's hosts cover a rule host (a wildcard covers one label).
pub(super) fn covers(tls_hosts: &[HostPattern], rule: &HostPattern) -> bool {
    tls_hosts.iter().any(|t| match (t, rule) {
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Wildcard(a), HostPattern::Wildcard(b)) => a == b,
        (HostPattern::Wildcard(suffix), HostPattern::Exact(host)) => {
            host.split_once('.').is_some_and(|(_, rest)| rest == suffix)
        }
        _ => false,
    })
}

/// Reads `ca.crt` from a Secret for backend verification.
pub(super) fn ca_bytes(secrets: &Secrets<'_>, key: &(String, String)) -> Result<Arc<[u8]>, String> {
    let secret = secrets
        .get(&(key.0.as_str(), key.1.as_str()))
        .ok_or_else(|| format!("Secret {}/{} does not exist", key.0, key.1))?;
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .map(|b| b.0.clone());
    let string = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .map(|s| s.as_bytes().to_vec())
    };
    data.or_else(string)
        .filter(|b| !b.is_empty())
        .map(Arc::from)
        .ok_or_else(|| format!("Secret {}/{} has no ca.crt", key.0, key.1))
}
