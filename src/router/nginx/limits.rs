//! Request limits (nginx's preaccess phase): `limit-rps`, `limit-rpm`,
//! `limit-burst-multiplier`, `limit-connections` and `limit-allowlist`
//! (alias `limit-whitelist`), as one `nginxLimit` step.
//!
//! Per client IP; `limit-rps`/`limit-rpm` are nginx's `limit_req` with
//! `burst = rate × limit-burst-multiplier` (default 5) and `nodelay`;
//! `limit-connections` is `limit_conn`; clients in the allow list are never
//! limited; refusals answer 503. A value that is not a non-negative integer
//! is refused (the routes answer 500); 0 turns that limit off, as in nginx.

use serde_json::{json, Map, Value};

use super::access::cidrs;
use super::{Annotations, Translation};

/// Reads the limit annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, env: &super::Env<'_>, out: &mut Translation) {
    let refused_before = out.refused.len();
    let mut number = |name: &str| -> u64 {
        let Some(value) = a.get(name) else { return 0 };
        match value.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                out.refuse(
                    name,
                    format!("{value:?} is not a non-negative integer; the routes answer 500 rather than serve unlimited"),
                );
                0
            }
        }
    };
    let rps = number("limit-rps");
    let rpm = number("limit-rpm");
    let connections = number("limit-connections");
    let multiplier = a
        .get("limit-burst-multiplier")
        .map(|_| number("limit-burst-multiplier"));
    let mut allowlist = None;
    for name in ["limit-allowlist", "limit-whitelist"] {
        let Some(value) = a.get(name) else { continue };
        match cidrs(value) {
            Ok(ranges) => allowlist = Some(ranges),
            Err(bad) => out.refuse(
                name,
                format!("{bad:?} is not an IP address or CIDR; the routes answer 500 rather than guess who is exempt"),
            ),
        }
        break;
    }
    if out.refused.len() > refused_before || (rps == 0 && rpm == 0 && connections == 0) {
        return;
    }
    let mut config = Map::new();
    for (key, n) in [("rps", rps), ("rpm", rpm), ("connections", connections)] {
        if n > 0 {
            config.insert(key.into(), json!(n));
        }
    }
    if let Some(m) = multiplier {
        config.insert("burstMultiplier".into(), json!(m));
    }
    if let Some(list) = allowlist {
        config.insert("allowlist".into(), json!(list));
    }
    if let Some(status) = env.global.limit_status {
        config.insert("status".into(), json!(status));
    }
    if let Some(status) = env.global.limit_conn_status {
        config.insert("connectionsStatus".into(), json!(status));
    }
    out.step("nginx-limits", "nginxLimit", Value::Object(config));
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn limits_become_one_step() {
        let t = all(&annotations(&[
            ("limit-rps", "5"),
            ("limit-rpm", "100"),
            ("limit-connections", "2"),
            ("limit-burst-multiplier", "3"),
            ("limit-whitelist", "10.0.0.0/8"),
        ]));
        assert!(t.refused.is_empty(), "{:?}", t.refused);
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "nginxLimit");
        assert_eq!(
            t.steps[0].config,
            serde_json::json!({"rps": 5, "rpm": 100, "connections": 2, "burstMultiplier": 3, "allowlist": ["10.0.0.0/8"]})
        );
        let t = all(&annotations(&[
            ("limit-whitelist", "10.0.0.0/8"),
            ("limit-rps", "0"),
        ]));
        assert!(t.steps.is_empty() && t.refused.is_empty());
    }

    #[test]
    fn bad_limits_fail_closed() {
        for (name, value) in [
            ("limit-rps", "ten"),
            ("limit-rpm", "-1"),
            ("limit-connections", "1.5"),
            ("limit-burst-multiplier", "-2"),
            ("limit-allowlist", "10.0.0.0/33"),
        ] {
            let t = all(&annotations(&[("limit-rps", "1"), (name, value)]));
            assert!(t.steps.is_empty(), "{name}");
            assert!(t.refused.iter().any(|(a, _)| a.ends_with(name)), "{name}");
        }
    }
}
