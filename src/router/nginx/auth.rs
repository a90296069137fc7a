//! Authentication annotations: basic/digest (`auth-type`, `auth-secret`,
//! `auth-secret-type`, `auth-realm`) and external auth (`auth-url`,
//! `auth-method`, `auth-signin`, `auth-signin-redirect-param`,
//! `auth-response-headers`, `auth-request-redirect`, `auth-cache-key`,
//! `auth-cache-duration`, `auth-proxy-set-headers`).
//!
//! They are read here and put by [`super::access`] into the one
//! `nginxAccess` step of the access phase, which combines them with the
//! allow/deny lists as `satisfy` says; [`translate`] itself adds nothing.
//! Every refusal fails the route closed (500).

use serde_json::{json, Map, Value};

use super::{Annotations, Translation};

/// The access phase is emitted by [`super::access::translate`].
pub(super) fn translate(_a: &Annotations<'_>, _out: &mut Translation) {}

/// The basic/digest section of `nginxAccess`, `None` when not configured or refused.
pub(super) fn basic(a: &Annotations<'_>, out: &mut Translation) -> Option<Value> {
    let kind = a.get("auth-type");
    let secret = a.get("auth-secret");
    let (kind, secret) = match (kind, secret) {
        (None, None) => return None,
        (Some(kind), _) if kind != "basic" && kind != "digest" => {
            out.refuse(
                "auth-type",
                format!("{kind:?} is not basic or digest; the routes answer 500 rather than serve unauthenticated"),
            );
            return None;
        }
        (Some(_), None) | (Some(_), Some("")) => {
            out.refuse(
                "auth-secret",
                "auth-type needs auth-secret (the Secret holding the users)",
            );
            return None;
        }
        (None, Some(_)) => {
            out.refuse(
                "auth-type",
                "auth-secret is set without auth-type (basic or digest); the routes answer 500 rather than serve unauthenticated",
            );
            return None;
        }
        (Some(kind), Some(secret)) => (kind, secret),
    };
    if !secret_name_ok(secret) {
        out.refuse(
            "auth-secret",
            format!("{secret:?} is not a Secret name or namespace/name"),
        );
        return None;
    }
    let secret_type = a.get("auth-secret-type").unwrap_or("auth-file");
    if secret_type != "auth-file" && secret_type != "auth-map" {
        out.refuse(
            "auth-secret-type",
            format!("{secret_type:?} is not auth-file or auth-map"),
        );
        return None;
    }
    let realm = a.get("auth-realm").unwrap_or("");
    if realm.chars().any(|c| c.is_control()) {
        out.refuse("auth-realm", "the realm holds control characters");
        return None;
    }
    Some(json!({
        "type": kind,
        "secret": secret,
        "secretType": secret_type,
        "realm": realm,
    }))
}

/// `name` or `namespace/name`, each a DNS subdomain.
fn secret_name_ok(value: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match value.split_once('/') {
        Some((ns, name)) => part(ns) && part(name),
        None => part(value),
    }
}

/// The external-auth section of `nginxAccess`, `None` when not configured or refused.
pub(super) fn external(
    a: &Annotations<'_>,
    env: &super::Env<'_>,
    out: &mut Translation,
) -> Option<Value> {
    let dependent = [
        "auth-method",
        "auth-signin",
        "auth-signin-redirect-param",
        "auth-response-headers",
        "auth-request-redirect",
        "auth-cache-key",
        "auth-cache-duration",
        "auth-proxy-set-headers",
    ];
    let Some(url) = a.get("auth-url") else {
        for name in dependent {
            if a.get(name).is_some() {
                out.ignore(name, "it only applies with auth-url");
            }
        }
        return None;
    };
    let mut refused = false;
    let mut refuse = |out: &mut Translation, name: &str, reason: String| {
        out.refuse(name, reason);
        refused = true;
    };
    if let Err(reason) = check_url(url) {
        refuse(out, "auth-url", reason);
    }
    let mut config = Map::new();
    config.insert("url".into(), json!(url));
    if let Some(method) = a.get("auth-method") {
        const METHODS: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
        ];
        if METHODS.contains(&method) {
            config.insert("method".into(), json!(method));
        } else {
            refuse(
                out,
                "auth-method",
                format!("{method:?} is not an HTTP method"),
            );
        }
    }
    if let Some(signin) = a.get("auth-signin") {
        // The variables ingress-nginx users put in sign-in URLs are expanded.
        let plain = [
            "$escaped_request_uri",
            "$request_uri",
            "$pass_access_scheme",
            "$scheme",
            "$best_http_host",
            "$http_host",
            "$host",
        ]
        .iter()
        .fold(signin.to_owned(), |s, v| {
            s.replace(v, if v.ends_with("scheme") { "http" } else { "x" })
        });
        match check_url(&plain) {
            Ok(()) => {
                config.insert("signin".into(), json!(signin));
            }
            // ingress-nginx only warns: a 401 stays a 401.
            Err(reason) => out.ignore("auth-signin", reason),
        }
    }
    if let Some(param) = a.get("auth-signin-redirect-param") {
        if !param.is_empty()
            && param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            config.insert("signinRedirectParam".into(), json!(param));
        } else {
            out.ignore(
                "auth-signin-redirect-param",
                format!("{param:?} is not a query parameter name; rd is used"),
            );
        }
    }
    if let Some(list) = a.get("auth-response-headers") {
        let names: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        match names.iter().find(|h| {
            !h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            Some(bad) => refuse(
                out,
                "auth-response-headers",
                format!("{bad:?} is not a header name"),
            ),
            None => {
                config.insert("responseHeaders".into(), json!(names));
            }
        }
    }
    if let Some(redirect) = a.get("auth-request-redirect") {
        if http::HeaderValue::from_str(redirect).is_ok() {
            config.insert("requestRedirect".into(), json!(redirect));
        } else {
            refuse(
                out,
                "auth-request-redirect",
                format!("{redirect:?} is not a header value"),
            );
        }
    }
    if let Some(key) = a.get("auth-cache-key").filter(|k| !k.is_empty()) {
        match check_cache_key(key) {
            Ok(()) => {
                config.insert("cacheKey".into(), json!(key));
                if let Some(durations) = a.get("auth-cache-duration") {
                    match cache_durations(durations) {
                        Ok(list) => {
                            config.insert("cacheDuration".into(), json!(list));
                        }
                        Err(reason) => refuse(out, "auth-cache-duration", reason),
                    }
                }
            }
            Err(reason) => out.ignore(
                "auth-cache-key",
                format!("{reason}; answers are not cached"),
            ),
        }
    } else if let Some(durations) = a.get("auth-cache-duration") {
        if let Err(reason) = cache_durations(durations) {
            refuse(out, "auth-cache-duration", reason);
        }
    }
    if let Some(name) = a.get("auth-proxy-set-headers").filter(|n| !n.is_empty()) {
        // ingress-nginx denies the location when the ConfigMap is missing or
        // names an invalid header: the auth request would lack them.
        match env.config_map(name) {
            Ok(data) => match data.keys().find(|h| !super::global::valid_header_name(h)) {
                Some(bad) => refuse(
                    out,
                    "auth-proxy-set-headers",
                    format!("{bad:?} in ConfigMap {name} is not a header name"),
                ),
                None => {
                    config.insert("proxySetHeaders".into(), json!(data));
                }
            },
            Err(reason) => refuse(out, "auth-proxy-set-headers", reason),
        }
    }
    (!refused).then_some(Value::Object(config))
}

/// An absolute http(s) URL with a host and no nginx variables.
fn check_url(url: &str) -> Result<(), String> {
    if url.contains('$') {
        return Err(format!(
            "{url:?} holds nginx variables, which sluice does not expand"
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "{url:?} is not an absolute http:// or https:// URL"
        ));
    }
    Ok(())
}

/// The nginx variables a cache key may use.
fn check_cache_key(key: &str) -> Result<(), String> {
    let mut rest = key;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let (name, after) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').ok_or("unclosed ${ in the key")?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        rest = after;
        let known = ["http_", "cookie_", "arg_"]
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p))
            || [
                "remote_addr",
                "host",
                "request_uri",
                "uri",
                "scheme",
                "request_method",
                "remote_user",
            ]
            .contains(&name);
        if !known {
            return Err(format!("variable ${name} is not supported"));
        }
    }
    Ok(())
}

/// `auth-cache-duration`: comma-separated `[codes...] <duration>` entries,
/// as ingress-nginx validates them.
fn cache_durations(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut seen_duration = false;
        for word in entry.split_whitespace() {
            let code = word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit());
            let split = word.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
            let unit = &word[split..];
            let duration = split > 0 && ["ms", "s", "m", "h", "d", "w", "M", "y"].contains(&unit);
            if code && !seen_duration {
                continue;
            }
            if duration && !seen_duration {
                seen_duration = true;
                continue;
            }
            return Err(format!("{entry:?} is not `[status codes] <duration>`"));
        }
        if !seen_duration {
            return Err(format!("{entry:?} has no duration"));
        }
        out.push(entry.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn basic_auth_reads_type_secret_and_defaults() {
        let t = all(&annotations(&[
            ("auth-type", "basic"),
            ("auth-secret", "creds"),
            ("auth-realm", "Staff only"),
        ]));
        assert!(t.refused.is_empty(), "{:?}", t.refused);
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "nginxAccess");
        let basic = &t.steps[0].config["basic"];
        assert_eq!(basic["type"], "basic");
        assert_eq!(basic["secret"], "creds");
        assert_eq!(basic["secretType"], "auth-file");
        assert_eq!(basic["realm"], "Staff only");
    }

    #[test]
    fn bad_basic_auth_values_fail_closed() {
        for pairs in [
            &[("auth-type", "bearer"), ("auth-secret", "creds")][..],
            &[("auth-type", "basic")][..],
            &[("auth-secret", "creds")][..],
            &[("auth-type", "basic"), ("auth-secret", "Bad_Name")][..],
            &[
                ("auth-type", "digest"),
                ("auth-secret", "creds"),
                ("auth-secret-type", "auth-json"),
            ][..],
        ] {
            let t = all(&annotations(pairs));
            assert!(t.steps.is_empty(), "{pairs:?}");
            assert_eq!(t.refused.len(), 1, "{pairs:?}");
        }
    }

    #[test]
    fn external_auth_reads_its_annotations() {
        let t = all(&annotations(&[
            ("auth-url", "http://auth.test/check"),
            ("auth-method", "POST"),
            ("auth-signin", "https://login.test/start"),
            ("auth-signin-redirect-param", "next"),
            ("auth-response-headers", "X-User, X-Email"),
            ("auth-request-redirect", "/after"),
            ("auth-cache-key", "$http_authorization"),
            ("auth-cache-duration", "200 1m, 401 10s"),
        ]));
        assert!(t.refused.is_empty(), "{:?}", t.refused);
        assert!(t.ignored.is_empty(), "{:?}", t.ignored);
        let e = &t.steps[0].config["external"];
        assert_eq!(e["method"], "POST");
        assert_eq!(
            e["responseHeaders"],
            serde_json::json!(["X-User", "X-Email"])
        );
        assert_eq!(e["cacheDuration"], serde_json::json!(["200 1m", "401 10s"]));
        assert_eq!(e["signinRedirectParam"], "next");
    }

    #[test]
    fn bad_external_auth_values_fail_closed() {
        for (pairs, bad) in [
            (&[("auth-url", "not a url")][..], "auth-url"),
            (&[("auth-url", "ftp://x/")][..], "auth-url"),
            (
                &[("auth-url", "http://a/"), ("auth-method", "FETCH")][..],
                "auth-method",
            ),
            (
                &[
                    ("auth-url", "http://a/"),
                    ("auth-response-headers", "X User"),
                ][..],
                "auth-response-headers",
            ),
            (
                &[
                    ("auth-url", "http://a/"),
                    ("auth-cache-key", "$remote_user"),
                    ("auth-cache-duration", "5m 200"),
                ][..],
                "auth-cache-duration",
            ),
        ] {
            let t = all(&annotations(pairs));
            assert!(t.steps.is_empty(), "{pairs:?}");
            assert!(
                t.refused.iter().any(|(a, _)| a.ends_with(bad)),
                "{pairs:?}: {:?}",
                t.refused
            );
        }
        let t = all(&annotations(&[("auth-signin", "https://login/")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
    }
}
