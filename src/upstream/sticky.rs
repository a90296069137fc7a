//! Sticky sessions by cookie, as Traefik's `service.sticky.cookie` annotations
//! configure them.
//!
//! The cookie value names an endpoint by a hash of its URL, so it needs no
//! server-side table: it survives reloads and works on every replica. When the
//! endpoint it names is gone (pod replaced, not ready), the request goes to
//! another endpoint and the response sets a new cookie.

use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderValue, COOKIE};

/// The annotations (on the Service) that configure stickiness.
pub mod annotation {
    /// `"true"` turns sticky sessions on.
    pub const COOKIE: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie";
    /// The cookie name.
    pub const NAME: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.name";
    /// `Secure` attribute.
    pub const SECURE: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.secure";
    /// `HttpOnly` attribute.
    pub const HTTP_ONLY: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.httponly";
    /// `SameSite` attribute: none, lax or strict.
    pub const SAME_SITE: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.samesite";
    /// `Max-Age` in seconds (0: a session cookie).
    pub const MAX_AGE: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.maxage";
    /// `Path` (default `/`).
    pub const PATH: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.path";
    /// `Domain`.
    pub const DOMAIN: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.domain";
}

/// A sticky cookie's name and attributes, parsed once per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    /// The cookie name.
    pub name: String,
    /// `; Path=...`, `; Secure`... as sent after the value.
    attributes: String,
}

impl StickyCookie {
    /// A cookie named `name` (sanitised) sent with `attributes`, each a
    /// `(name, value)` pair (`value` empty for a flag such as `HttpOnly`),
    /// checked for characters that would end the header or the attribute.
    pub fn with_attributes(name: &str, attributes: &[(&str, &str)]) -> Result<Self, String> {
        let mut text = String::new();
        for (key, value) in attributes {
            if value.contains([';', '\r', '\n', ',']) || value.bytes().any(|b| b.is_ascii_control())
            {
                return Err(format!("{value:?} is not a valid cookie {key}"));
            }
            text.push_str("; ");
            text.push_str(key);
            if !value.is_empty() {
                text.push('=');
                text.push_str(value);
            }
        }
        let name = sanitize_name(name);
        if name.is_empty() {
            return Err("the cookie name is empty".to_owned());
        }
        Ok(Self {
            name,
            attributes: text,
        })
    }

    /// Reads the sticky annotations through `get`; `Ok(None)` when stickiness is
    /// off. `service_name` is Traefik's full service name
    /// (`<ns>-<service>-<port>@kubernetes`), from which the default cookie name
    /// is derived exactly as Traefik derives it.
    pub fn from_annotations<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
        service_name: impl FnOnce() -> String,
    ) -> Result<Option<Self>, String> {
        let flag = |key: &str| -> Result<bool, String> {
            match get(key).map(str::trim) {
                None => Ok(false),
                Some(v) => parse_bool(v).ok_or_else(|| format!("{key}: {v:?} is not a boolean")),
            }
        };
        let any_option = [
            annotation::NAME,
            annotation::SECURE,
            annotation::HTTP_ONLY,
            annotation::SAME_SITE,
            annotation::MAX_AGE,
            annotation::PATH,
            annotation::DOMAIN,
        ]
        .iter()
        .any(|k| get(k).is_some());
        // Traefik turns stickiness on when any cookie option is set, too.
        let enabled = match get(annotation::COOKIE) {
            Some(_) => flag(annotation::COOKIE)?,
            None => any_option,
        };
        if !enabled {
            return Ok(None);
        }
        let name = match get(annotation::NAME)
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => sanitize_name(name),
            None => default_name(&service_name()),
        };
        let mut attributes = String::new();
        let path = get(annotation::PATH).map_or("/", str::trim);
        if path.contains([';', '\r', '\n']) {
            return Err(format!(
                "{}: {path:?} is not a cookie path",
                annotation::PATH
            ));
        }
        attributes.push_str("; Path=");
        attributes.push_str(path);
        if let Some(domain) = get(annotation::DOMAIN)
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            if !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(format!(
                    "{}: {domain:?} is not a domain",
                    annotation::DOMAIN
                ));
            }
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        if let Some(max_age) = get(annotation::MAX_AGE).map(str::trim) {
            let secs: i64 = max_age
                .parse()
                .map_err(|_| format!("{}: {max_age:?} is not an integer", annotation::MAX_AGE))?;
            match secs {
                0 => {}
                s if s < 0 => attributes.push_str("; Max-Age=0"),
                s => attributes.push_str(&format!("; Max-Age={s}")),
            }
        }
        if flag(annotation::HTTP_ONLY)? {
            attributes.push_str("; HttpOnly");
        }
        if flag(annotation::SECURE)? {
            attributes.push_str("; Secure");
        }
        match get(annotation::SAME_SITE)
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") => {}
            Some("none") => attributes.push_str("; SameSite=None"),
            Some("lax") => attributes.push_str("; SameSite=Lax"),
            Some("strict") => attributes.push_str("; SameSite=Strict"),
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is not none, lax or strict",
                    annotation::SAME_SITE
                ))
            }
        }
        Ok(Some(Self { name, attributes }))
    }

    /// The endpoint id the request's cookie names, if it has the cookie.
    pub fn wanted(&self, headers: &HeaderMap) -> Option<u64> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .and_then(|(_, value)| u64::from_str_radix(value.trim_matches('"'), 16).ok())
    }

    /// The `Set-Cookie` value that pins a client to `endpoint`.
    pub fn set_cookie(&self, endpoint: SocketAddr) -> Option<HeaderValue> {
        let value = format!(
            "{}={:016x}{}",
            self.name,
            endpoint_id(endpoint),
            self.attributes
        );
        HeaderValue::from_str(&value).ok()
    }
}

/// The stable id of an endpoint in cookies: FNV-1a 64 of its URL
/// (`http://ip:port`), hashed as it is formatted so that matching a cookie
/// against every endpoint on the request path allocates nothing.
pub fn endpoint_id(endpoint: SocketAddr) -> u64 {
    use std::fmt::Write;
    let mut hash = Fnv1a(0xcbf2_9ce4_8422_2325);
    let _ = write!(hash, "http://{endpoint}");
    hash.0
}

/// FNV-1a 64 over whatever is written into it.
struct Fnv1a(u64);

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

/// Traefik's default name: `_` + the first 5 hex digits of
/// SHA-1("_TRAEFIK_BACKEND_" + full service name).
fn default_name(service_name: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("_TRAEFIK_BACKEND_{service_name}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("_{}", &hex[..5])
}

/// Keeps only RFC 6265 token characters, as Traefik sanitises cookie names.
fn sanitize_name(name: &str) -> String {
    name.chars()
        .filter(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '(' | ')'
                        | '<'
                        | '>'
                        | '@'
                        | ','
                        | ';'
                        | ':'
                        | '\\'
                        | '"'
                        | '/'
                        | '['
                        | ']'
                        | '?'
                        | '='
                        | '{'
                        | '}'
                )
        })
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" => Some(true),
        "false" | "0" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<StickyCookie>, String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StickyCookie::from_annotations(|k| map.get(k).map(String::as_str), || "stk@file".to_owned())
    }

    #[test]
    fn default_name_matches_traefik() {
        // Checked against Traefik 3.7: service `stk@file` gets cookie `_28d6d`.
        let cookie = parse(&[(annotation::COOKIE, "true")]).unwrap().unwrap();
        assert_eq!(cookie.name, "_28d6d");
        let set = cookie.set_cookie("10.0.0.1:80".parse().unwrap()).unwrap();
        assert!(set.to_str().unwrap().starts_with("_28d6d="));
        assert!(set.to_str().unwrap().ends_with("; Path=/"));
    }

    #[test]
    fn options_become_attributes() {
        let cookie = parse(&[
            (annotation::COOKIE, "true"),
            (annotation::NAME, "route"),
            (annotation::SECURE, "true"),
            (annotation::HTTP_ONLY, "true"),
            (annotation::SAME_SITE, "Strict"),
            (annotation::MAX_AGE, "60"),
            (annotation::PATH, "/app"),
        ])
        .unwrap()
        .unwrap();
        let set = cookie.set_cookie("10.0.0.1:80".parse().unwrap()).unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("route="), "{set}");
        for attr in [
            "; Path=/app",
            "; Max-Age=60",
            "; HttpOnly",
            "; Secure",
            "; SameSite=Strict",
        ] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
    }

    #[test]
    fn off_unless_asked_and_bad_values_are_errors() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[(annotation::COOKIE, "false")]), Ok(None));
        assert!(parse(&[(annotation::COOKIE, "yes please")]).is_err());
        assert!(parse(&[(annotation::COOKIE, "true"), (annotation::MAX_AGE, "soon")]).is_err());
        assert!(parse(&[
            (annotation::COOKIE, "true"),
            (annotation::SAME_SITE, "sideways")
        ])
        .is_err());
        // An option alone turns stickiness on, as in Traefik.
        assert!(parse(&[(annotation::NAME, "x")]).unwrap().is_some());
    }

    #[test]
    fn endpoint_ids_are_fnv1a_of_the_url() {
        // FNV-1a 64 of "http://10.0.0.1:80", computed independently.
        let expected = b"http://10.0.0.1:80"
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        assert_eq!(endpoint_id("10.0.0.1:80".parse().unwrap()), expected);
        assert_ne!(
            endpoint_id("10.0.0.1:80".parse().unwrap()),
            endpoint_id("10.0.0.1:81".parse().unwrap())
        );
    }

    #[test]
    fn the_cookie_names_its_endpoint() {
        let cookie = parse(&[(annotation::COOKIE, "true"), (annotation::NAME, "s")])
            .unwrap()
            .unwrap();
        let ep: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        let set = cookie.set_cookie(ep).unwrap();
        let value = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {value}")).unwrap(),
        );
        assert_eq!(cookie.wanted(&headers), Some(endpoint_id(ep)));
        headers.insert(COOKIE, HeaderValue::from_static("s=zz"));
        assert_eq!(cookie.wanted(&headers), None);
    }
}
