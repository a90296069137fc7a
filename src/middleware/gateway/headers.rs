//! `gatewayRequestHeaders` / `gatewayResponseHeaders`: the HTTPRoute
//! `RequestHeaderModifier` and `ResponseHeaderModifier` filters
//! (`HTTPHeaderFilter`: `set`, `add`, `remove`).
//!
//! Header names are case-insensitive. `set` replaces every value of the
//! header with one, `add` appends a value to those already there (as a field
//! line of its own, which is the same list as the specification's
//! `my-header: foo,bar` and keeps `Set-Cookie` intact), `remove` deletes every
//! value. They run in that order (the order the specification lists them in),
//! so a header both set and removed ends up removed.
//!
//! The request modifier changes the request before the rest of the chain
//! sees it; `Host` may be set (or added, which is the same for a header with
//! one value), and then the request URI's authority (HTTP/2 `:authority`, an
//! absolute-form target) follows it. The response modifier changes whatever
//! response the rest of the chain returns.
//!
//! Every name and value is checked when the filter is built. Refused there,
//! unlike the specification, which is silent about them: headers that frame
//! or manage the connection (`Content-Length`, `Transfer-Encoding`,
//! `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//! `Upgrade`), which would make sluice and its peer disagree on where a
//! message ends, and removing `Host` from a request.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Request, Uri};
use serde::Deserialize;
use serde_json::Value;

use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// `HTTPHeader`: one name and value.
#[derive(Debug, Deserialize)]
struct HeaderConfig {
    /// The header name (case-insensitive).
    name: String,
    /// Its value.
    value: String,
}

/// `HTTPHeaderFilter`, as the HTTPRoute holds it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    /// Headers to overwrite.
    set: Vec<HeaderConfig>,
    /// Headers to append a value to.
    add: Vec<HeaderConfig>,
    /// Header names to delete.
    remove: Vec<String>,
}

/// Which message the filter changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The request, before the rest of the chain.
    Request,
    /// The response the rest of the chain returns.
    Response,
}

/// Whether no filter may touch `name`: it frames the message or manages the
/// connection, which sluice owns.
fn forbidden(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// Builds a `gatewayRequestHeaders` middleware (`RequestHeaderModifier`).
pub(super) fn build_request(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    Ok(Arc::new(RequestHeaders(Modifier::build(
        config,
        Side::Request,
        cx,
    )?)))
}

/// Builds a `gatewayResponseHeaders` middleware (`ResponseHeaderModifier`).
pub(super) fn build_response(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    Ok(Arc::new(ResponseHeaders(Modifier::build(
        config,
        Side::Response,
        cx,
    )?)))
}

/// A parsed `HTTPHeaderFilter`.
#[derive(Debug, Default)]
struct Modifier {
    /// `set`, in order (a later entry for the same name wins).
    set: Vec<(HeaderName, HeaderValue)>,
    /// `add`, in order.
    add: Vec<(HeaderName, HeaderValue)>,
    /// `remove`.
    remove: Vec<HeaderName>,
    /// The `Host` a request ends up with, when `set` or `add` names it (the
    /// URI authority is changed with it).
    host: Option<(HeaderValue, Option<Authority>)>,
}

impl Modifier {
    /// Parses and checks `config` for `side`.
    fn build(config: &Value, side: Side, cx: &dyn Context) -> Result<Self, BuildError> {
        let config: Config = decode(config, cx)?;
        let mut built = Self::default();
        for (list, field) in [(&config.set, "set"), (&config.add, "add")] {
            for entry in list {
                let name = header_name(&entry.name, side, cx)?;
                let value = HeaderValue::from_bytes(entry.value.as_bytes()).map_err(|_| {
                    cx.invalid(format!(
                        "{field}: {:?} is not a valid value for header {:?}",
                        entry.value, entry.name
                    ))
                })?;
                if side == Side::Request && name == header::HOST {
                    // One value only: `add` cannot make it a list.
                    // Host and the URI authority must agree (HTTP/2's `:authority`).
                    let authority = Authority::try_from(entry.value.as_str()).map_err(|_| {
                        cx.invalid(format!("{field}: {:?} is not a valid Host", entry.value))
                    })?;
                    built.host = Some((value, Some(authority)));
                } else if field == "set" {
                    built.set.push((name, value));
                } else {
                    built.add.push((name, value));
                }
            }
        }
        for name in &config.remove {
            let name = header_name(name, side, cx)?;
            if side == Side::Request && name == header::HOST {
                return Err(cx.invalid("remove: the Host header cannot be removed".to_owned()));
            }
            built.remove.push(name);
        }
        Ok(built)
    }

    /// Applies `set`, `add` and `remove` to `headers` (not the `Host` part).
    fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }

    /// Sets the request's `Host` (and URI authority, where it has one).
    fn set_host(&self, req: &mut Request<RequestBody>) {
        let Some((host, authority)) = &self.host else {
            return;
        };
        req.headers_mut().insert(header::HOST, host.clone());
        if let (Some(authority), Some(_)) = (authority, req.uri().authority()) {
            let mut parts = std::mem::take(req.uri_mut()).into_parts();
            parts.authority = Some(authority.clone());
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

/// A filter's header name, checked for `side`.
fn header_name(name: &str, side: Side, cx: &dyn Context) -> Result<HeaderName, BuildError> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| cx.invalid(format!("{name:?} is not a valid header name")))?;
    if forbidden(&parsed) {
        return Err(cx.invalid(format!(
            "header {name:?} frames the message or manages the connection and cannot be changed"
        )));
    }
    if side == Side::Response && parsed == header::HOST {
        return Err(cx.invalid("Host is not a response header".to_owned()));
    }
    Ok(parsed)
}

/// The built `gatewayRequestHeaders`.
#[derive(Debug)]
struct RequestHeaders(Modifier);

impl Middleware for RequestHeaders {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        self.0.apply(req.headers_mut());
        self.0.set_host(&mut req);
        next.run(req, cx)
    }
}

/// The built `gatewayResponseHeaders`.
#[derive(Debug)]
struct ResponseHeaders(Modifier);

impl Middleware for ResponseHeaders {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut resp = next.run(req, cx).await?;
            self.0.apply(resp.headers_mut());
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::{Response, Version};
    use serde_json::json;

    use super::*;
    use crate::body::ResponseBody;
    use crate::middleware::testing::{self, *};

    /// Sends `req` through the request modifier `config`; what the backend saw.
    async fn backend_sees(config: Value, req: Request<RequestBody>) -> Seen {
        let mw = testing::make(build_request, config).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, req).await;
        assert_eq!(resp.status(), 200);
        backend.got()
    }

    /// The client's view of a backend answering with `headers`, through the
    /// response modifier `config`.
    async fn client_sees(config: Value, headers: Vec<(&'static str, &'static str)>) -> HeaderMap {
        let mw = testing::make(build_response, config).unwrap();
        let backend = Recorder {
            headers,
            ..Recorder::default()
        };
        let resp = run(&mw, &backend, get("/", &[("host", "h")])).await;
        assert_eq!(resp.status(), 200);
        resp.headers().clone()
    }

    /// Every value of `name`, joined as the conformance suite joins them.
    fn joined(headers: &HeaderMap, name: &str) -> String {
        values(headers, name).join(",")
    }

    #[tokio::test]
    async fn request_set_overwrites_every_value() {
        let config = json!({"set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}]});
        let got = backend_sees(config.clone(), get("/set", &[("some-other-header", "val")])).await;
        assert_eq!(
            values(&got.headers, "x-header-set"),
            ["set-overwrites-values"]
        );
        assert_eq!(values(&got.headers, "some-other-header"), ["val"]);
        let req = get(
            "/set",
            &[
                ("x-header-set", "some-other-value"),
                ("x-header-set", "another"),
            ],
        );
        let got = backend_sees(config, req).await;
        assert_eq!(
            values(&got.headers, "x-header-set"),
            ["set-overwrites-values"]
        );
    }

    #[tokio::test]
    async fn request_add_appends_to_existing_values() {
        let config = json!({"add": [{"name": "X-Header-Add", "value": "add-appends-values"}]});
        let got = backend_sees(config.clone(), get("/add", &[])).await;
        assert_eq!(joined(&got.headers, "x-header-add"), "add-appends-values");
        let got = backend_sees(config, get("/add", &[("X-Header-Add", "some-other-value")])).await;
        assert_eq!(
            joined(&got.headers, "x-header-add"),
            "some-other-value,add-appends-values"
        );
    }

    #[tokio::test]
    async fn request_remove_deletes_the_header() {
        let config = json!({"remove": ["X-Header-Remove"]});
        let req = get(
            "/remove",
            &[("x-header-remove", "val"), ("x-header-remove", "2")],
        );
        let got = backend_sees(config, req).await;
        assert!(got.headers.get("x-header-remove").is_none());
    }

    #[tokio::test]
    async fn request_multiple_as_the_conformance_test() {
        let config = json!({
            "set": [
                {"name": "X-Header-Set-1", "value": "header-set-1"},
                {"name": "X-Header-Set-2", "value": "header-set-2"}
            ],
            "add": [
                {"name": "X-Header-Add-1", "value": "header-add-1"},
                {"name": "X-Header-Add-2", "value": "header-add-2"},
                {"name": "X-Header-Add-3", "value": "header-add-3"}
            ],
            "remove": ["X-Header-Remove-1", "X-Header-Remove-2"]
        });
        let req = get(
            "/multiple",
            &[
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
            ],
        );
        let got = backend_sees(config, req).await;
        let h = &got.headers;
        assert_eq!(joined(h, "x-header-set-1"), "header-set-1");
        assert_eq!(joined(h, "x-header-set-2"), "header-set-2");
        assert_eq!(joined(h, "x-header-add-1"), "header-add-1");
        assert_eq!(joined(h, "x-header-add-2"), "add-val-2,header-add-2");
        assert_eq!(joined(h, "x-header-add-3"), "header-add-3");
        assert_eq!(joined(h, "another-header"), "another-header-val");
        assert!(h.get("x-header-remove-1").is_none());
        assert!(h.get("x-header-remove-2").is_none());
    }

    #[tokio::test]
    async fn names_are_case_insensitive() {
        let config = json!({
            "set": [{"name": "X-Header-Set", "value": "header-set"}],
            "add": [{"name": "X-Header-Add", "value": "header-add"}],
            "remove": ["X-Header-Remove"]
        });
        let req = get(
            "/case-insensitivity",
            &[
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
            ],
        );
        let got = backend_sees(config, req).await;
        assert_eq!(joined(&got.headers, "x-header-set"), "header-set");
        assert_eq!(
            joined(&got.headers, "x-header-add"),
            "original-val-add,header-add"
        );
        assert!(got.headers.get("x-header-remove").is_none());
    }

    #[tokio::test]
    async fn set_then_add_then_remove() {
        let config = json!({
            "set": [{"name": "a", "value": "1"}, {"name": "b", "value": "1"}],
            "add": [{"name": "A", "value": "2"}],
            "remove": ["B"]
        });
        let got = backend_sees(config, get("/", &[("a", "0"), ("b", "0")])).await;
        assert_eq!(values(&got.headers, "a"), ["1", "2"]);
        assert!(got.headers.get("b").is_none());
    }

    #[tokio::test]
    async fn request_host_follows_set_into_the_authority() {
        let config = json!({"set": [{"name": "Host", "value": "backend.example"}]});
        let got = backend_sees(config.clone(), get("/x", &[("host", "front.example")])).await;
        assert_eq!(values(&got.headers, "host"), ["backend.example"]);
        assert_eq!(got.uri, "/x");

        let mut req = get(
            "https://front.example:8443/x?q",
            &[("host", "front.example:8443")],
        );
        *req.version_mut() = Version::HTTP_2;
        let got = backend_sees(config, req).await;
        assert_eq!(values(&got.headers, "host"), ["backend.example"]);
        assert_eq!(got.uri, "https://backend.example/x?q");

        // `add` on Host replaces: a request has one Host.
        let config = json!({"add": [{"name": "host", "value": "other.example"}]});
        let got = backend_sees(config, get("/", &[("host", "front.example")])).await;
        assert_eq!(values(&got.headers, "host"), ["other.example"]);
    }

    #[tokio::test]
    async fn response_set_add_remove_as_the_conformance_test() {
        let config = json!({
            "set": [
                {"name": "X-Header-Set-1", "value": "header-set-1"},
                {"name": "X-Header-Set-2", "value": "header-set-2"}
            ],
            "add": [
                {"name": "X-Header-Add-1", "value": "header-add-1"},
                {"name": "X-Header-Add-2", "value": "header-add-2"},
                {"name": "x-lowercase-add", "value": "lowercase-add"},
                {"name": "X-UPPERCASE-ADD", "value": "uppercase-add"}
            ],
            "remove": ["X-Header-Remove-1", "x-header-REMOVE-2"]
        });
        let h = client_sees(
            config,
            vec![
                ("x-header-set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
                ("X-Header-Remove-1", "val"),
            ],
        )
        .await;
        assert_eq!(joined(&h, "x-header-set-1"), "header-set-1");
        assert_eq!(joined(&h, "x-header-set-2"), "header-set-2");
        assert_eq!(joined(&h, "x-header-add-1"), "header-add-1");
        assert_eq!(joined(&h, "x-header-add-2"), "add-val-2,header-add-2");
        assert_eq!(joined(&h, "x-lowercase-add"), "lowercase-add");
        assert_eq!(joined(&h, "x-uppercase-add"), "uppercase-add");
        assert_eq!(joined(&h, "another-header"), "another-header-val");
        assert!(h.get("x-header-remove-1").is_none());
        assert!(h.get("x-header-remove-2").is_none());
    }

    #[tokio::test]
    async fn response_add_keeps_cookies_apart() {
        let config = json!({"add": [{"name": "Set-Cookie", "value": "b=2; Path=/"}]});
        let h = client_sees(config, vec![("set-cookie", "a=1, with comma")]).await;
        assert_eq!(values(&h, "set-cookie"), ["a=1, with comma", "b=2; Path=/"]);
    }

    #[tokio::test]
    async fn response_modifier_leaves_the_request_alone() {
        let mw = testing::make(
            build_response,
            json!({"set": [{"name": "X-A", "value": "resp"}], "remove": ["X-B"]}),
        )
        .unwrap();
        let backend = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::full("made"));
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
            resp
        });
        let resp = run(&mw, &backend, get("/", &[("x-b", "kept"), ("x-a", "req")])).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(values(resp.headers(), "x-a"), ["resp"]);
        let got = backend.got();
        assert_eq!(values(&got.headers, "x-a"), ["req"]);
        assert_eq!(values(&got.headers, "x-b"), ["kept"]);
        assert_eq!(text(resp).await, "made");
    }

    #[tokio::test]
    async fn request_and_response_modifiers_in_one_chain() {
        // httproute-response-header-modifier, /response-and-request-header-modifiers.
        let response = testing::make(
            build_response,
            json!({
                "set": [{"name": "X-Header-Set-1", "value": "header-set-1"}],
                "add": [{"name": "X-Header-Add-2", "value": "header-add-2"}],
                "remove": ["X-Header-Remove-1"]
            }),
        )
        .unwrap();
        let request = testing::make(
            build_request,
            json!({
                "set": [{"name": "X-Header-Set", "value": "set-overwrites-values"}],
                "add": [
                    {"name": "X-Header-Add", "value": "header-val-1"},
                    {"name": "X-Header-Add-Append", "value": "header-val-2"}
                ],
                "remove": ["X-Header-Remove"]
            }),
        )
        .unwrap();
        let backend = Recorder {
            headers: vec![
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-1", "remove-val-1"),
                ("X-Header-Echo", "echo"),
            ],
            ..Recorder::default()
        };
        let steps = [response, request];
        let req = get(
            "/response-and-request-header-modifiers",
            &[
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
                ("X-Header-Echo", "echo"),
            ],
        );
        let resp = Next::new(&steps, &backend)
            .run(req, &context(false))
            .await
            .unwrap();
        let seen = backend.got();
        assert_eq!(joined(&seen.headers, "x-header-add"), "header-val-1");
        assert_eq!(
            joined(&seen.headers, "x-header-set"),
            "set-overwrites-values"
        );
        assert_eq!(
            joined(&seen.headers, "x-header-add-append"),
            "append-val-1,header-val-2"
        );
        assert_eq!(joined(&seen.headers, "x-header-echo"), "echo");
        assert!(seen.headers.get("x-header-remove").is_none());
        let h = resp.headers();
        assert_eq!(joined(h, "x-header-set-1"), "header-set-1");
        assert_eq!(joined(h, "x-header-add-2"), "add-val-2,header-add-2");
        assert_eq!(joined(h, "x-header-echo"), "echo");
        assert!(h.get("x-header-remove-1").is_none());
    }

    #[test]
    fn bad_names_values_and_framing_headers_are_refused() {
        let refused = |build: testing::BuildFn, config: Value, why: &str| {
            let err = testing::make(build, config.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{config}: {err}");
        };
        refused(
            build_request,
            json!({"set": [{"name": "bad name", "value": "v"}]}),
            "not a valid header name",
        );
        refused(
            build_response,
            json!({"add": [{"name": "X", "value": "a\r\nb"}]}),
            "not a valid value",
        );
        refused(
            build_request,
            json!({"remove": [""]}),
            "not a valid header name",
        );
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "Upgrade",
        ] {
            refused(
                build_request,
                json!({"set": [{"name": name, "value": "0"}]}),
                "cannot be changed",
            );
            refused(
                build_response,
                json!({"remove": [name]}),
                "cannot be changed",
            );
        }
        refused(
            build_request,
            json!({"remove": ["Host"]}),
            "cannot be removed",
        );
        refused(
            build_response,
            json!({"set": [{"name": "Host", "value": "h"}]}),
            "not a response header",
        );
        refused(build_request, json!({"set": [{"name": "X"}]}), "value");
        refused(build_request, json!({"set": {"name": "X"}}), "invalid type");
    }

    #[tokio::test]
    async fn empty_filter_changes_nothing() {
        let got = backend_sees(json!({}), get("/p?q=1", &[("x", "1"), ("host", "h")])).await;
        assert_eq!(got.uri, "/p?q=1");
        assert_eq!(values(&got.headers, "x"), ["1"]);
        assert_eq!(values(&got.headers, "host"), ["h"]);
    }
}
