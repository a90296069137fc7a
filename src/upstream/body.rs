//! The request body sent to a backend, which reports when it has been sent whole,
//! so the response-header timeout starts after the upload, not before it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::body::RequestBody;

pin_project_lite::pin_project! {
    /// A client's request body on its way to a backend (streamed, never buffered).
    #[derive(Debug)]
    pub struct UpstreamBody {
        #[pin]
        inner: RequestBody,
        sent: Option<oneshot::Sender<()>>,
    }
}

impl UpstreamBody {
    /// Wraps `inner`; `sent` fires when its last frame (or an error) has been read.
    pub fn new(inner: RequestBody, sent: Option<oneshot::Sender<()>>) -> Self {
        Self { inner, sent }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            if let Some(sent) = this.sent.take() {
                let _ = sent.send(());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
