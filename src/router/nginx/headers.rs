//! `custom-headers` and `upstream-vhost`.
//!
//! - `custom-headers` names a ConfigMap of response headers. ConfigMaps are
//!   not part of sluice's snapshot, so the annotation is reported and
//!   ignored (ingress-nginx also denies the location, 503, when the
//!   ConfigMap is missing or names a header outside
//!   `global-allowed-response-headers`, which is empty by default).
//! - `upstream-vhost`: the Host the backend gets
//!   (`proxy_set_header Host <value>`), through an `nginxHeaders` step. A
//!   value with nginx variables is reported and ignored.

use serde_json::json;

use super::{Annotations, Translation};

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    if let Some(name) = a.get("custom-headers") {
        out.ignore(
            "custom-headers",
            format!("names the ConfigMap {name:?}; sluice does not read ConfigMaps, so no header is added"),
        );
    }
    if let Some(host) = a.get("upstream-vhost").filter(|h| !h.is_empty()) {
        let valid = host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']')
        });
        if valid {
            out.step(
                "nginx-upstream-vhost",
                "nginxHeaders",
                json!({"request": [{"name": "Host", "value": host}]}),
            );
        } else {
            out.ignore(
                "upstream-vhost",
                format!("{host:?} is not a host name (nginx variables are not evaluated)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn vhost_becomes_a_host_header_and_configmaps_are_ignored() {
        let t = all(&annotations(&[
            ("upstream-vhost", "internal.svc:8080"),
            ("custom-headers", "default/hdrs"),
        ]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(
            t.steps[0].config["request"][0]["value"],
            "internal.svc:8080"
        );
        assert_eq!(t.ignored.len(), 1);
        let t = all(&annotations(&[("upstream-vhost", "$host")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
    }
}
