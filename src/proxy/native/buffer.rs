//! A connection's read buffer, reused for every request on it: bytes are read
//! at the end and consumed from the front, so what follows a message
//! (a pipelined request, the rest of a body) stays where it is.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Reused read buffer: `buf[start..end]` holds bytes read but not yet consumed.
#[derive(Debug)]
pub(super) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

impl ReadBuf {
    /// A buffer of `initial` bytes that may grow to `max` to hold one head.
    pub(super) fn new(initial: usize, max: usize) -> Self {
        Self {
            buf: vec![0; initial],
            start: 0,
            end: 0,
            max: max.max(initial),
        }
    }

    /// The bytes read and not consumed yet.
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The same, writable (request-line fix-ups happen in place).
    pub(super) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Whether nothing is buffered.
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether the buffer holds as much as it may (a head that large is refused).
    pub(super) fn is_full(&self) -> bool {
        self.end - self.start >= self.max
    }

    /// Drops everything buffered.
    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Drops the first `n` buffered bytes.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `reader` after the buffered bytes; `Ok(0)` is end of stream.
    pub(super) async fn fill<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> io::Result<usize> {
        self.make_room();
        if self.end == self.buf.len() {
            // Full at its limit: reading into nothing would look like end of stream.
            return Err(io::Error::other("read buffer full"));
        }
        let n = reader.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    fn make_room(&mut self) {
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return;
        }
        if self.buf.len() < self.max {
            let grown = (self.buf.len() * 2).min(self.max);
            self.buf.resize(grown, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_are_consumed_from_the_front_and_room_is_made() {
        let mut buf = ReadBuf::new(4, 8);
        let mut input: &[u8] = b"abcdefghij";
        assert_eq!(buf.fill(&mut input).await.expect("read"), 4);
        assert_eq!(buf.data(), b"abcd");
        buf.consume(3);
        assert_eq!(buf.fill(&mut input).await.expect("read"), 3);
        assert_eq!(buf.data(), b"defg");
        assert_eq!(buf.fill(&mut input).await.expect("read"), 3);
        assert_eq!(buf.data(), b"defghij");
        assert!(!buf.is_full());
        buf.consume(7);
        assert!(buf.is_empty());
    }
}
