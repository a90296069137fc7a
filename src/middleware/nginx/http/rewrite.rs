//! `nginxRewrite`: ingress-nginx's `rewrite-target` (with
//! `x-forwarded-prefix`), and `nginxRewriteRedirect`: a snippet's
//! `rewrite <regex> <replacement> redirect|permanent;`.
//!
//! ingress-nginx writes, in each location of the Ingress,
//! `rewrite "(?i)<rule path>" <target> break;`: the rule's path is the regex,
//! matched (case-insensitively, anywhere) against nginx's `$uri` (the
//! decoded path), and the target's `$1`… are its captures. The translation
//! of the annotations does not see the rules, so `nginxRewrite` reads the
//! path of the route the request matched (`RequestContext.route.path`) and
//! keeps each path's compiled regex. The query is kept (nginx appends the
//! original arguments), the new path is escaped as `proxy_pass` escapes a
//! rewritten URI. A rule whose path equals the target is not rewritten;
//! a path that is not a valid regex answers 500 (nginx would refuse the
//! whole configuration). A target starting with `http://` or `https://` is
//! nginx's implicit redirect (302).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use http::header::{HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, StatusCode};
use regex::bytes::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::nginx_return::redirect;
use super::vars::{self, Piece, Vars};
use crate::body::RequestBody;
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::support::status_response;
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

/// How many rule paths one middleware keeps compiled.
const CACHE: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    target: String,
    #[serde(default)]
    prefix: Option<String>,
    /// A regex of its own (a snippet's `rewrite <regex> <target> break;`)
    /// instead of the rule's path.
    #[serde(default)]
    regex: Option<String>,
}

/// Builds an `nginxRewrite` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let target = vars::parse(&config.target, true).map_err(|e| cx.invalid(e))?;
    let prefix = match &config.prefix {
        Some(p) => Some(vars::parse(p, true).map_err(|e| cx.invalid(e))?),
        None => None,
    };
    let fixed = match &config.regex {
        Some(text) => Some(Arc::new(
            Regex::new(text).map_err(|e| cx.invalid(format!("regex {text:?}: {e}")))?,
        )),
        None => None,
    };
    Ok(Arc::new(Rewrite {
        raw_target: config.target,
        target,
        prefix,
        fixed,
        regexes: RwLock::default(),
    }))
}

/// The built `nginxRewrite`.
#[derive(Debug)]
struct Rewrite {
    raw_target: String,
    target: Vec<Piece>,
    prefix: Option<Vec<Piece>>,
    /// The snippet's own regex, when it has one.
    fixed: Option<Arc<Regex>>,
    /// `(?i)<rule path>` by rule path; `None` when it does not compile.
    regexes: RwLock<HashMap<String, Option<Arc<Regex>>>>,
}

impl Rewrite {
    fn regex(&self, path: &str) -> Option<Arc<Regex>> {
        let read = self.regexes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = read.get(path) {
            return found.clone();
        }
        drop(read);
        let compiled = Regex::new(&format!("(?i){path}")).ok().map(Arc::new);
        let mut write = self.regexes.write().unwrap_or_else(PoisonError::into_inner);
        if write.len() >= CACHE {
            write.clear();
        }
        write.insert(path.to_owned(), compiled.clone());
        compiled
    }
}

/// The captures of `re` in `subject` as text (`$0` first).
fn captures(re: &Regex, subject: &[u8]) -> Option<Vec<Option<String>>> {
    let caps = re.captures(subject)?;
    Some(
        caps.iter()
            .map(|m| m.map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()))
            .collect(),
    )
}

/// nginx's `rewrite` result for a request with `query`: the new path and
/// its arguments. Only a `?` written in the replacement starts arguments
/// (one a capture brings stays in the path); the original arguments are
/// appended unless the replacement ends with `?`.
fn rewrite_result(
    vars: &Vars<'_>,
    pieces: &[Piece],
    caps: &[Option<&str>],
    query: Option<&str>,
) -> (String, Option<String>) {
    let split = pieces.iter().enumerate().find_map(|(i, p)| match p {
        Piece::Text(t) => t.find('?').map(|at| (i, at)),
        _ => None,
    });
    let Some((i, at)) = split else {
        return (vars.eval(pieces, caps), query.map(str::to_owned));
    };
    let Piece::Text(text) = &pieces[i] else {
        return (vars.eval(pieces, caps), query.map(str::to_owned));
    };
    let mut head = pieces[..i].to_vec();
    head.push(Piece::Text(text[..at].to_owned()));
    let mut tail = vec![Piece::Text(text[at + 1..].to_owned())];
    tail.extend_from_slice(&pieces[i + 1..]);
    let path = vars.eval(&head, caps);
    let args = vars.eval(&tail, caps);
    let ends_with_mark = i + 1 == pieces.len() && text.ends_with('?');
    if ends_with_mark {
        return (path, (!args.is_empty()).then_some(args));
    }
    let args = match query {
        Some(q) if args.is_empty() => q.to_owned(),
        Some(q) => format!("{args}&{q}"),
        None => args,
    };
    (path, (!args.is_empty()).then_some(args))
}

fn is_absolute(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Makes a `Location` value of `url` (relative ones get `$scheme://$host`).
fn location(url: &str, vars: &Vars<'_>) -> String {
    let url = if url.starts_with('/') {
        format!("{}://{}{url}", vars.scheme, vars.host())
    } else {
        url.to_owned()
    };
    url.bytes()
        .map(|b| {
            if b <= 0x20 || b >= 0x7f {
                format!("%{b:02X}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect()
}

fn set_target(req: &mut Request<RequestBody>, path: &str, query: Option<&str>) -> bool {
    let mut target = if path.is_empty() {
        "/".to_owned()
    } else {
        vars::escape_uri(path.as_bytes())
    };
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let Ok(pq) = PathAndQuery::try_from(target) else {
        return false;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq);
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *req.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

impl Middleware for Rewrite {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // The router stores a regex location as `(?i)^<path>`: the rule as written is the rest.
            let rule =
                crate::router::nginx::location_pattern(cx.route.path.as_deref().unwrap_or("/"));
            if self.fixed.is_none() && rule == self.raw_target {
                return next.run(req, cx).await;
            }
            let compiled = match &self.fixed {
                Some(re) => Some(re.clone()),
                None => self.regex(rule),
            };
            let Some(re) = compiled else {
                tracing::warn!(route = %cx.route.name, path = rule, "rewrite-target: the rule's path is not a regex sluice can compile");
                return Ok(status_response(StatusCode::INTERNAL_SERVER_ERROR));
            };
            let uri = vars::decode(req.uri().path());
            let caps = captures(&re, &uri).unwrap_or_default();
            let caps: Vec<Option<&str>> = caps.iter().map(Option::as_deref).collect();
            let vars = Vars::of(&req, cx.client.tls);
            let prefix = self.prefix.as_ref().map(|p| vars.eval(p, &caps));
            let query = vars.query.map(str::to_owned);
            if !caps.is_empty() {
                let (path, args) = rewrite_result(&vars, &self.target, &caps, query.as_deref());
                if is_absolute(&path) {
                    let mut url = path;
                    if let Some(a) = args {
                        url.push('?');
                        url.push_str(&a);
                    }
                    return Ok(redirect(StatusCode::FOUND, &location(&url, &vars)));
                }
                if !set_target(&mut req, &path, args.as_deref()) {
                    return Ok(status_response(StatusCode::INTERNAL_SERVER_ERROR));
                }
            }
            if let Some(prefix) = prefix {
                if let Ok(v) = HeaderValue::from_str(&prefix) {
                    req.headers_mut()
                        .insert(HeaderName::from_static("x-forwarded-prefix"), v);
                }
            }
            next.run(req, cx).await
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedirectConfig {
    regex: String,
    replacement: String,
    code: u16,
}

/// Builds an `nginxRewriteRedirect` from its config.
pub(super) fn build_redirect(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: RedirectConfig = decode(config, cx)?;
    let regex = Regex::new(&config.regex)
        .map_err(|e| cx.invalid(format!("regex {:?}: {e}", config.regex)))?;
    let replacement = vars::parse(&config.replacement, true).map_err(|e| cx.invalid(e))?;
    let status = match config.code {
        301 | 302 => StatusCode::from_u16(config.code).unwrap_or(StatusCode::FOUND),
        other => return Err(cx.invalid(format!("code {other} is neither 301 nor 302"))),
    };
    Ok(Arc::new(RewriteRedirect {
        regex,
        replacement,
        status,
    }))
}

/// The built `nginxRewriteRedirect`.
#[derive(Debug)]
struct RewriteRedirect {
    regex: Regex,
    replacement: Vec<Piece>,
    status: StatusCode,
}

impl Middleware for RewriteRedirect {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let uri = vars::decode(req.uri().path());
            let Some(caps) = captures(&self.regex, &uri) else {
                return next.run(req, cx).await;
            };
            let caps: Vec<Option<&str>> = caps.iter().map(Option::as_deref).collect();
            let vars = Vars::of(&req, cx.client.tls);
            let (path, args) = rewrite_result(&vars, &self.replacement, &caps, vars.query);
            let mut url = path;
            if let Some(a) = args {
                url.push('?');
                url.push_str(&a);
            }
            Ok(redirect(self.status, &location(&url, &vars)))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};
    use crate::router::Route;

    fn context_for(path: &str) -> RequestContext {
        let mut cx = context(false);
        let base = crate::middleware::support::detached_route("r");
        let route = Route {
            name: base.name.clone(),
            host: None,
            path: Some(path.to_owned()),
            kind: None,
            ingress: base.ingress.clone(),
            service: None,
            target: base.target.clone(),
            client: base.client.clone(),
            entrypoints: base.entrypoints,
            redirect_https: false,
            redirect_keeps_trailing_slash: false,
            middlewares: crate::middleware::Chain::default(),
            sticky: None,
            balance: None,
            pass_host_header: true,
            stats: Arc::default(),
        };
        cx.route = Arc::new(route);
        cx
    }

    async fn rewritten(config: Value, rule: &str, target: &str) -> (u16, Option<Seen>) {
        let mw = testing::make(build, config).unwrap();
        let backend = Recorder::ok();
        let cx = context_for(rule);
        let resp = run_in(&mw, &backend, get(target, &[("host", "h")]), &cx)
            .await
            .unwrap();
        (resp.status().as_u16(), backend.last_seen())
    }

    #[tokio::test]
    async fn captures_of_the_rule_path_make_the_new_path() {
        let config = json!({"target": "/$2", "prefix": "/something"});
        let (_, seen) =
            rewritten(config.clone(), "/something(/|$)(.*)", "/something/new?x=1").await;
        let seen = seen.unwrap();
        assert_eq!(seen.uri, "/new?x=1");
        assert_eq!(seen.headers["x-forwarded-prefix"], "/something");
        let (_, seen) = rewritten(config.clone(), "/something(/|$)(.*)", "/SOMETHING").await;
        assert_eq!(seen.unwrap().uri, "/");
        let (_, seen) = rewritten(config, "/something(/|$)(.*)", "/other/a%20b").await;
        assert_eq!(seen.unwrap().uri, "/other/a%20b", "no match: unchanged");
        let (st, seen) =
            rewritten(json!({"target": "/x/$1"}), "/a/(.*)", "/a/b%3Fc%20d%C3%A9").await;
        assert_eq!(st, 200);
        assert_eq!(seen.unwrap().uri, "/x/b%3Fc%20d%C3%A9");
    }

    #[tokio::test]
    async fn odd_rules_and_absolute_targets() {
        let (status, seen) = rewritten(json!({"target": "/"}), "/(", "/x").await;
        assert_eq!(status, 500);
        assert!(seen.is_none());
        let (_, seen) = rewritten(json!({"target": "/a"}), "/a", "/a/b").await;
        assert_eq!(seen.unwrap().uri, "/a/b", "path == target: no rewrite");
        let (status, _) = rewritten(json!({"target": "https://e.example/$1"}), "/(.*)", "/p").await;
        assert_eq!(status, 302);
    }

    #[tokio::test]
    async fn snippet_rewrites_redirect() {
        let config = json!({"regex": "^/old/(.*)$", "replacement": "/new/$1", "code": 301});
        let mw = testing::make(build_redirect, config).unwrap();
        let backend = Recorder::ok();
        let resp = run(&mw, &backend, get("/old/a?q=1", &[("host", "h")])).await;
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()["location"], "http://h/new/a?q=1");
        let resp = run(&mw, &backend, get("/x", &[("host", "h")])).await;
        assert_eq!(resp.status(), 200);
        let req = get("/p", &[("host", "h")]);
        let vars = Vars::of(&req, false);
        let parts = |t: &str| vars::parse(t, true).unwrap();
        assert_eq!(
            rewrite_result(&vars, &parts("/a?b=$1"), &[None, Some("x")], Some("c=2")),
            ("/a".into(), Some("b=x&c=2".into()))
        );
        assert_eq!(
            rewrite_result(&vars, &parts("/a?"), &[], Some("c=2")),
            ("/a".into(), None)
        );
        assert_eq!(
            rewrite_result(&vars, &parts("/a/$1"), &[None, Some("x?y")], None),
            ("/a/x?y".into(), None)
        );
    }
}
