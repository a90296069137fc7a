//! `addPrefix`: puts a fixed prefix in front of the request path.

use std::sync::Arc;

use http::Request;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::{ensure_leading_slash, set_path, GoPath};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    prefix: String,
}

/// Builds an `addPrefix` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.prefix.is_empty() {
        return Err(cx.invalid("prefix cannot be empty".to_owned()));
    }
    Ok(Arc::new(AddPrefix {
        prefix: config.prefix,
    }))
}

/// The built `addPrefix`.
#[derive(Debug)]
struct AddPrefix {
    /// Added as is to both the decoded and the raw path, as Traefik does.
    prefix: String,
}

impl AddPrefix {
    fn prefixed(&self, rest: &[u8]) -> Vec<u8> {
        let mut joined = Vec::with_capacity(self.prefix.len() + rest.len());
        joined.extend_from_slice(self.prefix.as_bytes());
        joined.extend_from_slice(rest);
        ensure_leading_slash(&joined)
    }
}

impl Middleware for AddPrefix {
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
            current.map(|value| self.prefixed(value));
            if let Err(refusal) = set_path(&mut req, &current.escaped()) {
                return refusal.answer();
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

    async fn add(prefix: &str, target: &str) -> Seen {
        let mw = testing::make(build, json!({ "prefix": prefix })).unwrap();
        let backend = Recorder::ok();
        run_tls(&mw, get(target, &[]), &backend, false).await;
        backend.got()
    }

    #[tokio::test]
    async fn prefix_is_added_keeping_escapes_and_query() {
        assert_eq!(
            add("/pre", "/addp/x%2Fy?q=1").await.uri,
            "/pre/addp/x%2Fy?q=1"
        );
        assert_eq!(add("/pre", "/").await.uri, "/pre/");
    }

    #[tokio::test]
    async fn prefix_without_slash_gets_one_and_no_separator_is_invented() {
        assert_eq!(add("api", "/x").await.uri, "/api/x");
        assert_eq!(add("/api/", "/x").await.uri, "/api//x");
    }

    #[tokio::test]
    async fn prefix_with_characters_to_escape_is_encoded() {
        assert_eq!(add("/a b", "/x").await.uri, "/a%20b/x");
        // With a RawPath, the prefix goes into it verbatim; a space there makes it
        // invalid, so the path is re-encoded (and %2F becomes /), as in Go.
        assert_eq!(add("/a b", "/x%2Fy").await.uri, "/a%20b/x/y");
    }

    #[tokio::test]
    async fn no_headers_are_added() {
        let seen = add("/pre", "/x").await;
        assert!(seen.headers.is_empty());
        assert_eq!(seen.method, http::Method::GET);
    }

    #[test]
    fn empty_prefix_is_refused() {
        let err = testing::make(build, json!({})).unwrap_err();
        assert!(err.to_string().contains("prefix cannot be empty"), "{err}");
    }
}
