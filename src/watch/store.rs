//! The file provider's store: the objects each manifest file contributes.
//!
//! # The last-good rule
//!
//! The store remembers, per file, the objects it currently contributes. When a
//! new version of a file parses cleanly, its objects replace the old ones. When
//! any document of the new version fails (a bad field, a missing name, a YAML
//! syntax error, a file caught half-written), the file contributes:
//!
//! - every object of the new version's good documents, and
//! - every object it contributed before whose identity (kind, namespace, name)
//!   the new version does not produce.
//!
//! So an edit that breaks one Ingress keeps the last good copy of that Ingress
//! serving until the file is fixed or deleted, while the edits that did parse
//! take effect. Deleting a file removes everything it contributed.
//!
//! # Duplicates
//!
//! When two files (or two documents) define the same identity, the first in
//! (path, document index) order wins and the other is reported as a
//! `DuplicateObject` warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

use super::manifests::ParsedFile;
use super::object::{Loaded, Object, ObjectKey, Source};
use super::ProviderUpdate;
use crate::router::{Diagnostic, DiagnosticKind, Snapshot};

/// What one file currently contributes.
#[derive(Debug, Default, Clone)]
struct FileEntry {
    objects: Vec<Loaded>,
    diagnostics: Vec<Diagnostic>,
}

/// Per-file objects of the manifest provider, merged into one view on demand.
///
/// The store keeps, besides the files, how many objects carry each identity
/// (by hash), so building an update needs no deduplication pass while no two
/// objects share an identity, and a generation that counts real changes, so
/// the provider never compares whole views.
#[derive(Debug, Default, Clone)]
pub struct Store {
    files: BTreeMap<String, FileEntry>,
    /// Objects per identity hash; a hash collision only costs the slow merge.
    identities: FxHashMap<u64, u32>,
    /// How many identity hashes are carried by more than one object.
    shared_identities: usize,
    generation: u64,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new version of `file`, applying the last-good rule; true if
    /// what the file contributes changed.
    ///
    /// Objects equal to the ones the file contributed before keep their `Arc`,
    /// so consumers can tell unchanged objects by pointer.
    pub fn apply(&mut self, file: &str, parsed: ParsedFile) -> bool {
        let ParsedFile {
            mut objects,
            diagnostics,
        } = parsed;
        if !diagnostics.is_empty() {
            if let Some(old) = self.files.get(file) {
                let produced: HashSet<&ObjectKey> = objects.iter().map(|o| &o.key).collect();
                let kept: Vec<Loaded> = old
                    .objects
                    .iter()
                    .filter(|o| !produced.contains(&o.key))
                    .cloned()
                    .collect();
                objects.extend(kept);
                objects.sort_by(|a, b| a.source.cmp(&b.source));
            }
        }
        if let Some(old) = self.files.get(file) {
            let all_reused = reuse_unchanged(&old.objects, &mut objects);
            let same_objects = all_reused
                && old.objects.len() == objects.len()
                && old
                    .objects
                    .iter()
                    .zip(&objects)
                    .all(|(a, b)| a.key == b.key && a.source == b.source);
            if same_objects && old.diagnostics == diagnostics {
                return false;
            }
        }
        let entry = FileEntry {
            objects,
            diagnostics,
        };
        self.count(&entry, true);
        if let Some(old) = self.files.insert(file.to_owned(), entry) {
            self.count(&old, false);
        }
        self.generation += 1;
        true
    }

    /// Forgets `file` and everything it contributed; false if it was unknown.
    pub fn remove(&mut self, file: &str) -> bool {
        let Some(old) = self.files.remove(file) else {
            return false;
        };
        self.count(&old, false);
        self.generation += 1;
        true
    }

    /// Counts the change: +1 for every object whose version was added, -1 removed.
    fn count(&mut self, entry: &FileEntry, added: bool) {
        for loaded in &entry.objects {
            let hash = identity_hash(&loaded.key);
            let count = self.identities.entry(hash).or_insert(0);
            let before = *count;
            if added {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
            }
            match (before > 1, *count > 1) {
                (false, true) => self.shared_identities += 1,
                (true, false) => self.shared_identities -= 1,
                _ => {}
            }
            if *count == 0 {
                self.identities.remove(&hash);
            }
        }
    }

    /// A number that changes whenever what the store holds changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The update a provider publishes: the merged view's objects and diagnostics,
    /// built without copying any object.
    pub fn update(&self) -> ProviderUpdate {
        if self.shared_identities > 0 {
            return self.view().to_update();
        }
        // No identity is defined twice: the view is every file's objects, in order.
        let mut snapshot = Snapshot::default();
        for loaded in self.files.values().flat_map(|f| &f.objects) {
            loaded.object.push_into(&mut snapshot);
        }
        let diagnostics = self
            .files
            .values()
            .flat_map(|f| f.diagnostics.iter().cloned())
            .collect();
        ProviderUpdate {
            snapshot,
            diagnostics,
        }
    }

    /// How many objects the merged view holds (before deduplication).
    pub fn len(&self) -> usize {
        self.files.values().map(|f| f.objects.len()).sum()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.files.values().all(|f| f.objects.is_empty())
    }

    /// The names of the files the store knows, in order.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The merged view: one object per identity, plus every diagnostic.
    pub fn view(&self) -> View {
        let mut all: Vec<&Loaded> = self.files.values().flat_map(|f| &f.objects).collect();
        all.sort_by(|a, b| a.source.cmp(&b.source));
        let mut diagnostics: Vec<Diagnostic> = self
            .files
            .values()
            .flat_map(|f| f.diagnostics.iter().cloned())
            .collect();
        let mut first: HashMap<&ObjectKey, &Source> = HashMap::with_capacity(all.len());
        let mut objects = Vec::with_capacity(all.len());
        for loaded in all {
            if let Some(kept) = first.get(&loaded.key) {
                diagnostics.push(duplicate(loaded, kept));
                continue;
            }
            first.insert(&loaded.key, &loaded.source);
            objects.push(loaded.clone());
        }
        View {
            objects,
            diagnostics,
        }
    }
}

fn identity_hash(key: &ObjectKey) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Gives each new object that equals the old object of the same identity the
/// old `Arc`; true if every new object did.
fn reuse_unchanged(old: &[Loaded], new: &mut [Loaded]) -> bool {
    let by_key: HashMap<&ObjectKey, &Object> = old.iter().map(|o| (&o.key, &o.object)).collect();
    let mut all = true;
    for loaded in new {
        match by_key.get(&loaded.key) {
            Some(previous) if **previous == loaded.object => loaded.object = (*previous).clone(),
            _ => all = false,
        }
    }
    all
}

fn duplicate(ignored: &Loaded, kept: &Source) -> Diagnostic {
    let message = format!(
        "{} is also defined in {kept}, which wins; this copy is ignored",
        ignored.key
    );
    tracing::warn!(source = %ignored.source, "{message}");
    Diagnostic::warning(
        ignored.object_ref(),
        DiagnosticKind::DuplicateObject,
        message,
    )
}

/// The store's merged content at one moment: what a provider update is built from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct View {
    /// One object per identity, in (path, document index) order.
    pub objects: Vec<Loaded>,
    /// Parse errors of every file, then duplicate warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl View {
    /// Builds the update a provider publishes.
    pub fn to_update(&self) -> ProviderUpdate {
        let mut snapshot = Snapshot::default();
        for loaded in &self.objects {
            loaded.object.push_into(&mut snapshot);
        }
        ProviderUpdate {
            snapshot,
            diagnostics: self.diagnostics.clone(),
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
