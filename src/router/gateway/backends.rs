//! The Service ports HTTPRoute rules send to: each resolved once per
//! compile into a live backend and the client that speaks to it (the
//! port's `appProtocol`, the BackendTLSPolicy that applies to it).

use std::collections::HashMap;
use std::sync::Arc;

use crate::gateway::resolve::{CaTrust, Resolution, ServicePort, Verification};
use crate::router::middlewares::Env;
use crate::router::{Diagnostic, DiagnosticKind, ObjectRef, Target};
use crate::upstream::{BackendKey, BackendProtocol, ClientKey, PortRef, UpstreamClient, Verify};

/// One Service port, ready for routes.
#[derive(Debug, Clone)]
pub(super) struct ServiceBackend {
    /// The backend key (the port by number).
    pub key: BackendKey,
    /// Where requests go (a Service that vanished between resolution and
    /// compile, or a BackendTLSPolicy that cannot be used: `Unavailable`).
    pub target: Target,
    /// The client for it.
    pub client: Arc<UpstreamClient>,
}

/// Every Service port a served rule names (backendRefs and mirrors).
pub(super) type Backends = HashMap<ServicePort, ServiceBackend>;

/// Resolves the backendRefs of every rule of every attached route.
pub(super) fn resolve_all(
    resolution: &Resolution,
    env: &mut Env<'_, '_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Backends {
    let mut out = Backends::new();
    for (_, listener) in resolution.programmed_listeners() {
        for attached in &listener.routes {
            let Some(route) = resolution.routes.get(attached.route) else {
                continue;
            };
            for &rule in &attached.rules {
                let Some(rule) = route.rules.get(rule) else {
                    continue;
                };
                for backend in &rule.backends {
                    let Ok(port) = &backend.target else { continue };
                    if out.contains_key(port) {
                        continue;
                    }
                    let resolved = service_backend(resolution, env, port, diagnostics);
                    out.insert(port.clone(), resolved);
                }
            }
        }
    }
    out
}

fn service_backend(
    resolution: &Resolution,
    env: &mut Env<'_, '_>,
    port: &ServicePort,
    diagnostics: &mut Vec<Diagnostic>,
) -> ServiceBackend {
    let key = env.resolver.canonical(BackendKey {
        namespace: port.namespace.clone(),
        service: port.name.clone(),
        port: PortRef::Number(port.port),
        cluster_ip: false,
    });
    let object = || ObjectRef::namespaced("Service", &port.namespace, &port.name);
    let app_protocol = env
        .resolver
        .app_protocol(&port.namespace, &port.name, port.port);
    let mut protocol = match app_protocol {
        Some("kubernetes.io/h2c") => BackendProtocol::H2c,
        Some("kubernetes.io/wss" | "https") => BackendProtocol::Https,
        _ => BackendProtocol::Http,
    };
    let mut verify = None;
    let mut problem = None;
    if let Some(policy) = resolution.backend_tls(port) {
        protocol = match protocol {
            BackendProtocol::H2c | BackendProtocol::H2 => BackendProtocol::H2,
            _ => BackendProtocol::Https,
        };
        match &policy.verification {
            Ok(verification) => verify = Some(verify_of(verification)),
            Err(reason) => {
                problem = Some(format!(
                    "BackendTLSPolicy {}/{}: {reason}",
                    policy.policy.namespace, policy.policy.name
                ));
            }
        }
    }
    let client = env.registries.clients.get(&ClientKey {
        protocol,
        verify,
        timeouts: Default::default(),
    });
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            problem.get_or_insert_with(|| format!("backend TLS for {}: {e}", key));
            plain(env)
        }
    };
    let target = match (problem, env.backend(&key)) {
        (Some(reason), _) => {
            diagnostics.push(Diagnostic::error(
                object(),
                DiagnosticKind::InvalidSecret,
                format!("{reason}; requests to it get 500"),
            ));
            super::unavailable(500, reason)
        }
        (None, Ok(backend)) => Target::Backend(backend),
        (None, Err(reason)) => super::unavailable(500, reason),
    };
    ServiceBackend {
        key,
        target,
        client,
    }
}

/// The client verification a BackendTLSPolicy asks for: its CAs (or the
/// well-known ones), `hostname` as SNI, and the subject alternative names
/// that replace the hostname check when listed.
fn verify_of(verification: &Verification) -> Verify {
    use crate::gateway::types::SubjectAltNameType;
    use crate::tls::backend_verify::SubjectAltName;
    let ca: Arc<[u8]> = match &verification.trust {
        CaTrust::Pem(pem) => pem.as_slice().into(),
        CaTrust::System => Arc::from(Vec::new()),
    };
    let sans = verification
        .subject_alt_names
        .iter()
        .filter_map(|san| match san.type_ {
            SubjectAltNameType::Hostname => san.hostname.clone().map(SubjectAltName::Hostname),
            SubjectAltNameType::Uri => san.uri.clone().map(SubjectAltName::Uri),
            SubjectAltNameType::Other(_) => None,
        })
        .collect();
    let verify = Verify::new(ca, verification.hostname.clone()).with_subject_alt_names(sans);
    match verification.trust {
        CaTrust::System => verify.with_system_roots(),
        CaTrust::Pem(_) => verify,
    }
}

/// The shared plain HTTP/1.1 client.
fn plain(env: &Env<'_, '_>) -> Arc<UpstreamClient> {
    env.registries
        .clients
        .get(&ClientKey::http())
        .unwrap_or_else(|_| Arc::new(UpstreamClient::new(&Default::default())))
}
