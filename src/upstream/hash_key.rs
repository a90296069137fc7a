//! The key of `upstream-hash-by`: nginx variables and literal text, as
//! ingress-nginx's `util.parse_complex_value` reads them (`$name`,
//! `${name}`, a `$` not followed by a name is text), evaluated per request
//! straight into a [`KeyHasher`] (nothing is allocated).
//!
//! The variables, with nginx's meaning: `$request_uri` (the target, path and
//! query), `$uri` / `$document_uri` (the path, percent-decoded), `$args` /
//! `$query_string`, `$is_args`, `$host` (lowercased, without port),
//! `$remote_addr`, `$binary_remote_addr`, `$remote_port`, `$scheme`,
//! `$request_method`, `$http_<header>` (lowercase, `-` written `_`; repeated
//! fields joined by `, `, cookies by `; `), `$cookie_<name>` and
//! `$arg_<name>` (names matched case-insensitively, values as sent). Any
//! other variable is an error: the annotation is reported, not guessed at.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, COOKIE, HOST};
use http::Request;

use super::hash_ring::KeyHasher;

/// Why an `upstream-hash-by` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashKeyError {
    /// The value is empty (ingress-nginx rejects it too).
    #[error("the value is empty")]
    Empty,
    /// A character ingress-nginx's validator rejects (it allows letters,
    /// digits, `-`, `_`, `$`, `{`, `}` and spaces).
    #[error("{0:?} is not allowed (only letters, digits and - _ $ {{ }})")]
    Character(char),
    /// A `${` without its `}`.
    #[error("${{ is not closed in {0:?}")]
    Unclosed(String),
    /// A variable sluice does not evaluate.
    #[error("${0} is not a variable sluice evaluates")]
    Unknown(String),
}

/// One piece of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    RequestUri,
    Uri,
    Args,
    IsArgs,
    Host,
    RemoteAddr,
    BinaryRemoteAddr,
    RemotePort,
    Scheme,
    Method,
    Header(HeaderName),
    Cookie(Box<str>),
    Arg(Box<str>),
}

/// A parsed `upstream-hash-by` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKey {
    text: Box<str>,
    pieces: Box<[Piece]>,
}

/// What a request's key is computed from, beside the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address (`$remote_addr`, `$remote_port`).
    pub remote: SocketAddr,
    /// Whether the client came over TLS (`$scheme`).
    pub tls: bool,
}

impl HashKey {
    /// Parses `text`, refusing what ingress-nginx's validator refuses and any
    /// variable sluice does not evaluate.
    pub fn parse(text: &str) -> Result<Self, HashKeyError> {
        if text.is_empty() {
            return Err(HashKeyError::Empty);
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_${} ".contains(*c)))
        {
            return Err(HashKeyError::Character(c));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find(|c: char| !is_name_char(c)) {
                    Some(end) if end > 0 && braced[end..].starts_with('}') => {
                        (&braced[..end], &braced[end + 1..])
                    }
                    // `${` not closing a name: nginx reads a literal `$`.
                    _ if !braced.contains('}') => {
                        return Err(HashKeyError::Unclosed(text.to_owned()))
                    }
                    _ => ("", after),
                }
            } else {
                let end = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                literal.push('$');
            } else {
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal).into()));
                }
                pieces.push(variable(&name.to_ascii_lowercase())?);
            }
            rest = next;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal.into()));
        }
        Ok(Self {
            text: text.into(),
            pieces: pieces.into(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The hash of the key `req` evaluates to.
    pub fn hash<B>(&self, req: &Request<B>, peer: Peer) -> u64 {
        let mut h = KeyHasher::new();
        for piece in self.pieces.iter() {
            write_piece(&mut h, piece, req, peer);
        }
        h.finish()
    }

    /// The key `req` evaluates to, as text (tests and diagnostics only: the
    /// request path uses [`HashKey::hash`]).
    pub fn evaluate<B>(&self, req: &Request<B>, peer: Peer) -> Vec<u8> {
        let mut out = Collect(Vec::new());
        for piece in self.pieces.iter() {
            write_piece(&mut out, piece, req, peer);
        }
        out.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn variable(name: &str) -> Result<Piece, HashKeyError> {
    let unknown = || HashKeyError::Unknown(name.to_owned());
    if let Some(header) = name.strip_prefix("http_") {
        return HeaderName::from_bytes(header.replace('_', "-").as_bytes())
            .map(Piece::Header)
            .map_err(|_| unknown());
    }
    if let Some(cookie) = name.strip_prefix("cookie_") {
        return Ok(Piece::Cookie(cookie.into()));
    }
    if let Some(arg) = name.strip_prefix("arg_") {
        return Ok(Piece::Arg(arg.into()));
    }
    Ok(match name {
        "request_uri" => Piece::RequestUri,
        "uri" | "document_uri" => Piece::Uri,
        "args" | "query_string" => Piece::Args,
        "is_args" => Piece::IsArgs,
        "host" => Piece::Host,
        "remote_addr" => Piece::RemoteAddr,
        "binary_remote_addr" => Piece::BinaryRemoteAddr,
        "remote_port" => Piece::RemotePort,
        "scheme" => Piece::Scheme,
        "request_method" => Piece::Method,
        _ => return Err(unknown()),
    })
}

/// Where a key's bytes go: the hasher on the request path, a buffer in tests.
trait Sink: std::fmt::Write {
    fn bytes(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8);
}

impl Sink for KeyHasher {
    fn bytes(&mut self, bytes: &[u8]) {
        self.write_bytes(bytes);
    }
    fn byte(&mut self, b: u8) {
        self.write_byte(b);
    }
}

struct Collect(Vec<u8>);

impl std::fmt::Write for Collect {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Sink for Collect {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }
}

fn write_piece<B>(out: &mut impl Sink, piece: &Piece, req: &Request<B>, peer: Peer) {
    let uri = req.uri();
    match piece {
        Piece::Text(text) => out.bytes(text.as_bytes()),
        Piece::RequestUri => {
            let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
            out.bytes(target.as_bytes());
        }
        Piece::Uri => decode_into(out, uri.path().as_bytes()),
        Piece::Args => out.bytes(uri.query().unwrap_or("").as_bytes()),
        Piece::IsArgs => {
            if uri.query().is_some() {
                out.byte(b'?');
            }
        }
        Piece::Host => {
            let host = uri
                .host()
                .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
                .map_or("", host_without_port);
            for b in host.bytes() {
                out.byte(b.to_ascii_lowercase());
            }
        }
        Piece::RemoteAddr => {
            let _ = write!(out, "{}", peer.remote.ip());
        }
        Piece::BinaryRemoteAddr => match peer.remote.ip() {
            IpAddr::V4(ip) => out.bytes(&ip.octets()),
            IpAddr::V6(ip) => out.bytes(&ip.octets()),
        },
        Piece::RemotePort => {
            let _ = write!(out, "{}", peer.remote.port());
        }
        Piece::Scheme => out.bytes(if peer.tls { b"https" } else { b"http" }),
        Piece::Method => out.bytes(req.method().as_str().as_bytes()),
        Piece::Header(name) => {
            let separator: &[u8] = if name == COOKIE { b"; " } else { b", " };
            for (i, value) in req.headers().get_all(name).iter().enumerate() {
                if i > 0 {
                    out.bytes(separator);
                }
                out.bytes(value.as_bytes());
            }
        }
        Piece::Cookie(name) => {
            if let Some(value) = cookie(req, name) {
                out.bytes(value);
            }
        }
        Piece::Arg(name) => {
            if let Some(value) = uri.query().and_then(|q| arg(q, name)) {
                out.bytes(value.as_bytes());
            }
        }
    }
}

/// `host[:port]` without the port (an IPv6 literal keeps its brackets).
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// Percent-decodes `path` into `out`, as nginx makes `$uri` (a bad escape
/// stays as it is).
fn decode_into(out: &mut impl Sink, path: &[u8]) {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' && i + 2 < path.len() {
            if let (Some(h), Some(l)) = (hex(path[i + 1]), hex(path[i + 2])) {
                out.byte((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.byte(path[i]);
        i += 1;
    }
}

/// The value of cookie `name` (case-insensitive, as nginx's `$cookie_`).
fn cookie<'r, B>(req: &'r Request<B>, name: &str) -> Option<&'r [u8]> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii_start();
            let eq = pair.iter().position(|b| *b == b'=')?;
            pair[..eq]
                .trim_ascii_end()
                .eq_ignore_ascii_case(name.as_bytes())
                .then(|| pair[eq + 1..].trim_ascii())
        })
}

/// The value of query argument `name` (case-insensitive, the first one, as
/// sent), as nginx's `$arg_`.
fn arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.eq_ignore_ascii_case(name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            remote: "192.0.2.7:40000".parse().expect("addr"),
            tls: false,
        }
    }

    fn request(target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::get(target);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request")
    }

    fn eval(expr: &str, req: &Request<()>) -> String {
        let key = HashKey::parse(expr).expect("valid expression");
        String::from_utf8(key.evaluate(req, peer())).expect("utf-8")
    }

    #[test]
    fn variables_evaluate_as_nginx_does() {
        let req = request(
            "/a%20b/c?Page=2&x=y&page=3",
            &[
                ("host", "App.Example:8080"),
                ("x-user", "alice"),
                ("x-user", "bob"),
                ("cookie", "a=1; Session = s1 ; other=2"),
                ("cookie", "late=3"),
            ],
        );
        assert_eq!(eval("$request_uri", &req), "/a%20b/c?Page=2&x=y&page=3");
        assert_eq!(eval("$uri", &req), "/a b/c");
        assert_eq!(eval("$args", &req), "Page=2&x=y&page=3");
        assert_eq!(eval("$host", &req), "app.example");
        assert_eq!(eval("$remote_addr", &req), "192.0.2.7");
        assert_eq!(eval("$remote_port", &req), "40000");
        assert_eq!(eval("$scheme-$request_method", &req), "http-GET");
        assert_eq!(eval("$http_x_user", &req), "alice, bob");
        assert_eq!(eval("$HTTP_X_USER", &req), "alice, bob");
        assert_eq!(
            eval("$http_cookie", &req),
            "a=1; Session = s1 ; other=2; late=3"
        );
        assert_eq!(eval("$cookie_session", &req), "s1");
        assert_eq!(eval("$cookie_late", &req), "3");
        assert_eq!(
            eval("$arg_page", &req),
            "2",
            "the first, case-insensitively"
        );
        assert_eq!(eval("$arg_x$arg_none", &req), "y");
        assert_eq!(eval("$http_x_missing", &req), "");
        assert_eq!(
            eval("${request_uri}-text-value", &req),
            "/a%20b/c?Page=2&x=y&page=3-text-value"
        );
        assert_eq!(eval("prefix-$http_x_user", &req), "prefix-alice, bob");
        assert_eq!(eval("$host$uri", &req), "app.example/a b/c");
        assert_eq!(eval("a$-b$", &req), "a$-b$", "a lone $ is text");
        assert_eq!(eval("$is_args", &req), "?");
        assert_eq!(eval("$is_args", &request("/x", &[])), "");
        // Absolute-form targets (and HTTP/2) carry the host in the URI.
        assert_eq!(
            eval("$host", &request("http://Abs.Test:81/x", &[])),
            "abs.test"
        );
        let v6 = request("/", &[("host", "[::1]:80")]);
        assert_eq!(eval("$host", &v6), "[::1]");
    }

    #[test]
    fn hashing_streams_the_same_bytes_it_evaluates() {
        let req = request("/p?q=1", &[("x-user", "alice")]);
        let key = HashKey::parse("u-$http_x_user$request_uri").expect("valid");
        let mut h = KeyHasher::new();
        h.write_bytes(b"u-alice/p?q=1");
        assert_eq!(key.hash(&req, peer()), h.finish());
        let other = request("/p?q=1", &[("x-user", "bob")]);
        assert_ne!(key.hash(&req, peer()), key.hash(&other, peer()));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        assert_eq!(HashKey::parse(""), Err(HashKeyError::Empty));
        assert_eq!(
            HashKey::parse("$request_uri/x"),
            Err(HashKeyError::Character('/'))
        );
        assert_eq!(
            HashKey::parse("$host\n"),
            Err(HashKeyError::Character('\n'))
        );
        assert_eq!(
            HashKey::parse("$upstream_addr"),
            Err(HashKeyError::Unknown("upstream_addr".into()))
        );
        assert_eq!(
            HashKey::parse("${request_uri"),
            Err(HashKeyError::Unclosed("${request_uri".into()))
        );
        assert!(HashKey::parse("$1").is_err(), "no regex captures");
        let err = HashKey::parse("$nope").expect_err("unknown").to_string();
        assert!(err.contains("$nope"), "{err}");
    }

    #[test]
    fn decoding_keeps_bad_escapes() {
        let mut out = Collect(Vec::new());
        decode_into(&mut out, b"/a%2Fb%zz%4");
        assert_eq!(out.0, b"/a/b%zz%4");
    }
}
