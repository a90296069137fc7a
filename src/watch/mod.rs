//! Providers: where Kubernetes objects come from (manifest files; later the API).
//!
//! The manifest-file provider ([`run_file_provider`], [`FileProvider`]) reads
//! a directory tree or a single file of YAML/JSON manifests, publishes a
//! [`ProviderUpdate`] and then watches the files, publishing again after each
//! change (debounced, and only when the objects or diagnostics changed).
//!
//! - [`manifests`]: parsing documents into typed objects.
//! - [`store`]: per-file objects, the last-good rule for broken edits, duplicates.
//! - [`files`]: finding and reading the files.
//! - `provider`: notify, debouncing and publishing.

use std::path::PathBuf;

use crate::router::{Diagnostic, Snapshot};

pub mod files;
pub mod kube;
pub mod manifests;
pub mod object;
mod provider;
pub mod store;

pub use self::kube::{run_kube_provider, KubeError, KubeSettings, KubeStats};
pub use files::ManifestFiles;
pub use manifests::{parse_manifests, ParsedFile};
pub use object::{Loaded, Object, ObjectKey, Source};
pub use provider::{run_file_provider, FileProvider, UpdateSender};
pub use store::{Store, View};

/// What a provider publishes: the objects it holds plus problems it found loading them.
#[derive(Debug, Clone, Default)]
pub struct ProviderUpdate {
    /// Every object, one per identity.
    pub snapshot: Snapshot,
    /// Documents that failed to parse and duplicate objects that were left out.
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a provider could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The manifest path does not exist.
    #[error("manifest path {} does not exist", path.display())]
    NotFound {
        /// The path that was given.
        path: PathBuf,
    },
    /// The manifest path exists but could not be inspected.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file watcher could not be set up.
    #[error("cannot watch manifests: {0}")]
    Watch(#[from] notify::Error),
    /// The background reload task panicked.
    #[error("manifest reload task failed: {0}")]
    Reload(#[from] tokio::task::JoinError),
}
