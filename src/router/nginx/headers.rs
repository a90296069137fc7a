//! `upstream-vhost` (`custom-headers` is read in [`super::config_headers`]).
//!
//! - `upstream-vhost`: the Host the backend gets
//!   (`proxy_set_header Host <value>`), through an `nginxHeaders` step. A
//!   value with nginx variables is reported and ignored.

use serde_json::json;

use super::{Annotations, Translation};

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
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
    fn vhost_becomes_a_host_header() {
        let t = all(&annotations(&[("upstream-vhost", "internal.svc:8080")]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(
            t.steps[0].config["request"][0]["value"],
            "internal.svc:8080"
        );
        assert!(t.ignored.is_empty());
        let t = all(&annotations(&[("upstream-vhost", "$host")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
    }
}
