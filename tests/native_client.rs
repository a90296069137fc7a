//! The native HTTP/1.1 client (`proxy/native/client.rs`): what carries
//! bodiless requests from HTTP/2 clients (and routes with middlewares) to
//! plain HTTP/1.1 backends. A real hyper HTTP/2 client (h2c, prior knowledge)
//! talks to a real sluice in front of a [`RawBackend`] that answers with exact
//! bytes, so every response framing, every broken answer and connection reuse
//! are checked on the wire.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use support::raw_backend::*;

type H2Client = Client<HttpConnector, Empty<Bytes>>;

fn h2_client() -> H2Client {
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends `method path` over HTTP/2; returns the status, headers and the whole
/// body, or the error that ended the body.
async fn fetch(
    client: &H2Client,
    sluice: &RawFixture,
    method: &str,
    path: &str,
) -> (u16, http::HeaderMap, Result<Bytes, String>) {
    try_fetch(client, sluice, method, path)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: no response head: {e}"))
}

/// [`fetch`], with a stream reset before the head as an error.
async fn try_fetch(
    client: &H2Client,
    sluice: &RawFixture,
    method: &str,
    path: &str,
) -> Result<(u16, http::HeaderMap, Result<Bytes, String>), String> {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", sluice.sluice.http_addr))
        .body(Empty::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("answered in time")
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Ok((status, headers, body))
}

fn reply_for(req: &Recorded) -> Reply {
    match req.target.as_str() {
        "/chunked" => Reply::raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .in_pieces(7),
        "/length" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world").in_pieces(3),
        "/close" => Reply::raw("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end").then_close(),
        "/no-content" => Reply::raw("HTTP/1.1 204 No Content\r\nX-Seen: yes\r\n\r\n"),
        "/interim" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
            .with_interim(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"),
        "/garbage" => Reply::raw("HTTP/1.1 two hundred\r\n\r\n"),
        "/both" => Reply::raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        "/bad-chunk" => Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        "/short" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this").then_close(),
        "/extra" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"),
        _ => echo_reply(req),
    }
}

async fn setup() -> (RawBackend, RawFixture, H2Client) {
    let backend = RawBackend::start(std::sync::Arc::new(reply_for)).await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    (backend, sluice, h2_client())
}

#[tokio::test]
async fn every_response_framing_reaches_an_http2_client_complete() {
    let (backend, sluice, client) = setup().await;
    let (status, _, body) = fetch(&client, &sluice, "GET", "/chunked").await;
    assert_eq!(status, 200);
    assert_eq!(
        body.expect("chunked body"),
        "hello world",
        "chunk framing removed, data kept"
    );
    let (status, headers, body) = fetch(&client, &sluice, "GET", "/length").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "11");
    assert_eq!(body.expect("length body"), "hello world");
    let (status, _, body) = fetch(&client, &sluice, "GET", "/close").await;
    assert_eq!(status, 200);
    assert_eq!(body.expect("close-delimited body"), "until the end");
    let (status, headers, body) = fetch(&client, &sluice, "GET", "/no-content").await;
    assert_eq!(status, 204);
    assert_eq!(headers["x-seen"], "yes");
    assert_eq!(body.expect("no body"), "");
    let (status, headers, body) = fetch(&client, &sluice, "HEAD", "/length").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-length"], "11",
        "HEAD keeps the length of the GET"
    );
    assert_eq!(body.expect("no body"), "");
    let (status, _, body) = fetch(&client, &sluice, "GET", "/interim").await;
    assert_eq!(status, 200, "the 103 is skipped, the final answer relayed");
    assert_eq!(body.expect("final body"), "final");
    let (status, _, body) = fetch(&client, &sluice, "GET", "/echo?q=1").await;
    assert_eq!(status, 200);
    assert_eq!(body.expect("echo"), "GET /echo?q=1 0");
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn backend_connections_are_reused_only_after_a_clean_response() {
    let (backend, sluice, client) = setup().await;
    for _ in 0..5 {
        let (status, _, body) = fetch(&client, &sluice, "GET", "/chunked").await;
        assert_eq!(
            (status, body.expect("body")),
            (200, Bytes::from("hello world"))
        );
        let (status, _, body) = fetch(&client, &sluice, "GET", "/length").await;
        assert_eq!(
            (status, body.expect("body")),
            (200, Bytes::from("hello world"))
        );
    }
    assert_eq!(
        backend.accepted(),
        1,
        "ten sequential requests share one backend connection:\n{}",
        backend.dump()
    );
    // Bytes after a complete response: that connection is never used again.
    let (status, _, body) = fetch(&client, &sluice, "GET", "/extra").await;
    assert_eq!((status, body.expect("body")), (200, Bytes::from("ok")));
    let before = backend.accepted();
    let (status, _, _) = fetch(&client, &sluice, "GET", "/length").await;
    assert_eq!(status, 200);
    assert_eq!(
        backend.accepted(),
        before + 1,
        "the connection that sent extra bytes is dropped:\n{}",
        backend.dump()
    );
    // A close-delimited answer ends its connection too.
    let (status, _, _) = fetch(&client, &sluice, "GET", "/close").await;
    assert_eq!(status, 200);
    let before = backend.accepted();
    let (status, _, _) = fetch(&client, &sluice, "GET", "/length").await;
    assert_eq!(status, 200);
    assert_eq!(backend.accepted(), before + 1, "{}", backend.dump());
}

#[tokio::test]
async fn broken_backend_answers_are_502_or_a_cut_body_never_a_complete_one() {
    let (backend, sluice, client) = setup().await;
    for path in ["/garbage", "/both"] {
        let (status, _, _) = fetch(&client, &sluice, "GET", path).await;
        assert_eq!(status, 502, "{path}");
    }
    for path in ["/bad-chunk", "/short"] {
        // The head was fine, the body is not: the stream is reset, before or
        // after the head reaches the client, never ended as if complete.
        match try_fetch(&client, &sluice, "GET", path).await {
            Err(reset) => assert!(reset.contains("Reset"), "{path}: {reset}"),
            Ok((status, _, body)) => {
                assert_eq!(status, 200, "{path}");
                assert!(
                    body.is_err(),
                    "{path}: a broken body ended cleanly: {body:?}"
                );
            }
        }
    }
    // The backend connections of those answers are not reused: the next
    // request still works.
    let (status, _, body) = fetch(&client, &sluice, "GET", "/length").await;
    assert_eq!(
        (status, body.expect("body")),
        (200, Bytes::from("hello world"))
    );
    drop(backend);
}

#[tokio::test]
async fn a_backend_that_closes_after_answering_does_not_fail_the_next_requests() {
    let (backend, sluice, client) = setup().await;
    let (status, _, _) = fetch(&client, &sluice, "GET", "/length").await;
    assert_eq!(status, 200);
    // The backend closes the idle connection (a backend's keep-alive timeout).
    let (status, _, _) = fetch(&client, &sluice, "GET", "/close").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let (status, _, body) = fetch(&client, &sluice, "GET", "/length").await;
        assert_eq!(
            (status, body.expect("body")),
            (200, Bytes::from("hello world"))
        );
    }
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn chunked_trailer_fields_reach_an_http2_client_as_trailers() {
    let (_backend, sluice, client) = setup().await;
    let req = http::Request::get(format!("http://{}/chunked", sluice.sluice.http_addr))
        .body(Empty::new())
        .expect("request");
    let resp = client.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers frame");
    assert_eq!(trailers["x-trailer"], "t");
    assert_eq!(collected.to_bytes(), "hello world");
}
