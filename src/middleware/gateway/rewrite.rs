//! `gatewayRewrite`: the HTTPRoute `URLRewrite` filter
//! (`HTTPURLRewriteFilter`): the request goes on with another host and/or
//! path.
//!
//! `hostname` replaces `Host`, and the URI authority when the request has one
//! (HTTP/2 `:authority`, an absolute-form target), port and all: the backend
//! sees exactly the filter's hostname. `X-Forwarded-Host`, set by the proxy
//! before the chain runs, keeps the host the client asked for.
//!
//! `path` changes the request path ([`PathModifier`]; `ReplacePrefixMatch`
//! needs `matchedPrefix`, the rule's `PathPrefix` value, given by the
//! compiler); the query is kept as sent.

use std::sync::Arc;

use http::header::{HeaderValue, HOST};
use http::uri::{Authority, PathAndQuery};
use http::{Request, StatusCode, Uri};
use serde::Deserialize;
use serde_json::Value;

use super::path_modifier::{PathConfig, PathModifier};
use super::redirect::check_hostname;
use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::support::status_response;
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// `HTTPURLRewriteFilter`, plus what the compiler adds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    /// The host the backend sees.
    #[serde(default)]
    hostname: Option<String>,
    /// How the path changes.
    #[serde(default)]
    path: Option<PathConfig>,
    /// The rule's `PathPrefix` value, when it matches with one.
    #[serde(default)]
    matched_prefix: Option<String>,
}

/// Builds a `gatewayRewrite` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let host = match &config.hostname {
        None => None,
        Some(hostname) => {
            check_hostname(hostname).map_err(|reason| cx.invalid(reason))?;
            let value = HeaderValue::from_str(hostname)
                .map_err(|_| cx.invalid(format!("hostname {hostname:?} is not a valid header")))?;
            let authority = Authority::try_from(hostname.as_str())
                .map_err(|_| cx.invalid(format!("hostname {hostname:?} is not an authority")))?;
            Some((value, authority))
        }
    };
    let path = config
        .path
        .as_ref()
        .map(|path| PathModifier::new(path, config.matched_prefix.as_deref()))
        .transpose()
        .map_err(|reason| cx.invalid(reason))?;
    Ok(Arc::new(Rewrite { host, path }))
}

/// The built `gatewayRewrite`.
#[derive(Debug)]
struct Rewrite {
    /// The new `Host`, and the same as a URI authority.
    host: Option<(HeaderValue, Authority)>,
    /// The path modifier.
    path: Option<PathModifier>,
}

impl Rewrite {
    /// Rewrites `req`, or `Err` when the new URI cannot be made (which the
    /// escaping done at build time rules out).
    fn apply(&self, req: &mut Request<RequestBody>) -> Result<(), ()> {
        let mut authority = None;
        if let Some((value, new)) = &self.host {
            req.headers_mut().insert(HOST, value.clone());
            if req.uri().authority().is_some() {
                authority = Some(new.clone());
            }
        }
        let path_and_query = match &self.path {
            None => None,
            Some(modifier) => {
                let uri = req.uri();
                let query = uri.query();
                let mut target =
                    String::with_capacity(uri.path().len() + query.map_or(0, |q| q.len() + 1) + 16);
                modifier.write(uri.path(), &mut target);
                if let Some(query) = query {
                    target.push('?');
                    target.push_str(query);
                }
                Some(PathAndQuery::try_from(target).map_err(drop)?)
            }
        };
        if authority.is_none() && path_and_query.is_none() {
            return Ok(());
        }
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        if authority.is_some() {
            parts.authority = authority;
        }
        if path_and_query.is_some() {
            parts.path_and_query = path_and_query;
        }
        *req.uri_mut() = Uri::from_parts(parts).map_err(drop)?;
        Ok(())
    }
}

impl Middleware for Rewrite {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        match self.apply(&mut req) {
            Ok(()) => next.run(req, cx),
            Err(()) => Box::pin(std::future::ready(Ok(status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Version;
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    /// What the backend sees of `req` through the rewrite `config`.
    async fn backend_sees(config: Value, req: Request<RequestBody>) -> Seen {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, req).await;
        assert_eq!(resp.status(), 200);
        backend.got()
    }

    #[tokio::test]
    async fn host_conformance() {
        for (hostname, path) in [("one.example.org", "/one"), ("example.org", "/two")] {
            let got = backend_sees(
                json!({"hostname": hostname, "matchedPrefix": "/"}),
                get(path, &[("host", "rewrite.example")]),
            )
            .await;
            assert_eq!(values(&got.headers, "host"), [hostname]);
            assert_eq!(got.uri, path);
        }
    }

    #[tokio::test]
    async fn host_replaces_the_authority_port_and_all() {
        let config = json!({"hostname": "backend.example"});
        let mut req = get(
            "https://front.example:8443/a?q=1",
            &[
                ("host", "front.example:8443"),
                ("x-forwarded-host", "front.example:8443"),
            ],
        );
        *req.version_mut() = Version::HTTP_2;
        let got = backend_sees(config.clone(), req).await;
        assert_eq!(got.uri, "https://backend.example/a?q=1");
        assert_eq!(values(&got.headers, "host"), ["backend.example"]);
        assert_eq!(
            values(&got.headers, "x-forwarded-host"),
            ["front.example:8443"]
        );
        let got = backend_sees(config, get("/a", &[("host", "front.example:8080")])).await;
        assert_eq!(values(&got.headers, "host"), ["backend.example"]);
        assert_eq!(got.uri, "/a");
    }

    #[tokio::test]
    async fn path_conformance() {
        let prefix = |to: &str| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": to});
        let full = |to: &str| json!({"type": "ReplaceFullPath", "replaceFullPath": to});
        let cases = [
            (prefix("/one"), "/prefix/one", "/prefix/one/two", "/one/two"),
            (
                prefix("/"),
                "/strip-prefix",
                "/strip-prefix/three",
                "/three",
            ),
            (prefix("/"), "/strip-prefix", "/strip-prefix", "/"),
            (full("/one"), "/full/one", "/full/one/two", "/one"),
            (
                full("/test"),
                "/full/rewrite-path-and-modify-headers",
                "/full/rewrite-path-and-modify-headers/test",
                "/test",
            ),
            (
                prefix("/prefix"),
                "/prefix/rewrite-path-and-modify-headers",
                "/prefix/rewrite-path-and-modify-headers/one",
                "/prefix/one",
            ),
            // httproute-backend-url-rewrite.
            (
                full("/rewritten-full"),
                "/full",
                "/full/original",
                "/rewritten-full",
            ),
            (
                prefix("/rewritten-prefix"),
                "/prefix",
                "/prefix/original",
                "/rewritten-prefix/original",
            ),
        ];
        for (path, matched, sent, want) in cases {
            let config = json!({"path": path, "matchedPrefix": matched});
            let got = backend_sees(config, get(sent, &[("host", "gw")])).await;
            assert_eq!(got.uri, want, "{sent}");
            assert_eq!(values(&got.headers, "host"), ["gw"]);
        }
    }

    #[tokio::test]
    async fn path_rewrite_keeps_the_query_and_the_authority() {
        let config = json!({
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2/"},
            "matchedPrefix": "/v1/"
        });
        let got = backend_sees(config.clone(), get("/v1/items/?a=1&b=%20", &[])).await;
        assert_eq!(got.uri, "/v2/items/?a=1&b=%20");
        let got = backend_sees(config, get("http://gw:8080/v1?", &[])).await;
        assert_eq!(got.uri, "http://gw:8080/v2/?");
        let config = json!({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/a b"}});
        let got = backend_sees(config, get("/x?y", &[])).await;
        assert_eq!(got.uri, "/a%20b?y");
    }

    #[tokio::test]
    async fn host_and_path_together() {
        let config = json!({
            "hostname": "inner.example",
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": ""},
            "matchedPrefix": "/api"
        });
        let mut req = get("https://outer.example/api/users?id=7", &[]);
        *req.version_mut() = Version::HTTP_2;
        let got = backend_sees(config, req).await;
        assert_eq!(got.uri, "https://inner.example/users?id=7");
        assert_eq!(values(&got.headers, "host"), ["inner.example"]);
    }

    #[tokio::test]
    async fn rewrite_then_header_modifier_as_the_conformance_test() {
        // httproute-rewrite-host, /rewrite-host-and-modify-headers.
        let rewrite = testing::make(build, json!({"hostname": "test.example.org"})).unwrap();
        let headers = testing::make(
            super::super::headers::build_request,
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
        let backend = Recorder::ok();
        let steps = [rewrite, headers];
        let req = get(
            "/rewrite-host-and-modify-headers",
            &[
                ("host", "rewrite.example"),
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ],
        );
        Next::new(&steps, &backend)
            .run(req, &context(false))
            .await
            .unwrap();
        let got = backend.got();
        assert_eq!(got.uri, "/rewrite-host-and-modify-headers");
        assert_eq!(values(&got.headers, "host"), ["test.example.org"]);
        assert_eq!(values(&got.headers, "x-header-add"), ["header-val-1"]);
        assert_eq!(
            values(&got.headers, "x-header-add-append").join(","),
            "append-val-1,header-val-2"
        );
        assert_eq!(
            values(&got.headers, "x-header-set"),
            ["set-overwrites-values"]
        );
        assert!(got.headers.get("x-header-remove").is_none());
    }

    #[tokio::test]
    async fn empty_rewrite_changes_nothing() {
        let got = backend_sees(json!({}), get("/p?q", &[("host", "h:81")])).await;
        assert_eq!(got.uri, "/p?q");
        assert_eq!(values(&got.headers, "host"), ["h:81"]);
    }

    #[test]
    fn invalid_filters_are_refused() {
        let refused = |config: Value, why: &str| {
            let err = testing::make(build, config.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{config}: {err}");
        };
        refused(json!({"hostname": "a b"}), "not a valid hostname");
        refused(json!({"hostname": "host:80"}), "not a valid hostname");
        refused(
            json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/x"}}),
            "PathPrefix",
        );
        refused(
            json!({"path": {"type": "ReplaceFullPath"}, "matchedPrefix": "/"}),
            "replaceFullPath must be specified",
        );
        refused(json!({"path": "/x"}), "invalid type");
    }
}
