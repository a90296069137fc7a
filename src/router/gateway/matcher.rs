//! What an HTTPRoute match asks of a request besides host and path: the
//! method, headers and query parameters, read through [`RequestFacts`] so
//! both HTTP/1.1 engines and HTTP/2 answer without building `http` types.

use regex::Regex;

use crate::gateway::types::{HttpRouteMatch, PathMatchType, StringMatchType};

/// The size limit of a compiled match expression (as the rule validator's).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The parts of a request HTTPRoute matches read, borrowed from wherever the
/// engine keeps them.
pub trait RequestFacts {
    /// The method, as sent (`GET`).
    fn method(&self) -> &str;
    /// The query string without `?`, if the target has one.
    fn query(&self) -> Option<&str>;
    /// Calls `visit` with each value of the header `name` (given lowercase)
    /// until it returns true; returns whether one did.
    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

/// No facts at all: a request with no headers and no query (what the
/// host-and-path lookups of the admin API and tests stand for).
#[derive(Debug, Clone, Copy)]
pub struct NoFacts<'a> {
    /// The method to report.
    pub method: &'a str,
}

impl RequestFacts for NoFacts<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn any_header(&self, _: &str, _: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        false
    }
}

impl RequestFacts for http::request::Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.headers
            .get_all(name)
            .iter()
            .any(|v| visit(v.as_bytes()))
    }
}

/// How a string (header or query value) must look.
#[derive(Debug, Clone)]
pub(super) enum StringMatch {
    /// Exactly this, case-sensitively.
    Exact(Box<str>),
    /// The whole value matches.
    Regex(Regex),
}

impl StringMatch {
    fn new(type_: &StringMatchType, value: &str) -> Result<Self, String> {
        match type_ {
            StringMatchType::RegularExpression => whole_regex(value).map(Self::Regex),
            _ => Ok(Self::Exact(value.into())),
        }
    }

    fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(want) => want.as_bytes() == value,
            Self::Regex(re) => std::str::from_utf8(value).is_ok_and(|v| re.is_match(v)),
        }
    }
}

/// A regular expression that must match the whole input (as Envoy and the
/// other conformant implementations read Gateway API expressions).
pub(super) fn whole_regex(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
            format!("{pattern:?}: {}", last.unwrap_or("invalid"))
        })
}

/// A path match as the table indexes it.
#[derive(Debug, Clone)]
pub(super) enum PathMatch {
    /// The whole path, case-sensitively.
    Exact(Box<str>),
    /// Element-wise prefix; stored without its trailing `/` (`/` is ``).
    Prefix(Box<str>),
    /// The whole path matches the expression.
    Regex(Regex),
}

/// The method, header and query conditions of one match.
#[derive(Debug, Clone, Default)]
pub(super) struct Conditions {
    method: Option<Box<str>>,
    /// Lowercase names; only the first entry of a name counts (the spec).
    headers: Vec<(Box<str>, StringMatch)>,
    /// Case-sensitive names; only the first entry of a name counts.
    query: Vec<(Box<str>, StringMatch)>,
}

impl Conditions {
    /// Whether the match asks for nothing beyond host and path.
    pub(super) fn is_empty(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
    }

    /// (has a method, number of header matches, number of query matches):
    /// the spec's precedence after the path.
    pub(super) fn weight(&self) -> (bool, usize, usize) {
        (self.method.is_some(), self.headers.len(), self.query.len())
    }

    /// Whether `req` meets every condition.
    pub(super) fn matches(&self, req: &dyn RequestFacts) -> bool {
        if let Some(method) = &self.method {
            if req.method() != &**method {
                return false;
            }
        }
        for (name, want) in &self.headers {
            if !req.any_header(name, &mut |value| want.matches(trim(value))) {
                return false;
            }
        }
        if !self.query.is_empty() {
            let query = req.query().unwrap_or("");
            for (name, want) in &self.query {
                match first_param(query, name) {
                    Some(value) if want.matches(&value) => {}
                    _ => return false,
                }
            }
        }
        true
    }
}

/// A header value without the optional whitespace around it.
fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
fn first_param(query: &str, name: &str) -> Option<Vec<u8>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Only an escaped key needs decoding to be compared.
        let same = if key.contains(['%', '+']) {
            decode(key) == name.as_bytes()
        } else {
            key == name
        };
        same.then(|| decode(value))
    })
}

fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// Compiles one `matches[]` entry (defaults already applied).
pub(super) fn compile(m: &HttpRouteMatch) -> Result<(PathMatch, Conditions), String> {
    let path = match &m.path.type_ {
        PathMatchType::Exact => PathMatch::Exact(m.path.value.as_str().into()),
        PathMatchType::RegularExpression => PathMatch::Regex(whole_regex(&m.path.value)?),
        _ => {
            let value = m.path.value.as_str();
            PathMatch::Prefix(value.strip_suffix('/').unwrap_or(value).into())
        }
    };
    let mut conditions = Conditions {
        method: m.method.as_deref().map(Into::into),
        ..Conditions::default()
    };
    for header in &m.headers {
        let name = header.name.to_ascii_lowercase();
        if conditions.headers.iter().any(|(n, _)| **n == *name) {
            continue;
        }
        let want = StringMatch::new(&header.type_, &header.value)?;
        conditions.headers.push((name.into(), want));
    }
    for param in &m.query_params {
        if conditions.query.iter().any(|(n, _)| **n == *param.name) {
            continue;
        }
        let want = StringMatch::new(&param.type_, &param.value)?;
        conditions.query.push((param.name.as_str().into(), want));
    }
    Ok((path, conditions))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        method: &'static str,
        query: Option<&'static str>,
        headers: Vec<(&'static str, &'static str)>,
    }

    impl RequestFacts for Req {
        fn method(&self) -> &str {
            self.method
        }
        fn query(&self) -> Option<&str> {
            self.query
        }
        fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .any(|(_, v)| visit(v.as_bytes()))
        }
    }

    fn conditions(yaml: &str) -> Conditions {
        let m: HttpRouteMatch = serde_yaml_ng::from_str(yaml).expect("match");
        compile(&m).expect("compiles").1
    }

    #[test]
    fn headers_match_case_insensitive_names_and_exact_values() {
        let c = conditions("headers:\n- name: Version\n  value: two\n");
        let req = |v| Req {
            method: "GET",
            query: None,
            headers: vec![("version", v)],
        };
        assert!(c.matches(&req("two")));
        assert!(c.matches(&req(" two ")));
        assert!(!c.matches(&req("Two")));
        assert!(!c.matches(&Req {
            method: "GET",
            query: None,
            headers: vec![],
        }));
    }

    #[test]
    fn only_the_first_entry_of_a_repeated_name_counts() {
        let c = conditions("headers:\n- name: color\n  value: blue\n- name: Color\n  value: red\n");
        let req = |v| Req {
            method: "GET",
            query: None,
            headers: vec![("color", v)],
        };
        assert!(c.matches(&req("blue")));
        assert!(!c.matches(&req("red")));
        assert_eq!(c.weight(), (false, 1, 0));
    }

    #[test]
    fn regex_values_match_whole() {
        let c =
            conditions("headers:\n- name: v\n  type: RegularExpression\n  value: \"v[0-9]+\"\n");
        let req = |v| Req {
            method: "GET",
            query: None,
            headers: vec![("v", v)],
        };
        assert!(c.matches(&req("v12")));
        assert!(!c.matches(&req("xv12")));
    }

    #[test]
    fn query_params_are_case_sensitive_decoded_first_value() {
        let c = conditions("queryParams:\n- name: animal\n  value: whale\n");
        let req = |q| Req {
            method: "GET",
            query: Some(q),
            headers: vec![],
        };
        assert!(c.matches(&req("animal=whale")));
        assert!(c.matches(&req("x=1&animal=wh%61le")));
        assert!(!c.matches(&req("Animal=whale")));
        assert!(!c.matches(&req("animal=dolphin&animal=whale")));
        assert!(!c.matches(&Req {
            method: "GET",
            query: None,
            headers: vec![],
        }));
    }

    #[test]
    fn methods_match_exactly() {
        let c = conditions("method: POST\n");
        let req = |m| Req {
            method: m,
            query: None,
            headers: vec![],
        };
        assert!(c.matches(&req("POST")));
        assert!(!c.matches(&req("GET")));
        assert_eq!(c.weight(), (true, 0, 0));
    }
}
