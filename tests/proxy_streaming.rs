//! Bodies and tunnels through a real sluice: 10 MB streamed both ways with
//! checksums, WebSocket echo, and the timeouts that bound slow uploads.

mod support;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest, Sha256};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const TEN_MB: usize = 10 * 1024 * 1024;

async fn start_web() -> (Vec<Backend>, Manifests, sluice::app::Running) {
    let f = fixture(&["web"], &[("s.test", "/", "Prefix", "web")], |_| {}).await;
    (f.backends, f.manifests, f.sluice)
}

#[tokio::test]
async fn ten_megabyte_download_streams_intact() {
    let (_web, _m, sluice) = start_web().await;
    let c = client();
    let req = http::Request::get(format!("http://{}/?size={TEN_MB}", sluice.http_addr))
        .header("host", "s.test")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut hasher, mut len, mut frames) = (Sha256::new(), 0usize, 0usize);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            hasher.update(&data);
            len += data.len();
            frames += 1;
        }
    }
    assert_eq!(len, TEN_MB);
    assert!(
        frames > 10,
        "the body arrives in many chunks, not one buffer ({frames})"
    );
    let pattern: Vec<u8> = b"0123456789abcdef"
        .iter()
        .copied()
        .cycle()
        .take(TEN_MB)
        .collect();
    assert_eq!(hasher.finalize(), Sha256::digest(&pattern));
}

#[tokio::test]
async fn ten_megabyte_upload_is_echoed_intact() {
    let (_web, _m, sluice) = start_web().await;
    let chunks: Vec<Bytes> = (0..160u32)
        .map(|i| {
            Bytes::from(
                (0..65536u32)
                    .map(|j| (i.wrapping_mul(31) ^ j) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    let mut expected = Sha256::new();
    for c in &chunks {
        expected.update(c);
    }
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(c))),
    );
    let c: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::post(format!("http://{}/echo", sluice.http_addr))
        .header("host", "s.test")
        .body(StreamBody::new(stream))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), 160 * 65536);
    assert_eq!(Sha256::digest(&body), expected.finalize());
}

#[tokio::test]
async fn websocket_echo_is_tunnelled() {
    let (_web, _m, sluice) = start_web().await;
    let url = format!("ws://{}/chat", sluice.http_addr);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("ws request");
    req.headers_mut()
        .insert("host", http::HeaderValue::from_static("s.test"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket handshake through sluice");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let echoed = ws.next().await.expect("message").expect("ok");
        assert_eq!(echoed, Message::text(format!("hello {i}")));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send binary");
    assert_eq!(
        ws.next().await.expect("message").expect("ok"),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn slow_uploads_are_not_cut_by_the_response_header_timeout() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("s.test", "/", "Prefix", "web")])),
    );
    let mut s = settings(&m.path());
    s.pool.response_header_timeout = std::time::Duration::from_millis(300);
    let sluice = start(s).await;
    // Ten chunks 100 ms apart: the upload takes ~1 s, three times the timeout.
    let stream = Box::pin(futures_util::stream::unfold(0u32, |i| async move {
        if i == 10 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let frame = hyper::body::Frame::data(Bytes::from(vec![b'x'; 1000]));
        Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
    }));
    let c: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::post(format!("http://{}/upload", sluice.http_addr))
        .header("host", "s.test")
        .body(StreamBody::new(stream))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-body-length"], "10000");
}

#[tokio::test]
async fn websocket_survives_a_table_swap() {
    let (_web, m, sluice) = start_web().await;
    let url = format!("ws://{}/chat", sluice.http_addr);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("ws request");
    req.headers_mut()
        .insert("host", http::HeaderValue::from_static("s.test"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    ws.send(Message::text("before")).await.expect("send");
    assert_eq!(
        ws.next().await.expect("msg").expect("ok"),
        Message::text("before")
    );
    let reloads = || async {
        let c = client();
        get(&c, sluice.admin_addr, "admin", "/metrics", &[])
            .await
            .body
            .contains("sluice_config_reloads_total 2")
    };
    m.write(
        "b.yaml",
        &ingress("more", &[("other.test", "/", "Prefix", "web")]),
    );
    wait_for("the table is swapped", reloads).await;
    ws.send(Message::text("after"))
        .await
        .expect("send after swap");
    assert_eq!(
        ws.next().await.expect("msg").expect("ok"),
        Message::text("after")
    );
}

/// An HTTP/2 (h2c, prior knowledge) client that sends part of a body and
/// goes silent gets 408 on that stream after the body-read timeout; its
/// connection keeps serving other streams, and the backend never sees a
/// complete request.
#[tokio::test]
async fn a_stalled_http2_request_body_gets_408_after_the_body_read_timeout() {
    let backend = raw_backend::RawBackend::echo().await;
    let f = raw_backend::raw_fixture(&[("", &backend)], |s| {
        s.connections.body_read_timeout = std::time::Duration::from_millis(700);
    })
    .await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >(1);
    sender
        .send(Ok(hyper::body::Frame::data(Bytes::from(vec![b'x'; 1000]))))
        .await
        .expect("first chunk queued");
    let body = StreamBody::new(tokio_stream_from(receiver));
    let c: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = http::Request::post(format!("http://{}/echo", f.sluice.http_addr))
        .header("content-length", "100000")
        .body(body)
        .expect("request");
    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), c.request(req))
        .await
        .expect("answered before the test's own timeout")
        .expect("response");
    assert_eq!(resp.status(), 408);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    assert!(backend.complete_requests().is_empty(), "{}", backend.dump());
    drop(sender);
    // The same client (and so the same HTTP/2 connection) still works.
    let (quick, rx) = tokio::sync::mpsc::channel(1);
    drop(quick);
    let req = http::Request::get(format!("http://{}/after", f.sluice.http_addr))
        .body(StreamBody::new(tokio_stream_from(rx)))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
}

/// The frames of `receiver` as a stream.
fn tokio_stream_from<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = T> + Send>> {
    Box::pin(futures_util::stream::unfold(
        receiver,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    ))
}
