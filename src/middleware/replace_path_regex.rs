//! `replacePathRegex`: rewrites the (escaped) request path with a regex and a
//! Go-style replacement, recording the old path in `X-Replaced-Path`.
//!
//! Also home of [`replace_all`], Go's `Regexp.ReplaceAllString` with Go's
//! `$1` / `${name}` expansion (shared with `redirectRegex`). The `regex`
//! crate's own expansion differs from Go's at the edges, so it is not used.

use std::sync::Arc;

use http::Request;
use regex::{Captures, Regex};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::replace_path::{set_path, unescape, GoPath, Refusal, X_REPLACED_PATH};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

/// Go's `re.ReplaceAllString(src, template)`: every non-overlapping match
/// replaced by `template` expanded against it.
pub(super) fn replace_all(re: &Regex, src: &str, template: &str) -> String {
    let mut out = String::with_capacity(src.len() + template.len());
    let mut last = 0;
    for caps in re.captures_iter(src) {
        let Some(whole) = caps.get(0) else { continue };
        out.push_str(&src[last..whole.start()]);
        expand(re, &caps, template, &mut out);
        last = whole.end();
    }
    out.push_str(&src[last..]);
    out
}

/// Go's `Regexp.Expand`: `$$` is `$`; `$name` takes the longest run of
/// letters, digits and `_` (so `$1x` names group `1x`); `${name}` is
/// delimited; all-digit names are group numbers (no leading zeros); missing
/// or non-participating groups expand to nothing; a malformed reference
/// leaves the `$` as text.
pub(super) fn expand(re: &Regex, caps: &Captures<'_>, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = reference(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match number(name) {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
}

/// Go's `extract`: the name after a `$` and what follows it.
fn reference(text: &str) -> Option<(&str, &str)> {
    let (body, braced) = match text.strip_prefix('{') {
        Some(inner) => (inner, true),
        None => (text, false),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = &body[end..];
    if braced {
        return rest.strip_prefix('}').map(|rest| (name, rest));
    }
    Some((name, rest))
}

/// A group number as Go reads one: ASCII digits only, no leading zero, below 1e8.
fn number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse::<usize>().ok().filter(|n| *n < 100_000_000)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    regex: String,
    #[serde(default)]
    replacement: String,
}

/// Builds a `replacePathRegex` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let regex = Regex::new(config.regex.trim()).map_err(|e| {
        cx.invalid(format!(
            "error compiling regular expression {}: {e}",
            config.regex
        ))
    })?;
    Ok(Arc::new(ReplacePathRegex {
        regex,
        replacement: config.replacement.trim().to_owned(),
    }))
}

/// The built `replacePathRegex`.
#[derive(Debug)]
struct ReplacePathRegex {
    regex: Regex,
    /// Trimmed; when empty the middleware never rewrites (as in Traefik).
    replacement: String,
}

impl Middleware for ReplacePathRegex {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if self.replacement.is_empty() {
                return next.run(req, cx).await;
            }
            let current = match GoPath::of(&req) {
                Ok(path) => path,
                Err(refusal) => return refusal.answer(),
            };
            let escaped = if current.raw.is_empty() {
                current.escaped()
            } else {
                current.raw.clone()
            };
            if self.regex.is_match(&escaped) {
                if let Ok(value) = http::HeaderValue::from_str(&escaped) {
                    req.headers_mut().append(&X_REPLACED_PATH, value);
                }
                let raw = replace_all(&self.regex, &escaped, &self.replacement);
                let new = match unescape(&raw) {
                    Ok(path) => GoPath { path, raw },
                    Err(e) => return Refusal::Internal(e.to_string()).answer(),
                };
                if let Err(refusal) = set_path(&mut req, &new.escaped()) {
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

    fn go_replace(re: &str, src: &str, template: &str) -> String {
        replace_all(&Regex::new(re).unwrap(), src, template)
    }

    #[test]
    fn expansion_follows_go() {
        let re = r"^/replre/(?P<name>[^/]+)/(.*)";
        assert_eq!(
            go_replace(re, "/replre/nm/rest/x%2Fy", "/new/${name}/$2/$1x"),
            "/new/nm/rest/x%2Fy/"
        );
        assert_eq!(go_replace(re, "/replre/nm/r", "$name-${1}x"), "nm-nmx");
        // $$ is a dollar; a lone or malformed $ stays as text.
        assert_eq!(go_replace("(a)", "a", "$$1 $ ${1 $}"), "$1 $ ${1 $}");
        // Missing groups and non-participating groups expand to nothing.
        assert_eq!(go_replace("(a)|(b)", "a", "[$2][$9][$nope]"), "[][][]");
        // Leading zeros make a name, not a number.
        assert_eq!(go_replace("(a)", "a", "[$01][$1]"), "[][a]");
        // `$1.x`: the name stops at the dot.
        assert_eq!(go_replace("(a)", "a", "$1.x"), "a.x");
        // Unicode letters belong to names.
        assert_eq!(go_replace("(?P<é>a)", "a", "$é!"), "a!");
    }

    #[test]
    fn every_match_is_replaced() {
        assert_eq!(go_replace("a", "banana", "o"), "bonono");
        assert_eq!(go_replace("x*", "abc", "-"), "-a-b-c-");
        assert_eq!(go_replace("a*", "baaac", "-"), "-b-c-");
    }

    async fn rewrite(config: Value, target: &str) -> (Seen, u16) {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let resp = run_tls(&mw, get(target, &[]), &backend, false).await;
        let status = resp.status().as_u16();
        let seen = backend.last_seen().unwrap_or(Seen {
            method: http::Method::GET,
            uri: http::Uri::from_static("/not-called"),
            headers: http::HeaderMap::new(),
        });
        (seen, status)
    }

    #[tokio::test]
    async fn rewrites_the_escaped_path_and_records_it() {
        let config = json!({
            "regex": r"^/replre/(?P<name>[^/]+)/(.*)",
            "replacement": "/new/${name}/$2/$1x"
        });
        let (seen, _) = rewrite(config, "/replre/nm/rest/x%2Fy?q=1").await;
        assert_eq!(seen.uri, "/new/nm/rest/x%2Fy/?q=1");
        assert_eq!(
            values(&seen.headers, "x-replaced-path"),
            ["/replre/nm/rest/x%2Fy"]
        );
    }

    #[tokio::test]
    async fn no_match_or_empty_replacement_passes_through() {
        let (seen, _) = rewrite(json!({"regex": "^/nope", "replacement": "/x"}), "/a").await;
        assert_eq!(seen.uri, "/a");
        assert!(seen.headers.get("x-replaced-path").is_none());
        let (seen, _) = rewrite(json!({"regex": "^/a", "replacement": "  "}), "/a").await;
        assert_eq!(seen.uri, "/a");
        assert!(seen.headers.get("x-replaced-path").is_none());
    }

    #[tokio::test]
    async fn query_is_never_matched() {
        let (seen, _) = rewrite(json!({"regex": "q", "replacement": "Q"}), "/aq?q=q").await;
        assert_eq!(seen.uri, "/aQ?q=q");
    }

    #[tokio::test]
    async fn replacement_that_does_not_unescape_answers_500() {
        let (_, status) = rewrite(json!({"regex": "^/a", "replacement": "/%zz"}), "/a").await;
        assert_eq!(status, 500);
    }

    #[tokio::test]
    async fn replacement_may_introduce_escapes() {
        let config = json!({"regex": "^/a/(.*)", "replacement": "/b%2F$1 sp"});
        let (seen, _) = rewrite(config, "/a/c").await;
        // RawPath `/b%2Fc sp` is not a valid encoding (space): re-encoded from Path.
        assert_eq!(seen.uri, "/b/c%20sp");
        let config = json!({"regex": "^/a/(.*)", "replacement": "/b%2F$1"});
        let (seen, _) = rewrite(config, "/a/c").await;
        assert_eq!(seen.uri, "/b%2Fc");
    }

    #[test]
    fn bad_regex_is_refused() {
        let err = testing::make(build, json!({"regex": "(", "replacement": "/"})).unwrap_err();
        assert!(err
            .to_string()
            .contains("error compiling regular expression"));
    }
}
