//! Redirect annotations, as ingress-nginx v1.15 reads them:
//!
//! - `from-to-www-redirect: "true"`: requests for `www.<host>` go to
//!   `<host>` (or the other way round for a `www.` rule) with 308
//!   (`http-redirect-code`'s default), `$scheme://<host>:<port>$request_uri`
//!   without a trailing `/` (`nginxWwwRedirect`).
//! - `app-root: /app`: a request for exactly `/` gets
//!   `302 $scheme://$http_host/app` (a server-level `if ($uri = /)`).
//! - `temporal-redirect: URL` (+ `temporal-redirect-code`, 300–307, default
//!   302) wins over `permanent-redirect: URL` (+ `permanent-redirect-code`,
//!   300–308, default 301): `return <code> <URL>;` for every request
//!   (`nginxReturn`; a non-redirect code such as 300 sends the URL as the body,
//!   as nginx's `return` does).
//!
//! A code that is not a number or is out of range is reported and the default
//! used (ingress-nginx falls back to the default for out-of-range codes); a
//! URL that is not an `http(s)` URL made of the characters ingress-nginx
//! accepts is reported and the redirect ignored.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::json;

use super::{Annotations, Translation};

/// ingress-nginx's `URLIsValidRegex`: the characters a redirect URL may use.
fn url_chars() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[\-._~a-zA-Z0-9/:,?&=]*$").expect("static regex"))
}

/// ingress-nginx's `RegexPathWithCapture`, without `$` (sluice would not
/// expand a variable there).
fn path_chars() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^/?[\-._~a-zA-Z0-9/:]*$").expect("static regex"))
}

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    match a.flag("from-to-www-redirect") {
        Some(Ok(true)) => out.step("nginx-www-redirect", "nginxWwwRedirect", json!({})),
        Some(Ok(false)) | None => {}
        Some(Err(bad)) => out.ignore(
            "from-to-www-redirect",
            format!("{bad:?} is not true or false"),
        ),
    }
    if let Some(root) = a.get("app-root") {
        if !root.starts_with('/') || root.starts_with("//") || !path_chars().is_match(root) {
            out.ignore(
                "app-root",
                format!("{root:?} is not an absolute path of letters, digits and -._~/:"),
            );
        } else {
            out.step(
                "nginx-app-root",
                "nginxReturn",
                json!({"code": 302, "text": format!("$scheme://$http_host{root}"), "onlyPath": "/"}),
            );
        }
    }
    let temporal = a.get("temporal-redirect").filter(|v| !v.is_empty());
    let permanent = a.get("permanent-redirect").filter(|v| !v.is_empty());
    let (name, url, code) = match (temporal, permanent) {
        (Some(url), other) => {
            if other.is_some() {
                out.ignore(
                    "permanent-redirect",
                    "temporal-redirect is set too and takes precedence",
                );
            }
            let code = code(a, out, "temporal-redirect-code", 300..=307, 302);
            ("temporal-redirect", url, code)
        }
        (None, Some(url)) => {
            let code = code(a, out, "permanent-redirect-code", 300..=308, 301);
            ("permanent-redirect", url, code)
        }
        (None, None) => return,
    };
    if let Err(reason) = valid_url(url) {
        out.ignore(name, reason);
        return;
    }
    out.step(
        "nginx-redirect",
        "nginxReturn",
        json!({"code": code, "text": url}),
    );
}

/// The status of `annotation`, or `default` (reported) when it is unusable.
fn code(
    a: &Annotations<'_>,
    out: &mut Translation,
    annotation: &str,
    range: std::ops::RangeInclusive<u16>,
    default: u16,
) -> u16 {
    let Some(value) = a.get(annotation) else {
        return default;
    };
    match value.parse::<u16>() {
        Ok(code) if range.contains(&code) => code,
        Ok(_) => {
            out.ignore(
                annotation,
                format!(
                    "{value} is outside {}-{}; {default} is used, as ingress-nginx does",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
        Err(_) => {
            out.ignore(
                annotation,
                format!("{value:?} is not a status code; {default} is used"),
            );
            default
        }
    }
}

/// ingress-nginx's checks of a redirect URL: its characters, and an
/// `http`/`https` scheme with a host.
fn valid_url(url: &str) -> Result<(), String> {
    if !url_chars().is_match(url) {
        return Err(format!(
            "{url:?} has characters ingress-nginx does not accept in a redirect URL"
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http or https URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn temporal_wins_and_codes_default() {
        let t = all(&annotations(&[
            ("permanent-redirect", "https://p.example/"),
            ("temporal-redirect", "https://t.example/x?a=1"),
            ("temporal-redirect-code", "308"),
        ]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "nginxReturn");
        assert_eq!(t.steps[0].config["code"], 302);
        assert_eq!(t.steps[0].config["text"], "https://t.example/x?a=1");
        assert_eq!(t.ignored.len(), 2, "{:?}", t.ignored);

        let t = all(&annotations(&[
            ("permanent-redirect", "https://p.example/"),
            ("permanent-redirect-code", "308"),
        ]));
        assert_eq!(t.steps[0].config["code"], 308);
        let t = all(&annotations(&[
            ("permanent-redirect", "https://p.example/"),
            ("permanent-redirect-code", "abc"),
        ]));
        assert_eq!(t.steps[0].config["code"], 301);
        assert_eq!(t.ignored.len(), 1);
    }

    #[test]
    fn bad_urls_and_roots_are_ignored() {
        for url in [
            "ftp://x.example/",
            "https://x.example/$host",
            "/relative",
            "https://",
        ] {
            let t = all(&annotations(&[("permanent-redirect", url)]));
            assert!(t.steps.is_empty(), "{url}");
            assert_eq!(t.ignored.len(), 1, "{url}");
            assert!(t.refused.is_empty());
        }
        let t = all(&annotations(&[("app-root", "/app")]));
        assert_eq!(t.steps[0].config["onlyPath"], "/");
        assert_eq!(t.steps[0].config["text"], "$scheme://$http_host/app");
        for root in ["app", "http://x/app", "/a$1", "//x"] {
            let t = all(&annotations(&[("app-root", root)]));
            assert!(t.steps.is_empty(), "{root}");
        }
        let t = all(&annotations(&[("from-to-www-redirect", "true")]));
        assert_eq!(t.steps[0].kind, "nginxWwwRedirect");
        let t = all(&annotations(&[("from-to-www-redirect", "yes")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
    }
}
