//! `nginxBodySize`: ingress-nginx's `proxy-body-size` (nginx's
//! `client_max_body_size`).
//!
//! - A `Content-Length` above the limit gets 413 before anything is read or
//!   sent to the backend.
//! - A body without a length (chunked, or HTTP/2 without
//!   `content-length`) streams to the backend through a counter. When it
//!   passes the limit the upload is cut (the backend sees the request fail)
//!   and the client gets 413 if no response has started; if the backend
//!   already answered, the response is aborted. nginx, which buffers the
//!   request by default (`proxy-request-buffering: on`), would answer 413
//!   before the backend saw any of it; sluice streams, so the backend may
//!   see the start of a body that ends up refused.
//! - A body within the limit is not touched (no copy, no task).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use crate::body::{BoxError, ChannelBody, RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::support::text_response;
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The limit in bytes (nginx's `0`, no limit, makes no middleware).
    limit: u64,
}

/// Builds an `nginxBodySize` from its config.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if config.limit == 0 {
        return Err(cx.invalid("limit must be above 0".to_owned()));
    }
    Ok(Arc::new(BodySize {
        limit: config.limit,
    }))
}

/// The built `nginxBodySize`.
#[derive(Debug)]
struct BodySize {
    limit: u64,
}

/// What the client gets for a body above the limit.
fn too_large() -> http::Response<ResponseBody> {
    let mut resp = text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "413 Request Entity Too Large\n",
    );
    // nginx closes the connection rather than read the rest of the body.
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// The error the backend's upload ends with when the body passes the limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than proxy-body-size ({0} bytes)")]
struct TooLarge(u64);

impl Middleware for BodySize {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(len) = declared {
                if len > self.limit {
                    return Ok(too_large());
                }
                return next.run(req, cx).await;
            }
            if req.body().is_end_stream()
                || req
                    .body()
                    .size_hint()
                    .upper()
                    .is_some_and(|n| n <= self.limit)
            {
                return next.run(req, cx).await;
            }
            let (parts, body) = req.into_parts();
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            let exceeded = Arc::new(AtomicBool::new(false));
            tokio::spawn(pump(body, tx, self.limit, exceeded.clone()));
            let req = Request::from_parts(parts, RequestBody::Channel(ChannelBody::new(rx, None)));
            let outcome = next.run(req, cx).await;
            if exceeded.load(Ordering::Acquire) {
                return Ok(too_large());
            }
            let resp = outcome?;
            let (parts, body) = resp.into_parts();
            let body = ResponseBody::boxed(Watched { body, exceeded });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// Copies `body` into `tx`, counting; past `limit` it flags `exceeded` and
/// ends the copy with an error.
async fn pump(
    mut body: RequestBody,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>,
    limit: u64,
    exceeded: Arc<AtomicBool>,
) {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                // Trailers cannot be carried through the channel.
                Err(_) => continue,
            },
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        total += data.len() as u64;
        if total > limit {
            exceeded.store(true, Ordering::Release);
            let _ = tx.send(Err(Box::new(TooLarge(limit)))).await;
            return;
        }
        if tx.send(Ok(data)).await.is_err() {
            return;
        }
    }
}

/// A response body that fails once the request body passed the limit.
struct Watched {
    body: ResponseBody,
    exceeded: Arc<AtomicBool>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.exceeded.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(Box::new(TooLarge(0)))));
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    #[tokio::test]
    async fn declared_lengths_above_the_limit_are_refused() {
        let mw = testing::make(build, json!({"limit": 10})).unwrap();
        let backend = Recorder::ok();
        let req = request(Method::POST, "/", &[("content-length", "11")]);
        let resp = run(&mw, &backend, req).await;
        assert_eq!(resp.status(), 413);
        assert!(!backend.called());
        let mut req = request(Method::POST, "/", &[("content-length", "10")]);
        *req.body_mut() = RequestBody::full("0123456789");
        assert_eq!(run(&mw, &backend, req).await.status(), 200);
        assert!(testing::make(build, json!({"limit": 0})).is_err());
    }

    /// Reads the body whole: 200 when it ends well, 502 when it fails.
    struct Reader;

    impl crate::middleware::Terminal for Reader {
        fn forward<'a>(
            &'a self,
            req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let status = match req.into_body().collect().await {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::BAD_GATEWAY,
                };
                Ok(text_response(status, ""))
            })
        }
    }

    /// Answers at once and reads the body in the background.
    struct Early;

    impl crate::middleware::Terminal for Early {
        fn forward<'a>(
            &'a self,
            req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                tokio::spawn(async move {
                    let _ = req.into_body().collect().await;
                });
                Ok(text_response(StatusCode::OK, "early"))
            })
        }
    }

    #[tokio::test]
    async fn a_body_passing_the_limit_after_the_answer_aborts_it() {
        let mw = testing::make(build, json!({"limit": 4})).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut req = request(Method::POST, "/", &[]);
        *req.body_mut() = RequestBody::Channel(ChannelBody::new(rx, None));
        let steps = [mw.clone()];
        let resp = Next::new(&steps, &Early)
            .run(req, &context(false))
            .await
            .expect("a response");
        assert_eq!(resp.status(), 200);
        tx.send(Ok(Bytes::from("too long"))).await.unwrap();
        drop(tx);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(resp.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn bodies_without_length_are_counted() {
        let mw = testing::make(build, json!({"limit": 4})).unwrap();
        for (chunks, status) in [(vec!["ab", "cd"], 200), (vec!["ab", "cde"], 413)] {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            for c in chunks {
                tx.send(Ok(Bytes::from(c))).await.unwrap();
            }
            drop(tx);
            let mut req = request(Method::POST, "/", &[]);
            *req.body_mut() = RequestBody::Channel(ChannelBody::new(rx, None));
            let backend = Reader;
            let steps = [mw.clone()];
            let outcome = Next::new(&steps, &backend).run(req, &context(false)).await;
            match outcome {
                Ok(resp) => assert_eq!(resp.status(), status),
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}
