//! Hostile and malformed clients against a real sluice over raw TCP: smuggling
//! attempts, bad Host headers, oversized targets and headers, slowloris.
//! Every case gets a 4xx or a closed connection, and the proxy keeps serving.

mod support;

use std::time::Duration;

use support::*;

async fn start_web() -> (Vec<Backend>, Manifests, sluice::app::Running) {
    let f = fixture(&["web"], &[("", "/", "Prefix", "web")], |s| {
        s.connections.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    (f.backends, f.manifests, f.sluice)
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

const WAIT: Duration = Duration::from_secs(3);

/// Sends each raw request on its own connection and checks the status line.
async fn assert_each_answers(
    addr: std::net::SocketAddr,
    cases: &[&[u8]],
    status: &str,
) -> Vec<String> {
    let mut answers = Vec::new();
    for case in cases {
        let answer = raw(addr, case, WAIT).await;
        assert!(
            status_line(&answer).starts_with(status),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(case)
        );
        answers.push(answer);
    }
    answers
}

#[tokio::test]
async fn smuggling_attempts_get_400_and_a_closed_connection() {
    let (_web, _m, sluice) = start_web().await;
    let cases: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
    ];
    for answer in assert_each_answers(sluice.http_addr, &cases, "HTTP/1.1 400").await {
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "exactly one response; the connection closed: {answer:?}"
        );
    }
    let ok = raw(
        sluice.http_addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        status_line(&ok).starts_with("HTTP/1.1 200"),
        "still serving: {ok}"
    );
}

#[tokio::test]
async fn bad_host_headers_get_400() {
    let (_web, _m, sluice) = start_web().await;
    let cases: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b@c\r\nConnection: close\r\n\r\n",
    ];
    assert_each_answers(sluice.http_addr, &cases, "HTTP/1.1 400").await;
    // HTTP/1.0 needs no Host.
    let old = raw(sluice.http_addr, b"GET / HTTP/1.0\r\n\r\n", WAIT).await;
    assert!(status_line(&old).starts_with("HTTP/1.0 200"), "{old}");
}

#[tokio::test]
async fn oversized_target_and_headers_are_refused() {
    let (_web, _m, sluice) = start_web().await;
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let answer = raw(sluice.http_addr, long_target.as_bytes(), WAIT).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 414"),
        "{}",
        status_line(&answer)
    );

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    let answer = raw(sluice.http_addr, big_header.as_bytes(), WAIT).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&answer)
    );

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(sluice.http_addr, many.as_bytes(), WAIT).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&answer)
    );
}

#[tokio::test]
async fn slowloris_connections_are_closed_and_do_not_block_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_web, _m, sluice) = start_web().await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(sluice.http_addr)
            .await
            .expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .expect("write");
        slow.push(s);
    }
    // Other clients are served while the slow ones hang.
    let c = client();
    assert_eq!(get(&c, sluice.http_addr, "a", "/", &[]).await.status, 200);
    // After the header-read timeout (500 ms here) the slow connections are closed.
    let mut s = slow.pop().expect("one");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "a slowloris connection is closed by the header-read timeout"
    );
}

#[tokio::test]
async fn http10_clients_never_get_chunked_bodies() {
    let (_web, _m, sluice) = start_web().await;
    let answer = raw(
        sluice.http_addr,
        b"GET /?size=100000 HTTP/1.0\r\nHost: a\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.0 200"),
        "{}",
        status_line(&answer)
    );
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    let body_len = answer.len() - head.len() - 4;
    assert_eq!(body_len, 100_000);
}

#[tokio::test]
async fn dot_segments_cannot_escape_the_matched_prefix() {
    let Fixture {
        sluice,
        backends: _backends,
        manifests: _manifests,
    } = fixture(
        &["web", "admin"],
        &[
            ("", "/app", "Prefix", "web"),
            ("", "/admin", "Prefix", "admin"),
        ],
        |_| {},
    )
    .await;
    for target in ["/app/../admin/x", "/app/%2e%2e/admin/x"] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        let answer = raw(sluice.http_addr, req.as_bytes(), WAIT).await;
        assert!(
            answer.contains("\"name\":\"admin\"") || answer.contains("\"name\": \"admin\""),
            "{target}: {answer}"
        );
        assert!(
            answer.contains("/admin/x"),
            "the backend sees the normalised path: {answer}"
        );
    }
}

#[tokio::test]
async fn garbage_never_panics_the_proxy() {
    let (_web, _m, sluice) = start_web().await;
    let cases: [&[u8]; 6] = [
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage",
    ];
    for case in cases {
        let _ = raw(sluice.http_addr, case, Duration::from_millis(700)).await;
    }
    let ok = raw(
        sluice.http_addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        status_line(&ok).starts_with("HTTP/1.1 200"),
        "still serving: {ok}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_web, _m, sluice) = start_web().await;
    let mut s = tokio::net::TcpStream::connect(sluice.http_addr)
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.expect("read response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The connection stays open for keep-alive, then the idle limit (the
    // header-read timeout, 500 ms here) closes it.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");
}

#[tokio::test]
async fn silent_and_half_preface_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_web, _m, sluice) = start_web().await;
    let mut silent = tokio::net::TcpStream::connect(sluice.http_addr)
        .await
        .expect("connect");
    let mut half = tokio::net::TcpStream::connect(sluice.http_addr)
        .await
        .expect("connect");
    // 23 of the 24 bytes of the HTTP/2 preface: protocol detection never finishes.
    half.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r")
        .await
        .expect("write");
    for (what, stream) in [("silent", &mut silent), ("half preface", &mut half)] {
        let mut buf = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut buf)).await;
        assert!(
            closed.is_ok(),
            "a {what} connection is closed by the first-request limit"
        );
    }
}

#[tokio::test]
async fn forwarded_headers_cannot_be_spoofed_without_a_host() {
    let (_web, _m, sluice) = start_web().await;
    let answer = raw(
        sluice.http_addr,
        b"GET / HTTP/1.0\r\nAccept: application/json\r\nX-Real-Ip: 6.6.6.6\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nX-Forwarded-Host: evil\r\n\r\n",
        WAIT,
    )
    .await;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(v["headers"]["x-real-ip"][0], "127.0.0.1");
    assert_eq!(
        v["headers"]["x-forwarded-for"][0],
        "1.1.1.1, 2.2.2.2, 127.0.0.1"
    );
    assert!(v["headers"]["x-forwarded-host"].is_null(), "{v}");
}

#[tokio::test]
async fn connect_is_refused_with_405() {
    let (_web, _m, sluice) = start_web().await;
    let answer = raw(
        sluice.http_addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(status_line(&answer).starts_with("HTTP/1.1 405"), "{answer}");
}

#[tokio::test]
async fn absolute_form_target_decides_host_for_routing_and_forwarding() {
    let Fixture {
        sluice,
        backends: _backends,
        manifests: _manifests,
    } = fixture(
        &["web", "other"],
        &[
            ("a.test", "/", "Prefix", "web"),
            ("b.test", "/", "Prefix", "other"),
        ],
        |_| {},
    )
    .await;
    let answer = raw(
        sluice.http_addr,
        b"GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(v["name"], "web", "routed by the target's authority");
    assert_eq!(
        v["headers"]["host"][0], "a.test",
        "the backend sees the same host"
    );
}

#[tokio::test]
async fn encoded_and_doubled_paths_match_like_the_backend_reads_them() {
    let Fixture {
        sluice,
        backends: _backends,
        manifests: _manifests,
    } = fixture(
        &["web", "api"],
        &[("", "/", "Prefix", "web"), ("", "/api", "Prefix", "api")],
        |_| {},
    )
    .await;
    let c = client();
    for path in ["/%61pi/x", "//api/x", "/api//x"] {
        let v = whoami_json(&c, sluice.http_addr, "a", path).await;
        assert_eq!(v["name"], "api", "{path}");
        assert_eq!(v["uri"], path, "the target is forwarded as sent");
    }
    assert_eq!(
        whoami_json(&c, sluice.http_addr, "a", "/api%2Fx").await["name"],
        "web",
        "%2F is not a separator"
    );
}
