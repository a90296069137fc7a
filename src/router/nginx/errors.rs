//! `default-backend`, `custom-http-errors` and `disable-proxy-intercept-errors`.
//!
//! - `default-backend: <name>` names a Service of the Ingress's namespace
//!   (a DNS-1035 label, as ingress-nginx validates it); its *first* port
//!   receives the traffic, as ingress-nginx picks it. It serves the Ingress's
//!   requests while the rule's Service has no ready endpoint (or does not
//!   exist): an `nginxDefaultBackend` step, last of the annotation steps,
//!   where ingress-nginx swaps the location's upstream. A Service that does
//!   not exist or has no port is reported and the annotation ignored, as
//!   ingress-nginx ignores it.
//! - `custom-http-errors: 404,503` (codes 400-599, comma-separated, spaces
//!   allowed): an `nginxCustomErrors` step, first of the chain (nginx's
//!   `error_page` covers every answer of the location), which replaces
//!   answers with those statuses by the default backend's answer (see
//!   `middleware::nginx::errors_kinds`). A bad list is reported and ignored.
//! - `disable-proxy-intercept-errors: "true"`: backend responses pass
//!   unchanged; only the proxy's own failures (502, 503, 504) are replaced.

use serde_json::json;

use super::{Annotations, Env, Translation};
use crate::middleware::InlineStep;

/// Reads the annotations into the custom-errors and default-backend steps.
pub(super) fn translate(a: &Annotations<'_>, env: &Env<'_>, out: &mut Translation) {
    let backend = a
        .get("default-backend")
        .and_then(|name| match first_port(name, env) {
            Ok(port) => Some((name, port)),
            Err(reason) => {
                out.ignore("default-backend", reason);
                None
            }
        });
    let intercept = match a.flag("disable-proxy-intercept-errors") {
        None | Some(Ok(false)) => true,
        Some(Ok(true)) => false,
        Some(Err(value)) => {
            out.ignore(
                "disable-proxy-intercept-errors",
                format!("{value:?} is not a boolean"),
            );
            true
        }
    };
    if let Some(value) = a.get("custom-http-errors") {
        match codes(value) {
            Ok(codes) => out.steps.insert(
                0,
                InlineStep {
                    name: "nginx-custom-errors".to_owned(),
                    kind: "nginxCustomErrors".to_owned(),
                    config: json!({
                        "codes": codes,
                        "intercept": intercept,
                        "service": backend.map(|(name, _)| name),
                        "port": backend.map(|(_, port)| port),
                    }),
                },
            ),
            Err(reason) => out.ignore("custom-http-errors", reason),
        }
    }
    if let Some((name, port)) = backend {
        out.step(
            "nginx-default-backend",
            "nginxDefaultBackend",
            json!({ "service": name, "port": port }),
        );
    }
}

/// The first port of the Service `name` in the Ingress's namespace, or why
/// it cannot be the default backend.
fn first_port(name: &str, env: &Env<'_>) -> Result<i32, String> {
    if !is_dns1035_label(name) {
        return Err(format!("{name:?} is not a Service name (a DNS-1035 label)"));
    }
    let namespace = env.namespace;
    let service = env
        .snapshot
        .services
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .ok_or_else(|| format!("Service {namespace}/{name} not found"))?;
    service
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_deref())
        .and_then(<[_]>::first)
        .map(|port| port.port)
        .ok_or_else(|| format!("Service {namespace}/{name} has no port"))
}

/// Kubernetes' DNS-1035 label: lowercase letters, digits and `-`, starting
/// with a letter, ending with a letter or digit, at most 63 characters.
fn is_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= 63
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The codes of `custom-http-errors` as ingress-nginx accepts them (its
/// pattern `^(?:[4,5]\d{2},?)*$` once spaces are removed): three-digit
/// statuses from 400 to 599, separated by commas, one trailing comma allowed.
fn codes(value: &str) -> Result<Vec<u16>, String> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    let list = compact.strip_suffix(',').unwrap_or(&compact);
    if list.is_empty() {
        return Err("no status code listed".to_owned());
    }
    list.split(',')
        .map(|item| {
            item.parse::<u16>()
                .ok()
                .filter(|code| item.len() == 3 && (400..=599).contains(code))
                .ok_or_else(|| format!("{item:?} is not a status code from 400 to 599"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::tests::annotations;
    use super::super::{translate_in, Global};
    use super::*;
    use crate::router::Snapshot;

    fn service(namespace: &str, name: &str, ports: &[i32]) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(
                    ports
                        .iter()
                        .map(|p| ServicePort {
                            port: *p,
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    }

    fn translated(pairs: &[(&str, &str)]) -> Translation {
        let snapshot = Snapshot {
            services: vec![
                service("default", "pages", &[8081, 8082]),
                service("default", "portless", &[]),
                service("other", "elsewhere", &[80]),
            ],
            ..Snapshot::default()
        };
        let global = Global::default();
        let all: BTreeMap<String, String> = annotations(pairs);
        translate_in(
            &all,
            &Env {
                namespace: "default",
                snapshot: &snapshot,
                global: &global,
                allow_cross_namespace: false,
            },
        )
    }

    #[test]
    fn codes_follow_ingress_nginx_validation() {
        assert_eq!(codes("404,503"), Ok(vec![404, 503]));
        assert_eq!(codes(" 404, 500 ,"), Ok(vec![404, 500]));
        for bad in [
            "", ",", "404,,503", ",404", "399", "600", "4040", "404500", "abc", "40x", "+404",
        ] {
            assert!(codes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        for good in ["a", "pages", "error-pages-2"] {
            assert!(is_dns1035_label(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Pages",
            "2pages",
            "pages-",
            "ns/pages",
            "pa_ges",
            long.as_str(),
        ] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
    }

    #[test]
    fn a_default_backend_uses_the_first_port_and_runs_last() {
        let t = translated(&[
            ("default-backend", "pages"),
            ("custom-http-errors", "404,503"),
            ("limit-rps", "5"),
        ]);
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
        let first = t.steps.first().expect("steps");
        assert_eq!(first.kind, "nginxCustomErrors");
        assert_eq!(
            first.config,
            json!({"codes": [404, 503], "intercept": true, "service": "pages", "port": 8081})
        );
        let last = t.steps.last().expect("steps");
        assert_eq!(last.kind, "nginxDefaultBackend");
        assert_eq!(last.config, json!({"service": "pages", "port": 8081}));
    }

    #[test]
    fn custom_errors_without_a_default_backend_name_no_service() {
        let t = translated(&[
            ("custom-http-errors", "502"),
            ("disable-proxy-intercept-errors", "true"),
        ]);
        assert_eq!(t.steps.len(), 1);
        assert_eq!(
            t.steps[0].config,
            json!({"codes": [502], "intercept": false, "service": null, "port": null})
        );
    }

    #[test]
    fn unusable_values_are_reported_and_ignored() {
        for (value, reason) in [
            ("nope", "default/nope not found"),
            ("portless", "has no port"),
            ("elsewhere", "default/elsewhere not found"),
            ("other/elsewhere", "not a Service name"),
        ] {
            let t = translated(&[("default-backend", value), ("custom-http-errors", "404")]);
            assert_eq!(t.ignored.len(), 1, "{value}: {:?}", t.ignored);
            assert!(t.ignored[0].0.ends_with("default-backend"));
            assert!(t.ignored[0].1.contains(reason), "{:?}", t.ignored);
            assert!(t.refused.is_empty());
            // Custom errors stay, answered as without a default backend.
            assert_eq!(t.steps.len(), 1);
            assert_eq!(t.steps[0].config["service"], json!(null));
        }
        let t = translated(&[("custom-http-errors", "404,abc")]);
        assert!(t.steps.is_empty());
        assert!(t.ignored[0].0.ends_with("custom-http-errors"));
        assert!(t.ignored[0].1.contains("\"abc\""), "{:?}", t.ignored);
        let t = translated(&[
            ("custom-http-errors", "404"),
            ("disable-proxy-intercept-errors", "sometimes"),
        ]);
        assert!(t.ignored[0].0.ends_with("disable-proxy-intercept-errors"));
        assert_eq!(t.steps[0].config["intercept"], json!(true));
    }
}
