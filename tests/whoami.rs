//! The whoami echo backend on a real socket, driven by real clients.
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

type ReqBody = BoxBody<Bytes, Infallible>;

/// A running backend; dropping the sender stops it.
struct Backend {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(sluice::whoami::serve(
        listener,
        "test-backend".into(),
        shutdown,
    ));
    Backend { addr, stop, task }
}

fn client(http2: bool) -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http()
}

fn empty() -> ReqBody {
    Full::new(Bytes::new()).boxed()
}

async fn get(addr: SocketAddr, path_query: &str) -> Response<Incoming> {
    let uri = format!("http://{addr}{path_query}");
    let req = Request::get(uri).body(empty()).unwrap();
    client(false).request(req).await.unwrap()
}

async fn body_bytes(resp: Response<Incoming>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn header<'a>(resp: &'a Response<Incoming>, name: &str) -> &'a str {
    resp.headers().get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn text_report_lists_request_line_and_headers_in_order() {
    let backend = start().await;
    let req = Request::get(format!("http://{}/hello?x=1", backend.addr))
        .header("x-first", "1")
        .header("x-second", "2")
        .body(empty())
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").starts_with("text/plain"));
    assert_eq!(header(&resp, "x-body-length"), "0");
    let text = String::from_utf8(body_bytes(resp).await.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Hostname: test-backend");
    assert_eq!(lines[1], "IP: 127.0.0.1");
    assert!(lines[2].starts_with("RemoteAddr: 127.0.0.1:"), "{text}");
    assert_eq!(lines[3], "GET /hello?x=1 HTTP/1.1");
    assert!(
        lines.contains(&format!("Host: {}", backend.addr).as_str()),
        "{text}"
    );
    let first = lines.iter().position(|l| *l == "X-First: 1").unwrap();
    let second = lines.iter().position(|l| *l == "X-Second: 2").unwrap();
    assert!(first < second, "{text}");
}

#[tokio::test]
async fn json_report_when_accept_asks_for_it() {
    let backend = start().await;
    let req = Request::post(format!("http://{}/api/v1?q=2", backend.addr))
        .header("accept", "text/html, application/json")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(Full::new(Bytes::from_static(b"hello")).boxed())
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(header(&resp, "x-body-length"), "5");
    let report: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await).unwrap();
    assert_eq!(report["name"], "test-backend");
    assert_eq!(report["method"], "POST");
    assert_eq!(report["uri"], "/api/v1?q=2");
    assert_eq!(report["proto"], "HTTP/1.1");
    assert_eq!(report["host"], backend.addr.to_string());
    assert_eq!(report["headers"]["x-multi"], serde_json::json!(["a", "b"]));
    assert_eq!(report["body_length"], 5);
    let remote = report["remote_addr"].as_str().unwrap();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
}

#[tokio::test]
async fn http2_prior_knowledge_on_the_same_listener() {
    let backend = start().await;
    let req = Request::get(format!("http://{}/h2", backend.addr))
        .header("accept", "application/json")
        .body(empty())
        .unwrap();
    let resp = client(true).request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let report: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await).unwrap();
    assert_eq!(report["proto"], "HTTP/2.0");
    assert_eq!(report["uri"], "/h2");
    assert_eq!(report["host"], backend.addr.to_string());
}

#[tokio::test]
async fn size_streams_the_pattern() {
    let backend = start().await;
    let resp = get(backend.addr, "/?size=100003").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "100003");
    let body = body_bytes(resp).await;
    assert_eq!(body.len(), 100_003);
    let pattern = b"0123456789abcdef";
    assert!(body.iter().enumerate().all(|(i, b)| *b == pattern[i % 16]));
    assert!(body_bytes(get(backend.addr, "/?size=0").await)
        .await
        .is_empty());
}

#[tokio::test]
async fn echo_streams_the_request_body_back() {
    let backend = start().await;
    // 8 MiB made lazily, so neither side needs it all in memory at once.
    let chunks = (0..128u8).map(|i| Ok(Frame::data(Bytes::from(vec![i; 64 * 1024]))));
    let mut expected = Sha256::new();
    (0..128u8).for_each(|i| expected.update(vec![i; 64 * 1024]));
    let body = BodyExt::boxed(StreamBody::new(stream::iter(chunks)));
    let req = Request::put(format!("http://{}/echo", backend.addr))
        .header("content-type", "application/x-test")
        .body(body)
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "application/x-test");
    let mut body = resp.into_body();
    let (mut got, mut len) = (Sha256::new(), 0);
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            got.update(data);
            len += data.len();
        }
    }
    assert_eq!(len, 8 * 1024 * 1024);
    assert_eq!(got.finalize(), expected.finalize());

    let req = Request::post(format!("http://{}/any?echo=1", backend.addr))
        .body(Full::new(Bytes::from_static(b"ping")).boxed())
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    assert_eq!(&body_bytes(resp).await[..], b"ping");
}

#[tokio::test]
async fn status_and_wait_options() {
    let backend = start().await;
    assert_eq!(
        get(backend.addr, "/?status=418").await.status().as_u16(),
        418
    );
    assert_eq!(get(backend.addr, "/?status=abc").await.status(), 400);
    assert_eq!(get(backend.addr, "/?size=x").await.status(), 400);
    let started = tokio::time::Instant::now();
    let resp = get(backend.addr, "/?wait=100ms&status=503").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn websocket_echo() {
    let backend = start().await;
    let url = format!("ws://{}/socket", backend.addr);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let blob = Bytes::from(vec![7u8; 100_000]);
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));
    ws.close(None).await.unwrap();
    // The server acknowledges the close, then the stream ends.
    while let Some(msg) = ws.next().await {
        assert!(matches!(msg, Ok(Message::Close(_))), "{msg:?}");
    }
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let backend = start().await;
    assert_eq!(get(backend.addr, "/").await.status(), StatusCode::OK);
    backend.stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), backend.task).await;
    result.unwrap().unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(backend.addr).await.is_err());
}

#[tokio::test]
async fn http1_keep_alive_reuses_the_connection() {
    let backend = start().await;
    let client = client(false);
    let mut remotes = Vec::new();
    for _ in 0..3 {
        let req = Request::get(format!("http://{}/", backend.addr))
            .header("accept", "application/json")
            .body(empty())
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let report: serde_json::Value = serde_json::from_slice(&body_bytes(resp).await).unwrap();
        remotes.push(report["remote_addr"].as_str().unwrap().to_owned());
    }
    assert!(remotes.iter().all(|r| *r == remotes[0]), "{remotes:?}");
}
