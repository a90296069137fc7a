//! Parsing a backend's response head (RFC 9112 §4, §6.3) and deciding how its
//! body is delimited. Anything ambiguous is the backend's fault: 502, and the
//! connection to it is dropped.

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status};

use super::head::{parse_length, tokens, trim};
use crate::exchange::MAX_HEADERS;

/// How a backend's response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BackendFraming {
    /// No body follows (HEAD, 1xx, 204, 304, or a length of 0).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// No length: the body ends when the backend closes the connection.
    UntilClose,
}

/// A parsed response head, borrowing the backend read buffer.
#[derive(Debug)]
pub(super) struct ResponseHead<'b> {
    /// The status code.
    pub code: u16,
    /// The reason phrase as sent.
    pub reason: &'b str,
    /// The header fields, in order.
    pub headers: &'b [Header<'b>],
    /// How the body is delimited (for a response to a GET).
    pub framing: BackendFraming,
    /// Whether the backend keeps the connection open after this response.
    pub keep_alive: bool,
    /// Bytes of the buffer the head takes.
    pub len: usize,
}

/// Room for one response's headers.
pub(super) type ResponseSlots<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS];

/// Fresh slots for a response's headers.
pub(super) fn response_slots<'b>() -> ResponseSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Parses a response head at the start of `buf`; `Ok(None)` when incomplete.
/// `bodyless` says the request or status allows no body (HEAD).
pub(super) fn parse<'b>(
    buf: &'b [u8],
    slots: &'b mut ResponseSlots<'b>,
    head_request: bool,
) -> Result<Option<ResponseHead<'b>>, &'static str> {
    let mut resp = httparse::Response::new(&mut []);
    let len =
        match ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots) {
            Ok(Status::Complete(len)) => len,
            Ok(Status::Partial) => return Ok(None),
            Err(_) => return Err("malformed response head"),
        };
    let (Some(version), Some(code)) = (resp.version, resp.code) else {
        return Err("malformed response head");
    };
    if !(100..=599).contains(&code) {
        return Err("status code out of range");
    }
    let facts = Facts::scan(resp.headers)?;
    let bodyless = head_request || code < 200 || code == 204 || code == 304;
    let framing = if bodyless {
        BackendFraming::Empty
    } else {
        facts.framing()
    };
    Ok(Some(ResponseHead {
        code,
        reason: resp.reason.unwrap_or(""),
        headers: resp.headers,
        framing,
        keep_alive: !facts.close && (version == 1 || facts.keep_alive),
        len,
    }))
}

#[derive(Default)]
struct Facts {
    length: Option<u64>,
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
}

impl Facts {
    fn scan(headers: &[Header<'_>]) -> Result<Self, &'static str> {
        let mut facts = Self::default();
        for header in headers {
            let value = trim(header.value);
            if header.name.eq_ignore_ascii_case("content-length") {
                let length = parse_length(value).ok_or("invalid Content-Length")?;
                if facts.length.is_some_and(|seen| seen != length) {
                    return Err("conflicting Content-Lengths");
                }
                facts.length = Some(length);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides: chunked, or read until close.
                let last = tokens(value).last().unwrap_or_default();
                facts.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in tokens(value) {
                    facts.close |= token.eq_ignore_ascii_case(b"close");
                    facts.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        if facts.length.is_some() && facts.chunked.is_some() {
            return Err("both Content-Length and Transfer-Encoding");
        }
        Ok(facts)
    }

    fn framing(&self) -> BackendFraming {
        match (self.chunked, self.length) {
            (Some(true), _) => BackendFraming::Chunked,
            (Some(false), _) | (None, None) => BackendFraming::UntilClose,
            (None, Some(0)) => BackendFraming::Empty,
            (None, Some(n)) => BackendFraming::Length(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(
        raw: &[u8],
        head: bool,
    ) -> Result<Option<(u16, BackendFraming, bool)>, &'static str> {
        let mut slots = response_slots();
        parse(raw, &mut slots, head).map(|r| r.map(|r| (r.code, r.framing, r.keep_alive)))
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        use BackendFraming::*;
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Ok(Some((200, Length(5), true)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Ok(Some((200, Empty, true)))
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            Ok(Some((204, Empty, true)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Ok(Some((304, Empty, true)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false),
            Ok(Some((103, Empty, true)))
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Ok(Some((200, Chunked, true)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Ok(Some((200, UntilClose, true)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Ok(Some((200, UntilClose, true)))
        );
        assert_eq!(
            framing(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            Ok(Some((200, Length(1), false)))
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false
            ),
            Ok(Some((200, Length(1), false)))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", false),
            Ok(None)
        );
    }

    #[test]
    fn ambiguous_or_broken_responses_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 999 Nope\r\n\r\n",
        ] {
            assert!(
                framing(raw, false).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
