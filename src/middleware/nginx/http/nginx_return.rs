//! `nginxReturn`: nginx's `return <code> [URL|text];`, the way
//! ingress-nginx's `permanent-redirect`, `temporal-redirect` and `app-root`
//! (and a snippet's `return`) answer instead of proxying.
//!
//! - A redirect code (301, 302, 303, 307, 308) sends `Location` with the
//!   value, made absolute (`$scheme://$host`) when it starts with `/`, as
//!   nginx's `absolute_redirect on` does (no port: `port_in_redirect off`).
//! - Any other code sends the value as the body (`return 200 "ok";`), or
//!   the status's reason when there is none (`return 403;`).
//! - `onlyPath` answers only requests whose decoded path is exactly that
//!   (`app-root`: `if ($uri = /) { return 302 ...; }`); others pass on.
//!
//! The value may use the variables of [`super::vars`].

use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::vars::{self, Piece, Vars};
use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    code: u16,
    #[serde(default)]
    text: String,
    #[serde(default)]
    only_path: Option<String>,
}

/// Builds an `nginxReturn` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let status = StatusCode::from_u16(config.code)
        .map_err(|_| cx.invalid(format!("{} is not an HTTP status", config.code)))?;
    let text = vars::parse(&config.text, false).map_err(|e| cx.invalid(e))?;
    Ok(Arc::new(Return {
        status,
        text,
        only_path: config.only_path,
    }))
}

/// Whether nginx's `return` treats `code`'s value as a redirect URL.
pub(crate) fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// The built `nginxReturn`.
#[derive(Debug)]
struct Return {
    status: StatusCode,
    text: Vec<Piece>,
    only_path: Option<String>,
}

impl Middleware for Return {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Some(only) = &self.only_path {
                if vars::decode(req.uri().path()) != only.as_bytes() {
                    return next.run(req, cx).await;
                }
            }
            let vars = Vars::of(&req, cx.client.tls);
            let value = vars.eval(&self.text, &[]);
            Ok(answer(self.status, &value, &vars))
        })
    }
}

/// nginx's answer to `return status value;` for a request with `vars`.
pub(crate) fn answer(status: StatusCode, value: &str, vars: &Vars<'_>) -> Response<ResponseBody> {
    if is_redirect(status.as_u16()) {
        let location = if value.starts_with('/') {
            format!("{}://{}{value}", vars.scheme, vars.host())
        } else {
            value.to_owned()
        };
        return redirect(status, &location);
    }
    let body = if value.is_empty() {
        let reason = status.canonical_reason().unwrap_or("");
        format!("{} {reason}\n", status.as_u16())
    } else {
        value.to_owned()
    };
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A redirect as nginx writes it: `Location` and a small HTML page.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response<ResponseBody> {
    let reason = match status.as_u16() {
        302 => "Moved Temporarily",
        _ => status.canonical_reason().unwrap_or(""),
    };
    let code = status.as_u16();
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    resp
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    #[tokio::test]
    async fn redirects_answer_with_location_and_others_with_text() {
        let mw = testing::make(build, json!({"code": 301, "text": "https://e.example/x"})).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/a", &[("host", "h")])).await;
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()["location"], "https://e.example/x");
        assert!(!backend.called());

        let mw = testing::make(build, json!({"code": 302, "text": "/app$is_args$args"})).unwrap();
        let resp = run(&mw, &backend, get("/a?q=1", &[("host", "H.example:8080")])).await;
        assert_eq!(resp.headers()["location"], "http://h.example/app?q=1");

        let mw = testing::make(build, json!({"code": 403, "text": "no"})).unwrap();
        let resp = run(&mw, &backend, get("/a", &[("host", "h")])).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(text(resp).await, "no");
        assert!(testing::make(build, json!({"code": 1000})).is_err());
        assert!(testing::make(build, json!({"code": 200, "text": "$remote_addr"})).is_err());
    }

    #[tokio::test]
    async fn only_path_answers_that_path_alone() {
        let config = json!({"code": 302, "text": "$scheme://$http_host/app", "onlyPath": "/"});
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/", &[("host", "h:81")])).await;
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "http://h:81/app");
        let resp = run(&mw, &backend, get("/x", &[("host", "h")])).await;
        assert_eq!(resp.status(), 200);
        assert!(backend.called());
    }
}
