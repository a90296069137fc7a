//! `sluice check`: what would change for each Ingress if sluice served it.
//!
//! It loads the objects the server would read (a manifest directory or file
//! through the file provider's loader, or one full list of the Kubernetes API
//! through the Kubernetes provider), compiles them with the server's
//! compiler and options, and reports per Ingress:
//!
//! - every annotation sluice ignores, refuses or reads differently from
//!   ingress-nginx or Traefik, with the reason from the [`catalog`];
//! - unknown `nginx.ingress.kubernetes.io/*` and `traefik.ingress.kubernetes.io/*`
//!   keys (typos);
//! - the compiler's diagnostics that concern it (invalid annotation values,
//!   missing Services or Secrets...).
//!
//! It changes nothing and opens no listener.

pub mod catalog;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::app::{Settings, Source};
use crate::router::{self, CompileOptions, Diagnostic, Registries, Severity};
use crate::watch::files::Reload;
use crate::watch::{KubeError, KubeSettings, KubeStats, ManifestFiles, ProviderUpdate, WatchError};
use catalog::{On, Status, NGINX_PREFIX, TRAEFIK_PREFIX};

pub use catalog::{lookup, Entry};

/// Why the objects could not be loaded (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The manifest path is missing or unreadable.
    #[error(transparent)]
    Manifests(#[from] WatchError),
    /// The manifest path disappeared while being read.
    #[error("manifest path {0} disappeared while being read")]
    Vanished(PathBuf),
    /// No usable Kubernetes configuration, or the client failed.
    #[error("cannot use the Kubernetes API ({0}); give --kubeconfig, run in a cluster, or check files with --manifests")]
    Kube(#[from] KubeError),
    /// The API server did not list every kind in time.
    #[error("the Kubernetes API did not list every object within {0:?} (see --timeout)")]
    KubeTimeout(Duration),
    /// The Kubernetes provider stopped before listing.
    #[error("the Kubernetes provider stopped before listing every object")]
    KubeStopped,
    /// A flag has a value that cannot be used.
    #[error("{0}")]
    Flag(String),
}

/// The objects to check, with where each Ingress came from.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The objects and the loading diagnostics (unparsable documents, duplicates).
    pub update: ProviderUpdate,
    /// `file#document` of each Ingress by (namespace, name); empty for the Kubernetes API.
    pub sources: HashMap<(String, String), String>,
}

/// Reads a manifest directory (recursively) or file as the file provider does.
///
/// # Errors
///
/// When the path does not exist or cannot be read.
pub fn load_manifests(path: &Path) -> Result<Loaded, CheckError> {
    let mut files = ManifestFiles::open(path)?;
    if files.reload() == Reload::RootMissing {
        return Err(CheckError::Vanished(path.to_owned()));
    }
    let view = files.view();
    let sources = view
        .objects
        .iter()
        .filter(|o| o.key.kind == "Ingress")
        .map(|o| {
            let ns = o.key.namespace.clone().unwrap_or_else(|| "default".into());
            ((ns, o.key.name.clone()), o.source.to_string())
        })
        .collect();
    Ok(Loaded {
        update: view.to_update(),
        sources,
    })
}

/// Lists every kind the server watches, once, through the Kubernetes provider.
///
/// # Errors
///
/// Without a usable configuration, or when the list takes longer than `timeout`.
pub async fn load_kube(settings: &KubeSettings, timeout: Duration) -> Result<Loaded, CheckError> {
    let client = crate::watch::kube::client(settings).await?;
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let provider = tokio::spawn(crate::watch::run_kube_provider(
        client,
        settings.clone(),
        tx,
        Arc::new(KubeStats::default()),
    ));
    let first = tokio::time::timeout(timeout, async {
        loop {
            if let Some(update) = rx.borrow_and_update().clone() {
                return Some(update);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    provider.abort();
    match first {
        Ok(Some(update)) => Ok(Loaded {
            update: (*update).clone(),
            sources: HashMap::new(),
        }),
        Ok(None) => Err(CheckError::KubeStopped),
        Err(_) => Err(CheckError::KubeTimeout(timeout)),
    }
}

/// Loads from the server's source: `--manifests`, else the Kubernetes API
/// (waiting at most `timeout` for its lists).
///
/// # Errors
///
/// See [`load_manifests`] and [`load_kube`].
pub async fn load(source: &Source, timeout: Duration) -> Result<Loaded, CheckError> {
    match source {
        Source::Manifests(path) => load_manifests(path),
        Source::Kube(kube) => load_kube(kube, timeout).await,
    }
}

/// The compile options the server would use with `settings` (`--ingress-class`,
/// `--allow-cross-namespace`, `--default-cert-secret`).
///
/// # Errors
///
/// When `--default-cert-secret` is not `namespace/name`.
pub fn compile_options(settings: &Settings) -> Result<CompileOptions, CheckError> {
    let mut options = settings.compile.clone();
    if let Some(value) = &settings.tls.default_cert_secret {
        match value.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                options.default_cert_secret = Some((ns.to_owned(), name.to_owned()));
            }
            _ => {
                return Err(CheckError::Flag(format!(
                    "--default-cert-secret {value:?} is not namespace/name"
                )))
            }
        }
    }
    Ok(options)
}

/// One annotation that would not behave as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The full annotation key.
    pub annotation: String,
    /// Its value.
    pub value: String,
    /// `differs`, `refused`, `ignored` or `unknown`.
    pub status: &'static str,
    /// Why, in one line.
    pub reason: String,
    /// The object carrying it when it is not the Ingress (`Service ns/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A compiler or loader diagnostic, flattened for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The object at fault (`Ingress ns/name (file#doc)`).
    pub object: String,
    /// `error` or `warning`.
    pub severity: Severity,
    /// The diagnostic kind (`invalid_annotation`, `missing_service`...).
    pub kind: &'static str,
    /// What is wrong.
    pub message: String,
}

impl From<&Diagnostic> for Problem {
    fn from(d: &Diagnostic) -> Self {
        Self {
            object: d.object.to_string(),
            severity: d.severity,
            kind: d.kind.as_str(),
            message: d.message.clone(),
        }
    }
}

/// What `sluice check` found for one Ingress.
#[derive(Debug, Clone, Serialize)]
pub struct IngressReport {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `file#document` it came from (manifests only).
    pub source: Option<String>,
    /// Annotations that would not behave as they did.
    pub findings: Vec<Finding>,
    /// The compiler's diagnostics about it, its Services and its TLS Secrets.
    pub diagnostics: Vec<Problem>,
}

/// Annotation counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Honoured as before.
    pub supported: usize,
    /// Honoured, differently.
    pub differs: usize,
    /// The routes fail closed.
    pub refused: usize,
    /// No effect.
    pub ignored: usize,
    /// Not a known annotation (a typo?).
    pub unknown: usize,
}

/// The totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Ingresses of the served class, checked.
    pub ingresses_checked: usize,
    /// Ingresses of another class, not checked (see `--ingress-class`).
    pub ingresses_other_class: usize,
    /// Annotations (of checked Ingresses and their Services) by status.
    pub annotations: StatusCounts,
    /// Error diagnostics, everywhere.
    pub errors: usize,
    /// Warning diagnostics, everywhere.
    pub warnings: usize,
    /// The exit status: 0 when nothing would change, 1 otherwise.
    pub exit_code: i32,
}

/// Everything `sluice check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checked Ingresses, by namespace and name.
    pub ingresses: Vec<IngressReport>,
    /// Diagnostics about no checked Ingress (unparsable documents, Middlewares...).
    pub other_diagnostics: Vec<Problem>,
    /// The totals.
    pub summary: Summary,
}

/// Checks the loaded objects as a server with `options` would serve them.
pub fn check(loaded: &Loaded, options: &CompileOptions) -> Report {
    let snapshot = &loaded.update.snapshot;
    let registries = Registries::default();
    let compiled = router::compile(snapshot, options, &registries);
    let served = router::served_ingresses(snapshot, options);
    let mut summary = Summary {
        ingresses_checked: served.len(),
        ingresses_other_class: snapshot.ingresses.len().saturating_sub(served.len()),
        ..Summary::default()
    };
    let services: HashMap<(&str, &str), &BTreeMap<String, String>> = snapshot
        .services
        .iter()
        .filter_map(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            Some((
                (ns, s.metadata.name.as_deref()?),
                s.metadata.annotations.as_ref()?,
            ))
        })
        .collect();
    let mut ingresses: Vec<IngressReport> = served
        .iter()
        .map(|ing| {
            let namespace = ing
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = ing.metadata.name.clone().unwrap_or_default();
            let mut findings = Vec::new();
            if let Some(annotations) = &ing.metadata.annotations {
                for (key, value) in annotations {
                    judge(
                        key,
                        value,
                        On::Ingress,
                        None,
                        &mut summary.annotations,
                        &mut findings,
                    );
                }
            }
            for service in backend_services(ing) {
                let Some(annotations) = services.get(&(namespace.as_str(), service.as_str()))
                else {
                    continue;
                };
                let object = format!("Service {namespace}/{service}");
                for (key, value) in annotations.iter() {
                    judge(
                        key,
                        value,
                        On::Service,
                        Some(&object),
                        &mut summary.annotations,
                        &mut findings,
                    );
                }
            }
            let source = loaded
                .sources
                .get(&(namespace.clone(), name.clone()))
                .cloned();
            IngressReport {
                namespace,
                name,
                source,
                findings,
                diagnostics: Vec::new(),
            }
        })
        .collect();
    let mut other_diagnostics = Vec::new();
    for diagnostic in loaded
        .update
        .diagnostics
        .iter()
        .chain(&compiled.diagnostics)
    {
        match diagnostic.severity {
            Severity::Error => summary.errors += 1,
            Severity::Warning => summary.warnings += 1,
        }
        let owners: Vec<usize> = served
            .iter()
            .enumerate()
            .filter(|(_, ing)| concerns(diagnostic, ing))
            .map(|(i, _)| i)
            .collect();
        if owners.is_empty() {
            other_diagnostics.push(Problem::from(diagnostic));
        }
        for i in owners {
            ingresses[i].diagnostics.push(Problem::from(diagnostic));
        }
    }
    ingresses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let changed = summary.annotations.differs
        + summary.annotations.refused
        + summary.annotations.ignored
        + summary.annotations.unknown;
    summary.exit_code = i32::from(changed > 0 || summary.errors > 0);
    Report {
        ingresses,
        other_diagnostics,
        summary,
    }
}

/// Classifies one annotation of an object of kind `on`; anything that would
/// not behave as before becomes a finding.
fn judge(
    key: &str,
    value: &str,
    on: On,
    object: Option<&str>,
    counts: &mut StatusCounts,
    findings: &mut Vec<Finding>,
) {
    let ours = key.starts_with(NGINX_PREFIX) || key.starts_with(TRAEFIK_PREFIX);
    if !ours || (on == On::Service && !key.starts_with(TRAEFIK_PREFIX)) {
        return;
    }
    let (status, reason) = match catalog::lookup(key) {
        None if key.starts_with(NGINX_PREFIX) => (
            "unknown",
            "unknown annotation: not one of ingress-nginx v1.15's (a typo, or one ingress-nginx removed); no effect".to_owned(),
        ),
        None => (
            "unknown",
            "unknown annotation: not one of Traefik's Kubernetes Ingress provider's (a typo?); no effect".to_owned(),
        ),
        Some(entry) if entry.on != on => (
            "ignored",
            match entry.on {
                On::Service => "a Service annotation: sluice reads it only on the backend Service, not on the Ingress",
                On::Ingress => "an Ingress annotation: sluice reads it only on the Ingress, not on the Service",
            }
            .to_owned(),
        ),
        Some(entry) => {
            let status = entry.status_for(value);
            if status == Status::Supported {
                counts.supported += 1;
                return;
            }
            (status.name(), status.reason().to_owned())
        }
    };
    match status {
        "differs" => counts.differs += 1,
        "refused" => counts.refused += 1,
        "ignored" => counts.ignored += 1,
        _ => counts.unknown += 1,
    }
    findings.push(Finding {
        annotation: key.to_owned(),
        value: value.to_owned(),
        status,
        reason,
        object: object.map(str::to_owned),
    });
}

/// The Services an Ingress sends to (its namespace).
fn backend_services(ing: &Ingress) -> BTreeSet<String> {
    let Some(spec) = &ing.spec else {
        return BTreeSet::new();
    };
    let rules = spec.rules.iter().flatten();
    let paths = rules.filter_map(|r| r.http.as_ref()).flat_map(|h| &h.paths);
    paths
        .map(|p| &p.backend)
        .chain(&spec.default_backend)
        .filter_map(|b| b.service.as_ref())
        .map(|s| s.name.clone())
        .collect()
}

/// Whether a diagnostic is about `ing`, one of its Services or its TLS Secrets.
fn concerns(diagnostic: &Diagnostic, ing: &Ingress) -> bool {
    let object = &diagnostic.object;
    let namespace = ing.metadata.namespace.as_deref().unwrap_or("default");
    if object.namespace.as_deref() != Some(namespace) {
        return false;
    }
    match object.kind.as_str() {
        "Ingress" => ing.metadata.name.as_deref() == Some(object.name.as_str()),
        "Service" => backend_services(ing).contains(&object.name),
        "Secret" => ing
            .spec
            .as_ref()
            .and_then(|s| s.tls.as_ref())
            .is_some_and(|tls| {
                tls.iter()
                    .any(|t| t.secret_name.as_deref() == Some(object.name.as_str()))
            }),
        _ => false,
    }
}

impl Report {
    /// The exit status: 0 when nothing would change behaviour, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        self.summary.exit_code
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for ing in &self.ingresses {
            let source = ing
                .source
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let _ = write!(out, "Ingress {}/{}{source}", ing.namespace, ing.name);
            if ing.findings.is_empty() && ing.diagnostics.is_empty() {
                out.push_str(": ok\n");
                continue;
            }
            out.push('\n');
            for f in &ing.findings {
                let on = f
                    .object
                    .as_deref()
                    .map(|o| format!(" (on {o})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {:<8} {}: {:?}{on}", f.status, f.annotation, f.value);
                let _ = writeln!(out, "           {}", f.reason);
            }
            for d in &ing.diagnostics {
                write_problem(&mut out, d);
            }
        }
        if !self.other_diagnostics.is_empty() {
            out.push_str("Other objects\n");
            for d in &self.other_diagnostics {
                write_problem(&mut out, d);
            }
        }
        let s = &self.summary;
        let a = &s.annotations;
        let plural =
            |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let _ = writeln!(
            out,
            "\n{} {} checked, {} of another class not checked (see --ingress-class).\n\
             Annotations: {} supported, {} differ, {} refused, {} ignored, {} unknown.\n\
             Diagnostics: {} {}, {} {}.",
            s.ingresses_checked,
            plural(s.ingresses_checked, "Ingress", "Ingresses"),
            s.ingresses_other_class,
            a.supported,
            a.differs,
            a.refused,
            a.ignored,
            a.unknown,
            s.errors,
            plural(s.errors, "error", "errors"),
            s.warnings,
            plural(s.warnings, "warning", "warnings"),
        );
        out
    }
}

fn write_problem(out: &mut String, d: &Problem) {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(
        out,
        "  {severity:<8} {}: {}: {}",
        d.object, d.kind, d.message
    );
}

#[cfg(test)]
mod tests;
