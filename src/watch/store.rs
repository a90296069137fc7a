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

use super::manifests::ParsedFile;
use super::object::{Loaded, ObjectKey, Source};
use super::ProviderUpdate;
use crate::router::{Diagnostic, DiagnosticKind, Snapshot};

/// What one file currently contributes.
#[derive(Debug, Default, Clone)]
struct FileEntry {
    objects: Vec<Loaded>,
    diagnostics: Vec<Diagnostic>,
}

/// Per-file objects of the manifest provider, merged into one view on demand.
#[derive(Debug, Default, Clone)]
pub struct Store {
    files: BTreeMap<String, FileEntry>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new version of `file`, applying the last-good rule.
    pub fn apply(&mut self, file: &str, parsed: ParsedFile) {
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
        let entry = FileEntry {
            objects,
            diagnostics,
        };
        self.files.insert(file.to_owned(), entry);
    }

    /// Forgets `file` and everything it contributed; false if it was unknown.
    pub fn remove(&mut self, file: &str) -> bool {
        self.files.remove(file).is_some()
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
