//! A stream that yields some bytes already read before reading on, so a
//! connection the native engine has started reading (an HTTP/2 preface, an
//! Upgrade request) can be handed to hyper whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

pin_project_lite::pin_project! {
    /// `prefix`, then whatever `inner` reads.
    pub(super) struct Rewind<T> {
        prefix: Bytes,
        #[pin]
        inner: T,
    }
}

impl<T> Rewind<T> {
    /// Replays `prefix` before reading from `inner`.
    pub(super) fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

delegate_async_write!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_prefix_comes_first() {
        let rest: &[u8] = b" world";
        let mut stream = Rewind::new(Bytes::from_static(b"hello"), rest);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
