//! Parsing and checking an HTTP/1.1 request head in place (RFC 9112), on
//! borrowed slices of the connection's read buffer.
//!
//! `httparse` does the tokenising; the checks it leaves to us are here: bare LF
//! line ends, the version (1.x only, a higher 1.x minor served as 1.1), the
//! request target's form, Host, and message framing (Content-Length digits only
//! and agreeing, Transfer-Encoding exactly a final `chunked`, never both).
//! Everything returned borrows the buffer; nothing is allocated.

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status};

use crate::exchange::{BadRequest, MAX_HEADERS, MAX_TARGET_LEN};

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding, or a length of 0).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug)]
pub(super) struct RequestHead<'b> {
    /// The method token as sent.
    pub method: &'b str,
    /// The request target as sent (origin-form, absolute-form or `*`).
    pub target: &'b str,
    /// The path and query to forward (origin-form of an absolute-form target).
    pub path_and_query: &'b str,
    /// The authority the client addressed: the target's, else the Host header.
    pub host: Option<&'b str>,
    /// `HTTP/1.0` (no chunked responses, keep-alive only when asked for).
    pub http10: bool,
    /// The header fields, in order.
    pub headers: &'b [Header<'b>],
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The protocol of an Upgrade the client asks for (`Connection: upgrade`).
    pub upgrade: Option<&'b [u8]>,
    /// Bytes of the buffer the head takes.
    pub len: usize,
}

/// Room for the headers of one request, uninitialised until parsed.
pub(super) type HeaderSlots<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS];

/// Fresh header slots (no initialisation cost).
pub(super) fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Parses the head at the start of `buf`: `Ok(None)` when it is not complete yet.
///
/// `buf` is mutable only so that a `HTTP/1.x` minor version above 1 can be
/// rewritten to `1` (RFC 9112 §2.3: process it as the highest minor version known).
pub(super) fn parse<'b>(
    buf: &'b mut [u8],
    slots: &'b mut HeaderSlots<'b>,
    max_head: usize,
) -> Result<Option<RequestHead<'b>>, BadRequest> {
    let Some(line_end) = request_line_end(buf, max_head)? else {
        return Ok(None);
    };
    check_version(&mut buf[..line_end])?;
    let buf: &'b [u8] = buf;
    let mut req = httparse::Request::new(&mut []);
    let parsed = ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots);
    let len = match parsed {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() >= max_head => return Err(BadRequest::HeadTooLarge),
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadRequest::TooManyHeaders),
        // The version itself was checked above: a version error here means
        // the request line has more or fewer parts than three.
        Err(_) => return Err(BadRequest::Malformed),
    };
    if len > max_head {
        return Err(BadRequest::HeadTooLarge);
    }
    if has_bare_lf(&buf[..len]) {
        return Err(BadRequest::Malformed);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(BadRequest::Malformed);
    };
    build(method, target, minor == 0, req.headers, len).map(Some)
}

/// Where the request line ends (after skipping empty lines before it), once it is in `buf`.
fn request_line_end(buf: &[u8], max_head: usize) -> Result<Option<usize>, BadRequest> {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    match buf[start..].iter().position(|b| *b == b'\n') {
        Some(end) => Ok(Some(start + end)),
        None if buf.len() >= max_head => Err(BadRequest::HeadTooLarge),
        None if buf.len() - start > MAX_TARGET_LEN + 64 => Err(BadRequest::TargetTooLong),
        None => Ok(None),
    }
}

/// Refuses versions other than 1.x with 505; rewrites `1.2`+ to `1.1`.
fn check_version(line: &mut [u8]) -> Result<(), BadRequest> {
    let line_len = line.len() - usize::from(line.last() == Some(&b'\r'));
    let line = &mut line[..line_len];
    let Some(space) = line.iter().rposition(|b| *b == b' ') else {
        return Err(BadRequest::Malformed);
    };
    let version = &mut line[space + 1..];
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(BadRequest::Version);
            }
            if *minor > b'1' {
                *minor = b'1';
            }
            Ok(())
        }
        _ => Err(BadRequest::Malformed),
    }
}

/// Whether any LF in the head is not preceded by CR (RFC 9112 §2.2: we do not
/// take a bare LF as a line end, and a recipient must not pass it on).
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

fn build<'b>(
    method: &'b str,
    target: &'b str,
    http10: bool,
    headers: &'b [Header<'b>],
    len: usize,
) -> Result<RequestHead<'b>, BadRequest> {
    if method == "CONNECT" {
        return Err(BadRequest::Method);
    }
    if target.len() > MAX_TARGET_LEN {
        return Err(BadRequest::TargetTooLong);
    }
    let (authority, path_and_query) = split_target(method, target)?;
    let facts = HeaderFacts::scan(headers)?;
    let framing = facts.framing(http10)?;
    let host = match (authority, facts.host) {
        (Some(authority), _) => Some(authority),
        (None, Some(host)) if valid_host(host) => Some(host),
        (None, Some(_)) => return Err(BadRequest::Host),
        (None, None) if http10 => None,
        (None, None) => return Err(BadRequest::Host),
    };
    Ok(RequestHead {
        method,
        target,
        path_and_query,
        host,
        http10,
        headers,
        framing,
        keep_alive: if http10 {
            facts.connection_keep_alive
        } else {
            !facts.connection_close
        },
        expect_continue: facts.expect_continue && !http10,
        upgrade: facts
            .connection_upgrade
            .then_some(facts.upgrade)
            .flatten()
            .filter(|p| !p.eq_ignore_ascii_case(b"h2c")),
        len,
    })
}

/// Splits an absolute-form target into its authority and origin-form rest.
fn split_target<'b>(
    method: &str,
    target: &'b str,
) -> Result<(Option<&'b str>, &'b str), BadRequest> {
    if target.starts_with('/') {
        return Ok((None, target));
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok((None, target))
        } else {
            Err(BadRequest::Malformed)
        };
    }
    let rest = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
        .ok_or(BadRequest::Malformed)?;
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    if !valid_host(authority) {
        return Err(BadRequest::Host);
    }
    // `http://a?q` has an empty path: the origin-form is `/?q`, which cannot
    // be borrowed; such a target is refused rather than rewritten.
    match path.as_bytes().first() {
        None => Ok((Some(authority), "/")),
        Some(b'/') => Ok((Some(authority), path)),
        Some(_) => Err(BadRequest::Malformed),
    }
}

fn strip_prefix_ignore_case<'b>(s: &'b str, prefix: &str) -> Option<&'b str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A Host is a registered name, IPv4 or bracketed IPv6, with an optional port.
fn valid_host(host: &str) -> bool {
    if plain_host(host.as_bytes()) {
        return true;
    }
    !host.is_empty() && !host.contains('@') && host.parse::<http::uri::Authority>().is_ok()
}

/// The common case without a full authority parse: letters, digits, `.` and
/// `-`, then an optional `:port` of digits.
fn plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().position(|b| *b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// What the header fields say about routing and framing.
#[derive(Default)]
struct HeaderFacts<'b> {
    host: Option<&'b str>,
    content_length: Option<u64>,
    transfer_encoding: Option<&'b [u8]>,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    upgrade: Option<&'b [u8]>,
    expect_continue: bool,
}

impl<'b> HeaderFacts<'b> {
    fn scan(headers: &'b [Header<'b>]) -> Result<Self, BadRequest> {
        let mut facts = Self::default();
        for header in headers {
            facts.see(header)?;
        }
        Ok(facts)
    }

    fn see(&mut self, header: &Header<'b>) -> Result<(), BadRequest> {
        let name = header.name;
        let value = trim(header.value);
        if name.eq_ignore_ascii_case("host") {
            if self.host.is_some() {
                return Err(BadRequest::Host);
            }
            self.host = Some(std::str::from_utf8(value).map_err(|_| BadRequest::Host)?);
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_length(value).ok_or(BadRequest::Framing)?;
            if self.content_length.is_some_and(|seen| seen != length) {
                return Err(BadRequest::Framing);
            }
            self.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if self.transfer_encoding.is_some() {
                return Err(BadRequest::Framing);
            }
            self.transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(value) {
                self.connection_close |= token.eq_ignore_ascii_case(b"close");
                self.connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                self.connection_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade = Some(value);
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// The body's framing, or 400 when it is ambiguous (RFC 9112 §6.1, §6.3).
    fn framing(&self, http10: bool) -> Result<Framing, BadRequest> {
        match (self.transfer_encoding, self.content_length) {
            (Some(_), Some(_)) => Err(BadRequest::Framing),
            // HTTP/1.0 has no transfer codings: such a message is faulty (RFC 9112 §6.1).
            (Some(_), None) if http10 => Err(BadRequest::Framing),
            (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            (Some(_), None) => Err(BadRequest::Framing),
            (None, Some(0) | None) => Ok(Framing::Empty),
            (None, Some(n)) => Ok(Framing::Length(n)),
        }
    }
}

/// A Content-Length value: digits only, no sign, no list, fits in a u64.
pub(super) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The comma-separated tokens of a list-valued field, trimmed, empty ones skipped.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

/// `value` without leading and trailing spaces and tabs.
pub(super) fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &value[s..=e],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Framing, Host, target and keep-alive of a parsed head.
    type Parsed = (Framing, Option<String>, String, bool);

    fn head(raw: &[u8]) -> Result<Option<Parsed>, BadRequest> {
        let mut buf = raw.to_vec();
        let mut slots = header_slots();
        parse(&mut buf, &mut slots, 64 * 1024).map(|h| {
            h.map(|h| {
                (
                    h.framing,
                    h.host.map(str::to_owned),
                    h.path_and_query.to_owned(),
                    h.keep_alive,
                )
            })
        })
    }

    #[test]
    fn well_formed_heads_parse() {
        let ok = head(b"GET /a?b HTTP/1.1\r\nHost: x.test\r\n\r\n").expect("ok");
        assert_eq!(
            ok,
            Some((Framing::Empty, Some("x.test".into()), "/a?b".into(), true))
        );
        let post = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n").expect("ok");
        assert_eq!(post.map(|h| h.0), Some(Framing::Length(12)));
        let chunked =
            head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").expect("ok");
        assert_eq!(chunked.map(|h| h.0), Some(Framing::Chunked));
        let same_twice =
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(
            same_twice.expect("ok").map(|h| h.0),
            Some(Framing::Length(3))
        );
        let old = head(b"GET / HTTP/1.0\r\n\r\n").expect("ok");
        assert_eq!(old, Some((Framing::Empty, None, "/".into(), false)));
        let old_ka = head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").expect("ok");
        assert_eq!(old_ka.map(|h| h.3), Some(true));
        let newer_minor = head(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").expect("ok");
        assert!(newer_minor.is_some());
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("partial"),
            None
        );
    }

    #[test]
    fn absolute_form_routes_by_its_authority() {
        let abs =
            head(b"GET http://App.test:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n").expect("ok");
        assert_eq!(
            abs.map(|h| (h.1, h.2)),
            Some((Some("App.test:8080".into()), "/x?y".into()))
        );
        let bare = head(b"GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n").expect("ok");
        assert_eq!(bare.map(|h| h.2), Some("/".into()));
        let star = head(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").expect("ok");
        assert_eq!(star.map(|h| h.2), Some("*".into()));
        assert_eq!(
            head(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(BadRequest::Malformed)
        );
    }

    #[test]
    fn ambiguous_or_invalid_framing_is_refused() {
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(head(raw), Err(BadRequest::Framing), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        for raw in [
            &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX\x01: a\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET ftp://a/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(
                head(raw),
                Err(BadRequest::Malformed),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn versions_hosts_methods_and_sizes() {
        assert_eq!(
            head(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
            Err(BadRequest::Version)
        );
        assert_eq!(
            head(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"),
            Err(BadRequest::Version)
        );
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\n"), Err(BadRequest::Host));
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(BadRequest::Host)
        );
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(BadRequest::Host)
        );
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
            Err(BadRequest::Host)
        );
        assert_eq!(
            head(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            Err(BadRequest::Method)
        );
        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_TARGET_LEN)
        );
        assert_eq!(head(long.as_bytes()), Err(BadRequest::TargetTooLong));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(head(many.as_bytes()), Err(BadRequest::TooManyHeaders));
        let mut buf = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(100)).into_bytes();
        let mut slots = header_slots();
        assert_eq!(
            parse(&mut buf, &mut slots, 64).map(|h| h.is_some()),
            Err(BadRequest::HeadTooLarge)
        );
    }

    #[test]
    fn keep_alive_expect_and_upgrade() {
        let mut buf = b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n".to_vec();
        let mut slots = header_slots();
        let h = parse(&mut buf, &mut slots, 1024)
            .expect("ok")
            .expect("complete");
        assert!(!h.keep_alive);
        assert!(h.expect_continue);
        assert_eq!(h.upgrade, Some(&b"websocket"[..]));
        let mut buf =
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
        let mut slots = header_slots();
        let h = parse(&mut buf, &mut slots, 1024)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.upgrade, None, "h2c upgrades are never tunnelled");
    }
}
