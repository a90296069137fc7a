//! Finding and reading manifest files: a directory tree or a single file.
//!
//! A directory is walked recursively for `*.yaml`, `*.yml` and `*.json`,
//! following symlinks and skipping hidden entries (`.foo.yaml.swp`, `..data`)
//! and editor leftovers (`foo.yaml~`, `#foo.yaml#`). Kubernetes ConfigMap mounts
//! work: their visible files are symlinks through the hidden `..data` directory.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::manifests::{parse_manifests, ParsedFile};
use super::store::{Store, View};
use super::{ProviderUpdate, WatchError};
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

    /// The update to publish for the files as last loaded (no object is copied).
    pub fn update(&self) -> ProviderUpdate {
        self.store.update()
    }

    /// A number that changes whenever a reload changed what the files contribute.
    pub fn generation(&self) -> u64 {
        self.store.generation()
    }

    /// Re-reads only the files at `paths` (as file events name them): each one
    /// that is a manifest file under the root is re-read, or forgotten if it is
    /// gone. Anything else (a directory, a hidden or renamed-over entry such as
    /// a ConfigMap's `..data`, a path outside the root, a single-file root)
    /// makes it a full [`ManifestFiles::reload`], which is always correct.
    pub fn reload_paths(&mut self, paths: &[PathBuf]) -> Reload {
        if self.single_file {
            return self.reload();
        }
        if !self.root.is_dir() {
            return Reload::RootMissing;
        }
        let mut changed = Vec::with_capacity(paths.len());
        for path in paths {
            match self.classify(path) {
                Some(Some(name)) => changed.push((name, path)),
                Some(None) => {}
                None => return self.reload(),
            }
        }
        for (name, path) in changed {
            match fs::metadata(path) {
                Ok(metadata) if metadata.is_file() => self.load_file(&name, path),
                Ok(_) => return self.reload(),
                Err(_) => {
                    if self.store.remove(&name) {
                        tracing::debug!(file = %name, "manifest file removed");
                    }
                    self.contents.remove(&name);
                }
            }
        }
        Reload::Loaded
    }

    /// What an event path means: `Some(Some(name))` a manifest file named `name`
    /// relative to the root, `Some(None)` a file that is no manifest (nothing to
    /// do), `None` something only a full reload handles.
    fn classify(&self, path: &Path) -> Option<Option<String>> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let mut parts = Vec::new();
        for component in relative.components() {
            let Component::Normal(part) = component else {
                return None;
            };
            let part = part.to_str()?;
            if is_ignored(part) {
                return None;
            }
            parts.push(part);
        }
        let last = *parts.last()?;
        if parts.len() > MAX_DEPTH + 1 {
            return None;
        }
        let name = parts.join("/");
        let prefix = format!("{name}/");
        if path.is_dir() || self.store.files().any(|f| f.starts_with(&prefix)) {
            return None;
        }
        Some(is_manifest(last).then_some(name))
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
        let _changed = self.store.apply(name, parsed);
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
        let _changed = self.store.apply(
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

    fn service(name: &str, port: u16) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{port: {port}}}]\n")
    }

    fn ports(files: &ManifestFiles) -> Vec<(String, i32)> {
        let update = files.update();
        let mut out: Vec<_> = update
            .snapshot
            .services
            .iter()
            .map(|s| {
                let port = s
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.as_ref())
                    .map_or(0, |p| p[0].port);
                (s.metadata.name.clone().unwrap_or_default(), port)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn named_paths_reload_only_those_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("sub/b.yaml"));
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(&a, service("a", 1)).expect("write");
        fs::write(&b, service("b", 1)).expect("write");
        let mut files = ManifestFiles::open(dir.path()).expect("open");
        assert_eq!(files.reload(), Reload::Loaded);
        let first = files.update();
        fs::write(&a, service("a", 2)).expect("write");
        fs::write(&b, service("b", 2)).expect("write");
        assert_eq!(files.reload_paths(std::slice::from_ref(&b)), Reload::Loaded);
        assert_eq!(ports(&files), [("a".into(), 1), ("b".into(), 2)]);
        // The untouched file's object is the same Arc.
        let again = files.update();
        let a_of = |u: &ProviderUpdate| u.snapshot.services[0].clone();
        assert!(std::sync::Arc::ptr_eq(&a_of(&first), &a_of(&again)));
        // A deleted file is forgotten; a directory path means a full reload.
        fs::remove_file(&b).expect("rm");
        let generation = files.generation();
        assert_eq!(files.reload_paths(std::slice::from_ref(&b)), Reload::Loaded);
        assert_eq!(ports(&files), [("a".into(), 1)]);
        assert_ne!(files.generation(), generation);
        assert_eq!(
            files.reload_paths(&[dir.path().join("sub")]),
            Reload::Loaded
        );
        assert_eq!(ports(&files), [("a".into(), 2)]);
        // Nothing changed: the generation stays.
        let generation = files.generation();
        assert_eq!(files.reload_paths(std::slice::from_ref(&a)), Reload::Loaded);
        assert_eq!(files.reload(), Reload::Loaded);
        assert_eq!(files.generation(), generation);
    }

    #[test]
    fn hidden_or_outside_paths_mean_a_full_reload() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a.yaml");
        fs::write(&a, service("a", 1)).expect("write");
        let mut files = ManifestFiles::open(dir.path()).expect("open");
        files.reload();
        fs::write(&a, service("a", 2)).expect("write");
        assert_eq!(
            files.reload_paths(&[dir.path().join("..data")]),
            Reload::Loaded
        );
        assert_eq!(ports(&files), [("a".into(), 2)]);
        fs::write(&a, service("a", 3)).expect("write");
        assert_eq!(
            files.reload_paths(&[PathBuf::from("/elsewhere/x.yaml")]),
            Reload::Loaded
        );
        assert_eq!(ports(&files), [("a".into(), 3)]);
        // A file that is no manifest changes nothing.
        fs::write(&a, service("a", 4)).expect("write");
        assert_eq!(
            files.reload_paths(&[dir.path().join("notes.txt")]),
            Reload::Loaded
        );
        assert_eq!(ports(&files), [("a".into(), 3)]);
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
