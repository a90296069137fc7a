//! Diagnostics: what went wrong with which object, for logs, metrics and `/api/errors`.

use std::fmt;

use serde::Serialize;

/// Names the object a diagnostic or a route came from, so an operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// The object's kind, such as `Ingress` or `Service`; `Document` for an unparsable document.
    pub kind: String,
    /// The namespace, or `None` for cluster-scoped objects and unparsable documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name (for an unparsable document: empty).
    pub name: String,
    /// Where the object came from, such as `manifests/app.yaml#2` (file and document index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ObjectRef {
    /// A reference to a namespaced object.
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
            source: None,
        }
    }

    /// A reference to a cluster-scoped object.
    pub fn cluster(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: None,
            name: name.to_owned(),
            source: None,
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name)?,
            None => write!(f, "{} {}", self.kind, self.name)?,
        }
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object (or part of it) was left out, or a route answers an error.
    Error,
    /// Served, but probably not what the author meant.
    Warning,
}

/// What kind of problem a diagnostic reports; stable names for the metric label and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// A manifest document could not be parsed; it was skipped.
    ParseError,
    /// Two objects of the same kind share a namespace and name; one was kept.
    DuplicateObject,
    /// The object is invalid (bad path, bad host...); the invalid part was left out.
    InvalidObject,
    /// Two Ingresses claim the same host + path + type (or default backend); the older wins.
    Conflict,
    /// A backend names a Service that does not exist; its route answers 503.
    MissingService,
    /// A backend names a port the Service does not have; its route answers 503.
    MissingPort,
    /// An annotation has a value sluice cannot use; it is ignored (or fails closed).
    InvalidAnnotation,
    /// A TLS section or annotation names a Secret that does not exist.
    MissingSecret,
    /// A Secret cannot be used (not PEM, key does not match, no `ca.crt`...).
    InvalidSecret,
    /// A certificate has expired; it is still served.
    ExpiredCertificate,
    /// A referenced Middleware is missing, refused or invalid (the route answers 500).
    InvalidMiddleware,
}

impl DiagnosticKind {
    /// The stable snake_case name, as used in metrics labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "parse_error",
            Self::DuplicateObject => "duplicate_object",
            Self::InvalidObject => "invalid_object",
            Self::Conflict => "conflict",
            Self::MissingService => "missing_service",
            Self::MissingPort => "missing_port",
            Self::InvalidAnnotation => "invalid_annotation",
            Self::MissingSecret => "missing_secret",
            Self::InvalidSecret => "invalid_secret",
            Self::ExpiredCertificate => "expired_certificate",
            Self::InvalidMiddleware => "invalid_middleware",
        }
    }
}

/// One problem found while loading or compiling, tied to the object it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// The object at fault.
    pub object: ObjectRef,
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub kind: DiagnosticKind,
    /// A human-readable explanation naming what to fix.
    pub message: String,
}

impl Diagnostic {
    /// An error-severity diagnostic.
    pub fn error(object: ObjectRef, kind: DiagnosticKind, message: impl Into<String>) -> Self {
        Self {
            object,
            severity: Severity::Error,
            kind,
            message: message.into(),
        }
    }

    /// A warning-severity diagnostic.
    pub fn warning(object: ObjectRef, kind: DiagnosticKind, message: impl Into<String>) -> Self {
        Self {
            object,
            severity: Severity::Warning,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.object,
            self.kind.as_str(),
            self.message
        )
    }
}
