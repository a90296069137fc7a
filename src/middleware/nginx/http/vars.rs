//! The few nginx variables sluice evaluates in values it took from
//! ingress-nginx annotations and snippets (`return 301
//! https://$host$request_uri;`), regex captures (`$1`), nginx's `$uri`
//! (the decoded path) and its URI escaping.

use http::header::HOST;
use http::Request;

/// One piece of a value with variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text as written.
    Text(String),
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$host`: the Host without its port, lowercased.
    Host,
    /// `$http_host`: the Host header as sent.
    HttpHost,
    /// `$request_uri`: the original target (path and query) as sent.
    RequestUri,
    /// `$uri`: the decoded path.
    Uri,
    /// `$args` / `$query_string`: the query, without `?`.
    Args,
    /// `$is_args`: `?` when there is a query, else empty.
    IsArgs,
    /// `$1`..`$9`: a regex capture (empty when there is none).
    Capture(usize),
}

/// Parses `text` into pieces; `captures` allows `$1`..`$9`. `Err` names the
/// first variable sluice does not evaluate.
pub(crate) fn parse(text: &str, captures: bool) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                (&rest[..1], &rest[1..])
            } else {
                (&rest[..end], &rest[end..])
            }
        };
        let piece = match name {
            "scheme" => Piece::Scheme,
            "host" => Piece::Host,
            "http_host" => Piece::HttpHost,
            "request_uri" => Piece::RequestUri,
            "uri" | "document_uri" => Piece::Uri,
            "args" | "query_string" => Piece::Args,
            "is_args" => Piece::IsArgs,
            digit if captures && digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit() => {
                Piece::Capture(usize::from(digit.as_bytes()[0] - b'0'))
            }
            "" => return Err(format!("a lone $ in {text:?}")),
            other => return Err(format!("the nginx variable ${other}")),
        };
        if !lit.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut lit)));
        }
        out.push(piece);
        rest = after;
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    Ok(out)
}

/// What the variables of one request evaluate to.
pub(crate) struct Vars<'r> {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The Host header (or the target's authority) as sent.
    pub http_host: &'r str,
    /// The path as sent.
    pub path: &'r str,
    /// The query, if any.
    pub query: Option<&'r str>,
}

impl<'r> Vars<'r> {
    /// Reads the variables of `req`.
    pub(crate) fn of<B>(req: &'r Request<B>, tls: bool) -> Self {
        let http_host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        Self {
            scheme: if tls { "https" } else { "http" },
            http_host,
            path: req.uri().path(),
            query: req.uri().query(),
        }
    }

    /// `$host`: the Host without port, lowercased.
    pub(crate) fn host(&self) -> String {
        host_without_port(self.http_host).to_ascii_lowercase()
    }

    /// Evaluates `pieces`, with `captures` (`$0` is the whole match).
    pub(crate) fn eval(&self, pieces: &[Piece], captures: &[Option<&str>]) -> String {
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Scheme => out.push_str(self.scheme),
                Piece::Host => out.push_str(&self.host()),
                Piece::HttpHost => out.push_str(self.http_host),
                Piece::RequestUri => {
                    out.push_str(self.path);
                    if let Some(q) = self.query {
                        out.push('?');
                        out.push_str(q);
                    }
                }
                Piece::Uri => out.push_str(&String::from_utf8_lossy(&decode(self.path))),
                Piece::Args => out.push_str(self.query.unwrap_or("")),
                Piece::IsArgs => {
                    if self.query.is_some() {
                        out.push('?');
                    }
                }
                Piece::Capture(n) => {
                    if let Some(Some(c)) = captures.get(*n) {
                        out.push_str(c);
                    }
                }
            }
        }
        out
    }
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// Percent-decodes `path` as nginx makes `$uri` (a bad escape stays as is).
pub(crate) fn decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI)`: what `proxy_pass` sends for a
/// rewritten `$uri` (space, `#`, `%`, `?`, controls and non-ASCII escaped).
pub(crate) fn escape_uri(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b <= 0x20 || b >= 0x7f || matches!(b, b'#' | b'%' | b'?') {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_captures_parse() {
        assert_eq!(
            parse("https://$host$request_uri", false).unwrap(),
            vec![
                Piece::Text("https://".into()),
                Piece::Host,
                Piece::RequestUri
            ]
        );
        assert_eq!(
            parse("/a/$1/${2}x", true).unwrap(),
            vec![
                Piece::Text("/a/".into()),
                Piece::Capture(1),
                Piece::Text("/".into()),
                Piece::Capture(2),
                Piece::Text("x".into())
            ]
        );
        assert!(parse("/$1", false).is_err());
        assert!(parse("$remote_addr", false).is_err());
        assert!(parse("a$", false).is_err());
    }

    #[test]
    fn decoding_and_escaping_follow_nginx() {
        assert_eq!(decode("/a%20b%2Fc%zz%4"), b"/a b/c%zz%4");
        assert_eq!(escape_uri(b"/a b?#%\xc3\xa9"), "/a%20b%3F%23%25%C3%A9");
        assert_eq!(host_without_port("Ex.com:80"), "Ex.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
