//! A validating scanner for HTTP/1.1 chunked message bodies (RFC 9112 §7.1).
//!
//! The native HTTP/1.1 proxy relays chunked bodies byte for byte: it writes
//! what it reads, unchanged, and runs [`ChunkedScanner`] over the same bytes to
//! learn where the body ends (so a pipelined next message is not forwarded as
//! part of it) and to reject malformed framing before it reaches the other
//! side. A caller that wants the payload instead gets the chunk-data bytes as
//! ranges of its own buffer through the `data` callback of
//! [`ChunkedScanner::scan`].
//!
//! The scanner is an incremental state machine: input may be split anywhere,
//! down to one byte per call, and every split gives the same result. It never
//! allocates. Chunk data is skipped by count (one callback per run, O(1) per
//! call); only chunk-size lines and the trailer section are read byte by byte.
//!
//! # Strictness
//!
//! Any error is the peer's fault and the proxy answers it with 400, so the
//! grammar is RFC 9112's, enforced exactly:
//!
//! - `chunk-size` is `1*HEXDIG` (either case, leading zeros allowed) and must
//!   fit a `u64`; no sign, no `0x`, no leading whitespace.
//! - `chunk-ext` is `*( BWS ";" BWS name [ BWS "=" BWS value ] )` with a token
//!   name and a token or quoted-string value. BWS (spaces and tabs) is also
//!   accepted at the end of the line, before its CRLF (`5 \r\n`, `5;a=b \r\n`),
//!   as hyper and nginx accept it. Control bytes are rejected, except HTAB in
//!   BWS and inside a quoted string.
//! - The whole chunk-size line, extensions included and CRLF excluded, is at
//!   most [`MAX_LINE`] bytes; the limit is checked as bytes arrive.
//! - Every line of the chunk framing, the last-chunk line (`0\r\n`) included,
//!   ends in exactly CRLF, and chunk data is followed by exactly CRLF.
//! - Trailer field lines are `token ":" OWS value OWS` with value bytes VCHAR,
//!   SP, HTAB or obs-text; obs-fold, whitespace before the colon and control
//!   bytes are rejected. The trailer section (every byte after the last-chunk
//!   line, its final empty line included) is at most [`MAX_TRAILERS`] bytes.
//!
//! # The one tolerance
//!
//! Inside the trailer section, and only there, a bare LF is accepted as a line
//! terminator, as Go's `net/textproto` and nginx accept it: `0\r\n\n` ends the
//! body at that LF, and what follows belongs to the next message. A bare CR
//! there is still an error.

use std::ops::Range;

/// Why a chunked body is malformed: the client's (or backend's) error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// The chunk size is missing, is not hexadecimal, or is followed by junk.
    #[error("invalid chunk size")]
    InvalidSize,
    /// The chunk size does not fit in 64 bits.
    #[error("chunk size overflows 64 bits")]
    SizeOverflow,
    /// The chunk-size line (size and extensions) is longer than [`MAX_LINE`].
    #[error("chunk-size line too long")]
    LineTooLong,
    /// A chunk extension is malformed or holds a control byte.
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// A CRLF is missing: after chunk data, or a bare CR or LF ends a line.
    #[error("missing CRLF in chunked framing")]
    MissingCrlf,
    /// A trailer field line is malformed (obs-fold, no colon, bad name,
    /// control byte, bare CR).
    #[error("invalid trailer field")]
    InvalidTrailer,
    /// The trailer section is longer than [`MAX_TRAILERS`].
    #[error("trailer section too large")]
    TrailersTooLarge,
}

use ChunkedError::{
    InvalidExtension, InvalidSize, InvalidTrailer, LineTooLong, MissingCrlf, SizeOverflow,
    TrailersTooLarge,
};

/// The longest chunk-size line accepted, in bytes: the size and its extensions,
/// without the CRLF.
pub const MAX_LINE: usize = 4096;

/// The largest trailer section accepted, in bytes: everything after the
/// last-chunk line, line terminators and the final empty line included.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// How much of the input the body took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// How many leading bytes of the input belong to the body.
    pub consumed: usize,
    /// Whether the body ended within those bytes.
    pub done: bool,
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a chunk-size line (last-chunk line included).
    Line(Line),
    /// The CR ending a chunk-size line was seen; its LF is next.
    LineLf,
    /// Inside chunk data; `ChunkedScanner::size` bytes are still expected.
    Data,
    /// Chunk data ended; its CR is next.
    DataCr,
    /// Chunk data and its CR ended; the LF is next.
    DataLf,
    /// Inside the trailer section.
    Trailer(Trailer),
    /// The body ended.
    Done,
    /// The body is malformed.
    Failed(ChunkedError),
}

/// Where the scanner is within a chunk-size line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the first hex digit.
    SizeStart,
    /// After at least one hex digit.
    Size,
    /// In BWS after the size.
    AfterSize,
    /// After `;`, in BWS before an extension name.
    NameStart,
    /// Inside an extension name.
    Name,
    /// In BWS after an extension name.
    AfterName,
    /// After `=`, in BWS before an extension value.
    ValueStart,
    /// Inside a token value.
    Token,
    /// Inside a quoted-string value.
    Quoted,
    /// After a backslash inside a quoted string.
    QuotedPair,
    /// In BWS after an extension value.
    AfterValue,
}

/// Where the scanner is within the trailer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailer {
    /// At the start of a field line or of the final empty line.
    LineStart,
    /// Inside a field name.
    Name,
    /// After the colon, in the field value.
    Value,
    /// The CR ending a field line was seen; its LF is next.
    LineLf,
    /// The CR of the final empty line was seen; its LF is next.
    EndLf,
}

impl Default for State {
    fn default() -> Self {
        State::Line(Line::SizeStart)
    }
}

/// An incremental, validating scanner for one chunked message body.
///
/// Create one per body with [`ChunkedScanner::new`] and feed it the body's
/// bytes with [`ChunkedScanner::scan`], split however they arrive.
#[derive(Debug, Clone, Default)]
pub struct ChunkedScanner {
    state: State,
    /// The chunk size while its line is read, then the data bytes still due.
    size: u64,
    /// Bytes of the current chunk-size line so far, CRLF excluded.
    line_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
}

impl ChunkedScanner {
    /// A scanner at the start of a chunked body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans the next bytes of a chunked body. `consumed` is how many leading bytes of `input`
    /// belong to the body (everything after the final CRLF of the trailer section belongs to
    /// the next message and is NOT consumed); `done` says the body ended within them.
    /// `data` is called with each run of chunk-data bytes (as a range of offsets into `input`),
    /// in order, so a caller can decode. Feeding after done returns consumed 0, done true.
    /// After an error the scanner stays failed (further calls return the same error).
    ///
    /// Until the body ends, `consumed` is always `input.len()`.
    pub fn scan(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(Range<usize>),
    ) -> Result<Scanned, ChunkedError> {
        match self.state {
            State::Failed(error) => return Err(error),
            State::Done => {
                return Ok(Scanned {
                    consumed: 0,
                    done: true,
                })
            }
            _ => {}
        }
        let mut pos = 0;
        while pos < input.len() {
            if self.state == State::Data {
                let run = self.skip_data(input.len() - pos);
                data(pos..pos + run);
                pos += run;
                continue;
            }
            let byte = input[pos];
            pos += 1;
            match self.step(byte) {
                Ok(State::Done) => {
                    self.state = State::Done;
                    return Ok(Scanned {
                        consumed: pos,
                        done: true,
                    });
                }
                Ok(next) => self.state = next,
                Err(error) => {
                    self.state = State::Failed(error);
                    return Err(error);
                }
            }
        }
        Ok(Scanned {
            consumed: pos,
            done: false,
        })
    }

    /// Whether the scanner is inside the trailer section (after the last
    /// chunk), so a caller can keep the trailer fields.
    pub fn in_trailer(&self) -> bool {
        matches!(self.state, State::Trailer(_))
    }

    /// Whether the whole body (last chunk and trailer section) has been seen.
    #[cfg_attr(not(test), allow(dead_code))] // the relays read `Scanned::done`
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Chunk-data bytes still expected in the current chunk (0 when not inside chunk data),
    /// so a caller relaying large chunks can size its reads.
    #[cfg_attr(not(test), allow(dead_code))] // for relays that size reads by chunk
    pub fn data_remaining(&self) -> u64 {
        match self.state {
            State::Data => self.size,
            _ => 0,
        }
    }

    /// Takes up to `available` bytes of chunk data; returns how many it took.
    fn skip_data(&mut self, available: usize) -> usize {
        let run = usize::try_from(self.size).map_or(available, |size| size.min(available));
        self.size -= run as u64;
        if self.size == 0 {
            self.state = State::DataCr;
        }
        run
    }

    /// Reads one byte outside chunk data; returns the next state.
    fn step(&mut self, byte: u8) -> Result<State, ChunkedError> {
        match self.state {
            State::Line(line) => self.line_byte(line, byte),
            State::LineLf => self.line_end(byte),
            State::DataCr => expect(byte, b'\r', State::DataLf, MissingCrlf),
            State::DataLf => expect(byte, b'\n', State::Line(Line::SizeStart), MissingCrlf),
            State::Trailer(trailer) => self.trailer_byte(trailer, byte),
            // `scan` handles these without stepping.
            State::Data | State::Done | State::Failed(_) => Ok(self.state),
        }
    }

    /// Reads one byte of a chunk-size line, before its CR.
    fn line_byte(&mut self, line: Line, byte: u8) -> Result<State, ChunkedError> {
        if byte != b'\r' {
            self.line_len += 1;
            if self.line_len > MAX_LINE {
                return Err(LineTooLong);
            }
        }
        match (line, hex_value(byte)) {
            (Line::SizeStart, Some(digit)) => {
                self.size = digit;
                Ok(State::Line(Line::Size))
            }
            (Line::SizeStart, None) => Err(InvalidSize),
            (Line::Size, Some(digit)) => self.push_digit(digit),
            (Line::Size | Line::AfterSize, _) => line_tail(byte, Line::AfterSize, InvalidSize),
            _ => extension_byte(line, byte),
        }
    }

    /// Appends a hex digit to the chunk size.
    fn push_digit(&mut self, digit: u64) -> Result<State, ChunkedError> {
        if self.size >> 60 != 0 {
            return Err(SizeOverflow);
        }
        self.size = (self.size << 4) | digit;
        Ok(State::Line(Line::Size))
    }

    /// Reads the byte after the CR of a chunk-size line.
    fn line_end(&mut self, byte: u8) -> Result<State, ChunkedError> {
        if byte != b'\n' {
            return Err(MissingCrlf);
        }
        self.line_len = 0;
        Ok(if self.size == 0 {
            State::Trailer(Trailer::LineStart)
        } else {
            State::Data
        })
    }

    /// Reads one byte of the trailer section.
    fn trailer_byte(&mut self, trailer: Trailer, byte: u8) -> Result<State, ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILERS {
            return Err(TrailersTooLarge);
        }
        let next = match (trailer, byte) {
            (Trailer::LineStart, b'\r') => Trailer::EndLf,
            (Trailer::LineStart, b'\n') | (Trailer::EndLf, b'\n') => return Ok(State::Done),
            (Trailer::LineStart | Trailer::Name, b) if is_tchar(b) => Trailer::Name,
            (Trailer::Name, b':') => Trailer::Value,
            (Trailer::Value, b'\r') => Trailer::LineLf,
            (Trailer::Value, b'\n') | (Trailer::LineLf, b'\n') => Trailer::LineStart,
            (Trailer::Value, b) if is_field_byte(b) => Trailer::Value,
            _ => return Err(InvalidTrailer),
        };
        Ok(State::Trailer(next))
    }
}

/// Reads one byte of a chunk extension (any part of a chunk-size line after
/// the size and its BWS).
fn extension_byte(line: Line, byte: u8) -> Result<State, ChunkedError> {
    let next = match (line, byte) {
        (Line::NameStart | Line::ValueStart, b' ' | b'\t') => line,
        (Line::NameStart | Line::Name, b) if is_tchar(b) => Line::Name,
        (Line::Name | Line::AfterName, b'=') => Line::ValueStart,
        (Line::Name | Line::AfterName, _) => {
            return line_tail(byte, Line::AfterName, InvalidExtension)
        }
        (Line::ValueStart, b'"') => Line::Quoted,
        (Line::ValueStart | Line::Token, b) if is_tchar(b) => Line::Token,
        (Line::Token | Line::AfterValue, _) => {
            return line_tail(byte, Line::AfterValue, InvalidExtension)
        }
        (Line::Quoted, b'"') => Line::AfterValue,
        (Line::Quoted, b'\\') => Line::QuotedPair,
        (Line::Quoted, b) if is_qdtext(b) => Line::Quoted,
        (Line::QuotedPair, b) if is_field_byte(b) => Line::Quoted,
        _ => return Err(InvalidExtension),
    };
    Ok(State::Line(next))
}

/// Reads a byte where a size, extension name or extension value may have
/// ended: BWS (going to `bws`), `;`, or the line's CR. A bare LF is
/// [`MissingCrlf`]; anything else is `junk`.
fn line_tail(byte: u8, bws: Line, junk: ChunkedError) -> Result<State, ChunkedError> {
    match byte {
        b' ' | b'\t' => Ok(State::Line(bws)),
        b';' => Ok(State::Line(Line::NameStart)),
        b'\r' => Ok(State::LineLf),
        b'\n' => Err(MissingCrlf),
        _ => Err(junk),
    }
}

/// `next` if `byte` is `want`, else `error`.
fn expect(byte: u8, want: u8, next: State, error: ChunkedError) -> Result<State, ChunkedError> {
    if byte == want {
        Ok(next)
    } else {
        Err(error)
    }
}

/// The value of a hex digit (either case).
fn hex_value(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

/// RFC 9110 `tchar`.
const fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 9110 `qdtext`: a quoted-string byte other than `"` and `\`.
const fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// HTAB, SP, VCHAR or obs-text: a field-value byte, or the byte after `\` in a
/// quoted-pair.
const fn is_field_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What feeding a body gives: total consumed, done, decoded payload.
    type Fed = Result<(usize, bool, Vec<u8>), ChunkedError>;

    /// Feeds `pieces` in order to a new scanner until the body ends.
    fn feed(pieces: &[&[u8]]) -> Fed {
        let mut scanner = ChunkedScanner::new();
        let mut consumed = 0;
        let mut decoded = Vec::new();
        for piece in pieces {
            let scanned = scanner.scan(piece, |range| decoded.extend_from_slice(&piece[range]))?;
            consumed += scanned.consumed;
            assert_eq!(scanner.is_done(), scanned.done);
            if scanned.done {
                return Ok((consumed, true, decoded));
            }
            assert_eq!(scanned.consumed, piece.len(), "not done, so all consumed");
        }
        Ok((consumed, false, decoded))
    }

    /// The ways to split `input` tested everywhere: whole, byte by byte, and
    /// in two at every point (at every 61st point past the first 600 bytes, so
    /// the 16 KiB inputs stay quick).
    fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all = vec![vec![input], input.chunks(1).collect()];
        let points = (0..=input.len()).filter(|&at| at < 600 || at % 61 == 0 || at == input.len());
        for at in points {
            let (head, tail) = input.split_at(at);
            all.push(vec![head, tail]);
        }
        all
    }

    /// Asserts every split of `input` gives `expected`.
    fn assert_all_splits(input: &[u8], expected: &Fed) {
        for pieces in splits(input) {
            assert_eq!(
                &feed(&pieces),
                expected,
                "input {input:?} split as {pieces:?}"
            );
        }
    }

    /// Asserts `input` is a complete body of `body_len` bytes decoding to `payload`.
    fn assert_body(input: &[u8], body_len: usize, payload: &[u8]) {
        assert_all_splits(input, &Ok((body_len, true, payload.to_vec())));
    }

    /// Asserts `input` is a complete body, all of it, decoding to `payload`.
    fn assert_whole_body(input: &[u8], payload: &[u8]) {
        assert_body(input, input.len(), payload);
    }

    /// Asserts every split of `input` fails with `error`, and the scanner stays failed.
    fn assert_error(input: &[u8], error: ChunkedError) {
        assert_all_splits(input, &Err(error));
        let mut scanner = ChunkedScanner::new();
        assert_eq!(scanner.scan(input, |_| {}), Err(error), "input {input:?}");
        assert_eq!(scanner.scan(b"0\r\n\r\n", |_| {}), Err(error));
        assert!(!scanner.is_done());
    }

    #[test]
    fn empty_body() {
        assert_whole_body(b"0\r\n\r\n", b"");
        assert_whole_body(b"000\r\n\r\n", b"");
    }

    #[test]
    fn single_chunk() {
        assert_whole_body(b"5\r\nhello\r\n0\r\n\r\n", b"hello");
    }

    #[test]
    fn many_chunks() {
        assert_whole_body(
            b"5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n",
            b"hello world!",
        );
    }

    #[test]
    fn chunk_data_may_hold_any_byte() {
        assert_whole_body(b"6\r\n\r\n0\r\n\n\r\n0\r\n\r\n", b"\r\n0\r\n\n");
    }

    #[test]
    fn hex_sizes_either_case_and_leading_zeros() {
        let payload = [b'x'; 0xab];
        for size in ["ab", "AB", "aB", "00ab", "000000000000000000000000AB"] {
            let mut input = format!("{size}\r\n").into_bytes();
            input.extend_from_slice(&payload);
            input.extend_from_slice(b"\r\n0000\r\n\r\n");
            assert_whole_body(&input, &payload);
        }
    }

    #[test]
    fn extensions() {
        for line in [
            "5;a",
            "5;a=b",
            "5;a=b;c;d=e",
            "5 ;a=b",
            "5\t;\ta\t=\tb\t;\tc",
            "5 ; a = b ; c",
            "5;name=\"quoted value\"",
            "5;a=\"\"",
            "5;a=\"with \\\"escaped\\\" quotes and \\\\ backslash\"",
            "5;a=\"tab\there\"",
            "5;a=\"obs-text \u{e9}\"",
            "5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
            "5;a=\"x\";b=y",
        ] {
            let input = format!("{line}\r\nhello\r\n0;last=1\r\n\r\n");
            assert_whole_body(input.as_bytes(), b"hello");
        }
    }

    #[test]
    fn trailing_bws_on_chunk_lines() {
        for line in ["5 ", "5\t", "5 \t ", "5;a ", "5;a=b ", "5;a=\"b\" "] {
            let input = format!("{line}\r\nhello\r\n0 \r\n\r\n");
            assert_whole_body(input.as_bytes(), b"hello");
        }
    }

    #[test]
    fn trailers() {
        assert_whole_body(b"5\r\nhello\r\n0\r\nA: b\r\n\r\n", b"hello");
        assert_whole_body(
            b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum:abc\r\nEmpty:\r\nWs: \t a b \t\r\n\r\n",
            b"hello",
        );
        assert_whole_body(b"0\r\nObs-Text: caf\xc3\xa9\r\n\r\n", b"");
    }

    #[test]
    fn bare_lf_ends_trailer_lines() {
        assert_whole_body(b"0\r\n\n", b"");
        assert_whole_body(b"0\r\nA: b\n\n", b"");
        assert_whole_body(b"0\r\nA: b\r\nC: d\n\r\n", b"");
        assert_whole_body(b"0\r\nA: b\n\r\n", b"");
    }

    #[test]
    fn pipelined_next_request_is_not_consumed() {
        let next = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for body in [
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\r\nA: b\r\n\r\n",
            b"5\r\nhello\r\n0\r\nA: b\n\n",
        ] {
            let input = [body, next].concat();
            assert_body(&input, body.len(), b"hello");
        }
    }

    #[test]
    fn bare_lf_end_leaves_following_bytes() {
        let input = b"5\r\nhello\r\n0\r\n\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_body(input, 14, b"hello");
    }

    #[test]
    fn incomplete_bodies_are_not_done() {
        let full = b"5;a=\"b\"\r\nhello\r\n0\r\nA: b\r\n\r\n";
        for len in 0..full.len() {
            let input = &full[..len];
            let payload = &b"hello"[..len.saturating_sub(9).min(5)];
            assert_all_splits(input, &Ok((len, false, payload.to_vec())));
        }
    }

    #[test]
    fn feeding_after_done() {
        let mut scanner = ChunkedScanner::new();
        let done = Scanned {
            consumed: 5,
            done: true,
        };
        assert_eq!(scanner.scan(b"0\r\n\r\nmore", |_| {}), Ok(done));
        assert!(scanner.is_done());
        let mut called = false;
        let again = scanner.scan(b"3\r\nabc\r\n", |_| called = true);
        assert_eq!(
            again,
            Ok(Scanned {
                consumed: 0,
                done: true
            })
        );
        assert!(!called);
        assert_eq!(
            scanner.scan(b"", |_| {}),
            Ok(Scanned {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn empty_input_scans_nothing() {
        let mut scanner = ChunkedScanner::new();
        assert_eq!(
            scanner.scan(b"", |_| {}),
            Ok(Scanned {
                consumed: 0,
                done: false
            })
        );
        assert!(!scanner.is_done());
    }

    #[test]
    fn one_callback_per_run() {
        let input = b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut ranges = Vec::new();
        let scanned = ChunkedScanner::new().scan(input, |range| ranges.push(range));
        assert_eq!(
            scanned,
            Ok(Scanned {
                consumed: input.len(),
                done: true
            })
        );
        assert_eq!(ranges, vec![3..8, 13..16]);
    }

    #[test]
    fn large_chunk_is_skipped_by_count() {
        let mut scanner = ChunkedScanner::new();
        assert_eq!(scanner.data_remaining(), 0);
        scanner.scan(b"40000000\r", |_| {}).unwrap();
        assert_eq!(scanner.data_remaining(), 0);
        scanner.scan(b"\n", |_| {}).unwrap();
        assert_eq!(scanner.data_remaining(), 1 << 30);
        let buffer = vec![0u8; 64 * 1024];
        for round in 1..=3u64 {
            let mut calls = Vec::new();
            let scanned = scanner.scan(&buffer, |range| calls.push(range)).unwrap();
            assert_eq!(
                scanned,
                Scanned {
                    consumed: buffer.len(),
                    done: false
                }
            );
            assert_eq!(calls, vec![0..buffer.len()]);
            assert_eq!(scanner.data_remaining(), (1 << 30) - round * 64 * 1024);
        }
    }

    #[test]
    fn data_remaining_tracks_the_chunk() {
        let mut scanner = ChunkedScanner::new();
        scanner.scan(b"5\r\nhe", |_| {}).unwrap();
        assert_eq!(scanner.data_remaining(), 3);
        scanner.scan(b"llo", |_| {}).unwrap();
        assert_eq!(scanner.data_remaining(), 0);
        scanner.scan(b"\r\n0\r\n\r\n", |_| {}).unwrap();
        assert_eq!(scanner.data_remaining(), 0);
        assert!(scanner.is_done());
    }

    #[test]
    fn largest_size_fits() {
        for size in [
            "ffffffffffffffff",
            "0000FFFFFFFFFFFFFFFF",
            "8000000000000000",
        ] {
            let mut scanner = ChunkedScanner::new();
            let line = format!("{size}\r\n");
            scanner.scan(line.as_bytes(), |_| {}).unwrap();
            let expected = u64::from_str_radix(size, 16).unwrap();
            assert_eq!(scanner.data_remaining(), expected);
        }
    }

    #[test]
    fn invalid_size() {
        for input in [
            &b"\r\n"[..],
            b"\n",
            b";a\r\n",
            b" 5\r\n",
            b"\t5\r\n",
            b"0x5\r\n",
            b"-1\r\n",
            b"+5\r\n",
            b"g\r\n",
            b"5g\r\n",
            b"5 x\r\n",
            b"5 5\r\n",
            b"5\x00\r\n",
            b"5 \x01\r\n",
            b"5,3\r\n",
            b"5\r\nhello\r\n\r\n",
            b"5\r\nhello\r\nz\r\n",
        ] {
            assert_error(input, InvalidSize);
        }
    }

    #[test]
    fn size_overflow() {
        assert_error(b"fffffffffffffffff\r\n", SizeOverflow);
        assert_error(b"10000000000000000\r\n", SizeOverflow);
        assert_error(b"00010000000000000000\r\n", SizeOverflow);
    }

    #[test]
    fn line_too_long() {
        let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(5000));
        assert_error(long_ext.as_bytes(), LineTooLong);
        let zeros = format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(5000));
        assert_error(zeros.as_bytes(), LineTooLong);
        let last = format!("0;a=\"{}\"\r\n\r\n", " ".repeat(5000));
        assert_error(last.as_bytes(), LineTooLong);
    }

    #[test]
    fn line_limit_counts_every_byte_but_the_crlf() {
        let exact = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(MAX_LINE - 2));
        assert_whole_body(exact.as_bytes(), b"hello");
        let over = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(MAX_LINE - 1));
        assert_error(over.as_bytes(), LineTooLong);
    }

    #[test]
    fn huge_extension_fails_early() {
        let mut scanner = ChunkedScanner::new();
        scanner.scan(b"5;", |_| {}).unwrap();
        let junk = vec![b'a'; MAX_LINE - 2];
        scanner.scan(&junk, |_| {}).unwrap();
        assert_eq!(scanner.scan(b"a", |_| {}), Err(LineTooLong));
    }

    #[test]
    fn invalid_extension() {
        for input in [
            &b"5;\r\nhello\r\n0\r\n\r\n"[..],
            b"5; \r\n",
            b"5;;a\r\n",
            b"5;=b\r\n",
            b"5;a=\r\n",
            b"5;a= \r\n",
            b"5;a==b\r\n",
            b"5;a b\r\n",
            b"5;a=b c\r\n",
            b"5;a=\"x\"y\r\n",
            b"5;a=\"unterminated\x01",
            b"5;a=\"unterminated\r\n",
            b"5;a=\"no\nlf\"\r\n",
            b"5;a=\"\\\x01\"\r\n",
            b"5;a\x00\r\n",
            b"5;a=\x7f\r\n",
            b"5;a=b\x7f\r\n",
            b"5;a=\"\x7f\"\r\n",
            b"5;a(b)\r\n",
            b"5;a=b/c\r\n",
            b"5;a=\"b\"\x0b\r\n",
            b"5;\n",
        ] {
            assert_error(input, InvalidExtension);
        }
    }

    #[test]
    fn missing_crlf() {
        for input in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\r\r\n",
            b"5\r\nhello\rX",
            b"5\r\nhello\r0\r\n\r\n",
            b"5\rhello",
            b"5\r\rhello",
            b"5 \n",
            b"5;a\n",
            b"5;a=b\n",
            b"5;a=\"b\"\n",
            b"5;a \n",
            b"5;a=b;c\rX",
            b"0\n\r\n",
            b"0\n\n",
            b"0\r\r\n",
            b"5\r\nhello\r\n0\n\r\n",
        ] {
            assert_error(input, MissingCrlf);
        }
    }

    #[test]
    fn invalid_trailer() {
        for input in [
            &b"0\r\nA: b\r\n c\r\n\r\n"[..],
            b"0\r\nA: b\r\n\tc\r\n\r\n",
            b"0\r\n A: b\r\n\r\n",
            b"0\r\nName : v\r\n\r\n",
            b"0\r\nName\t: v\r\n\r\n",
            b"0\r\nA: b\x00c\r\n\r\n",
            b"0\r\nA: b\x7f\r\n\r\n",
            b"0\r\nA: b\x1b\r\n\r\n",
            b"0\r\nA\x00: b\r\n\r\n",
            b"0\r\nNo colon\r\n\r\n",
            b"0\r\nNoColon\r\n\r\n",
            b"0\r\n: v\r\n\r\n",
            b"0\r\nA(b): v\r\n\r\n",
            b"0\r\nA: b\rc\r\n\r\n",
            b"0\r\nA: b\r\r\n\r\n",
            b"0\r\n\rX",
            b"0\r\n\r\r\n",
            b"0\r\n\x00",
            b"5\r\nhello\r\n0\r\nA: b\r\nC d\n\n",
        ] {
            assert_error(input, InvalidTrailer);
        }
    }

    /// A trailer section of `len` bytes (final CRLF included) after `0\r\n`.
    fn body_with_trailers(len: usize) -> Vec<u8> {
        let value = "v".repeat(len - "X: \r\n\r\n".len());
        format!("0\r\nX: {value}\r\n\r\n").into_bytes()
    }

    #[test]
    fn trailers_too_large() {
        assert_whole_body(&body_with_trailers(MAX_TRAILERS), b"");
        assert_error(&body_with_trailers(MAX_TRAILERS + 1), TrailersTooLarge);
        assert_error(&body_with_trailers(20_000), TrailersTooLarge);
        let many = format!("0\r\n{}\r\n", "Name: value\r\n".repeat(2000));
        assert_error(many.as_bytes(), TrailersTooLarge);
    }

    #[test]
    fn errors_are_sticky_and_stop_at_the_bad_byte() {
        let mut scanner = ChunkedScanner::new();
        let mut decoded = Vec::new();
        let input = b"3\r\nabcX";
        let result = scanner.scan(input, |range| decoded.extend_from_slice(&input[range]));
        assert_eq!(result, Err(MissingCrlf));
        assert_eq!(decoded, b"abc");
        assert_eq!(scanner.scan(b"\r\n0\r\n\r\n", |_| {}), Err(MissingCrlf));
        assert_eq!(scanner.scan(b"", |_| {}), Err(MissingCrlf));
        assert_eq!(scanner.data_remaining(), 0);
    }

    #[test]
    fn errors_have_messages() {
        assert_eq!(InvalidSize.to_string(), "invalid chunk size");
        assert_eq!(TrailersTooLarge.to_string(), "trailer section too large");
    }

    /// A tiny deterministic xorshift64 generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number in `0..n`.
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    const WS: &[&str] = &["", "", " ", "\t", " \t "];
    const TOKENS: &[&str] = &["a", "name", "X-Y", "!#$%&'*+-.^_`|~", "0", "Z9"];
    const QUOTED: &[&str] = &[
        "\"\"",
        "\"a b\"",
        "\"\\\"q\\\\\"",
        "\"\t;=,\"",
        "\"\u{e9}\"",
    ];

    /// A random, well-formed chunk extension list.
    fn random_extensions(rng: &mut Rng, out: &mut String) {
        for _ in 0..rng.below(3) {
            out.extend([rng.pick(WS), ";", rng.pick(WS), rng.pick(TOKENS)]);
            if rng.chance(2) {
                let value = if rng.chance(2) { TOKENS } else { QUOTED };
                out.extend([rng.pick(WS), "=", rng.pick(WS), rng.pick(value)]);
            }
        }
        if rng.chance(4) {
            out.push_str(rng.pick(WS));
        }
    }

    /// A random chunk-size line (CRLF included) for `size`.
    fn random_size_line(rng: &mut Rng, size: usize) -> String {
        let mut line = "0".repeat(rng.below(3));
        let hex = format!("{size:x}");
        for c in hex.chars() {
            line.push(if rng.chance(2) {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        random_extensions(rng, &mut line);
        line.push_str("\r\n");
        line
    }

    /// A random trailer section, ending with CRLF or (sometimes) a bare LF.
    fn random_trailers(rng: &mut Rng) -> String {
        let eol = |rng: &mut Rng| if rng.chance(4) { "\n" } else { "\r\n" };
        let mut out = String::new();
        for _ in 0..rng.below(3) {
            out.extend([
                rng.pick(TOKENS),
                ":",
                rng.pick(WS),
                rng.pick(&["v", "a b", "x\ty"]),
            ]);
            out.extend([rng.pick(WS), eol(rng)]);
        }
        out.push_str(eol(rng));
        out
    }

    /// A random well-formed body and its payload.
    fn random_body(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let mut body = Vec::new();
        let mut payload = Vec::new();
        for _ in 0..rng.below(6) {
            let size = 1 + if rng.chance(8) {
                rng.below(5000)
            } else {
                rng.below(40)
            };
            let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            body.extend_from_slice(random_size_line(rng, size).as_bytes());
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
            payload.extend_from_slice(&data);
        }
        body.extend_from_slice(random_size_line(rng, 0).as_bytes());
        body.extend_from_slice(random_trailers(rng).as_bytes());
        (body, payload)
    }

    /// `input` cut at random points.
    fn random_pieces<'a>(rng: &mut Rng, input: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let len = if rng.chance(3) {
                rng.below(4)
            } else {
                rng.below(rest.len() + 1)
            };
            let (piece, tail) = rest.split_at(len.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    #[test]
    fn random_bodies_split_anywhere_decode_to_their_payload() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let (body, payload) = random_body(&mut rng);
            let mut input = body.clone();
            if rng.chance(2) {
                input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            }
            let expected = Ok((body.len(), true, payload));
            for _ in 0..4 {
                let pieces = random_pieces(&mut rng, &input);
                assert_eq!(feed(&pieces), expected, "body {body:?}");
            }
            assert_eq!(feed(&[&input]), expected);
            assert_eq!(feed(&input.chunks(1).collect::<Vec<_>>()), expected);
        }
    }
}
