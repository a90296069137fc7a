//! Headers that come from ConfigMaps: the `custom-headers` annotation (a
//! ConfigMap of response headers, nginx's `more_set_headers`), and the
//! controller ConfigMap's `add-headers` (response), `proxy-set-headers`
//! (request to the backend) and HSTS settings, applied to every Ingress
//! when `--nginx-configmap` is set.
//!
//! As in ingress-nginx, `custom-headers` may only set the header names the
//! controller ConfigMap lists in `global-allowed-response-headers`, and a
//! missing ConfigMap or a header it may not set denies the location: the
//! routes answer 500 with a diagnostic. Without `--nginx-configmap` there is
//! no allow list to consult and every valid header name may be set.

use serde_json::{json, Value};

use super::global::valid_header_name;
use super::{Annotations, Env, Translation};

/// Reads `custom-headers` and the controller ConfigMap's headers into `out`.
pub(super) fn translate(a: &Annotations<'_>, env: &Env<'_>, out: &mut Translation) {
    let global = env.global;
    let mut response: Vec<Value> = global
        .add_headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if let Some(name) = a.get("custom-headers").filter(|n| !n.is_empty()) {
        match custom_headers(name, env) {
            Ok(headers) => response.extend(headers),
            Err(reason) => out.refuse("custom-headers", reason),
        }
    }
    let request: Vec<Value> = global
        .proxy_set_headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if !request.is_empty() || !response.is_empty() {
        out.step(
            "nginx-config-headers",
            "nginxHeaders",
            json!({"request": request, "response": response}),
        );
    }
    if let Some((max_age, include_subdomains, preload)) = global.hsts.filter(|_| global.enabled) {
        // Traefik's headers middleware sends it on HTTPS requests only, as
        // ingress-nginx does in its TLS server blocks.
        out.step(
            "nginx-hsts",
            "headers",
            json!({
                "stsSeconds": max_age,
                "stsIncludeSubdomains": include_subdomains,
                "stsPreload": preload,
            }),
        );
    }
}

/// The response headers of the ConfigMap `name`, checked as ingress-nginx
/// checks them.
fn custom_headers(name: &str, env: &Env<'_>) -> Result<Vec<Value>, String> {
    let data = env.config_map(name)?;
    let mut headers = Vec::with_capacity(data.len());
    for (header, value) in data {
        if !valid_header_name(header) {
            return Err(format!(
                "{header:?} in ConfigMap {name} is not a header name"
            ));
        }
        if value.is_empty() || value.contains(['\r', '\n']) {
            return Err(format!(
                "the value of {header} in ConfigMap {name} is empty or holds a line break"
            ));
        }
        if env.global.enabled
            && !env
                .global
                .allowed_response_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(header))
        {
            return Err(format!(
                "{header} (ConfigMap {name}) is not in the controller ConfigMap's global-allowed-response-headers"
            ));
        }
        headers.push(json!({"name": header, "value": value}));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;

    use super::super::tests::annotations;
    use super::super::{translate_in, Global};
    use super::*;
    use crate::router::Snapshot;

    /// (namespace, name, data) of a ConfigMap.
    type MapSpec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn snapshot(maps: &[MapSpec<'_>]) -> Snapshot {
        Snapshot {
            config_maps: maps
                .iter()
                .map(|(ns, name, data)| {
                    let mut m = ConfigMap::default();
                    m.metadata.namespace = Some((*ns).into());
                    m.metadata.name = Some((*name).into());
                    m.data = Some(
                        data.iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect::<BTreeMap<_, _>>(),
                    );
                    Arc::new(m)
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn run(annotation: &[(&str, &str)], snapshot: &Snapshot, global: &Global) -> Translation {
        translate_in(
            &annotations(annotation),
            &Env {
                namespace: "apps",
                snapshot,
                global,
                allow_cross_namespace: false,
            },
        )
    }

    #[test]
    fn custom_headers_become_response_headers() {
        let s = snapshot(&[("apps", "hdrs", &[("X-Frame-Options", "DENY")])]);
        let t = run(&[("custom-headers", "apps/hdrs")], &s, &Global::default());
        assert!(t.refused.is_empty(), "{:?}", t.refused);
        assert_eq!(t.steps.len(), 1);
        assert_eq!(
            t.steps[0].config["response"],
            json!([{"name": "X-Frame-Options", "value": "DENY"}])
        );
        // A bare name is the Ingress's namespace.
        let t = run(&[("custom-headers", "hdrs")], &s, &Global::default());
        assert_eq!(t.steps.len(), 1);
    }

    #[test]
    fn custom_headers_are_denied_as_ingress_nginx_denies_them() {
        let s = snapshot(&[
            ("apps", "hdrs", &[("X-Frame-Options", "DENY")]),
            ("apps", "bad", &[("X Bad", "1")]),
            ("other", "hdrs", &[("X-A", "1")]),
        ]);
        let none = Global::default();
        for value in ["missing", "apps/bad", "other/hdrs", "Not A Name"] {
            let t = run(&[("custom-headers", value)], &s, &none);
            assert_eq!(t.refused.len(), 1, "{value}");
            assert!(t.steps.is_empty(), "{value}");
        }
        let strict = Global {
            enabled: true,
            allowed_response_headers: vec!["x-other".into()],
            ..Global::default()
        };
        let t = run(&[("custom-headers", "hdrs")], &s, &strict);
        assert!(t.refused[0].1.contains("global-allowed-response-headers"));
        let allowed = Global {
            enabled: true,
            allowed_response_headers: vec!["x-frame-options".into()],
            hsts: Some((60, true, true)),
            ..Global::default()
        };
        let t = run(&[("custom-headers", "hdrs")], &s, &allowed);
        assert!(t.refused.is_empty());
        let kinds: Vec<&str> = t.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["nginxHeaders", "headers"]);
        assert_eq!(
            t.steps[1].config,
            json!({"stsSeconds": 60, "stsIncludeSubdomains": true, "stsPreload": true})
        );
    }

    #[test]
    fn controller_headers_apply_to_every_nginx_ingress() {
        let global = Global {
            enabled: true,
            add_headers: [("X-Served-By".to_owned(), "edge".to_owned())].into(),
            proxy_set_headers: [("X-Env".to_owned(), "prod".to_owned())].into(),
            ..Global::default()
        };
        let t = run(&[("proxy-body-size", "1m")], &Snapshot::default(), &global);
        let step = t
            .steps
            .iter()
            .find(|s| s.name == "nginx-config-headers")
            .expect("the headers step");
        assert_eq!(step.config["request"][0]["name"], "X-Env");
        assert_eq!(step.config["response"][0]["value"], "edge");
    }
}
