//! `nginxHeaders`: request and response headers as nginx sets them, for
//! `upstream-vhost` and the header directives of snippets.
//!
//! - `request`: `proxy_set_header` / `more_set_input_headers`: the header
//!   is replaced; an empty value removes it (nginx does not pass a header
//!   whose value is empty). `Host` included (`upstream-vhost`).
//! - `response`, `set` (`more_set_headers`): replaces the header on every
//!   response, whatever its status (headers-more's default); an empty value
//!   removes it.
//! - `response`, add (`add_header`): appended, only on 200, 201, 204, 206,
//!   301, 302, 303, 304, 307 and 308 unless `always`.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::Request;
use serde::Deserialize;
use serde_json::Value;

use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    value: String,
    /// Response headers: append (`add_header`) rather than replace.
    #[serde(default)]
    add: bool,
    /// `add_header ... always`.
    #[serde(default)]
    always: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    request: Vec<Entry>,
    #[serde(default)]
    response: Vec<Entry>,
}

/// One header operation, checked.
#[derive(Debug)]
struct Op {
    name: HeaderName,
    value: Option<HeaderValue>,
    add: bool,
    always: bool,
}

/// Builds an `nginxHeaders` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let check = |e: &Entry| -> Result<Op, BuildError> {
        let name = HeaderName::from_bytes(e.name.as_bytes())
            .map_err(|_| cx.invalid(format!("{:?} is not a header name", e.name)))?;
        let value = if e.value.is_empty() {
            None
        } else {
            Some(
                HeaderValue::from_str(&e.value)
                    .map_err(|_| cx.invalid(format!("{:?} is not a header value", e.value)))?,
            )
        };
        Ok(Op {
            name,
            value,
            add: e.add,
            always: e.always,
        })
    };
    let request = config.request.iter().map(check).collect::<Result<_, _>>()?;
    let response = config
        .response
        .iter()
        .map(check)
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(Headers { request, response }))
}

/// The built `nginxHeaders`.
#[derive(Debug)]
struct Headers {
    request: Vec<Op>,
    response: Vec<Op>,
}

/// The statuses `add_header` (without `always`) applies to.
fn add_header_status(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

impl Middleware for Headers {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            for op in &self.request {
                match &op.value {
                    Some(v) => {
                        req.headers_mut().insert(op.name.clone(), v.clone());
                    }
                    None => {
                        req.headers_mut().remove(&op.name);
                    }
                }
            }
            let mut resp = next.run(req, cx).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers_mut();
            for op in &self.response {
                match (&op.value, op.add) {
                    (Some(v), true) if op.always || add_header_status(status) => {
                        headers.append(op.name.clone(), v.clone());
                    }
                    (_, true) => {}
                    (Some(v), false) => {
                        headers.insert(op.name.clone(), v.clone());
                    }
                    (None, false) => {
                        headers.remove(&op.name);
                    }
                }
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::{Response, StatusCode};
    use serde_json::json;

    use super::*;
    use crate::body::ResponseBody;
    use crate::middleware::testing::{self, *};

    #[tokio::test]
    async fn request_and_response_headers_follow_nginx() {
        let config = json!({
            "request": [{"name": "Host", "value": "internal"}, {"name": "X-Drop"}],
            "response": [
                {"name": "X-Set", "value": "1"},
                {"name": "X-Add", "value": "2", "add": true},
                {"name": "X-Always", "value": "3", "add": true, "always": true},
                {"name": "Server"}
            ]
        });
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::with(|| {
            let mut r = Response::new(ResponseBody::empty());
            *r.status_mut() = StatusCode::NOT_FOUND;
            r.headers_mut()
                .insert("server", HeaderValue::from_static("b"));
            r
        });
        let resp = run(&mw, &backend, get("/", &[("host", "h"), ("x-drop", "x")])).await;
        let seen = backend.got();
        assert_eq!(seen.headers["host"], "internal");
        assert!(seen.headers.get("x-drop").is_none());
        assert_eq!(resp.headers()["x-set"], "1");
        assert!(
            resp.headers().get("x-add").is_none(),
            "404: add_header skips"
        );
        assert_eq!(resp.headers()["x-always"], "3");
        assert!(resp.headers().get("server").is_none());
        assert!(testing::make(build, json!({"request": [{"name": "a b", "value": "x"}]})).is_err());
    }
}
