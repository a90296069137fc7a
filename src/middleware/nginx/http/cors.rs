//! `nginxCors`: ingress-nginx's `enable-cors`, as its template's `CORS`
//! block does it.
//!
//! - Origins `["*"]`: every request is a CORS request and gets
//!   `Access-Control-Allow-Origin: *`. Otherwise the `Origin` header must
//!   match one entry (case-insensitively; a `*.` label matches one DNS label)
//!   and is echoed back; a request whose Origin matches none gets no CORS
//!   header at all, and its `OPTIONS` goes to the backend.
//! - A CORS `OPTIONS` request is answered here: 204, the CORS headers,
//!   `Content-Type: text/plain charset=UTF-8`, `Content-Length: 0`.
//! - Any other CORS request goes on; the CORS headers then replace the
//!   backend's own (`more_set_headers`).
//!
//! One difference: nginx anchors the origin regex only at its end
//! (`~* (...)$`); sluice anchors both ends.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    origins: Vec<String>,
    methods: String,
    headers: String,
    #[serde(default)]
    expose_headers: String,
    credentials: bool,
    max_age: i64,
}

/// Builds an `nginxCors` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let any = config.origins.iter().any(|o| o == "*");
    let origins = if any || config.origins.is_empty() {
        None
    } else {
        let alternatives: Vec<String> = config
            .origins
            .iter()
            .map(|o| format!("({})", regex::escape(o).replacen(r"\*", "[A-Za-z0-9-]+", 1)))
            .collect();
        let text = format!("(?i)^(?:{})$", alternatives.join("|"));
        Some(Regex::new(&text).map_err(|e| cx.invalid(format!("origins: {e}")))?)
    };
    if !any && origins.is_none() {
        return Err(cx.invalid("no allowed origin".to_owned()));
    }
    let value = |name: &str, v: &str| {
        HeaderValue::from_str(v)
            .map_err(|_| cx.invalid(format!("{name}: {v:?} is not a header value")))
    };
    let mut fixed = vec![
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            value("methods", &config.methods)?,
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            value("headers", &config.headers)?,
        ),
    ];
    if config.credentials {
        fixed.insert(
            0,
            (
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ),
        );
    }
    if !config.expose_headers.is_empty() {
        fixed.push((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            value("exposeHeaders", &config.expose_headers)?,
        ));
    }
    fixed.push((
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(config.max_age),
    ));
    Ok(Arc::new(Cors { origins, fixed }))
}

/// The built `nginxCors`.
#[derive(Debug)]
struct Cors {
    /// `None`: any origin (`*`).
    origins: Option<Regex>,
    /// The headers besides `Access-Control-Allow-Origin`, in nginx's order.
    fixed: Vec<(HeaderName, HeaderValue)>,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value, when the request is a CORS one.
    fn allow_origin<B>(&self, req: &Request<B>) -> Option<HeaderValue> {
        let Some(re) = &self.origins else {
            return Some(HeaderValue::from_static("*"));
        };
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        re.is_match(text).then(|| origin.clone())
    }

    fn decorate(&self, origin: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        for (name, value) in &self.fixed {
            headers.insert(name.clone(), value.clone());
        }
    }
}

impl Middleware for Cors {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(origin) = self.allow_origin(&req) else {
                return next.run(req, cx).await;
            };
            if req.method() == Method::OPTIONS {
                let mut resp = Response::new(ResponseBody::empty());
                *resp.status_mut() = StatusCode::NO_CONTENT;
                self.decorate(origin, resp.headers_mut());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain charset=UTF-8"),
                );
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                return Ok(resp);
            }
            let mut resp = next.run(req, cx).await?;
            self.decorate(origin, resp.headers_mut());
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    fn config(origins: &[&str]) -> Value {
        json!({
            "origins": origins,
            "methods": "GET, PUT, POST, DELETE, PATCH, OPTIONS",
            "headers": "DNT,Keep-Alive",
            "exposeHeaders": "X-A",
            "credentials": true,
            "maxAge": 1728000,
        })
    }

    #[tokio::test]
    async fn preflights_are_answered_and_origins_echoed() {
        let mw = testing::make(
            build,
            config(&["https://*.example.com", "http://a.test:8080"]),
        )
        .unwrap();
        let backend = Recorder::ok();
        let pre = request(
            Method::OPTIONS,
            "/",
            &[("origin", "https://API.example.com")],
        );
        let resp = run(&mw, &backend, pre).await;
        assert_eq!(resp.status(), 204);
        assert!(!backend.called());
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://API.example.com");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "1728000");
        assert_eq!(h["access-control-expose-headers"], "X-A");
        assert_eq!(h["content-length"], "0");

        for other in [
            "https://a.b.example.com",
            "https://example.com",
            "http://a.test",
            "x",
        ] {
            let pre = request(Method::OPTIONS, "/", &[("origin", other)]);
            let resp = run(&mw, &backend, pre).await;
            assert_eq!(resp.status(), 200, "{other}");
            assert!(resp.headers().get("access-control-allow-origin").is_none());
        }
        let resp = run(&mw, &backend, get("/", &[("origin", "http://a.test:8080")])).await;
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "http://a.test:8080"
        );
    }

    #[tokio::test]
    async fn any_origin_answers_star_even_without_origin() {
        let mw = testing::make(build, config(&["*"])).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/", &[])).await;
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert!(testing::make(build, config(&[])).is_err());
    }
}
