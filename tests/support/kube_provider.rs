//! The Kubernetes provider under test, started against the fake API server
//! (`kube_api.rs`, which speaks the real list/watch protocol with real API
//! JSON), and the waits on what it publishes. Shared by the provider suites.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sluice::router::Snapshot;
use sluice::watch::{run_kube_provider, KubeSettings, KubeStats, ProviderUpdate};
use tokio::sync::watch;

use crate::kube_api::FakeApi;

/// What the provider publishes.
pub type Updates = watch::Receiver<Option<Arc<ProviderUpdate>>>;

/// How long any one expected update may take before the test fails (a
/// liveness bound, not a latency assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Provider settings with short debounce, backoff and CRD re-checks.
pub fn fast_settings() -> KubeSettings {
    KubeSettings {
        debounce: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        crd_recheck: Duration::from_millis(300),
        sync_grace: Duration::from_secs(1),
        ..KubeSettings::default()
    }
}

/// A running provider; stopped when dropped.
pub struct Provider {
    /// Its published updates.
    pub updates: Updates,
    /// Its counters.
    pub stats: Arc<KubeStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the provider against `api` with `settings`.
pub fn start(api: &FakeApi, settings: KubeSettings) -> Provider {
    let (tx, updates) = watch::channel(None);
    let stats = Arc::new(KubeStats::default());
    let client = api.client();
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        run_kube_provider(client, settings, tx, task_stats)
            .await
            .expect("provider runs");
    });
    Provider {
        updates,
        stats,
        task,
    }
}

/// Waits for a published update that satisfies `pred`.
pub async fn until(
    updates: &mut Updates,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<ProviderUpdate> {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(update) = updates.borrow_and_update().clone() {
                if pred(&update.snapshot) {
                    return update;
                }
            }
            updates.changed().await.expect("provider alive");
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no update with {what} within {PATIENCE:?}"))
}
