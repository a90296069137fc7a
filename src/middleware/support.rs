//! Small pieces several middlewares share: Traefik's duration syntax and
//! responses the proxy makes up itself.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::{Deserialize, Deserializer};

use std::sync::Arc;

use crate::body::ResponseBody;
use crate::router::{EntryPoints, ObjectRef, Route, Target};
use crate::upstream::{PoolSettings, UpstreamClient};

/// A route that belongs to no table and forwards nowhere (503): what middleware
/// tests and benchmarks hang a [`super::RequestContext`] on.
pub fn detached_route(name: &str) -> Arc<Route> {
    Arc::new(Route {
        name: name.into(),
        host: None,
        path: None,
        kind: None,
        ingress: ObjectRef::namespaced("Ingress", "default", name),
        service: None,
        target: Target::Unavailable {
            status: 503,
            reason: "detached route".into(),
        },
        client: Arc::new(UpstreamClient::new(&PoolSettings::default())),
        entrypoints: EntryPoints::ALL,
        redirect_https: false,
        redirect_keeps_trailing_slash: false,
        middlewares: super::Chain::default(),
        sticky: None,
        balance: None,
        pass_host_header: true,
        stats: Arc::default(),
    })
}

/// A plain-text response of `status` with `body`.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response of `status` with the reason phrase as its body (`403 Forbidden`-style,
/// as Traefik's middlewares answer).
pub fn status_response(status: StatusCode) -> Response<ResponseBody> {
    text_response(status, status.canonical_reason().unwrap_or("").to_owned())
}

/// Parses a Traefik duration: a Go duration string (`"10s"`, `"1m30s"`, `"250ms"`,
/// `"1.5h"`), or a bare number of seconds (`10`, `"10"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?}: missing unit"))?;
        if number_len == 0 {
            return Err(format!("{text:?}: expected a number"));
        }
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("{text:?}: bad number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("{text:?}: unknown unit {unit:?}")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?}: not a valid duration"))
}

/// Deserializes a Traefik duration field (string or number of seconds).
pub fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Number(n) => seconds(n, &n.to_string()).map_err(serde::de::Error::custom),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Deserializes an optional Traefik duration field.
pub fn optional_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    duration(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_bare_seconds_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
