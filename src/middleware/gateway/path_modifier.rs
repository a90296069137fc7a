//! `HTTPPathModifier`: the path half of the `RequestRedirect` and
//! `URLRewrite` filters (`ReplaceFullPath`, `ReplacePrefixMatch`).
//!
//! `ReplacePrefixMatch` replaces what the rule's `PathPrefix` match matched,
//! element by element (a trailing `/` of the prefix is ignored, `/foo` never
//! matches `/foobar`). The request path is compared the way the router
//! compares it (`proxy::request::match_path`): escaped unreserved characters
//! count as themselves (`/%66oo` is `/foo`) and runs of `/` as one, so the
//! prefix the router matched is the prefix found here. What follows the
//! prefix keeps the client's spelling. The replacement and the rest are
//! joined with a single `/` between them, and an empty result is `/`: the
//! specification's table, row for row.
//!
//! Replacements are checked and escaped once, when the filter is built: a
//! byte that may not appear in a path (space, `?`, `#`, non-ASCII...) is
//! percent-encoded, a `%` that starts no escape becomes `%25`, and a missing
//! leading `/` is added.

use serde::Deserialize;

/// An `HTTPPathModifier` as the HTTPRoute holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PathConfig {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    kind: String,
    /// The new path, with `ReplaceFullPath`.
    #[serde(default)]
    replace_full_path: Option<String>,
    /// What replaces the matched prefix, with `ReplacePrefixMatch`.
    #[serde(default)]
    replace_prefix_match: Option<String>,
}

/// One element of a path as the router compares paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// A literal byte, or an escaped unreserved one (`%61` is `a`); a run of
    /// `/` is one `/`.
    Byte(u8),
    /// An escape of anything else (`%2F`, `%20`), by the byte it stands for.
    Escaped(u8),
}

/// A built path modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathModifier {
    /// `ReplaceFullPath`: the new path, escaped, starting with `/`.
    Full(String),
    /// `ReplacePrefixMatch`.
    Prefix {
        /// The rule's matched prefix without its trailing `/` (empty for `/`),
        /// as the router compares it.
        prefix: Vec<Unit>,
        /// The replacement, escaped; empty or starting with `/`.
        replacement: String,
    },
}

impl PathModifier {
    /// Builds the modifier `config` describes, for a rule whose `PathPrefix`
    /// match is `matched_prefix` (needed by `ReplacePrefixMatch` only).
    pub(super) fn new(config: &PathConfig, matched_prefix: Option<&str>) -> Result<Self, String> {
        match config.kind.as_str() {
            "ReplaceFullPath" => {
                if config.replace_prefix_match.is_some() {
                    return Err("replacePrefixMatch is set but type is ReplaceFullPath".to_owned());
                }
                let Some(full) = &config.replace_full_path else {
                    return Err(
                        "replaceFullPath must be specified when type is ReplaceFullPath".to_owned(),
                    );
                };
                let mut path = escape_replacement(full);
                if path.is_empty() {
                    path.push('/');
                }
                Ok(Self::Full(path))
            }
            "ReplacePrefixMatch" => {
                if config.replace_full_path.is_some() {
                    return Err("replaceFullPath is set but type is ReplacePrefixMatch".to_owned());
                }
                let Some(replacement) = &config.replace_prefix_match else {
                    return Err(
                        "replacePrefixMatch must be specified when type is ReplacePrefixMatch"
                            .to_owned(),
                    );
                };
                let Some(matched) = matched_prefix else {
                    return Err(
                        "ReplacePrefixMatch needs the rule to match with a PathPrefix".to_owned(),
                    );
                };
                if !matched.starts_with('/') {
                    return Err(format!(
                        "matched prefix {matched:?} does not start with \"/\""
                    ));
                }
                let mut prefix = units(matched);
                if prefix.last() == Some(&Unit::Byte(b'/')) {
                    prefix.pop();
                }
                Ok(Self::Prefix {
                    prefix,
                    replacement: escape_replacement(replacement),
                })
            }
            other => Err(format!("path modifier type {other:?} is not supported")),
        }
    }

    /// Appends to `out` what `path` (a request path, without its query)
    /// becomes. A path that does not start with the prefix (which the router
    /// made sure of) is appended unchanged.
    pub(super) fn write(&self, path: &str, out: &mut String) {
        match self {
            Self::Full(full) => out.push_str(full),
            Self::Prefix {
                prefix,
                replacement,
            } => match rest_after(path, prefix) {
                Some(rest) => join(replacement, rest, out),
                None => out.push_str(path),
            },
        }
    }
}

/// What follows `prefix` in `path`, when `path` starts with it element by
/// element: empty, or starting with `/`.
fn rest_after<'p>(path: &'p str, prefix: &[Unit]) -> Option<&'p str> {
    let raw = path.as_bytes();
    let mut at = 0;
    for wanted in prefix {
        let (unit, next) = next_unit(raw, at)?;
        if unit != *wanted {
            return None;
        }
        at = next;
    }
    match raw.get(at) {
        None | Some(b'/') => path.get(at..),
        Some(_) => None,
    }
}

/// `replacement` then `rest`, with one `/` where both bring one; `/` when
/// both are empty.
fn join(replacement: &str, rest: &str, out: &mut String) {
    let start = out.len();
    out.push_str(replacement);
    if replacement.ends_with('/') && rest.starts_with('/') {
        out.push_str(&rest[1..]);
    } else {
        out.push_str(rest);
    }
    if out.len() == start {
        out.push('/');
    }
}

/// The units of `text` (see [`Unit`]).
fn units(text: &str) -> Vec<Unit> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some((unit, next)) = next_unit(raw, at) {
        out.push(unit);
        at = next;
    }
    out
}

/// The unit starting at `at` in `raw`, and where the next one starts.
fn next_unit(raw: &[u8], at: usize) -> Option<(Unit, usize)> {
    let byte = *raw.get(at)?;
    match byte {
        b'%' => {
            let escaped = raw
                .get(at + 1)
                .and_then(|h| hex(*h))
                .zip(raw.get(at + 2).and_then(|l| hex(*l)));
            match escaped {
                Some((hi, lo)) => {
                    let value = hi << 4 | lo;
                    let unit = if unreserved(value) {
                        Unit::Byte(value)
                    } else {
                        Unit::Escaped(value)
                    };
                    Some((unit, at + 3))
                }
                None => Some((Unit::Byte(b'%'), at + 1)),
            }
        }
        b'/' => {
            let mut next = at + 1;
            while raw.get(next) == Some(&b'/') {
                next += 1;
            }
            Some((Unit::Byte(b'/'), next))
        }
        _ => Some((Unit::Byte(byte), at + 1)),
    }
}

/// The value of one hex digit.
fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// RFC 3986 unreserved characters.
fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Whether `byte` may stand as itself in a path (RFC 3986 `pchar` or `/`).
fn path_byte(byte: u8) -> bool {
    unreserved(byte)
        || matches!(
            byte,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// A replacement path as it may be sent: bytes that cannot appear in a path
/// escaped (a `%` that starts a valid escape is kept), and a leading `/`
/// added to a non-empty replacement that lacks one.
fn escape_replacement(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let raw = text.as_bytes();
    let mut out = String::with_capacity(raw.len() + 1);
    if !raw.is_empty() && raw[0] != b'/' {
        out.push('/');
    }
    for (i, &byte) in raw.iter().enumerate() {
        let valid_escape = byte == b'%'
            && raw.get(i + 1).is_some_and(|h| hex(*h).is_some())
            && raw.get(i + 2).is_some_and(|l| hex(*l).is_some());
        if path_byte(byte) || valid_escape {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ReplacePrefixMatch` of `matched` by `replacement`.
    fn prefix(matched: &str, replacement: &str) -> PathModifier {
        let config = PathConfig {
            kind: "ReplacePrefixMatch".to_owned(),
            replace_full_path: None,
            replace_prefix_match: Some(replacement.to_owned()),
        };
        PathModifier::new(&config, Some(matched)).unwrap()
    }

    /// What `modifier` makes of `path`.
    fn apply(modifier: &PathModifier, path: &str) -> String {
        let mut out = String::new();
        modifier.write(path, &mut out);
        out
    }

    #[test]
    fn replace_prefix_match_follows_the_specification_table() {
        let table = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, matched, replacement, want) in table {
            let got = apply(&prefix(matched, replacement), path);
            assert_eq!(got, want, "{path} | {matched} | {replacement:?}");
        }
    }

    #[test]
    fn replace_prefix_match_conformance_cases() {
        // httproute-rewrite-path, httproute-redirect-path,
        // httproute-backend-url-rewrite, httproute-backend-request-redirect.
        let cases = [
            ("/prefix/one/two", "/prefix/one", "/one", "/one/two"),
            ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
            ("/strip-prefix", "/strip-prefix", "/", "/"),
            (
                "/prefix/rewrite-path-and-modify-headers/one",
                "/prefix/rewrite-path-and-modify-headers",
                "/prefix",
                "/prefix/one",
            ),
            (
                "/original-prefix/lemon",
                "/original-prefix",
                "/replacement-prefix",
                "/replacement-prefix/lemon",
            ),
            (
                "/path-and-host",
                "/path-and-host",
                "/replacement-prefix",
                "/replacement-prefix",
            ),
            (
                "/prefix/original",
                "/prefix",
                "/rewritten-prefix",
                "/rewritten-prefix/original",
            ),
        ];
        for (path, matched, replacement, want) in cases {
            let got = apply(&prefix(matched, replacement), path);
            assert_eq!(got, want, "{path} | {matched} | {replacement:?}");
        }
    }

    #[test]
    fn root_prefix_puts_the_replacement_in_front() {
        assert_eq!(apply(&prefix("/", "/xyz"), "/foo/bar"), "/xyz/foo/bar");
        assert_eq!(apply(&prefix("/", "/xyz/"), "/foo"), "/xyz/foo");
        assert_eq!(apply(&prefix("/", "/xyz"), "/"), "/xyz/");
        assert_eq!(apply(&prefix("/", ""), "/foo"), "/foo");
        assert_eq!(apply(&prefix("/", "/"), "/"), "/");
    }

    #[test]
    fn prefix_matches_whole_elements_only() {
        // The router never sends /foobar to a /foo prefix; if it did, the path
        // would be left alone rather than cut inside an element.
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/foobar"), "/foobar");
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/bar/foo"), "/bar/foo");
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/Foo/bar"), "/Foo/bar");
    }

    #[test]
    fn prefix_is_found_as_the_router_sees_it() {
        // Escaped unreserved bytes and repeated slashes, as `match_path` reads them.
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/%66oo/bar"), "/xyz/bar");
        assert_eq!(apply(&prefix("/foo/bar", "/x"), "//foo//bar/baz"), "/x/baz");
        // The rest keeps the client's spelling.
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/foo//b%2Fc"), "/xyz//b%2Fc");
        // An escaped `/` is not a separator.
        assert_eq!(apply(&prefix("/foo", "/xyz"), "/foo%2Fbar"), "/foo%2Fbar");
        // Other escapes compare by value, whatever the hex case.
        assert_eq!(apply(&prefix("/a%3Ab", "/x"), "/a%3ab/c"), "/x/c");
        // A stray `%` is a byte like any other.
        assert_eq!(apply(&prefix("/a%", "/x"), "/a%/c"), "/x/c");
    }

    #[test]
    fn full_path_replaces_everything() {
        let config = PathConfig {
            kind: "ReplaceFullPath".to_owned(),
            replace_full_path: Some("/full-path-replacement".to_owned()),
            replace_prefix_match: None,
        };
        let modifier = PathModifier::new(&config, None).unwrap();
        assert_eq!(
            apply(&modifier, "/full/path/original"),
            "/full-path-replacement"
        );
        assert_eq!(apply(&modifier, "/"), "/full-path-replacement");
        let empty = PathConfig {
            replace_full_path: Some(String::new()),
            ..config
        };
        let modifier = PathModifier::new(&empty, None).unwrap();
        assert_eq!(apply(&modifier, "/a/b"), "/");
    }

    #[test]
    fn replacements_are_escaped_once_at_build() {
        assert_eq!(escape_replacement("/a b?c#d"), "/a%20b%3Fc%23d");
        assert_eq!(escape_replacement("/caf\u{e9}"), "/caf%C3%A9");
        assert_eq!(escape_replacement("/ok%2Fkept/100%"), "/ok%2Fkept/100%25");
        assert_eq!(escape_replacement("relative"), "/relative");
        assert_eq!(escape_replacement(""), "");
        assert_eq!(apply(&prefix("/foo", "x y"), "/foo/bar"), "/x%20y/bar");
    }

    #[test]
    fn invalid_modifiers_are_refused() {
        let modifier = |kind: &str, full: Option<&str>, prefix: Option<&str>| PathConfig {
            kind: kind.to_owned(),
            replace_full_path: full.map(str::to_owned),
            replace_prefix_match: prefix.map(str::to_owned),
        };
        let err =
            PathModifier::new(&modifier("ReplacePrefixMatch", None, Some("/x")), None).unwrap_err();
        assert!(err.contains("PathPrefix"), "{err}");
        let err = PathModifier::new(&modifier("ReplaceFullPath", None, None), None).unwrap_err();
        assert!(err.contains("replaceFullPath must be specified"), "{err}");
        let err =
            PathModifier::new(&modifier("ReplacePrefixMatch", None, None), Some("/")).unwrap_err();
        assert!(
            err.contains("replacePrefixMatch must be specified"),
            "{err}"
        );
        let err = PathModifier::new(&modifier("ReplaceFullPath", Some("/a"), Some("/b")), None)
            .unwrap_err();
        assert!(err.contains("type is ReplaceFullPath"), "{err}");
        let err = PathModifier::new(&modifier("ReplaceRegex", Some("/a"), None), None).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let err = PathModifier::new(&modifier("ReplacePrefixMatch", None, Some("/x")), Some("x"))
            .unwrap_err();
        assert!(err.contains("does not start"), "{err}");
    }
}
