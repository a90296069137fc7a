//! The two body types every layer of the request path agrees on: what goes to a
//! backend ([`RequestBody`]) and what goes back to the client ([`ResponseBody`]).
//!
//! Both are enums rather than boxes so the common case (a client's stream in, a
//! backend's stream out) costs no allocation; middlewares that replace a body
//! (buffering, compression, error pages) use the `Full` or `Boxed` variants.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::upstream::PooledBody;

/// The error type of bodies that may come from anywhere.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum RequestBody {
    /// The client's body as hyper reads it (HTTP/2, or HTTP/1.1 on the hyper
    /// engine), streamed as it arrives.
    Incoming(ClientBody),
    /// A body held in memory (buffered by a middleware, or made by one).
    Full(Option<Bytes>),
    /// The client's body as the native HTTP/1.1 engine reads it (decoded
    /// data, handed over through a small bounded channel: backpressure).
    Channel(ChannelBody),
}

/// A client's body read by hyper, cut off when the client sends nothing for
/// the body-read timeout while sluice waits for it (time the backend spends
/// not reading does not count).
#[derive(Debug)]
pub struct ClientBody {
    body: Incoming,
    /// How long the client may keep sluice waiting for the next frame.
    read_timeout: Duration,
    /// The timer of the current wait, made on the first wait (bodiless
    /// requests never pay for it).
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `idle` is set for the current wait (else the next wait re-arms it).
    waiting: bool,
}

/// Why a client's body (read by hyper) failed: the client's fault, so the
/// answer is a 4xx, never a 502 blamed on the backend.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// The client sent no body bytes within the body-read timeout (408).
    #[error("the client sent no request body bytes for {0:?} (body-read timeout)")]
    Timeout(Duration),
    /// The body's framing is malformed, or the client went away mid-body (400).
    #[error("the client's request body failed: {0}")]
    Broken(#[source] hyper::Error),
}

impl ClientBodyError {
    /// The client-body failure behind `error`, if one caused it (searching
    /// its chain of sources: hyper's client wraps the body's error).
    pub fn behind<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(found) = e.downcast_ref::<Self>() {
                return Some(found);
            }
            cause = e.source();
        }
        None
    }
}

impl ClientBody {
    /// `body`, cut off after `read_timeout` without a frame (zero: never).
    pub fn new(body: Incoming, read_timeout: Duration) -> Self {
        Self {
            body,
            read_timeout,
            idle: None,
            waiting: false,
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(|e| ClientBodyError::Broken(e).into())));
        }
        if self.read_timeout.is_zero() {
            return Poll::Pending;
        }
        let timeout = self.read_timeout;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.waiting {
            // A new wait: the clock is read once per wait, not per poll.
            idle.as_mut().reset(tokio::time::Instant::now() + timeout);
            self.waiting = true;
        }
        match idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(
                ClientBodyError::Timeout(self.read_timeout).into()
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A request body fed by the native engine's connection task.
#[derive(Debug)]
pub struct ChannelBody {
    frames: tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>,
    /// The announced length (Content-Length), when there is one.
    length: Option<u64>,
    done: bool,
}

impl ChannelBody {
    /// A body read from `frames`; `length` is the Content-Length, if any.
    pub fn new(
        frames: tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>,
        length: Option<u64>,
    ) -> Self {
        Self {
            frames,
            length,
            done: false,
        }
    }
}

impl RequestBody {
    /// A body with nothing in it.
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Incoming(body) => body.poll_frame(cx),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(body) => {
                if body.done {
                    return Poll::Ready(None);
                }
                match body.frames.poll_recv(cx) {
                    Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map(Frame::data))),
                    Poll::Ready(None) => {
                        body.done = true;
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Incoming(client) => client.body.is_end_stream(),
            Self::Full(bytes) => bytes.is_none(),
            Self::Channel(body) => body.done || body.length == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Incoming(client) => client.body.size_hint(),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Channel(body) => body.length.map_or_else(SizeHint::new, SizeHint::with_exact),
        }
    }
}

/// A response body on its way to the client.
#[derive(Debug)]
pub enum ResponseBody {
    /// A backend's body, streamed; returns its connection to the pool when read.
    Upstream(PooledBody),
    /// A short body made by the proxy (errors, redirects, middleware answers).
    Full(Option<Bytes>),
    /// Any other body (compressed, buffered, an error page's stream).
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl ResponseBody {
    /// A body with nothing in it.
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// Wraps any body whose errors can be boxed.
    pub fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::Boxed(body.map_err(Into::into).boxed_unsync())
    }
}

impl From<PooledBody> for ResponseBody {
    fn from(body: PooledBody) -> Self {
        Self::Upstream(body)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Full(bytes) => bytes.is_none(),
            Self::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Boxed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_bodies_yield_their_bytes_once() {
        let body = ResponseBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"hello"[..]));
        let empty = RequestBody::full(Bytes::new());
        assert!(empty.is_end_stream());
        let req = RequestBody::full("x").collect().await.map(|c| c.to_bytes());
        assert_eq!(req.ok().as_deref(), Some(&b"x"[..]));
    }

    #[tokio::test]
    async fn boxed_bodies_keep_their_content() {
        let body = ResponseBody::boxed(http_body_util::Full::new(Bytes::from_static(b"abc")));
        let bytes = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"abc"[..]));
    }
}
