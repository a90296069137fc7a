//! CORS: `enable-cors` with `cors-allow-origin` (default `*`),
//! `cors-allow-methods` (default `GET, PUT, POST, DELETE, PATCH, OPTIONS`),
//! `cors-allow-headers` (default `DNT,Keep-Alive,User-Agent,
//! X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,
//! Authorization`), `cors-expose-headers` (default none),
//! `cors-allow-credentials` (default true) and `cors-max-age` (default
//! 1728000), checked with ingress-nginx v1.15's regexes and compiled to an
//! `nginxCors` step (Traefik's `headers` middleware answers preflights
//! with 200, adds `Vary`, and has no `*.` origin wildcards: not nginx).
//!
//! Unusable values are reported and their default used, as ingress-nginx
//! does — except origins: ingress-nginx skips a bad entry, and falls back to
//! `*` when the whole value fails its check; sluice skips bad entries and,
//! when none is left, leaves CORS off rather than open it to every origin.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::json;

use super::{Annotations, Translation};

const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str =
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: i64 = 1_728_000;

fn regex(cell: &'static OnceLock<Regex>, text: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(text).expect("static regex"))
}

/// `corsOriginRegex`: one origin entry.
fn origin_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$")
}

/// `corsMethodsRegex`.
fn methods_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^([A-Za-z]+,?\s?)+$")
}

/// `HeadersVariable`.
fn headers_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^[A-Za-z0-9\-_, ]*$")
}

/// `corsExposeHeadersRegex`.
fn expose_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$")
}

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    match a.flag("enable-cors") {
        Some(Ok(true)) => {}
        Some(Ok(false)) | None => return,
        Some(Err(bad)) => {
            out.ignore(
                "enable-cors",
                format!("{bad:?} is not true or false; CORS stays off, as in ingress-nginx"),
            );
            return;
        }
    }
    let origins = match a.get("cors-allow-origin") {
        None | Some("") => vec!["*".to_owned()],
        Some(value) => {
            let mut origins = Vec::new();
            for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                if origin == "*" {
                    origins = vec!["*".to_owned()];
                    break;
                }
                if origin_re().is_match(origin) {
                    origins.push(origin.to_owned());
                } else {
                    out.ignore(
                        "cors-allow-origin",
                        format!("{origin:?} is not an origin (scheme://host[:port], scheme://*.host, null or *); skipped"),
                    );
                }
            }
            if origins.is_empty() {
                out.ignore(
                    "cors-allow-origin",
                    "no usable origin: CORS stays off (ingress-nginx would allow every origin)",
                );
                return;
            }
            origins
        }
    };
    let text = |out: &mut Translation, name: &str, re: &Regex, default: &str| -> String {
        match a.get(name) {
            None | Some("") => default.to_owned(),
            Some(v) if re.is_match(v) => v.to_owned(),
            Some(v) => {
                out.ignore(
                    name,
                    format!("{v:?} is not a valid list; the default is used"),
                );
                default.to_owned()
            }
        }
    };
    let methods = text(out, "cors-allow-methods", methods_re(), DEFAULT_METHODS);
    let headers = text(out, "cors-allow-headers", headers_re(), DEFAULT_HEADERS);
    let expose = text(out, "cors-expose-headers", expose_re(), "");
    let credentials = match a.flag("cors-allow-credentials") {
        None | Some(Ok(true)) => true,
        Some(Ok(false)) => false,
        Some(Err(bad)) => {
            out.ignore(
                "cors-allow-credentials",
                format!("{bad:?} is not true or false; true is used"),
            );
            true
        }
    };
    let max_age = match a.get("cors-max-age").map(str::parse::<i64>) {
        None => DEFAULT_MAX_AGE,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            out.ignore(
                "cors-max-age",
                format!("not a number of seconds; {DEFAULT_MAX_AGE} is used"),
            );
            DEFAULT_MAX_AGE
        }
    };
    out.step(
        "nginx-cors",
        "nginxCors",
        json!({
            "origins": origins,
            "methods": methods,
            "headers": headers,
            "exposeHeaders": expose,
            "credentials": credentials,
            "maxAge": max_age,
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;
    use super::*;

    #[test]
    fn defaults_follow_ingress_nginx() {
        let t = all(&annotations(&[("enable-cors", "true")]));
        assert_eq!(t.steps.len(), 1);
        let c = &t.steps[0].config;
        assert_eq!(c["origins"], json!(["*"]));
        assert_eq!(c["methods"], DEFAULT_METHODS);
        assert_eq!(c["headers"], DEFAULT_HEADERS);
        assert_eq!(c["exposeHeaders"], "");
        assert_eq!(c["credentials"], true);
        assert_eq!(c["maxAge"], 1_728_000);
        assert!(all(&annotations(&[("cors-allow-origin", "*")]))
            .steps
            .is_empty());
    }

    #[test]
    fn lists_are_checked() {
        let t = all(&annotations(&[
            ("enable-cors", "true"),
            (
                "cors-allow-origin",
                "https://a.example, https://*.b.example:8443, bad origin, null",
            ),
            ("cors-allow-methods", "GET;rm"),
            ("cors-allow-headers", "X-A, X-B"),
            ("cors-expose-headers", "*, X-C"),
            ("cors-allow-credentials", "false"),
            ("cors-max-age", "soon"),
        ]));
        let c = &t.steps[0].config;
        assert_eq!(
            c["origins"],
            json!(["https://a.example", "https://*.b.example:8443", "null"])
        );
        assert_eq!(c["methods"], DEFAULT_METHODS);
        assert_eq!(c["headers"], "X-A, X-B");
        assert_eq!(c["exposeHeaders"], "*, X-C");
        assert_eq!(c["credentials"], false);
        assert_eq!(c["maxAge"], 1_728_000);
        assert_eq!(t.ignored.len(), 3, "{:?}", t.ignored);

        let t = all(&annotations(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "not-an-origin"),
        ]));
        assert!(t.steps.is_empty());
        let t = all(&annotations(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://a.example,*"),
        ]));
        assert_eq!(t.steps[0].config["origins"], json!(["*"]));
    }
}
