//! Resolves ExternalName Services off the request path, and again periodically.

use std::sync::Arc;
use std::time::Duration;

use crate::router::Registries;

/// How often ExternalName targets are resolved again.
const REFRESH: Duration = Duration::from_secs(30);
/// How often new ExternalName backends are looked for.
const SCAN: Duration = Duration::from_millis(500);

/// Keeps every live ExternalName backend's resolved addresses fresh.
pub async fn run(registries: Arc<Registries>) {
    let mut since_refresh = Duration::ZERO;
    loop {
        let refresh_all = since_refresh >= REFRESH;
        for backend in registries.upstreams.live() {
            let set = backend.endpoints();
            let Some(external) = &set.external else {
                continue;
            };
            if !refresh_all && !backend.resolved().is_empty() {
                continue;
            }
            let target = (external.host.clone(), external.port);
            let resolved = tokio::net::lookup_host(target).await;
            match resolved {
                Ok(addrs) => {
                    let mut addrs: Vec<_> = addrs.collect();
                    addrs.sort();
                    addrs.dedup();
                    backend.set_resolved(addrs);
                }
                Err(e) => {
                    tracing::warn!(host = %external.host, error = %e, "resolving ExternalName failed")
                }
            };
        }
        if refresh_all {
            since_refresh = Duration::ZERO;
        }
        tokio::time::sleep(SCAN).await;
        since_refresh += SCAN;
    }
}
