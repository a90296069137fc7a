//! `stripPrefixRegex`: removes the part of the path a regex matches at its
//! start, and tells the backend what was removed in `X-Forwarded-Prefix`.

use std::sync::Arc;

use http::header::HeaderValue;
use http::Request;
use regex::bytes::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::{ensure_leading_slash, escape_path, set_path, GoPath};
use super::strip_prefix::X_FORWARDED_PREFIX;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    regex: Vec<String>,
}

/// Builds a `stripPrefixRegex` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let expressions = config
        .regex
        .iter()
        .map(|text| Regex::new(text.trim()).map_err(|e| cx.invalid(format!("regex {text:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(StripPrefixRegex { expressions }))
}

/// The built `stripPrefixRegex`.
#[derive(Debug)]
struct StripPrefixRegex {
    expressions: Vec<Regex>,
}

impl StripPrefixRegex {
    /// The first non-empty leftmost match (of the first regex that has one)
    /// that is also a prefix of the decoded path.
    fn prefix<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        self.expressions.iter().find_map(|re| {
            let m = re.find(path)?.as_bytes();
            (!m.is_empty() && path.starts_with(m)).then_some(m)
        })
    }
}

impl Middleware for StripPrefixRegex {
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
            if let Some(prefix) = self.prefix(&current.path) {
                let header = HeaderValue::from_bytes(prefix)
                    .or_else(|_| HeaderValue::from_str(&escape_path(prefix)))
                    .unwrap_or_else(|_| HeaderValue::from_static("/"));
                let len = prefix.len();
                // Traefik cuts RawPath at the *decoded* prefix's length.
                current.map(|value| ensure_leading_slash(value.get(len..).unwrap_or_default()));
                req.headers_mut().append(&X_FORWARDED_PREFIX, header);
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

    async fn strip(config: Value, target: &str) -> Seen {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get(target, &[]), &backend, false).await;
        backend.got()
    }

    #[tokio::test]
    async fn strips_the_matched_prefix() {
        let seen = strip(
            json!({"regex": ["/stripre/[a-z]+"]}),
            "/stripre/abc/def?x=1",
        )
        .await;
        assert_eq!(seen.uri, "/def?x=1");
        assert_eq!(
            values(&seen.headers, "x-forwarded-prefix"),
            ["/stripre/abc"]
        );
    }

    #[tokio::test]
    async fn match_not_at_start_tries_the_next_regex() {
        let config = json!({"regex": ["[0-9]+", " /v[0-9] "]});
        let seen = strip(config, "/v1/items/42").await;
        assert_eq!(seen.uri, "/items/42");
        assert_eq!(values(&seen.headers, "x-forwarded-prefix"), ["/v1"]);
    }

    #[tokio::test]
    async fn no_match_and_empty_matches_pass_through() {
        let seen = strip(json!({"regex": ["x*", "/nomatch"]}), "/keep").await;
        assert_eq!(seen.uri, "/keep");
        assert!(seen.headers.get("x-forwarded-prefix").is_none());
    }

    #[tokio::test]
    async fn leading_slash_is_restored_and_whole_path_match_gives_root() {
        let seen = strip(json!({"regex": ["/api/"]}), "/api/x").await;
        assert_eq!(seen.uri, "/x");
        let seen = strip(json!({"regex": ["^/api.*"]}), "/api/x?q").await;
        assert_eq!(seen.uri, "/?q");
    }

    #[tokio::test]
    async fn raw_path_is_cut_at_the_decoded_length() {
        // The prefix has no escapes: RawPath is cut in the same place.
        let seen = strip(json!({"regex": ["/s/[a-z]+"]}), "/s/ab/x%2Fy").await;
        assert_eq!(seen.uri, "/x%2Fy");
        // The prefix spans an escape: Go's cut RawPath no longer matches Path and
        // the path is re-encoded from the decoded form.
        let seen = strip(json!({"regex": ["/a/b"]}), "/a%2Fb/c%2Fd").await;
        assert_eq!(seen.uri, "/c/d");
    }

    #[test]
    fn bad_regexes_are_refused() {
        assert!(testing::make(build, json!({"regex": ["("]})).is_err());
    }
}
