//! Providers: where Kubernetes objects come from (manifest files; later the API).
//! TEMPORARY STUB: replaced by the file provider branch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::router::{Diagnostic, Snapshot};

/// What a provider publishes.
#[derive(Debug, Default)]
pub struct ProviderUpdate {
    /// Objects.
    pub snapshot: Snapshot,
    /// Problems.
    pub diagnostics: Vec<Diagnostic>,
}

/// Errors.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Missing path.
    #[error("missing {0}")]
    Missing(PathBuf),
}

/// Runs the file provider.
pub async fn run_file_provider(
    path: PathBuf,
    debounce: Duration,
    updates: tokio::sync::watch::Sender<Option<Arc<ProviderUpdate>>>,
) -> Result<(), WatchError> {
    let _ = (path, debounce, updates);
    Ok(())
}
