//! Finding and reading manifest files: a directory tree or a single file.
//!
//! A directory is walked recursively for `*.yaml`, `*.yml` and `*.json`,
//! following symlinks and skipping hidden entries (`.foo.yaml.swp`, `..data`)
//! and editor leftovers (`foo.yaml~`, `#foo.yaml#`). Kubernetes ConfigMap mounts
//! work: their visible files are symlinks through the hidden `..data` directory.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::manifests::{parse_manifests, ParsedFile};
use super::store::{Store, View};
use super::WatchError;
use crate::router::{Diagnostic, DiagnosticKind, ObjectRef};

/// Deeper trees are not walked: this also ends symlink loops.
const MAX_DEPTH: usize = 16;

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files were read; the store is up to date.
    Loaded,
    /// The watched path is gone; the store kept its last objects.
    RootMissing,
}

/// Reads the manifests under one path into a [`Store`], re-parsing only files whose bytes changed.
#[derive(Debug)]
pub struct ManifestFiles {
    root: PathBuf,
    single_file: bool,
    store: Store,
    /// Length and hash of each file's bytes as last parsed (not the bytes: at
    /// 10,000 Ingresses keeping them would cost megabytes for nothing).
    contents: HashMap<String, Fingerprint>,
}

impl ManifestFiles {
    /// Opens `root`, a directory or a file.
    ///
    /// # Errors
    ///
    /// [`WatchError::NotFound`] if `root` does not exist, [`WatchError::Io`] if it cannot be inspected.
    pub fn open(root: &Path) -> Result<Self, WatchError> {
        let metadata = fs::metadata(root).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => WatchError::NotFound {
                path: root.to_owned(),
            },
            _ => WatchError::Io {
                path: root.to_owned(),
                source,
            },
        })?;
        Ok(Self {
            root: root.to_owned(),
            single_file: !metadata.is_dir(),
            store: Store::new(),
            contents: HashMap::new(),
        })
    }

    /// The path given to [`ManifestFiles::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when the root is a single file rather than a directory.
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// What to watch for changes: the directory (recursively), or a single file's
    /// parent directory (editors replace a file by renaming another over it).
    pub fn watch_target(&self) -> (PathBuf, bool) {
        if !self.single_file {
            return (self.root.clone(), true);
        }
        match self.root.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => (parent.to_owned(), false),
            _ => (PathBuf::from("."), false),
        }
    }

    /// The merged objects and diagnostics of every file.
    pub fn view(&self) -> View {
        self.store.view()
    }

    /// Re-reads every file, re-parses those that changed and forgets deleted ones.
    pub fn reload(&mut self) -> Reload {
        let Some(listed) = self.list() else {
            return Reload::RootMissing;
        };
        for (name, path) in &listed {
            self.load_file(name, path);
        }
        let present: HashSet<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
        let gone: Vec<String> = self
            .store
            .files()
            .filter(|known| !present.contains(known))
            .map(str::to_owned)
            .collect();
        for name in gone {
            tracing::debug!(file = %name, "manifest file removed");
            self.store.remove(&name);
            self.contents.remove(&name);
        }
        Reload::Loaded
    }

    fn load_file(&mut self, name: &str, path: &Path) {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            // Deleted since the listing: the next listing drops it.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) => return self.unreadable(name, &err),
        };
        let fingerprint = Fingerprint::of(&bytes);
        if self.contents.get(name) == Some(&fingerprint) {
            return;
        }
        tracing::debug!(file = %name, "loading manifest file");
        let parsed = parse_manifests(name, &bytes);
        self.store.apply(name, parsed);
        self.contents.insert(name.to_owned(), fingerprint);
    }

    /// Keeps the file's last objects and reports why it could not be read.
    fn unreadable(&mut self, name: &str, err: &io::Error) {
        tracing::warn!(file = %name, "cannot read manifest file: {err}");
        let object = ObjectRef {
            kind: "Document".to_owned(),
            namespace: None,
            name: String::new(),
            source: Some(name.to_owned()),
        };
        let message = format!("cannot read file: {err}");
        let diagnostics = vec![Diagnostic::error(
            object,
            DiagnosticKind::ParseError,
            message,
        )];
        self.store.apply(
            name,
            ParsedFile {
                objects: Vec::new(),
                diagnostics,
            },
        );
        // Read it again next time, even if its bytes turn out unchanged.
        self.contents.remove(name);
    }

    /// The manifest files as (name relative to the root, path), sorted; `None` if the root is gone.
    fn list(&self) -> Option<Vec<(String, PathBuf)>> {
        if self.single_file {
            let name = self.root.file_name().map_or_else(
                || self.root.to_string_lossy().into_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            return self.root.exists().then(|| vec![(name, self.root.clone())]);
        }
        let mut out = Vec::new();
        if let Err(err) = walk(&self.root, "", 0, &mut out) {
            tracing::warn!(path = %self.root.display(), "cannot list manifest directory: {err}");
            return None;
        }
        out.sort();
        Some(out)
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if is_ignored(&name) {
            continue;
        }
        let path = entry.path();
        // fs::metadata follows symlinks; a dangling link is skipped.
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        let relative = format!("{prefix}{name}");
        if metadata.is_dir() && depth < MAX_DEPTH {
            if let Err(err) = walk(&path, &format!("{relative}/"), depth + 1, out) {
                tracing::warn!(path = %path.display(), "cannot list directory: {err}");
            }
        } else if metadata.is_file() && is_manifest(&name) {
            out.push((relative, path));
        }
    }
    Ok(())
}

fn is_ignored(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~')
}

fn is_manifest(name: &str) -> bool {
    let extension = Path::new(name).extension().unwrap_or_default();
    ["yaml", "yml", "json"]
        .iter()
        .any(|ext| extension.eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_temporary_files_are_ignored() {
        assert!(is_ignored(".app.yaml.swp"));
        assert!(is_ignored("..data"));
        assert!(is_ignored("app.yaml~"));
        assert!(!is_ignored("app.yaml"));
        assert!(is_manifest("a.yml") && is_manifest("a.JSON") && !is_manifest("a.txt"));
    }
}

/// What identifies a file's content between reloads: its length and a 64-bit hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: usize,
    hash: u64,
}

impl Fingerprint {
    fn of(bytes: &[u8]) -> Self {
        use std::hash::Hasher;
        let mut hasher = rustc_hash::FxHasher::default();
        hasher.write(bytes);
        Self {
            len: bytes.len(),
            hash: hasher.finish(),
        }
    }
}
