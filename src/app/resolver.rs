//! Resolves ExternalName Services off the request path: new names before the
//! table that uses them is published, and every name again periodically.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::router::Registries;
use crate::upstream::{Backend, ExternalName};

/// How often every ExternalName target is resolved again.
const REFRESH: Duration = Duration::from_secs(30);
/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves, concurrently, the backends whose ExternalName has no current lookup.
pub async fn resolve_new(backends: &[Arc<Backend>]) {
    let pending: Vec<_> = backends
        .iter()
        .filter_map(|b| b.needs_resolving().map(|target| (b.clone(), target)))
        .collect();
    resolve_all(pending.into_iter()).await;
}

/// Keeps every live ExternalName backend's addresses fresh.
pub async fn run(registries: Arc<Registries>) {
    loop {
        tokio::time::sleep(REFRESH).await;
        let live = registries.upstreams.live();
        let targets: Vec<_> = live
            .iter()
            .filter_map(|b| {
                b.endpoints()
                    .external
                    .clone()
                    .map(|target| (b.clone(), target))
            })
            .collect();
        resolve_all(targets.into_iter()).await;
    }
}

async fn resolve_all(targets: impl Iterator<Item = (Arc<Backend>, ExternalName)>) {
    let mut lookups = JoinSet::new();
    for (backend, target) in targets {
        lookups.spawn(async move {
            let lookup = tokio::net::lookup_host((target.host.clone(), target.port));
            match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => {
                    let mut addrs: Vec<_> = addrs.collect();
                    addrs.sort();
                    addrs.dedup();
                    backend.set_resolved(target, addrs);
                }
                Ok(Err(e)) => {
                    tracing::warn!(host = %target.host, error = %e, "resolving ExternalName failed")
                }
                Err(_) => tracing::warn!(host = %target.host, "resolving ExternalName timed out"),
            }
        });
    }
    while lookups.join_next().await.is_some() {}
}
