//! Snippets: `configuration-snippet`, `server-snippet`, `auth-snippet` and
//! `stream-snippet` hold raw nginx configuration. sluice never runs them as
//! configuration: it reads the few directives users write to set headers
//! and redirect, and turns them into middleware steps:
//!
//! | directive | step |
//! |---|---|
//! | `more_set_headers "Name: value" ...;` | response header, replaced, every status |
//! | `add_header Name value [always];` | response header, appended (2xx/3xx unless `always`) |
//! | `more_set_input_headers "Name: value" ...;` | request header, replaced |
//! | `proxy_set_header Name value;` | request header, replaced (empty: removed) |
//! | `return code [text\|URL];`, `return URL;` | `nginxReturn` |
//! | `rewrite regex replacement redirect\|permanent;` | `nginxRewriteRedirect` |
//! | `rewrite regex replacement break;` | `nginxRewrite` with that regex |
//!
//! Values may use `$scheme`, `$host`, `$http_host`, `$request_uri`, `$uri`,
//! `$args`, `$is_args` in `return`/`rewrite`, and `$1`… in `rewrite`; header
//! values take no variable. Anything else — another directive, a block (`if`,
//! `location`...), an unbalanced quote, a variable sluice does not evaluate,
//! `return 444` — *refuses* the route (500), naming the directive: a
//! snippet may have been doing access control, so it is not skipped.
//!
//! Header directives wrap the snippet's `return`/`rewrite` steps (nginx's
//! header filters apply to what `return` answers). A `server-snippet` applies
//! here to this Ingress's routes only (nginx: to every location of the host);
//! an `auth-snippet` runs inside the external-auth subrequest, which sluice
//! cannot reproduce: refused. A `stream-snippet` configures TCP/UDP servers,
//! which sluice does not serve: reported and ignored.

use regex::Regex;
use serde_json::{json, Value};

use super::{Annotations, Translation};
use crate::middleware::InlineStep;

/// One directive: its name and arguments (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Directive {
    pub name: String,
    pub args: Vec<String>,
}

/// Splits `text` into directives as nginx's configuration parser does;
/// `Err` says why it cannot (a block, an unbalanced quote...).
pub(super) fn parse(text: &str) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' => {
                chars.next();
                let Some((name, args)) = words.split_first() else {
                    return Err("an empty directive (\";\" alone)".to_owned());
                };
                out.push(Directive {
                    name: name.clone(),
                    args: args.to_vec(),
                });
                words.clear();
            }
            '{' | '}' => {
                let name = words.first().cloned().unwrap_or_else(|| c.to_string());
                return Err(format!(
                    "the block directive {name:?} (blocks such as if, location or server are not supported)"
                ));
            }
            '"' | '\'' => {
                chars.next();
                let quote = c;
                let mut word = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some(other) if other == quote || other == '\\' => word.push(other),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => break,
                        },
                        c if c == quote => {
                            closed = true;
                            break;
                        }
                        c => word.push(c),
                    }
                }
                if !closed {
                    return Err(format!("an unbalanced {quote} quote"));
                }
                if chars
                    .peek()
                    .is_some_and(|n| !(n.is_whitespace() || *n == ';' || *n == '{' || *n == '}'))
                {
                    return Err(format!("text right after the quoted {word:?}"));
                }
                words.push(word);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, ';' | '{' | '}') {
                        break;
                    }
                    if c == '"' || c == '\'' {
                        return Err(format!("a quote inside the word {word:?}"));
                    }
                    word.push(c);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    if let Some(name) = words.first() {
        return Err(format!("the directive {name:?} has no closing \";\""));
    }
    Ok(out)
}

/// What one snippet compiles to.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Compiled {
    /// Request headers to set (name, value; empty removes).
    pub request: Vec<(String, String)>,
    /// Response header entries as `nginxHeaders` reads them.
    pub response: Vec<Value>,
    /// `return`/`rewrite` steps, in order: (kind, config).
    pub steps: Vec<(&'static str, Value)>,
}

fn header_name(directive: &str, name: &str) -> Result<String, String> {
    if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{directive}: {name:?} is not a header name"));
    }
    Ok(name.to_owned())
}

fn header_value(directive: &str, value: &str) -> Result<String, String> {
    if value.contains('$') {
        return Err(format!(
            "{directive}: {value:?} uses an nginx variable, which sluice does not evaluate in headers"
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!("{directive}: {value:?} is not a header value"));
    }
    Ok(value.to_owned())
}

/// `"Name: value"` of the headers-more directives (`"Name:"`/`"Name"` clear).
fn more_header(directive: &str, arg: &str) -> Result<(String, String), String> {
    if arg.starts_with('-') {
        return Err(format!("{directive}: the option {arg:?} is not supported"));
    }
    let (name, value) = arg.split_once(':').unwrap_or((arg, ""));
    Ok((
        header_name(directive, name.trim())?,
        header_value(directive, value.trim())?,
    ))
}

/// The variables the `nginxReturn`/`nginxRewrite*` steps evaluate.
const VARIABLES: &[&str] = &[
    "scheme",
    "host",
    "http_host",
    "request_uri",
    "uri",
    "document_uri",
    "args",
    "query_string",
    "is_args",
];

/// Checks that `text` uses only variables the steps evaluate (`$1`..`$9`
/// too when `captures`).
fn template(directive: &str, text: &str, captures: bool) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return Err(format!("{directive}: an unclosed ${{ in {text:?}")),
            }
        } else if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            (&rest[..1], &rest[1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        let digit = name.len() == 1 && name.as_bytes()[0].is_ascii_digit();
        if !(VARIABLES.contains(&name) || (captures && digit)) {
            return Err(format!(
                "{directive}: the variable ${name} is not supported (only ${} and captures)",
                VARIABLES.join(", $")
            ));
        }
        rest = after;
    }
    Ok(())
}

/// Compiles the directives of one snippet.
pub(super) fn compile(directives: &[Directive]) -> Result<Compiled, String> {
    let mut out = Compiled::default();
    for d in directives {
        let name = d.name.as_str();
        let args = &d.args;
        match name {
            "more_set_headers" | "more_set_input_headers" => {
                if args.is_empty() {
                    return Err(format!("{name} without a header"));
                }
                for arg in args {
                    let (h, v) = more_header(name, arg)?;
                    if name == "more_set_headers" {
                        out.response.push(json!({"name": h, "value": v}));
                    } else {
                        out.request.push((h, v));
                    }
                }
            }
            "proxy_set_header" => {
                let [h, v] = args.as_slice() else {
                    return Err(format!("{name} takes a name and a value"));
                };
                out.request
                    .push((header_name(name, h)?, header_value(name, v)?));
            }
            "add_header" => {
                let (h, v, always) = match args.as_slice() {
                    [h, v] => (h, v, false),
                    [h, v, a] if a == "always" => (h, v, true),
                    _ => return Err(format!("{name} takes a name, a value and maybe \"always\"")),
                };
                let (h, v) = (header_name(name, h)?, header_value(name, v)?);
                if !v.is_empty() {
                    out.response
                        .push(json!({"name": h, "value": v, "add": true, "always": always}));
                }
            }
            "return" => {
                let (code, text) = match args.as_slice() {
                    [url]
                        if url.starts_with("http://")
                            || url.starts_with("https://")
                            || url.starts_with("$scheme") =>
                    {
                        (302, url.clone())
                    }
                    [code] => (return_code(code)?, String::new()),
                    [code, text] => (return_code(code)?, text.clone()),
                    _ => return Err(format!("{name} takes a code and a text or URL")),
                };
                template(name, &text, false)?;
                out.steps
                    .push(("nginxReturn", json!({"code": code, "text": text})));
            }
            "rewrite" => {
                let (regex, replacement, flag) = match args.as_slice() {
                    [r, p, f] => (r, p, f.as_str()),
                    [_, _] => {
                        return Err(format!(
                            "{name} without a flag (an internal rewrite) is not supported"
                        ))
                    }
                    _ => return Err(format!("{name} takes a regex, a replacement and a flag")),
                };
                Regex::new(regex).map_err(|e| {
                    format!("{name}: the regex {regex:?} does not compile here: {e}")
                })?;
                template(name, replacement, true)?;
                match flag {
                    "redirect" | "permanent" => out.steps.push((
                        "nginxRewriteRedirect",
                        json!({
                            "regex": regex,
                            "replacement": replacement,
                            "code": if flag == "permanent" { 301 } else { 302 },
                        }),
                    )),
                    "break" => out.steps.push((
                        "nginxRewrite",
                        json!({"target": replacement, "regex": regex}),
                    )),
                    other => {
                        return Err(format!(
                        "{name} with the flag {other:?} (a new location search) is not supported"
                    ))
                    }
                }
            }
            other => return Err(format!("the directive {other:?} is not supported")),
        }
    }
    Ok(out)
}

fn return_code(code: &str) -> Result<u16, String> {
    match code.parse::<u16>() {
        Ok(444) => Err("return 444 closes the connection, which sluice cannot do".to_owned()),
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("return: {code:?} is not a status code")),
    }
}

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    if let Some(text) = a.get("stream-snippet").filter(|t| !t.is_empty()) {
        let _ = text;
        out.ignore(
            "stream-snippet",
            "it configures TCP/UDP servers, which sluice does not serve",
        );
    }
    if a.get("auth-snippet").is_some_and(|t| !t.is_empty()) {
        out.refuse(
            "auth-snippet",
            "it runs inside the external-auth subrequest, which sluice cannot reproduce",
        );
    }
    // The server's directives run before the location's.
    for annotation in ["server-snippet", "configuration-snippet"] {
        let Some(text) = a.get(annotation).filter(|t| !t.is_empty()) else {
            continue;
        };
        match parse(text).and_then(|d| compile(&d)) {
            Ok(compiled) => push(out, annotation, compiled),
            Err(reason) => out.refuse(
                annotation,
                format!("{reason}; snippets are never run as nginx configuration"),
            ),
        }
    }
}

fn push(out: &mut Translation, annotation: &str, compiled: Compiled) {
    if !compiled.request.is_empty() || !compiled.response.is_empty() {
        let request: Vec<Value> = compiled
            .request
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect();
        out.steps.push(InlineStep {
            name: format!("nginx-{annotation}-headers"),
            kind: "nginxHeaders".to_owned(),
            config: json!({"request": request, "response": compiled.response}),
        });
    }
    for (i, (kind, config)) in compiled.steps.into_iter().enumerate() {
        out.steps.push(InlineStep {
            name: format!("nginx-{annotation}-{i}"),
            kind: kind.to_owned(),
            config,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;
    use super::*;

    fn compiled(text: &str) -> Result<Compiled, String> {
        parse(text).and_then(|d| compile(&d))
    }

    #[test]
    fn the_tokenizer_reads_quotes_comments_and_semicolons() {
        let d = parse("# c\nmore_set_headers \"X-A: a b\" 'X-B: \\'q\\''; add_header X v always;")
            .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].args, vec!["X-A: a b", "X-B: 'q'"]);
        assert_eq!(d[1].args, vec!["X", "v", "always"]);
        assert!(parse("more_set_headers \"X: a;").is_err());
        assert!(parse("add_header X v").is_err());
        assert!(parse("if ($x) { return 403; }")
            .unwrap_err()
            .contains("\"if\""));
        assert!(parse("location /a { }").unwrap_err().contains("location"));
        assert!(parse(";").is_err());
        assert!(parse("a\"b\" c;").is_err());
    }

    #[test]
    fn each_allowed_directive_compiles() {
        let c = compiled("more_set_headers \"X-A: 1\" \"X-Gone:\";").unwrap();
        assert_eq!(
            c.response,
            vec![
                json!({"name": "X-A", "value": "1"}),
                json!({"name": "X-Gone", "value": ""})
            ]
        );
        let c = compiled("more_set_input_headers 'X-In: 2';").unwrap();
        assert_eq!(c.request, vec![("X-In".into(), "2".into())]);
        let c = compiled("proxy_set_header X-P \"a b\";").unwrap();
        assert_eq!(c.request, vec![("X-P".into(), "a b".into())]);
        let c = compiled("add_header X-Frame-Options DENY always;").unwrap();
        assert_eq!(c.response[0]["always"], true);
        let c = compiled("return 403;").unwrap();
        assert_eq!(
            c.steps,
            vec![("nginxReturn", json!({"code": 403, "text": ""}))]
        );
        let c = compiled("return 200 \"ok\";").unwrap();
        assert_eq!(c.steps[0].1["text"], "ok");
        let c = compiled("return 301 https://$host$request_uri;").unwrap();
        assert_eq!(c.steps[0].1["code"], 301);
        let c = compiled("return https://e.example/;").unwrap();
        assert_eq!(c.steps[0].1["code"], 302);
        let c = compiled("rewrite ^/old/(.*)$ /new/$1 permanent;").unwrap();
        assert_eq!(c.steps[0].0, "nginxRewriteRedirect");
        assert_eq!(c.steps[0].1["code"], 301);
        let c = compiled("rewrite ^/a(.*) /b$1 redirect;").unwrap();
        assert_eq!(c.steps[0].1["code"], 302);
        let c = compiled("rewrite ^/a(.*) /b$1 break;").unwrap();
        assert_eq!(c.steps[0].0, "nginxRewrite");
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for (text, named) in [
            ("set $x 1;", "\"set\""),
            (
                "access_by_lua_block { ngx.exit(403) }",
                "access_by_lua_block",
            ),
            ("content_by_lua 'x';", "content_by_lua"),
            ("deny all;", "\"deny\""),
            ("more_set_headers -s 404 'X: 1';", "-s"),
            ("more_set_headers 'X: $remote_addr';", "variable"),
            ("proxy_set_header Host $host;", "variable"),
            ("proxy_set_header Host;", "proxy_set_header"),
            ("add_header X;", "add_header"),
            ("add_header X v sometimes;", "add_header"),
            ("add_header 'X Y' v;", "header name"),
            ("return 444;", "444"),
            ("return 999;", "status code"),
            ("return 301 https://$server_addr/;", "$server_addr"),
            ("rewrite ^/(.*) /$1;", "without a flag"),
            ("rewrite ^/(.*) /$1 last;", "\"last\""),
            ("rewrite ^/(?<=x) /y break;", "does not compile"),
            ("rewrite ^/(.*) /$remote_user redirect;", "$remote_user"),
        ] {
            let err = compiled(text).expect_err(text);
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn snippets_become_steps_and_refusals() {
        let t = all(&annotations(&[(
            "configuration-snippet",
            "more_set_headers \"X-Snip: 1\";\nreturn 418 \"teapot\";",
        )]));
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].kind, "nginxHeaders");
        assert_eq!(t.steps[1].kind, "nginxReturn");
        let t = all(&annotations(&[(
            "server-snippet",
            "location /x { return 403; }",
        )]));
        assert_eq!(t.refused.len(), 1);
        assert!(t.refused[0].1.contains("location"));
        let t = all(&annotations(&[("auth-snippet", "proxy_set_header X 1;")]));
        assert_eq!(t.refused.len(), 1);
        let t = all(&annotations(&[("stream-snippet", "server { listen 1; }")]));
        assert!(t.refused.is_empty());
        assert_eq!(t.ignored.len(), 1);
    }
}
