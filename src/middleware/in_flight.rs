//! `inFlightReq`: at most `amount` requests of one source at a time.
//!
//! The source is the Host by default (unlike `rateLimit`, which groups by
//! client IP; see [`super::source`]). A request holds its slot until its
//! response body has been sent whole — or dropped, when the client goes away
//! — as Traefik holds it until its handler returns. Past the limit the client
//! gets 429 with the body `max connections reached: <amount>`.
//!
//! The counters are sharded maps inside the built middleware; a source's
//! entry disappears when its last request ends, so the maps never hold more
//! entries than there are requests in flight.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::source::{reply, DefaultSource, Shards, Source, SourceCriterionConfig, SourceKey};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{BoxError, RequestBody, ResponseBody};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    source_criterion: Option<SourceCriterionConfig>,
}

/// Builds an `inFlightReq` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    Ok(Arc::new(in_flight(config, cx)?))
}

fn in_flight(config: &Value, cx: &mut dyn Context) -> Result<InFlight, BuildError> {
    let config: Config = decode(config, cx)?;
    let amount = u64::try_from(config.amount)
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| cx.invalid(format!("amount must be above 0, not {}", config.amount)))?;
    let source = Source::build(config.source_criterion.as_ref(), DefaultSource::Host)
        .map_err(|e| cx.invalid(e))?;
    Ok(InFlight {
        amount,
        source,
        counts: Arc::default(),
        refusal: Bytes::from(format!("max connections reached: {amount}")),
    })
}

/// The built `inFlightReq`.
#[derive(Debug)]
struct InFlight {
    amount: u64,
    source: Source,
    /// Requests in flight per source (never zero: such entries are removed).
    counts: Arc<Shards<u64>>,
    /// The 429 body.
    refusal: Bytes,
}

impl Middleware for InFlight {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        let key = self.source.key(&req, &cx.client);
        let Some(slot) = Slot::acquire(&self.counts, key, self.amount) else {
            tracing::debug!(client = %cx.client.remote, route = %cx.route.name, "inFlightReq: refused");
            let resp = reply(StatusCode::TOO_MANY_REQUESTS, self.refusal.clone());
            return Box::pin(async move { Ok(resp) });
        };
        Box::pin(async move {
            // On a failure (or if this future is dropped) the slot goes with it.
            let resp = next.run(req, cx).await?;
            Ok(hold_until_sent(resp, slot))
        })
    }
}

/// One request's place in its source's count; gives it back when dropped.
#[derive(Debug)]
struct Slot {
    counts: Arc<Shards<u64>>,
    key: SourceKey,
}

impl Slot {
    fn acquire(counts: &Arc<Shards<u64>>, key: SourceKey, amount: u64) -> Option<Self> {
        let mut shard = counts.lock(&key);
        let count = shard.entry(key.clone()).or_insert(0);
        if *count >= amount {
            // `amount` > 0, so the entry was there before: nothing to clean up.
            return None;
        }
        *count += 1;
        drop(shard);
        Some(Self {
            counts: counts.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shard = self.counts.lock(&self.key);
        if let Some(count) = shard.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

/// The response, with the slot tied to its body.
fn hold_until_sent(resp: Response<ResponseBody>, slot: Slot) -> Response<ResponseBody> {
    if resp.body().is_end_stream() {
        // Nothing left to send (HEAD, 204, 304, an upgrade): done now.
        drop(slot);
        return resp;
    }
    resp.map(|body| {
        ResponseBody::boxed(Held {
            body,
            slot: Some(slot),
        })
    })
}

/// A response body that frees its request's slot when it ends, fails or is dropped.
#[derive(Debug)]
struct Held {
    body: ResponseBody,
    slot: Option<Slot>,
}

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => this.slot = None,
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.slot = None,
            _ => {}
        }
        polled
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
    use std::sync::Mutex;

    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::super::Terminal;
    use super::*;
    use crate::middleware::testing::{context_at, get, read, run_in, FakeBuild, Recorder};

    /// A response body fed by the test through a channel; ends when the sender is dropped.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    /// A backend whose response bodies stay open until the test ends them.
    #[derive(Default)]
    struct Streaming {
        senders: Mutex<Vec<mpsc::Sender<Bytes>>>,
    }

    impl Terminal for Streaming {
        fn forward<'a>(
            &'a self,
            _req: Request<RequestBody>,
            _cx: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            let (tx, rx) = mpsc::channel(4);
            self.senders.lock().expect("lock").push(tx);
            Box::pin(async move { Ok(Response::new(ResponseBody::boxed(Fed(rx)))) })
        }
    }

    fn built(config: serde_json::Value) -> (Arc<dyn Middleware>, Arc<Shards<u64>>) {
        let mw = in_flight(&config, &mut FakeBuild::default()).expect("built");
        let counts = mw.counts.clone();
        (Arc::new(mw), counts)
    }

    fn host(h: &'static str) -> Request<RequestBody> {
        get("/", &[("host", h)])
    }

    #[tokio::test]
    async fn counts_per_host_until_the_body_is_sent() {
        let (mw, counts) = built(serde_json::json!({"amount": 1}));
        let backend = Streaming::default();
        let cx = context_at("192.0.2.1:1", false);
        let open = run_in(&mw, &backend, host("a.example"), &cx)
            .await
            .expect("response");
        assert_eq!(open.status(), StatusCode::OK);

        // Same Host, other client: refused while the first body is open.
        let other = context_at("192.0.2.2:1", false);
        let (status, body) = read(run_in(&mw, &backend, host("a.example"), &other).await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body, "max connections reached: 1");
        // Another Host is counted apart.
        let b = run_in(&mw, &backend, host("b.example"), &cx)
            .await
            .expect("response");
        assert_eq!(b.status(), StatusCode::OK);

        // The backend finishes the first body; once it is read the slot is free.
        let sender = backend.senders.lock().expect("lock").remove(0);
        sender
            .send(Bytes::from_static(b"done"))
            .await
            .expect("send");
        drop(sender);
        let text = open.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&text[..], b"done");
        let again = run_in(&mw, &backend, host("a.example"), &other)
            .await
            .expect("response");
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(counts.len(), 2);
        drop((again, b));
        assert_eq!(counts.len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_response_frees_its_slot() {
        let (mw, counts) = built(serde_json::json!({"amount": 2}));
        let backend = Streaming::default();
        let cx = context_at("192.0.2.1:1", false);
        let first = run_in(&mw, &backend, host("a"), &cx)
            .await
            .expect("response");
        let second = run_in(&mw, &backend, host("a"), &cx)
            .await
            .expect("response");
        let (status, body) = read(run_in(&mw, &backend, host("a"), &cx).await).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "max connections reached: 2")
        );
        // The client went away: hyper drops the body unread.
        drop(first);
        let third = run_in(&mw, &backend, host("a"), &cx)
            .await
            .expect("response");
        assert_eq!(third.status(), StatusCode::OK);
        drop((second, third));
        assert_eq!(counts.len(), 0, "finished sources must leave the map");
    }

    #[tokio::test]
    async fn complete_bodies_and_failures_free_the_slot_at_once() {
        let (mw, counts) =
            built(serde_json::json!({"amount": 1, "sourceCriterion": {"ipStrategy": {}}}));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        for _ in 0..3 {
            // A full body (`ok`) ends when read; read it each time.
            let (status, _) = read(run_in(&mw, &backend, get("/", &[]), &cx).await).await;
            assert_eq!(status, StatusCode::OK);
        }
        // The Recorder's body is a full one that is only freed once read: hold one.
        let held = run_in(&mw, &backend, get("/", &[]), &cx)
            .await
            .expect("response");
        let (status, _) = read(run_in(&mw, &backend, get("/", &[]), &cx).await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // Another IP (the source here) is not affected.
        let (status, _) = read(
            run_in(
                &mw,
                &backend,
                get("/", &[]),
                &context_at("192.0.2.9:1", false),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        drop(held);

        // A backend failure frees the slot too.
        struct Failing;
        impl Terminal for Failing {
            fn forward<'a>(
                &'a self,
                _: Request<RequestBody>,
                _: &'a RequestContext,
            ) -> BoxFuture<'a, Outcome> {
                Box::pin(async { Err(crate::exchange::ProxyError::NoEndpoints.into()) })
            }
        }
        assert!(run_in(&mw, &Failing, get("/", &[]), &cx).await.is_err());
        let (status, _) = read(run_in(&mw, &backend, get("/", &[]), &cx).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(counts.len(), 0);
    }

    #[test]
    fn amount_must_be_positive() {
        for config in [
            serde_json::json!({}),
            serde_json::json!({"amount": 0}),
            serde_json::json!({"amount": -3}),
            serde_json::json!({"amount": 1, "sourceCriterion": {"ipStrategy": {}, "requestHost": true}}),
        ] {
            assert!(
                build(&config, &mut FakeBuild::default()).is_err(),
                "{config} was accepted"
            );
        }
    }
}
