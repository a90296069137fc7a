//! `stripPrefix`: removes the first matching prefix from the request path and
//! tells the backend which one in `X-Forwarded-Prefix`.
//!
//! As in Traefik, prefixes are plain string prefixes of the *decoded* path (not
//! segment-aware), and the client's encoding of the rest (`%2F`) is kept.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::Request;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::{ensure_leading_slash, set_path, GoPath};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

/// `X-Forwarded-Prefix`: the prefix a strip middleware removed.
pub(super) static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    prefixes: Vec<String>,
    /// Deprecated in Traefik (a warning), still honoured.
    #[serde(default)]
    force_slash: Option<bool>,
}

/// Builds a `stripPrefix` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.force_slash.is_some() {
        tracing::warn!(
            namespace = cx.namespace(),
            "stripPrefix: forceSlash is deprecated, please remove any usage of this option"
        );
    }
    let prefixes = config
        .prefixes
        .into_iter()
        .map(|prefix| {
            let header = HeaderValue::from_str(prefix.trim()).map_err(|_| {
                cx.invalid(format!("prefix {prefix:?} is not a valid header value"))
            })?;
            Ok((prefix, header))
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    Ok(Arc::new(StripPrefix {
        prefixes,
        force_slash: config.force_slash.unwrap_or(false),
    }))
}

/// The built `stripPrefix`.
#[derive(Debug)]
struct StripPrefix {
    /// Each prefix as configured, with its (trimmed) `X-Forwarded-Prefix` value.
    prefixes: Vec<(String, HeaderValue)>,
    force_slash: bool,
}

impl StripPrefix {
    fn strip(&self, value: &[u8], prefix: &str) -> Vec<u8> {
        let rest = value.strip_prefix(prefix.as_bytes()).unwrap_or(value);
        if self.force_slash {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            let mut out = Vec::with_capacity(rest.len() + 1);
            out.push(b'/');
            out.extend_from_slice(rest);
            return out;
        }
        ensure_leading_slash(rest)
    }
}

impl Middleware for StripPrefix {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut current = match GoPath::of(&req) {
                Ok(path) => path,
                Err(refusal) => return refusal.answer(),
            };
            let found = self
                .prefixes
                .iter()
                .find(|(prefix, _)| current.path.starts_with(prefix.as_bytes()));
            if let Some((prefix, header)) = found {
                current.map(|value| self.strip(value, prefix));
                req.headers_mut()
                    .append(&X_FORWARDED_PREFIX, header.clone());
                if let Err(refusal) = set_path(&mut req, &current.escaped()) {
                    return refusal.answer();
                }
            }
            next.run(req, cx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    async fn strip(config: Value, target: &str) -> Option<Seen> {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get(target, &[]), &backend, false).await;
        Some(backend.got())
    }

    #[tokio::test]
    async fn first_matching_prefix_wins_and_is_not_segment_aware() {
        let seen = strip(
            json!({"prefixes": ["/strip/a", "/strip"]}),
            "/strip/abc?q=1",
        )
        .await
        .unwrap();
        assert_eq!(seen.uri, "/bc?q=1");
        assert_eq!(values(&seen.headers, "x-forwarded-prefix"), ["/strip/a"]);
    }

    #[tokio::test]
    async fn leading_slash_is_added_and_empty_result_becomes_root_target() {
        let seen = strip(json!({"prefixes": ["/api"]}), "/apiv2/x")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/v2/x");
        let seen = strip(json!({"prefixes": ["/api"]}), "/api?x=1")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/?x=1");
        let seen = strip(json!({"prefixes": ["/api/"]}), "/api/")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/");
    }

    #[tokio::test]
    async fn encoded_slashes_survive() {
        let seen = strip(json!({"prefixes": ["/strip"]}), "/strip/x%2Fy")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/x%2Fy");
        // A prefix that matches the decoded path but not the raw one: Go keeps
        // the stale RawPath, which no longer decodes to Path, so the path is
        // re-encoded canonically.
        let seen = strip(json!({"prefixes": ["/a b"]}), "/a%20b/c%2Fd")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/c/d");
    }

    #[tokio::test]
    async fn no_match_passes_through_untouched() {
        let seen = strip(json!({"prefixes": ["/nope"]}), "/keep%41?x")
            .await
            .unwrap();
        assert_eq!(seen.uri, "/keep%41?x");
        assert!(seen.headers.get("x-forwarded-prefix").is_none());
    }

    #[tokio::test]
    async fn forwarded_prefix_appends_and_is_trimmed() {
        let mw = testing::make(build, json!({"prefixes": ["/p "]})).unwrap();
        let backend = Recorder::ok();
        // The configured prefix (with its space) must match; the header is trimmed.
        let req = get("/p%20/x", &[("x-forwarded-prefix", "/outer")]);
        run_tls(&mw, req, &backend, false).await;
        let seen = backend.got();
        assert_eq!(seen.uri, "/x");
        assert_eq!(
            values(&seen.headers, "x-forwarded-prefix"),
            ["/outer", "/p"]
        );
    }

    #[tokio::test]
    async fn force_slash_keeps_the_old_behaviour() {
        let config = json!({"prefixes": ["/api"], "forceSlash": true});
        let seen = strip(config.clone(), "/api").await.unwrap();
        assert_eq!(seen.uri, "/");
        let seen = strip(config, "/api//x").await.unwrap();
        assert_eq!(seen.uri, "//x");
    }

    #[test]
    fn prefixes_that_cannot_be_headers_are_refused() {
        assert!(testing::make(build, json!({"prefixes": ["/a\nb"]})).is_err());
        assert!(testing::make(build, json!({"prefixes": "/a"})).is_err());
    }
}
