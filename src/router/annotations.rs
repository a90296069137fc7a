//! Annotations that change how an Ingress is served: Traefik's
//! `traefik.ingress.kubernetes.io/*` and ingress-nginx's `nginx.ingress.kubernetes.io/*`.
//!
//! | annotation | effect |
//! |---|---|
//! | `traefik.ingress.kubernetes.io/router.entrypoints: web,websecure` | the entrypoints the Ingress's routes are served on (default: both) |
//! | `traefik.ingress.kubernetes.io/router.tls: "true"` | HTTPS only |
//! | `traefik.ingress.kubernetes.io/router.priority: "<integer>"` | the routes' priority among all routes matching a request (0: unset) |
//! | `traefik.ingress.kubernetes.io/router.pathmatcher: PathPrefix\|Path\|PathRegexp` | how `ImplementationSpecific` paths match (default `PathPrefix`) |
//! | `traefik.ingress.kubernetes.io/service.nativelb: "true"` (on the Service) | send to the ClusterIP and Service port instead of the endpoints |
//! | `traefik.ingress.kubernetes.io/service.serversscheme: https\|h2c\|http` (on the Service) | backend protocol |
//! | `nginx.ingress.kubernetes.io/backend-protocol: HTTP\|HTTPS\|GRPC\|GRPCS\|H2C` | backend protocol (wins over the Service's) |
//! | `nginx.ingress.kubernetes.io/force-ssl-redirect: "true"` | plain HTTP answers 308 to `https` |
//! | `nginx.ingress.kubernetes.io/ssl-redirect: "true"\|"false"` | 308 when the Ingress's TLS section covers the host |
//! | `nginx.ingress.kubernetes.io/preserve-trailing-slash: "true"` | the HTTPS redirect keeps a trailing `/` of the request URI (dropped by default, as ingress-nginx does) |
//! | `nginx.ingress.kubernetes.io/proxy-ssl-verify: "on"` + `proxy-ssl-secret: ns/name` (+ `proxy-ssl-name`) | verify HTTPS backends against the Secret's `ca.crt` |
//!
//! An Ingress with any `nginx.ingress.kubernetes.io/` annotation is read in
//! ingress-nginx style: like ingress-nginx it redirects plain HTTP to HTTPS for
//! hosts its TLS section covers unless `ssl-redirect: "false"`. Other Ingresses
//! (Traefik style) never redirect unless asked.

use std::collections::BTreeMap;

use super::{Diagnostic, DiagnosticKind, EntryPoints, ObjectRef, PathKind};
use crate::upstream::BackendProtocol;

const NGINX: &str = "nginx.ingress.kubernetes.io/";
const ENTRYPOINTS: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
const ROUTER_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";
const ROUTER_PRIORITY: &str = "traefik.ingress.kubernetes.io/router.priority";
const ROUTER_PATHMATCHER: &str = "traefik.ingress.kubernetes.io/router.pathmatcher";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const PRESERVE_TRAILING_SLASH: &str = "nginx.ingress.kubernetes.io/preserve-trailing-slash";
const BACKEND_PROTOCOL: &str = "nginx.ingress.kubernetes.io/backend-protocol";
const PROXY_SSL_VERIFY: &str = "nginx.ingress.kubernetes.io/proxy-ssl-verify";
const PROXY_SSL_SECRET: &str = "nginx.ingress.kubernetes.io/proxy-ssl-secret";
const PROXY_SSL_NAME: &str = "nginx.ingress.kubernetes.io/proxy-ssl-name";

/// Traefik's Service annotation: send the client's Host to the backend (default true).
pub(super) const PASS_HOST_HEADER: &str = "traefik.ingress.kubernetes.io/service.passhostheader";
/// Traefik's Service annotation: send to the ClusterIP instead of the endpoints.
pub(super) const NATIVE_LB: &str = "traefik.ingress.kubernetes.io/service.nativelb";
/// The Service annotation that names the backend scheme in Traefik.
pub(super) const SERVERS_SCHEME: &str = "traefik.ingress.kubernetes.io/service.serversscheme";

/// Backend certificate verification asked for by `proxy-ssl-*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProxySsl {
    /// The Secret holding `ca.crt`: (namespace, name).
    pub secret: (String, String),
    /// The name to verify; default `<service>.<namespace>.svc`.
    pub server_name: Option<String>,
}

/// What an Ingress's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IngressOptions {
    /// The entrypoints its routes are served on.
    pub entrypoints: EntryPoints,
    /// `force-ssl-redirect: "true"`.
    pub force_ssl_redirect: bool,
    /// `ssl-redirect`, when set.
    pub ssl_redirect: Option<bool>,
    /// `preserve-trailing-slash: "true"`: the HTTPS redirect keeps a
    /// trailing `/` (ingress-nginx drops it by default).
    pub preserve_trailing_slash: bool,
    /// Whether any ingress-nginx annotation is present.
    pub nginx_style: bool,
    /// `backend-protocol`, when set.
    pub backend_protocol: Option<BackendProtocol>,
    /// `proxy-ssl-verify: "on"` with its Secret.
    pub proxy_ssl: Option<ProxySsl>,
    /// `router.priority`, when set to a non-zero integer.
    pub priority: Option<i64>,
    /// How `ImplementationSpecific` paths match (`router.pathmatcher`);
    /// `None` when the annotation is invalid: those paths are left out.
    pub path_matcher: Option<PathKind>,
}

impl Default for IngressOptions {
    fn default() -> Self {
        Self {
            entrypoints: EntryPoints::ALL,
            force_ssl_redirect: false,
            ssl_redirect: None,
            preserve_trailing_slash: false,
            nginx_style: false,
            backend_protocol: None,
            proxy_ssl: None,
            priority: None,
            path_matcher: Some(PathKind::Prefix),
        }
    }
}

impl IngressOptions {
    /// Whether plain-HTTP requests for a rule get a 308 to HTTPS, given whether
    /// the Ingress's TLS section covers the rule's host.
    pub fn redirects(&self, host_has_tls: bool) -> bool {
        if self.force_ssl_redirect {
            return true;
        }
        match self.ssl_redirect {
            Some(asked) => asked && host_has_tls,
            None => self.nginx_style && host_has_tls,
        }
    }
}

/// Reads an Ingress's annotations; bad values become diagnostics on `object`.
pub(super) fn ingress_options(
    annotations: Option<&BTreeMap<String, String>>,
    object: &ObjectRef,
    namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> IngressOptions {
    let Some(a) = annotations.filter(|a| !a.is_empty()) else {
        return IngressOptions::default();
    };
    let mut bad = |key: &str, value: &str, expected: &str| {
        diagnostics.push(Diagnostic::error(
            object.clone(),
            DiagnosticKind::InvalidAnnotation,
            format!("annotation {key}: {value:?} is not valid (expected {expected})"),
        ));
    };
    let mut entrypoints = EntryPoints::ALL;
    if let Some(value) = a.get(ENTRYPOINTS) {
        entrypoints = parse_entrypoints(value).unwrap_or_else(|| {
            bad(
                "router.entrypoints",
                value,
                "web, websecure or both, comma-separated",
            );
            // Fail closed: a route meant for some entrypoint is served on none.
            EntryPoints {
                web: false,
                websecure: false,
            }
        });
    }
    if let Some(value) = a.get(ROUTER_TLS) {
        match parse_bool(value) {
            Some(true) => entrypoints.web = false,
            Some(false) => {}
            None => bad("router.tls", value, "true or false"),
        }
    }
    let mut flag = |key: &str, name: &str| {
        let value = a.get(key)?;
        let parsed = parse_bool(value);
        if parsed.is_none() {
            bad(name, value, "true or false");
        }
        parsed
    };
    let force_ssl_redirect = flag(FORCE_SSL_REDIRECT, "force-ssl-redirect").unwrap_or(false);
    let ssl_redirect = flag(SSL_REDIRECT, "ssl-redirect");
    let preserve_trailing_slash =
        flag(PRESERVE_TRAILING_SLASH, "preserve-trailing-slash").unwrap_or(false);
    let backend_protocol = a.get(BACKEND_PROTOCOL).and_then(|value| {
        let parsed = nginx_protocol(value);
        if parsed.is_none() {
            bad("backend-protocol", value, "HTTP, HTTPS, GRPC, GRPCS or H2C");
        }
        parsed
    });
    let proxy_ssl = proxy_ssl(a, namespace, &mut bad);
    let priority = a.get(ROUTER_PRIORITY).and_then(|value| {
        let parsed = parse_priority(value);
        if parsed.is_err() {
            bad(
                "router.priority",
                value,
                "an integer; the routes keep their default priority",
            );
        }
        parsed.ok().flatten()
    });
    let path_matcher = match a.get(ROUTER_PATHMATCHER) {
        None => Some(PathKind::Prefix),
        Some(value) => {
            let parsed = parse_path_matcher(value);
            if parsed.is_none() {
                bad(
                    "router.pathmatcher",
                    value,
                    "PathPrefix, Path or PathRegexp; the Ingress's ImplementationSpecific paths are left out",
                );
            }
            parsed
        }
    };
    IngressOptions {
        entrypoints,
        force_ssl_redirect,
        ssl_redirect,
        preserve_trailing_slash,
        nginx_style: a.keys().any(|k| k.starts_with(NGINX)),
        backend_protocol,
        proxy_ssl,
        priority,
        path_matcher,
    }
}

/// Traefik's `router.priority`: an integer, where 0 means unset (the rule length).
fn parse_priority(value: &str) -> Result<Option<i64>, std::num::ParseIntError> {
    let priority: i64 = value.trim().parse()?;
    Ok((priority != 0).then_some(priority))
}

/// Traefik's `router.pathmatcher` matcher names, as the rule syntax spells them.
fn parse_path_matcher(value: &str) -> Option<PathKind> {
    match value.trim() {
        "PathPrefix" => Some(PathKind::Prefix),
        "Path" => Some(PathKind::Exact),
        "PathRegexp" => Some(PathKind::Regex),
        _ => None,
    }
}

/// Traefik's `service.nativelb` on a Service (false when absent); `Err` with
/// the value when it is not a boolean.
pub(super) fn native_lb(value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| v.to_owned()),
    }
}

fn proxy_ssl(
    a: &BTreeMap<String, String>,
    namespace: &str,
    bad: &mut impl FnMut(&str, &str, &str),
) -> Option<ProxySsl> {
    let verify = a.get(PROXY_SSL_VERIFY)?;
    if !verify.trim().eq_ignore_ascii_case("on") {
        if !verify.trim().eq_ignore_ascii_case("off") {
            bad("proxy-ssl-verify", verify, "on or off");
        }
        return None;
    }
    let Some(secret) = a.get(PROXY_SSL_SECRET) else {
        bad(
            "proxy-ssl-secret",
            "",
            "namespace/name of a Secret with ca.crt",
        );
        // Verification was asked for: never fall back to not verifying.
        return Some(ProxySsl {
            secret: (namespace.to_owned(), String::new()),
            server_name: None,
        });
    };
    let secret = match secret.split_once('/') {
        Some((ns, name)) => (ns.trim().to_owned(), name.trim().to_owned()),
        None => (namespace.to_owned(), secret.trim().to_owned()),
    };
    let server_name = a
        .get(PROXY_SSL_NAME)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    Some(ProxySsl {
        secret,
        server_name,
    })
}

/// Reads Traefik's `service.serversscheme` from a Service's annotations.
pub(super) fn servers_scheme(value: &str) -> Option<BackendProtocol> {
    match value.trim().to_ascii_lowercase().as_str() {
        "http" => Some(BackendProtocol::Http),
        "https" => Some(BackendProtocol::Https),
        "h2c" => Some(BackendProtocol::H2c),
        _ => None,
    }
}

fn nginx_protocol(value: &str) -> Option<BackendProtocol> {
    match value.trim().to_ascii_uppercase().as_str() {
        "HTTP" | "AUTO_HTTP" => Some(BackendProtocol::Http),
        "HTTPS" => Some(BackendProtocol::Https),
        "GRPC" | "H2C" => Some(BackendProtocol::H2c),
        "GRPCS" => Some(BackendProtocol::H2),
        _ => None,
    }
}

fn parse_entrypoints(value: &str) -> Option<EntryPoints> {
    let mut eps = EntryPoints {
        web: false,
        websecure: false,
    };
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "web" => eps.web = true,
            "websecure" => eps.websecure = true,
            _ => return None,
        }
    }
    (eps.web || eps.websecure).then_some(eps)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> (IngressOptions, Vec<Diagnostic>) {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut diags = Vec::new();
        let object = ObjectRef::namespaced("Ingress", "default", "app");
        (
            ingress_options(Some(&map), &object, "default", &mut diags),
            diags,
        )
    }

    #[test]
    fn entrypoints_default_to_both_and_follow_the_annotation() {
        assert_eq!(options(&[]).0.entrypoints, EntryPoints::ALL);
        let (o, d) = options(&[(
            "traefik.ingress.kubernetes.io/router.entrypoints",
            "websecure",
        )]);
        assert_eq!(
            o.entrypoints,
            EntryPoints {
                web: false,
                websecure: true
            }
        );
        assert!(d.is_empty());
        let (o, _) = options(&[(
            "traefik.ingress.kubernetes.io/router.entrypoints",
            "web, websecure",
        )]);
        assert_eq!(o.entrypoints, EntryPoints::ALL);
        let (o, _) = options(&[("traefik.ingress.kubernetes.io/router.tls", "true")]);
        assert_eq!(
            o.entrypoints,
            EntryPoints {
                web: false,
                websecure: true
            }
        );
        let (o, d) = options(&[("traefik.ingress.kubernetes.io/router.entrypoints", "webz")]);
        assert_eq!(
            o.entrypoints,
            EntryPoints {
                web: false,
                websecure: false
            },
            "fail closed"
        );
        assert_eq!(d[0].kind, DiagnosticKind::InvalidAnnotation);
    }

    #[test]
    fn redirect_rules_follow_ingress_nginx_and_traefik_styles() {
        let traefik = options(&[]).0;
        assert!(!traefik.redirects(true));
        let nginx = options(&[("nginx.ingress.kubernetes.io/proxy-body-size", "8m")]).0;
        assert!(nginx.redirects(true) && !nginx.redirects(false));
        let opted_out = options(&[("nginx.ingress.kubernetes.io/ssl-redirect", "false")]).0;
        assert!(!opted_out.redirects(true));
        let asked = options(&[("nginx.ingress.kubernetes.io/ssl-redirect", "true")]).0;
        assert!(asked.redirects(true) && !asked.redirects(false));
        let forced = options(&[("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")]).0;
        assert!(forced.redirects(false));
    }

    #[test]
    fn priority_is_an_integer_and_zero_means_unset() {
        let key = "traefik.ingress.kubernetes.io/router.priority";
        assert_eq!(options(&[]).0.priority, None);
        let (o, d) = options(&[(key, " 42 ")]);
        assert_eq!((o.priority, d.len()), (Some(42), 0));
        let (o, d) = options(&[(key, "-7")]);
        assert_eq!((o.priority, d.len()), (Some(-7), 0));
        let (o, d) = options(&[(key, "0")]);
        assert_eq!((o.priority, d.len()), (None, 0));
        for bad in ["high", "1.5", "", "99999999999999999999"] {
            let (o, d) = options(&[(key, bad)]);
            assert_eq!(o.priority, None, "{bad:?}");
            assert_eq!(d.len(), 1, "{bad:?}");
            assert_eq!(d[0].kind, DiagnosticKind::InvalidAnnotation);
            assert!(d[0].to_string().contains("Ingress default/app"));
            assert!(d[0].message.contains("router.priority"));
        }
    }

    #[test]
    fn path_matcher_names_map_to_path_kinds() {
        let key = "traefik.ingress.kubernetes.io/router.pathmatcher";
        assert_eq!(options(&[]).0.path_matcher, Some(PathKind::Prefix));
        for (value, kind) in [
            ("PathPrefix", PathKind::Prefix),
            ("Path", PathKind::Exact),
            (" PathRegexp ", PathKind::Regex),
        ] {
            let (o, d) = options(&[(key, value)]);
            assert_eq!(o.path_matcher, Some(kind), "{value}");
            assert!(d.is_empty());
        }
        for bad in ["pathregexp", "Prefix", "Host", ""] {
            let (o, d) = options(&[(key, bad)]);
            assert_eq!(o.path_matcher, None, "{bad:?} fails closed");
            assert_eq!(d[0].kind, DiagnosticKind::InvalidAnnotation);
            assert!(d[0].message.contains("router.pathmatcher"));
        }
    }

    #[test]
    fn native_lb_is_a_boolean() {
        assert_eq!(native_lb(None), Ok(false));
        assert_eq!(native_lb(Some("true")), Ok(true));
        assert_eq!(native_lb(Some(" False")), Ok(false));
        assert_eq!(native_lb(Some("yes")), Err("yes".to_owned()));
    }

    #[test]
    fn backend_protocols_and_verification() {
        let (o, _) = options(&[("nginx.ingress.kubernetes.io/backend-protocol", "GRPC")]);
        assert_eq!(o.backend_protocol, Some(BackendProtocol::H2c));
        let (o, d) = options(&[("nginx.ingress.kubernetes.io/backend-protocol", "FCGI")]);
        assert_eq!(o.backend_protocol, None);
        assert_eq!(d.len(), 1);
        assert_eq!(servers_scheme("HTTPS"), Some(BackendProtocol::Https));
        let (o, _) = options(&[
            ("nginx.ingress.kubernetes.io/proxy-ssl-verify", "on"),
            (
                "nginx.ingress.kubernetes.io/proxy-ssl-secret",
                "certs/backend-ca",
            ),
        ]);
        assert_eq!(
            o.proxy_ssl,
            Some(ProxySsl {
                secret: ("certs".into(), "backend-ca".into()),
                server_name: None
            })
        );
    }
}
