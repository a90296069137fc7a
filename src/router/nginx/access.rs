//! `whitelist-source-range` / `allowlist-source-range`: only these client
//! networks may use the route (others get 403), as ingress-nginx's `allow`
//! list followed by `deny all`.

use serde_json::json;

use super::{Annotations, Translation};

/// The client-address annotations.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    // `allowlist-source-range` is the newer name; either is read, the newer wins.
    for name in ["allowlist-source-range", "whitelist-source-range"] {
        let Some(value) = a.get(name) else { continue };
        match cidrs(value) {
            Ok(ranges) => out.step("nginx-allowlist", "ipAllowList", json!({ "sourceRange": ranges })),
            Err(bad) => out.refuse(
                name,
                format!("{bad:?} is not an IP address or CIDR; the routes answer 500 rather than serve without the allow-list"),
            ),
        }
        return;
    }
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
