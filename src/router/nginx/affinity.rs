//! `affinity: cookie`: sticky sessions by cookie, with ingress-nginx's cookie
//! (`session-cookie-name`, default `INGRESSCOOKIE`; `session-cookie-path`,
//! default the rule's path; `-domain`, `-samesite`, `-expires`, `-max-age`,
//! `-secure`; always `HttpOnly`, as nginx's sticky module writes it), on the
//! same sticky-session machinery as Traefik's `service.sticky.cookie`.
//!
//! `affinity-mode` (`balanced` or `persistent`) and
//! `session-cookie-change-on-failure` are read but both behave as sluice's
//! sticky sessions do: a client stays on its endpoint while it is ready, and
//! is moved (with a new cookie) when it is gone.

use std::collections::BTreeMap;

use super::Annotations;
use crate::upstream::sticky::StickyCookie;

/// The sticky cookie an Ingress's affinity annotations ask for, for a rule
/// whose path is `rule_path`; `Ok(None)` without `affinity: cookie`.
pub(crate) fn cookie(
    annotations: Option<&BTreeMap<String, String>>,
    rule_path: Option<&str>,
) -> Result<Option<StickyCookie>, String> {
    let Some(all) = annotations else {
        return Ok(None);
    };
    let a = Annotations::new(all);
    match a.get("affinity") {
        None => return Ok(None),
        Some("cookie") => {}
        Some(other) => {
            return Err(format!(
                "affinity: {other:?} is not supported (only \"cookie\"); sticky sessions are off"
            ))
        }
    }
    let name = a
        .get("session-cookie-name")
        .filter(|n| !n.is_empty())
        .unwrap_or("INGRESSCOOKIE");
    // A regex location's cookie path is the pattern, which browsers would
    // never send back: nginx users set session-cookie-path then; default to `/`.
    let default_path = rule_path
        .filter(|p| p.starts_with('/') && !p.starts_with("(?i)"))
        .unwrap_or("/");
    let path = a.get("session-cookie-path").unwrap_or(default_path);
    let mut attributes: Vec<(&str, String)> = vec![("Path", path.to_owned())];
    if let Some(domain) = a.get("session-cookie-domain").filter(|d| !d.is_empty()) {
        attributes.push(("Domain", domain.to_owned()));
    }
    if let Some(expires) = a.get("session-cookie-expires") {
        let secs: u64 = expires.parse().map_err(|_| {
            format!("session-cookie-expires: {expires:?} is not a number of seconds")
        })?;
        let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
        attributes.push(("Expires", httpdate::fmt_http_date(at)));
    }
    if let Some(max_age) = a.get("session-cookie-max-age") {
        let secs: u64 = max_age.parse().map_err(|_| {
            format!("session-cookie-max-age: {max_age:?} is not a number of seconds")
        })?;
        attributes.push(("Max-Age", secs.to_string()));
    }
    if a.flag("session-cookie-secure") == Some(Ok(true)) {
        attributes.push(("Secure", String::new()));
    }
    attributes.push(("HttpOnly", String::new()));
    match a
        .get("session-cookie-samesite")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") => {}
        Some("none") => {
            attributes.push(("SameSite", "None".to_owned()));
            if !attributes.iter().any(|(k, _)| *k == "Secure") {
                attributes.push(("Secure", String::new()));
            }
        }
        Some("lax") => attributes.push(("SameSite", "Lax".to_owned())),
        Some("strict") => attributes.push(("SameSite", "Strict".to_owned())),
        Some(other) => {
            return Err(format!(
                "session-cookie-samesite: {other:?} is not None, Lax or Strict"
            ))
        }
    }
    let pairs: Vec<(&str, &str)> = attributes.iter().map(|(k, v)| (*k, v.as_str())).collect();
    StickyCookie::with_attributes(name, &pairs).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::*;

    #[test]
    fn cookie_affinity_follows_nginx_defaults() {
        let a = annotations(&[("affinity", "cookie")]);
        let c = cookie(Some(&a), Some("/app")).expect("valid").expect("on");
        assert_eq!(c.name, "INGRESSCOOKIE");
        let set = c
            .set_cookie("10.0.0.1:80".parse().expect("addr"))
            .expect("header");
        let text = set.to_str().expect("text");
        assert!(
            text.contains("; Path=/app") && text.contains("; HttpOnly"),
            "{text}"
        );
        let a = annotations(&[
            ("affinity", "cookie"),
            ("session-cookie-name", "route"),
            ("session-cookie-samesite", "None"),
            ("session-cookie-max-age", "3600"),
        ]);
        let c = cookie(Some(&a), Some("/")).expect("valid").expect("on");
        let text = c
            .set_cookie("10.0.0.1:80".parse().expect("addr"))
            .expect("header")
            .to_str()
            .expect("text")
            .to_owned();
        assert!(text.starts_with("route="), "{text}");
        assert!(
            text.contains("SameSite=None")
                && text.contains("Secure")
                && text.contains("Max-Age=3600")
        );
        assert!(cookie(Some(&annotations(&[("affinity", "ip")])), None).is_err());
        assert!(cookie(Some(&annotations(&[])), None).expect("ok").is_none());
    }
}
