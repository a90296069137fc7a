//! `--nginx-configmap`: the ingress-nginx controller ConfigMap's settings
//! that change how requests are served, applied to every Ingress sluice serves.
//!
//! - Keys that are also annotations (`proxy-body-size`,
//!   `proxy-connect-timeout`, `proxy-read-timeout`, `custom-http-errors`,
//!   `ssl-redirect`, `force-ssl-redirect`, `proxy-next-upstream`(`-tries`,
//!   `-timeout`), `load-balance`, `upstream-hash-by`) become every Ingress's
//!   default for that annotation: an Ingress's own annotation wins. As in
//!   ingress-nginx, `proxy-body-size` defaults to `1m` once the ConfigMap is
//!   in use, and every Ingress is then read in ingress-nginx style (HTTPS
//!   redirect for the hosts its TLS section covers).
//! - `limit-req-status-code` / `limit-conn-status-code`: the status of
//!   `limit-rps`/`limit-rpm` and of `limit-connections` refusals (default 503).
//! - `hsts`, `hsts-max-age`, `hsts-include-subdomains`, `hsts-preload`: the
//!   `Strict-Transport-Security` header on HTTPS responses (on by default:
//!   `max-age=31536000; includeSubDomains`).
//! - `add-headers` / `proxy-set-headers`: `namespace/name` of a ConfigMap of
//!   headers set on every response / every request to the backends.
//! - `global-allowed-response-headers`: the only header names the
//!   `custom-headers` annotation may set.
//!
//! Keys that configure nginx itself (workers, buffers, log formats...) have
//! no counterpart and are left alone; the few that would change behaviour
//! and that sluice cannot honour are reported once, on the ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::body::parse_size;
use crate::router::{Diagnostic, DiagnosticKind, ObjectRef, Snapshot};

/// ConfigMap keys that are every Ingress's default for the annotation of the same name.
const ANNOTATION_DEFAULTS: [&str; 11] = [
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "custom-http-errors",
    "ssl-redirect",
    "force-ssl-redirect",
    "proxy-next-upstream",
    "proxy-next-upstream-tries",
    "proxy-next-upstream-timeout",
    "load-balance",
    "upstream-hash-by",
];

/// Keys that change behaviour in ingress-nginx but have no effect in sluice, with why.
const WITHOUT_EFFECT: [(&str, &str); 6] = [
    (
        "use-forwarded-headers",
        "sluice always passes X-Forwarded-* on (appending the client address)",
    ),
    (
        "proxy-send-timeout",
        "sluice streams request bodies and has no send timeout",
    ),
    (
        "proxy-request-buffering",
        "sluice streams request bodies to the backend",
    ),
    ("proxy-buffering", "sluice streams responses to the client"),
    (
        "client-body-buffer-size",
        "sluice streams request bodies and keeps no body buffer",
    ),
    (
        "enable-opentelemetry",
        "tracing is configured with --tracing-otlp-endpoint",
    ),
];

/// ingress-nginx's `hsts-max-age` default.
const HSTS_MAX_AGE: u64 = 31_536_000;

/// The controller ConfigMap's settings, read once per compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Global {
    /// Whether `--nginx-configmap` is in use (every Ingress is then read in
    /// ingress-nginx style).
    pub enabled: bool,
    /// Annotation defaults, by annotation name without the prefix.
    pub defaults: BTreeMap<String, String>,
    /// The status `limit-rps`/`limit-rpm` refusals answer (`limit-req-status-code`).
    pub limit_status: Option<u16>,
    /// The status `limit-connections` refusals answer (`limit-conn-status-code`).
    pub limit_conn_status: Option<u16>,
    /// `Strict-Transport-Security` on HTTPS responses: (max-age, includeSubDomains, preload).
    pub hsts: Option<(u64, bool, bool)>,
    /// Headers set on every response (`add-headers`).
    pub add_headers: BTreeMap<String, String>,
    /// Headers set on every request to a backend (`proxy-set-headers`).
    pub proxy_set_headers: BTreeMap<String, String>,
    /// `global-allowed-response-headers`, lowercased.
    pub allowed_response_headers: Vec<String>,
}

impl Global {
    /// Reads the ConfigMap `name` (namespace, name) from `snapshot`; problems
    /// become diagnostics on the ConfigMap. A missing ConfigMap leaves
    /// ingress-nginx's defaults.
    pub(crate) fn read(
        snapshot: &Snapshot,
        name: Option<&(String, String)>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Self {
        let Some((namespace, map_name)) = name else {
            return Self::default();
        };
        let object = ObjectRef::namespaced("ConfigMap", namespace, map_name);
        let mut warn = |message: String| {
            tracing::warn!(%object, "{message}");
            diagnostics.push(Diagnostic::warning(
                object.clone(),
                DiagnosticKind::InvalidAnnotation,
                message,
            ));
        };
        let empty = BTreeMap::new();
        let data = match config_map(snapshot, namespace, map_name) {
            Some(map) => map.data.as_ref().unwrap_or(&empty),
            None => {
                warn(format!(
                    "--nginx-configmap {namespace}/{map_name}: no such ConfigMap; ingress-nginx's defaults apply"
                ));
                &empty
            }
        };
        let mut global = Self {
            enabled: true,
            ..Self::default()
        };
        for key in ANNOTATION_DEFAULTS {
            if let Some(value) = data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                global.defaults.insert(key.to_owned(), value.to_owned());
            }
        }
        if !global.defaults.contains_key("proxy-body-size") {
            global
                .defaults
                .insert("proxy-body-size".to_owned(), "1m".to_owned());
        }
        if let Some(size) = global.defaults.get("proxy-body-size") {
            if parse_size(size).is_none() {
                warn(format!(
                    "proxy-body-size: {size:?} is not a size; every Ingress without its own proxy-body-size answers 500"
                ));
            }
        }
        for (key, target) in [
            ("limit-req-status-code", &mut global.limit_status),
            ("limit-conn-status-code", &mut global.limit_conn_status),
        ] {
            if let Some(value) = data.get(key) {
                match value.trim().parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => *target = Some(code),
                    _ => warn(format!(
                        "{key}: {value:?} is not an HTTP status; limits answer 503"
                    )),
                }
            }
        }
        global.hsts = hsts(data, &mut warn);
        for (key, target) in [
            ("add-headers", &mut global.add_headers),
            ("proxy-set-headers", &mut global.proxy_set_headers),
        ] {
            let Some(value) = data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some((ns, name)) = split_name(value, namespace) else {
                warn(format!("{key}: {value:?} is not a ConfigMap name"));
                continue;
            };
            match config_map(snapshot, &ns, &name) {
                Some(headers) => {
                    for (header, text) in headers.data.iter().flatten() {
                        if !valid_header_name(header) || text.contains(['\r', '\n', '$']) {
                            warn(format!(
                                "{key}: the header {header:?} of ConfigMap {ns}/{name} is not a header name with a plain value (nginx variables are not evaluated); it is left out"
                            ));
                            continue;
                        }
                        target.insert(header.clone(), text.clone());
                    }
                }
                None => warn(format!(
                    "{key}: no ConfigMap {ns}/{name}; no header is added"
                )),
            }
        }
        if let Some(value) = data.get("global-allowed-response-headers") {
            global.allowed_response_headers = value
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
        }
        for (key, why) in WITHOUT_EFFECT {
            if data.contains_key(key) {
                warn(format!("{key}: not honoured: {why}"));
            }
        }
        global
    }

    /// `annotations` with this ConfigMap's defaults added under the
    /// ingress-nginx prefix where the Ingress does not set them itself;
    /// `None` when nothing is added.
    pub(crate) fn with_defaults(
        &self,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Option<BTreeMap<String, String>> {
        if !self.enabled {
            return None;
        }
        let mut merged = annotations.cloned().unwrap_or_default();
        let before = merged.len();
        for (key, value) in &self.defaults {
            merged
                .entry(format!("{}{key}", super::PREFIX))
                .or_insert_with(|| value.clone());
        }
        (merged.len() > before).then_some(merged)
    }
}

/// The ConfigMaps a controller ConfigMap names (`add-headers`,
/// `proxy-set-headers`), as (namespace, name), for the Kubernetes watcher.
pub fn references(map: &ConfigMap) -> Vec<(String, String)> {
    let own = map.metadata.namespace.as_deref().unwrap_or("default");
    ["add-headers", "proxy-set-headers"]
        .into_iter()
        .filter_map(|key| map.data.as_ref()?.get(key))
        .filter_map(|value| split_name(value.trim(), own))
        .collect()
}

/// The ConfigMap `namespace/name` of `snapshot`.
pub(crate) fn config_map<'s>(
    snapshot: &'s Snapshot,
    namespace: &str,
    name: &str,
) -> Option<&'s ConfigMap> {
    snapshot
        .config_maps
        .iter()
        .find(|m| {
            m.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && m.metadata.name.as_deref() == Some(name)
        })
        .map(|m| &**m)
}

/// `namespace/name`, or a bare `name` in `own`.
pub(crate) fn split_name(value: &str, own: &str) -> Option<(String, String)> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match value.split_once('/') {
        Some((ns, name)) if ok(ns) && ok(name) => Some((ns.to_owned(), name.to_owned())),
        None if ok(value) => Some((own.to_owned(), value.to_owned())),
        _ => None,
    }
}

/// ingress-nginx's header-name rule (`^[a-zA-Z\d\-_]+$`).
pub(crate) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hsts(
    data: &BTreeMap<String, String>,
    warn: &mut impl FnMut(String),
) -> Option<(u64, bool, bool)> {
    let mut flag = |key: &str, default: bool| match data.get(key).map(|v| v.trim()) {
        None => default,
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            warn(format!(
                "{key}: {other:?} is not true or false; {default} is used"
            ));
            default
        }
    };
    if !flag("hsts", true) {
        return None;
    }
    let include = flag("hsts-include-subdomains", true);
    let preload = flag("hsts-preload", false);
    let max_age = match data.get("hsts-max-age").map(|v| v.trim()) {
        None => HSTS_MAX_AGE,
        Some(v) => v.parse().unwrap_or_else(|_| {
            warn(format!(
                "hsts-max-age: {v:?} is not a number of seconds; {HSTS_MAX_AGE} is used"
            ));
            HSTS_MAX_AGE
        }),
    };
    Some((max_age, include, preload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn map(ns: &str, name: &str, data: &[(&str, &str)]) -> Arc<ConfigMap> {
        let mut m = ConfigMap::default();
        m.metadata.namespace = Some(ns.into());
        m.metadata.name = Some(name.into());
        m.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        Arc::new(m)
    }

    #[test]
    fn the_configmap_sets_defaults_headers_and_statuses() {
        let snapshot = Snapshot {
            config_maps: vec![
                map(
                    "ingress-nginx",
                    "controller",
                    &[
                        ("proxy-read-timeout", "120"),
                        ("limit-req-status-code", "429"),
                        ("limit-conn-status-code", "503"),
                        ("hsts-max-age", "600"),
                        ("hsts-include-subdomains", "false"),
                        ("add-headers", "ingress-nginx/resp"),
                        ("proxy-set-headers", "req"),
                        ("global-allowed-response-headers", "X-A, x-b"),
                        ("worker-processes", "8"),
                        ("use-forwarded-headers", "true"),
                    ],
                ),
                map("ingress-nginx", "resp", &[("X-Frame-Options", "DENY")]),
                map(
                    "ingress-nginx",
                    "req",
                    &[("X-Env", "prod"), ("X-Bad", "$host")],
                ),
            ],
            ..Snapshot::default()
        };
        let mut diagnostics = Vec::new();
        let name = ("ingress-nginx".to_owned(), "controller".to_owned());
        let g = Global::read(&snapshot, Some(&name), &mut diagnostics);
        assert!(g.enabled);
        assert_eq!(g.defaults["proxy-read-timeout"], "120");
        assert_eq!(g.defaults["proxy-body-size"], "1m");
        assert_eq!(g.limit_status, Some(429));
        assert_eq!(g.limit_conn_status, Some(503));
        assert_eq!(g.hsts, Some((600, false, false)));
        assert_eq!(g.add_headers["X-Frame-Options"], "DENY");
        assert_eq!(g.proxy_set_headers.len(), 1);
        assert_eq!(g.allowed_response_headers, ["x-a", "x-b"]);
        let text: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text.iter().any(|t| t.contains("X-Bad")));
        assert!(text.iter().any(|t| t.contains("use-forwarded-headers")));
        assert_eq!(
            references(&snapshot.config_maps[0]),
            vec![
                ("ingress-nginx".to_owned(), "resp".to_owned()),
                ("ingress-nginx".to_owned(), "req".to_owned())
            ]
        );
    }

    #[test]
    fn an_ingress_annotation_wins_over_the_default() {
        let g = Global {
            enabled: true,
            defaults: [("proxy-body-size".to_owned(), "1m".to_owned())].into(),
            ..Global::default()
        };
        let own: BTreeMap<String, String> = [(
            "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
            "8m".to_owned(),
        )]
        .into();
        let merged = g.with_defaults(Some(&own));
        assert!(merged.is_none(), "nothing to add");
        let merged = g.with_defaults(None).expect("defaults added");
        assert_eq!(merged["nginx.ingress.kubernetes.io/proxy-body-size"], "1m");
        assert!(Global::default().with_defaults(None).is_none());
    }

    #[test]
    fn a_missing_configmap_keeps_nginx_defaults_and_is_reported() {
        let mut diagnostics = Vec::new();
        let name = ("x".to_owned(), "y".to_owned());
        let g = Global::read(&Snapshot::default(), Some(&name), &mut diagnostics);
        assert_eq!(g.hsts, Some((HSTS_MAX_AGE, true, false)));
        assert_eq!(g.limit_status, None);
        assert_eq!(diagnostics.len(), 1);
        assert!(Global::read(&Snapshot::default(), None, &mut diagnostics) == Global::default());
    }
}
