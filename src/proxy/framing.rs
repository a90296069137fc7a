//! A guard on the client socket that turns a request head carrying both
//! `Content-Length` and `Transfer-Encoding` into a parse error, so hyper answers
//! 400 and closes the connection.
//!
//! hyper follows RFC 9112 §6.1's other option (Transfer-Encoding wins, the
//! connection closes after the response), which is safe, but our contract is a
//! 400: such a request is a smuggling attempt, not a request to serve. hyper
//! drops the Content-Length header before the handler sees the request, so the
//! check has to happen on the bytes. The guard scans request heads only (a few
//! hundred bytes per request, no copies): it follows `Content-Length` bodies to
//! find the next head and stops scanning for good after a chunked body, an
//! upgrade, or an HTTP/2 preface, where hyper's own handling stays in force.
//!
//! When the second of the two framing headers is seen, its `:` is overwritten
//! with `(` in the buffer handed to hyper, so that line is an invalid header
//! and hyper rejects the request with 400 before any of it is routed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The longest header name prefix worth remembering (`transfer-encoding` is 17).
const NAME_CAP: usize = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// Skipping this many body bytes before the next head.
    Body(u64),
    /// No longer scanning (chunked body, upgrade, HTTP/2, unparsable length).
    Off,
}

/// What the scanner knows about the head it is reading.
#[derive(Debug, Default)]
struct HeadScan {
    /// Bytes of the current line seen so far (0 = at a line start).
    line_len: usize,
    /// Whether the request line has been read.
    past_request_line: bool,
    /// The first bytes of the request line (the method's start).
    start: [u8; 3],
    /// The current header name, lowercased, while before its colon.
    name: [u8; NAME_CAP],
    /// Whether the current line's colon has been seen.
    in_value: bool,
    /// Which framing header the current line is, once its colon is seen.
    current: Option<Framing>,
    seen_length: bool,
    seen_encoding: bool,
    /// Whether the head asks to leave HTTP/1 (Upgrade, CONNECT, HTTP/2 preface).
    leaves_http1: bool,
    /// The Content-Length value, accumulated digit by digit.
    length: Option<u64>,
    length_invalid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length,
    Encoding,
    Upgrade,
}

/// Scans the bytes of a client's HTTP/1 stream as they are read; see the module docs.
#[derive(Debug)]
pub struct FramingScanner {
    state: State,
    head: HeadScan,
}

impl Default for FramingScanner {
    fn default() -> Self {
        Self {
            state: State::Head,
            head: HeadScan::default(),
        }
    }
}

impl FramingScanner {
    /// Scans freshly read bytes, rewriting one byte if a head has both framing headers.
    pub fn scan(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return,
                State::Body(n) => {
                    let skip = usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += skip;
                    let left = n - skip as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::Head => {
                    self.head_byte(bytes, i);
                    i += 1;
                }
            }
        }
    }

    fn head_byte(&mut self, bytes: &mut [u8], i: usize) {
        let b = bytes[i];
        let h = &mut self.head;
        if b == b'\n' {
            let empty = h.line_len == 0;
            self.end_line(empty);
            return;
        }
        if b == b'\r' {
            return;
        }
        if !h.past_request_line {
            if h.line_len < 3 {
                h.start[h.line_len] = b;
            }
            h.line_len += 1;
            return;
        }
        if !h.in_value {
            if b == b':' {
                h.in_value = true;
                h.current = classify(&h.name[..h.line_len.min(NAME_CAP)], h.line_len);
                match h.current {
                    Some(Framing::Length) => h.seen_length = true,
                    Some(Framing::Encoding) => h.seen_encoding = true,
                    Some(Framing::Upgrade) => h.leaves_http1 = true,
                    None => {}
                }
                let second = matches!(h.current, Some(Framing::Length | Framing::Encoding))
                    && h.seen_length
                    && h.seen_encoding;
                if second {
                    bytes[i] = b'(';
                }
            } else if h.line_len < NAME_CAP {
                h.name[h.line_len] = b.to_ascii_lowercase();
            }
        } else if h.current == Some(Framing::Length) {
            accumulate_length(h, b);
        }
        h.line_len += 1;
    }

    fn end_line(&mut self, empty: bool) {
        let h = &mut self.head;
        if !h.past_request_line {
            // Empty lines before the request line are ignored, as RFC 9112 allows.
            h.past_request_line = !empty;
            // `PRI * HTTP/2.0` (prior knowledge) and CONNECT leave HTTP/1.
            h.leaves_http1 |= &h.start == b"PRI" || &h.start == b"CON";
            h.line_len = 0;
            return;
        }
        if !empty {
            h.line_len = 0;
            h.in_value = false;
            h.current = None;
            return;
        }
        let head = std::mem::take(&mut self.head);
        self.state = if head.leaves_http1 || head.seen_encoding || head.length_invalid {
            State::Off
        } else {
            match head.length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        };
    }
}

fn classify(name: &[u8], len: usize) -> Option<Framing> {
    match (name, len) {
        (b"content-length", 14) => Some(Framing::Length),
        (b"transfer-encoding", 17) => Some(Framing::Encoding),
        (b"upgrade", 7) => Some(Framing::Upgrade),
        _ => None,
    }
}

fn accumulate_length(h: &mut HeadScan, b: u8) {
    match b {
        b'0'..=b'9' => {
            let digit = u64::from(b - b'0');
            let next = h
                .length
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit));
            match next {
                Some(v) if !h.length_invalid => h.length = Some(v),
                _ => h.length_invalid = true,
            }
        }
        b' ' | b'\t' => {}
        // A list (`5, 5`) or anything else: hyper decides; stop following bodies.
        _ => h.length_invalid = true,
    }
}

pin_project_lite::pin_project! {
    /// A client socket whose reads pass through a [`FramingScanner`].
    pub struct Guarded<T> {
        #[pin]
        inner: T,
        scanner: FramingScanner,
    }
}

impl<T> Guarded<T> {
    /// Wraps a freshly accepted client socket.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            scanner: FramingScanner::default(),
        }
    }
}

impl<T: AsyncRead> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            if this.scanner.state != State::Off {
                this.scanner.scan(&mut buf.filled_mut()[before..]);
            }
        }
        result
    }
}

delegate_async_write!(Guarded);

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns what hyper would see.
    fn feed(input: &[u8], step: usize) -> (Vec<u8>, FramingScanner) {
        let mut scanner = FramingScanner::default();
        let mut out = input.to_vec();
        for chunk in out.chunks_mut(step) {
            scanner.scan(chunk);
        }
        (out, scanner)
    }

    #[test]
    fn both_framing_headers_break_the_second_line_in_any_order_and_split() {
        for input in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 5\r\n\r\n"[..],
        ] {
            for step in [1, 3, 7, input.len()] {
                let (out, _) = feed(input, step);
                assert_eq!(out.iter().filter(|b| **b == b'(').count(), 1, "step {step}");
                assert_eq!(out.len(), input.len());
            }
        }
    }

    #[test]
    fn ordinary_requests_are_untouched_and_bodies_are_skipped() {
        // The body of the first request contains header-like text; it must not count.
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n\r\nTransfer-Encoding: chunked\r\nabcdefghijk\
GET /next HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        for step in [1, 5, input.len()] {
            let (out, scanner) = feed(input, step);
            assert_eq!(&out[..], &input[..], "step {step}");
            assert_eq!(scanner.state, State::Head);
        }
    }

    #[test]
    fn pipelined_second_request_is_checked() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (out, _) = feed(input, input.len());
        assert_eq!(out.iter().filter(|b| **b == b'(').count(), 1);
    }

    #[test]
    fn scanning_stops_after_chunked_upgrade_and_http2() {
        for input in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            &b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"[..],
        ] {
            let (_, scanner) = feed(input, input.len());
            assert_eq!(
                scanner.state,
                State::Off,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
