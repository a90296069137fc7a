//! The access phase: `denylist-source-range`, `whitelist-source-range` /
//! `allowlist-source-range` and `satisfy`, combined with the authentication
//! annotations [`super::auth`] reads.
//!
//! An allow list alone stays Traefik's `ipAllowList` (others get 403, as
//! nginx's `allow` entries followed by `deny all`). Anything more becomes one
//! `nginxAccess` step: nginx checks `deny` entries before `allow` entries,
//! and `satisfy any` lets a client in when EITHER the allow list admits it
//! OR it authenticates (`satisfy all`, the default, wants both).

use serde_json::{json, Map, Value};

use super::{Annotations, Translation};

/// The access-phase annotations (lists, `satisfy`, authentication).
pub(super) fn translate(a: &Annotations<'_>, env: &super::Env<'_>, out: &mut Translation) {
    let refused_before = out.refused.len();
    let allow = list(
        a,
        &["allowlist-source-range", "whitelist-source-range"],
        out,
    );
    let deny = list(a, &["denylist-source-range"], out);
    let satisfy = match a.get("satisfy") {
        None | Some("") | Some("all") => "all",
        Some("any") => "any",
        Some(other) => {
            out.refuse(
                "satisfy",
                format!("{other:?} is not any or all; the routes answer 500 rather than guess"),
            );
            "all"
        }
    };
    let basic = super::auth::basic(a, out);
    let external = super::auth::external(a, env, out);
    if out.refused.len() > refused_before {
        return;
    }
    if deny.is_none() && basic.is_none() && external.is_none() {
        if let Some(ranges) = allow {
            out.step(
                "nginx-allowlist",
                "ipAllowList",
                json!({ "sourceRange": ranges }),
            );
        }
        return;
    }
    let mut config = Map::new();
    if let Some(allow) = allow {
        config.insert("allow".into(), json!(allow));
    }
    if let Some(deny) = deny {
        config.insert("deny".into(), json!(deny));
    }
    config.insert("satisfy".into(), json!(satisfy));
    if let Some(basic) = basic {
        config.insert("basic".into(), basic);
    }
    if let Some(external) = external {
        config.insert("external".into(), external);
    }
    out.step("nginx-access", "nginxAccess", Value::Object(config));
}

/// The first of `names` (newer name first) set, as CIDRs; refused when bad.
fn list(a: &Annotations<'_>, names: &[&str], out: &mut Translation) -> Option<Vec<String>> {
    for name in names {
        let Some(value) = a.get(name) else { continue };
        return match cidrs(value) {
            Ok(ranges) => Some(ranges),
            Err(bad) => {
                out.refuse(
                    name,
                    format!("{bad:?} is not an IP address or CIDR; the routes answer 500 rather than serve without the list"),
                );
                None
            }
        };
    }
    None
}

/// A comma-separated list of addresses and CIDRs, normalised; the first bad entry on error.
pub(super) fn cidrs(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .parse::<ipnet::IpNet>()
            .map(|n| n.to_string())
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(|ip| ip.to_string()));
        match parsed {
            Ok(net) => out.push(net),
            Err(_) => return Err(entry.to_owned()),
        }
    }
    if out.is_empty() {
        return Err(value.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn deny_lists_and_satisfy_make_one_access_step() {
        let t = all(&annotations(&[
            ("denylist-source-range", "10.1.0.0/16"),
            ("allowlist-source-range", "10.0.0.0/8"),
        ]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "nginxAccess");
        assert_eq!(
            t.steps[0].config["deny"],
            serde_json::json!(["10.1.0.0/16"])
        );
        assert_eq!(
            t.steps[0].config["allow"],
            serde_json::json!(["10.0.0.0/8"])
        );
        assert_eq!(t.steps[0].config["satisfy"], "all");
        let t = all(&annotations(&[
            ("satisfy", "any"),
            ("whitelist-source-range", "10.0.0.0/8"),
            ("auth-type", "basic"),
            ("auth-secret", "creds"),
        ]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].config["satisfy"], "any");
        assert_eq!(t.steps[0].config["basic"]["secret"], "creds");
        for bad in [
            &[("denylist-source-range", "10.0.0.0/99")][..],
            &[
                ("satisfy", "either"),
                ("whitelist-source-range", "10.0.0.0/8"),
            ][..],
        ] {
            let t = all(&annotations(bad));
            assert!(t.steps.is_empty(), "{bad:?}");
            assert_eq!(t.refused.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn allow_lists_become_an_ip_allow_list_and_bad_ones_fail_closed() {
        let t = all(&annotations(&[(
            "whitelist-source-range",
            "10.0.0.0/8, 192.168.1.7",
        )]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "ipAllowList");
        assert_eq!(
            t.steps[0].config["sourceRange"],
            serde_json::json!(["10.0.0.0/8", "192.168.1.7"])
        );
        let t = all(&annotations(&[("allowlist-source-range", "10.0.0.0/33")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.refused.len(), 1);
        assert!(t.refused[0].0.ends_with("allowlist-source-range"));
    }
}
