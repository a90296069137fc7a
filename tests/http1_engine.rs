//! Raw-byte conformance tests of sluice's HTTP/1.1 data plane (RFC 9112, RFC
//! 9110), run on the engine `SLUICE_TEST_HTTP1_ENGINE` selects (the native
//! engine by default, `hyper` for the fallback) in front of a [`RawBackend`]
//! that records exactly what reaches it.
//!
//! Covered: framing and head syntax that must be refused with 400 and a closed
//! connection before anything is forwarded (conflicting or invalid
//! `Content-Length`, unknown transfer codings, bare CR/LF, obs-fold, whitespace
//! before a colon, control bytes); malformed chunked bodies (400, not 502);
//! origin-, absolute- and asterisk-form targets, CONNECT, HTTP/1.0 with and
//! without keep-alive, unknown versions (505) and HTTP/1.2 (served as 1.1);
//! pipelining in one write and split across writes; `Expect: 100-continue`;
//! 1xx responses relayed from the backend; HEAD/204/304 without bodies;
//! close-delimited backend bodies; trailers; backend connection reuse only
//! after a complete exchange; invalid backend responses (502, connection
//! dropped); the bare-LF-after-chunked-body defect; the body-read, header-read
//! and size limits; and WebSocket upgrades.
//!
//! Tests of behaviour the hyper engine is known not to have return early with
//! a note on stderr when it is the engine under test.

mod support;

use std::time::{Duration, Instant};

use sluice::proxy::Http1Engine;
use support::raw_backend::*;
use support::*;

/// How long any single answer may take.
const WAIT: Duration = Duration::from_secs(3);

/// Whether the engine under test is the native one; on hyper, says on stderr
/// which behaviour is not checked.
fn native_only(what: &str) -> bool {
    if engine_under_test() == Http1Engine::Hyper {
        eprintln!("skipped on the hyper engine, which does not {what}");
        return false;
    }
    true
}

/// `bytes` as a quoted string, long runs shortened for failure messages.
fn show(bytes: &[u8]) -> String {
    if bytes.len() > 300 {
        let tail = &bytes[bytes.len() - 100..];
        return format!(
            "{:?}...({} bytes)...{:?}",
            String::from_utf8_lossy(&bytes[..150]),
            bytes.len(),
            String::from_utf8_lossy(tail)
        );
    }
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// An echo backend behind sluice, reachable with any Host.
async fn echo_fixture() -> (RawBackend, RawFixture) {
    let backend = RawBackend::echo().await;
    let fixture = raw_fixture(&[("", &backend)], |_| {}).await;
    (backend, fixture)
}

/// Sends `case` on a fresh connection and asserts exactly one response with
/// `status`, then the connection closed, and that nothing reached `backend`.
async fn assert_refused(sluice: &RawFixture, backend: &RawBackend, case: &[u8], status: u16) {
    refused(sluice, backend, case, status, true).await;
}

/// Like [`assert_refused`]; the connection may stay open when `must_close` is false.
async fn refused(
    sluice: &RawFixture,
    backend: &RawBackend,
    case: &[u8],
    status: u16,
    must_close: bool,
) {
    let what = show(case);
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    // The proxy may close before reading everything; the answer still counts.
    let _ = client.send(case).await;
    let resp = client
        .response(false, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{what}: no {status} response: {e}"));
    assert_eq!(resp.status, status, "{what} -> {}", resp.head);
    let closed = client
        .closed_within(if must_close {
            WAIT
        } else {
            Duration::from_millis(200)
        })
        .await;
    assert!(
        closed || !must_close,
        "{what}: the connection stays open after the {status}"
    );
    assert!(
        client.leftover().is_empty(),
        "{what}: exactly one response, then {}",
        show(client.leftover())
    );
    // Anything the proxy forwarded would have arrived before its answer; a
    // short pause catches a late forward all the same.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        backend.requests().is_empty() && backend.total_bytes() == 0,
        "{what} reached the backend:\n{}",
        backend.dump()
    );
}

/// One request on `client`, answered within [`WAIT`].
async fn exchange(client: &mut RawClient, request: &[u8]) -> Response {
    client.send(request).await.expect("send");
    let head = request.starts_with(b"HEAD ");
    let (_, resp) = client
        .final_response(head, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", show(request)));
    resp
}

fn get_req(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
}

/// The request `backend` recorded for `target`.
fn recorded(backend: &RawBackend, target: &str) -> Recorded {
    backend
        .requests()
        .into_iter()
        .find(|r| r.target == target)
        .unwrap_or_else(|| panic!("{target} never reached the backend:\n{}", backend.dump()))
}

#[tokio::test]
async fn conflicting_or_invalid_framing_headers_are_refused_before_forwarding() {
    let (backend, sluice) = echo_fixture().await;
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for case in cases {
        assert_refused(&sluice, &backend, case, 400).await;
    }
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let ok = exchange(&mut client, &get_req("/still")).await;
    assert_eq!((ok.status, ok.text()), (200, "GET /still 0".into()));
}

#[tokio::test]
async fn bare_cr_in_the_head_is_refused_before_forwarding() {
    let (backend, sluice) = echo_fixture().await;
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n",
        b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n",
    ];
    for case in cases {
        assert_refused(&sluice, &backend, case, 400).await;
    }
    if native_only("answer a bare CR in the blank line ending the head (it waits for more)") {
        assert_refused(
            &sluice,
            &backend,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
            400,
        )
        .await;
    }
}

#[tokio::test]
async fn bare_lf_in_the_head_is_refused_before_forwarding() {
    if !native_only("refuse a bare LF as a head line terminator (httparse accepts it)") {
        return;
    }
    let (backend, sluice) = echo_fixture().await;
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    ];
    for case in cases {
        assert_refused(&sluice, &backend, case, 400).await;
    }
}

#[tokio::test]
async fn malformed_request_lines_are_refused_before_forwarding() {
    // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
    let (backend, sluice) = echo_fixture().await;
    let cases: &[&[u8]] = &[
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / \r\nHost: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\r\nHost: a\r\n\r\n",
    ];
    for case in cases {
        assert_refused(&sluice, &backend, case, 400).await;
    }
}

#[tokio::test]
async fn obs_fold_space_before_colon_and_control_bytes_are_refused_before_forwarding() {
    let (backend, sluice) = echo_fixture().await;
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x01A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x1bc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
        // Field names are tokens (RFC 9110 §5.1).
        b"GET / HTTP/1.1\r\nHost: a\r\nX\xffA: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX@A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: no-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n",
    ];
    for case in cases {
        assert_refused(&sluice, &backend, case, 400).await;
    }
}

#[tokio::test]
async fn malformed_chunked_bodies_get_400_and_a_closed_connection() {
    let (backend, sluice) = echo_fixture().await;
    let head = b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(5000));
    let bodies: Vec<&[u8]> = vec![
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"FFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
        b"10000000000000005\r\nhello\r\n0\r\n\r\n",
        b"5x\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        long_ext.as_bytes(),
    ];
    let hyper = !native_only("limit chunk extensions to 4 KiB");
    for body in bodies {
        if hyper && body.len() > 4096 {
            continue;
        }
        let mut case = head.to_vec();
        case.extend_from_slice(body);
        let what = show(&case);
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        let _ = client.send(&case).await;
        let resp = client
            .response(false, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        assert_eq!(resp.status, 400, "{what} -> {}", resp.head);
        assert!(
            client.closed_within(WAIT).await,
            "{what}: the connection stays open after the {}",
            resp.status
        );
        assert!(
            backend.complete_requests().is_empty(),
            "{what}: the backend got a complete request:\n{}",
            backend.dump()
        );
    }
}

#[tokio::test]
async fn absolute_form_targets_are_routed_and_forwarded_by_their_authority() {
    let app = RawBackend::echo().await;
    let other = RawBackend::echo().await;
    let sluice = raw_fixture(&[("app.test", &app), ("other", &other)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(
        &mut client,
        b"GET http://app.test/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "GET /x?q=1 0".into()));
    let req = recorded(&app, "/x?q=1");
    assert_eq!(req.method, "GET");
    assert_eq!(
        req.header_all("host"),
        vec!["app.test"],
        "one Host, the target's authority (RFC 9112 §3.2.2)"
    );
    assert!(other.requests().is_empty(), "{}", other.dump());
    // An absolute-form target with an empty path is forwarded as `/`.
    let resp = exchange(
        &mut client,
        b"GET http://app.test HTTP/1.1\r\nHost: other\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "GET / 0".into()));
    // Origin-form on the same connection is routed by Host.
    let resp = exchange(&mut client, b"GET /y HTTP/1.1\r\nHost: other\r\n\r\n").await;
    assert_eq!((resp.status, resp.text()), (200, "GET /y 0".into()));
    assert_eq!(recorded(&other, "/y").header_all("host"), vec!["other"]);
}

#[tokio::test]
async fn asterisk_and_authority_forms_outside_options_and_connect_are_refused() {
    // RFC 9112 §3.2.3, §3.2.4: asterisk-form is for OPTIONS, authority-form for CONNECT.
    let (backend, sluice) = echo_fixture().await;
    for case in [
        &b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET app.test:80 HTTP/1.1\r\nHost: app.test:80\r\n\r\n",
        b"POST a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    ] {
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        let _ = client.send(case).await;
        let resp = client
            .response(false, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", show(case)));
        assert!(
            (400..500).contains(&resp.status),
            "{} -> {}",
            show(case),
            resp.head
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(backend.requests().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn options_asterisk_is_answered() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(
        (200..300).contains(&resp.status) || (400..500).contains(&resp.status),
        "OPTIONS * -> {}",
        resp.head
    );
    for req in backend.requests() {
        assert_eq!(req.line(), "OPTIONS * HTTP/1.1", "forwarded as sent");
    }
    // The connection (or at least the proxy) still serves.
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    assert_eq!(exchange(&mut client, &get_req("/after")).await.status, 200);
}

#[tokio::test]
async fn connect_gets_405_and_is_not_forwarded() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(
        &mut client,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 405, "{}", resp.head);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(backend.requests().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn http10_without_keep_alive_gets_one_response_then_close() {
    let (_backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, b"GET /one HTTP/1.0\r\nHost: a\r\n\r\n").await;
    assert_eq!((resp.status, resp.text()), (200, "GET /one 0".into()));
    assert_ne!(resp.framing, Framing::Chunked, "HTTP/1.0 has no chunked");
    assert!(
        client.closed_within(WAIT).await,
        "an HTTP/1.0 connection without keep-alive closes after the response"
    );
    assert!(client.leftover().is_empty(), "{}", show(client.leftover()));
}

#[tokio::test]
async fn http10_with_keep_alive_stays_open() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    for target in ["/one", "/two", "/three"] {
        let req = format!("GET {target} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
        let resp = exchange(&mut client, req.as_bytes()).await;
        assert_eq!((resp.status, resp.text()), (200, format!("GET {target} 0")));
        assert!(
            matches!(resp.framing, Framing::Length(_)),
            "a persistent HTTP/1.0 response is length-delimited: {}",
            resp.head
        );
        assert!(
            resp.connection_has("keep-alive"),
            "an HTTP/1.0 client only keeps the connection on `Connection: keep-alive`: {}",
            resp.head
        );
    }
    assert_eq!(backend.complete_requests().len(), 3);
}

#[tokio::test]
async fn unknown_major_versions_get_505_malformed_ones_400_and_http12_is_served_as_11() {
    let (backend, sluice) = echo_fixture().await;
    let refused: &[&[u8]] = &[
        b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    ];
    // Not an HTTP-version at all (RFC 9112 §2.3: `HTTP/` DIGIT `.` DIGIT, case-sensitive).
    let malformed: &[&[u8]] = &[
        b"GET / HTTP/2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/11\r\nHost: a\r\n\r\n",
        b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
        b"GET / http/1.1\r\nHost: a\r\n\r\n",
    ];
    for case in malformed {
        assert_refused(&sluice, &backend, case, 400).await;
    }
    if !native_only(
        "answer 505 to HTTP/2.0 and HTTP/3.0 request lines (it answers 400), nor serve HTTP/1.2",
    ) {
        for case in refused {
            let answer = raw(sluice.sluice.http_addr, case, WAIT).await;
            assert!(
                answer.starts_with("HTTP/1.1 4") || answer.starts_with("HTTP/1.1 5"),
                "{answer}"
            );
        }
        assert!(backend.requests().is_empty(), "{}", backend.dump());
        return;
    }
    for case in refused {
        assert_refused(&sluice, &backend, case, 505).await;
    }
    // RFC 9112 §2.3: an unknown minor version of 1.x is served as the highest
    // 1.x the server speaks.
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, b"GET /v HTTP/1.2\r\nHost: a\r\n\r\n").await;
    assert_eq!((resp.status, resp.text()), (200, "GET /v 0".into()));
    assert_eq!(resp.version, "HTTP/1.1");
    let resp = exchange(&mut client, &get_req("/v-again")).await;
    assert_eq!((resp.status, resp.text()), (200, "GET /v-again 0".into()));
}

#[tokio::test]
async fn pipelined_requests_in_one_write_are_answered_in_order() {
    let (backend, sluice) = echo_fixture().await;
    for count in [3, 50] {
        backend.clear_requests();
        let targets: Vec<String> = (0..count).map(|i| format!("/p{count}-{i}")).collect();
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        let stream: Vec<u8> = targets.iter().flat_map(|t| get_req(t)).collect();
        client.send(&stream).await.expect("send");
        for target in &targets {
            let resp = client.response(false, WAIT).await.expect(target);
            assert_eq!((resp.status, resp.text()), (200, format!("GET {target} 0")));
        }
        let seen: Vec<String> = backend
            .complete_requests()
            .iter()
            .map(Recorded::line)
            .collect();
        let want: Vec<String> = targets
            .iter()
            .map(|t| format!("GET {t} HTTP/1.1"))
            .collect();
        assert_eq!(seen, want, "each forwarded once, in order");
    }
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn pipelined_requests_split_across_writes_are_answered_in_order() {
    let (backend, sluice) = echo_fixture().await;
    for seed in 1..=12u64 {
        let mut rng = XorShift::new(seed);
        let t = |i: u32| format!("/s{seed}-{i}");
        let mut stream = get_req(&t(1));
        stream.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                t(2)
            )
            .as_bytes(),
        );
        stream.extend_from_slice(
            format!(
                "PUT {} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
                t(3)
            )
            .as_bytes(),
        );
        stream.extend_from_slice(&get_req(&t(4)));
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        client.send_split(&stream, &mut rng, 3).await.expect("send");
        let expected = [
            format!("GET {} 0", t(1)),
            format!("POST {} 5", t(2)),
            format!("PUT {} 7", t(3)),
            format!("GET {} 0", t(4)),
        ];
        for want in &expected {
            let resp = client
                .response(false, WAIT)
                .await
                .unwrap_or_else(|e| panic!("seed {seed}, {want}: {e}"));
            assert_eq!(
                (resp.status, resp.text()),
                (200, want.clone()),
                "seed {seed}"
            );
        }
        assert_eq!(recorded(&backend, &t(2)).body, b"hello");
        assert_eq!(recorded(&backend, &t(3)).body, b"abcdefg");
    }
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("send head");
    let first = client
        .response(false, WAIT)
        .await
        .expect("an interim answer before the body is sent");
    assert_eq!(first.status, 100, "{}", first.head);
    client.send(b"hello world").await.expect("send body");
    let (interim, resp) = client.final_response(false, WAIT).await.expect("final");
    assert!(interim.iter().all(|r| r.status == 100), "{interim:?}");
    assert_eq!((resp.status, resp.text()), (200, "POST /upload 11".into()));
    assert_eq!(recorded(&backend, "/upload").body, b"hello world");

    // A client that sends the body without waiting: interim answers at most.
    client
        .send(b"POST /eager HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
        .await
        .expect("send");
    let (interim, resp) = client.final_response(false, WAIT).await.expect("final");
    assert!(interim.iter().all(|r| r.status == 100), "{interim:?}");
    assert_eq!((resp.status, resp.text()), (200, "POST /eager 5".into()));
    assert_eq!(recorded(&backend, "/eager").body, b"hello");

    // RFC 9110 §10.1.1: the expectation is ignored in an HTTP/1.0 request.
    let mut old = RawClient::connect(sluice.sluice.http_addr).await;
    old.send(b"POST /old HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("send head");
    assert!(
        old.response(false, Duration::from_millis(500))
            .await
            .is_err(),
        "no 100 (nor anything else) to an HTTP/1.0 client before its body"
    );
    old.send(b"hello").await.expect("send body");
    let resp = old.response(false, WAIT).await.expect("final");
    assert_eq!((resp.status, resp.text()), (200, "POST /old 5".into()));
}

#[tokio::test]
async fn interim_responses_from_the_backend_are_relayed_in_order() {
    if !native_only("relay 1xx responses") {
        return;
    }
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        match req.target.as_str() {
            "/hints" => Reply::ok(b"hinted").with_interim(EARLY_HINTS),
            "/both" => Reply::ok(b"both")
                .with_interim(CONTINUE)
                .with_interim(EARLY_HINTS),
            _ => echo_reply(req),
        }
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;

    client.send(&get_req("/hints")).await.expect("send");
    let (interim, resp) = client.final_response(false, WAIT).await.expect("/hints");
    assert_eq!(interim.len(), 1, "{interim:?}");
    assert_eq!(interim[0].status, 103);
    assert_eq!(interim[0].header("link"), Some("</a.css>; rel=preload"));
    assert_eq!((resp.status, resp.text()), (200, "hinted".into()));

    client.send(&get_req("/both")).await.expect("send");
    let (interim, resp) = client.final_response(false, WAIT).await.expect("/both");
    let codes: Vec<u16> = interim.iter().map(|r| r.status).collect();
    assert_eq!(codes, [100, 103], "relayed in order: {interim:?}");
    assert_eq!((resp.status, resp.text()), (200, "both".into()));

    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    let mut old = RawClient::connect(sluice.sluice.http_addr).await;
    old.send(b"GET /hints HTTP/1.0\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let first = old.response(false, WAIT).await.expect("/hints over 1.0");
    assert_eq!((first.status, first.text()), (200, "hinted".into()));
}

#[tokio::test]
async fn head_204_and_304_responses_carry_no_body_whatever_the_backend_sends() {
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        match req.target.as_str() {
            "/head" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            "/204" => Reply::raw("HTTP/1.1 204 No Content\r\n\r\nhello"),
            "/304" => Reply::raw("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello"),
            // Framing headers that announce a body that, by the rules, is not there.
            "/head-chunked" => Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "/304-chunked" => {
                Reply::raw("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n")
            }
            _ => echo_reply(req),
        }
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    for (method, target, status) in [
        ("HEAD", "/head", 200),
        ("GET", "/204", 204),
        ("GET", "/304", 304),
        ("HEAD", "/head-chunked", 200),
        ("GET", "/304-chunked", 304),
    ] {
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        let next = format!("/after{target}");
        let mut stream = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
        stream.extend_from_slice(&get_req(&next));
        client.send(&stream).await.expect("send");
        let first = client
            .response(method == "HEAD", WAIT)
            .await
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert_eq!(first.status, status, "{}", first.head);
        let second = client.response(false, WAIT).await.unwrap_or_else(|e| {
            panic!("the request pipelined after {method} {target} is answered correctly: {e}")
        });
        assert_eq!(
            (second.status, second.text()),
            (200, format!("GET {next} 0"))
        );
    }
}

#[tokio::test]
async fn close_delimited_backend_bodies_reach_a_keep_alive_client_complete() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let reply_body = body.clone();
    let backend = RawBackend::start(echo_except("/stream", move |_| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        bytes.extend_from_slice(&reply_body);
        Reply::raw(bytes).then_close()
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, &get_req("/stream")).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body.len(), body.len(), "{:?}", resp.framing);
    assert!(resp.body == body, "the body bytes arrive intact");
    match resp.framing {
        Framing::Close => {}
        Framing::Chunked | Framing::Length(_) => {
            // Re-framed: the client connection is still usable.
            let next = exchange(&mut client, &get_req("/next")).await;
            assert_eq!((next.status, next.text()), (200, "GET /next 0".into()));
        }
        Framing::None => panic!("no body framing for a 200: {}", resp.head),
    }
    // An HTTP/1.0 client gets it close-delimited or with a length, never chunked.
    let mut old = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut old, b"GET /stream HTTP/1.0\r\nHost: a\r\n\r\n").await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(
        matches!(resp.framing, Framing::Close | Framing::Length(_)),
        "{}",
        resp.head
    );
    assert!(
        resp.body == body,
        "the body bytes arrive intact over HTTP/1.0"
    );
}

#[tokio::test]
async fn trailers_do_not_change_request_framing() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    client
        .send(b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: v\r\nX-Other: w\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let first = client.response(false, WAIT).await.expect("the POST");
    assert_eq!((first.status, first.text()), (200, "POST /t 5".into()));
    let second = client.response(false, WAIT).await.expect("the GET");
    assert_eq!((second.status, second.text()), (200, "GET /after 0".into()));
    let seen = backend.complete_requests();
    assert_eq!(seen.len(), 2, "{}", backend.dump());
    assert_eq!(seen[0].line(), "POST /t HTTP/1.1");
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[1].line(), "GET /after HTTP/1.1");
    assert!(seen[1].body.is_empty());
    assert!(
        seen[1].header("x-trailer").is_none() && seen[1].header("x-other").is_none(),
        "trailer fields are not glued onto the next request: {:?}",
        seen[1].headers
    );
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn sequential_keep_alive_requests_share_one_backend_connection() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    for i in 0..20 {
        let target = format!("/seq{i}");
        let resp = exchange(&mut client, &get_req(&target)).await;
        assert_eq!((resp.status, resp.text()), (200, format!("GET {target} 0")));
    }
    assert_eq!(backend.accepted(), 1, "{}", backend.dump());
    assert_eq!(backend.complete_requests().len(), 20);
}

#[tokio::test]
async fn early_answers_and_connection_close_retire_the_backend_connection() {
    let mut options = Options::new(echo_except("/close", |_| {
        // Says close but keeps the socket open: only the proxy can retire it.
        Reply::raw("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    }));
    options.early = Some(std::sync::Arc::new(|req: &Recorded| {
        (req.target == "/early")
            .then(|| Reply::raw("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"))
    }));
    let backend = RawBackend::with_options(options).await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let addr = sluice.sluice.http_addr;

    let mut warm = RawClient::connect(addr).await;
    assert_eq!(exchange(&mut warm, &get_req("/warm")).await.status, 200);

    // The backend answers before reading the body; the client never sends most of it.
    let mut early = RawClient::connect(addr).await;
    let mut head = b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n".to_vec();
    head.extend_from_slice(&[b'x'; 1000]);
    early.send(&head).await.expect("send");
    let resp = early
        .response(false, WAIT)
        .await
        .expect("the early answer is relayed");
    assert_eq!(resp.status, 413, "{}", resp.head);
    drop(early);

    let mut next = RawClient::connect(addr).await;
    let resp = exchange(&mut next, &get_req("/after-early")).await;
    assert_eq!(
        (resp.status, resp.text()),
        (200, "GET /after-early 0".into())
    );
    assert_ne!(
        recorded(&backend, "/after-early").conn,
        recorded(&backend, "/early").conn,
        "a backend connection with an unfinished request body is not reused:\n{}",
        backend.dump()
    );

    // An early answer while the rest of the body (which looks like a request)
    // is still coming: the body is never parsed as a request.
    let mut full = RawClient::connect(addr).await;
    let disguised = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".repeat(50);
    let mut request = format!(
        "POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        disguised.len()
    )
    .into_bytes();
    request.extend_from_slice(&disguised[..500]);
    full.send(&request).await.expect("send");
    let resp = full.response(false, WAIT).await.expect("the early answer");
    assert_eq!(resp.status, 413, "{}", resp.head);
    // The rest of the body and a real request; the proxy may close instead.
    let mut rest = disguised[500..].to_vec();
    rest.extend_from_slice(&get_req("/after-body"));
    if full.send(&rest).await.is_ok() {
        match full.response(false, WAIT).await {
            Ok(resp) => assert_eq!(
                (resp.status, resp.text()),
                (200, "GET /after-body 0".into()),
                "the next answer is the real request's"
            ),
            Err(e) => assert!(e.contains("closed"), "{e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        backend.requests().iter().all(|r| r.target != "/smuggled"),
        "body bytes were parsed as a request:\n{}",
        backend.dump()
    );

    // `Connection: close` from the backend retires the connection.
    let mut client = RawClient::connect(addr).await;
    let resp = exchange(&mut client, &get_req("/close")).await;
    assert_eq!((resp.status, resp.text()), (200, "ok".into()));
    if resp.connection_has("close") || client.closed_within(Duration::from_millis(100)).await {
        client = RawClient::connect(addr).await;
    }
    let resp = exchange(&mut client, &get_req("/after-close")).await;
    assert_eq!(
        (resp.status, resp.text()),
        (200, "GET /after-close 0".into())
    );
    assert_ne!(
        recorded(&backend, "/after-close").conn,
        recorded(&backend, "/close").conn,
        "a backend connection that said `Connection: close` is not reused:\n{}",
        backend.dump()
    );
}

#[tokio::test]
async fn invalid_backend_responses_get_502_and_the_backend_connection_is_dropped() {
    let bad = |target: &str| -> Option<&'static str> {
        Some(match target {
            "/garbage" => "this is not http\r\n\r\n",
            "/both" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "/badlen" => "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
            "/twolen" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "/neglen" => "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
            "/badstatus" => "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            _ => return None,
        })
    };
    let backend = RawBackend::start(std::sync::Arc::new(move |req: &Recorded| {
        bad(&req.target).map_or_else(|| echo_reply(req), Reply::raw)
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let addr = sluice.sluice.http_addr;
    let mut targets = vec!["/garbage", "/badlen", "/twolen", "/neglen", "/badstatus"];
    if native_only(
        "refuse a response with both Content-Length and Transfer-Encoding (it lets chunked win)",
    ) {
        targets.push("/both");
    }
    for target in targets {
        let mut client = RawClient::connect(addr).await;
        let resp = exchange(&mut client, &get_req(target)).await;
        assert_eq!(resp.status, 502, "{target}: {}", resp.head);
        if resp.connection_has("close") || client.closed_within(Duration::from_millis(100)).await {
            client = RawClient::connect(addr).await;
        }
        let after = format!("/after{target}");
        let resp = exchange(&mut client, &get_req(&after)).await;
        assert_eq!((resp.status, resp.text()), (200, format!("GET {after} 0")));
        assert_ne!(
            recorded(&backend, &after).conn,
            recorded(&backend, target).conn,
            "the connection that answered {target} is not reused:\n{}",
            backend.dump()
        );
    }
}

#[tokio::test]
async fn a_bare_lf_after_a_chunked_body_never_swallows_the_next_request() {
    if !native_only("see the pipelined GET after a bare-LF-terminated chunked body") {
        return;
    }
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    client
        .send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("send");
    let first = client.response(false, WAIT).await.expect("an answer");
    if first.status == 400 {
        assert!(
            client.closed_within(WAIT).await,
            "refused: the connection closes"
        );
    } else {
        assert_eq!((first.status, first.text()), (200, "POST / 5".into()));
        let second = client
            .response(false, WAIT)
            .await
            .expect("the GET is answered, not swallowed");
        match second.status {
            200 => assert_eq!(second.text(), "GET /second 0"),
            400 => assert!(client.closed_within(WAIT).await),
            other => panic!("the GET got {other}: {}", second.head),
        }
    }
    for req in backend.requests() {
        match req.target.as_str() {
            "/" => assert_eq!(req.body, b"hello"),
            "/second" => assert!(req.body.is_empty() && req.method == "GET"),
            other => panic!("unexpected request {other}:\n{}", backend.dump()),
        }
    }
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_by_the_body_read_timeout() {
    let backend = RawBackend::echo().await;
    let sluice = raw_fixture(&[("", &backend)], |s| {
        s.connections.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let mut head = b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n".to_vec();
    head.extend_from_slice(&[b'x'; 1000]);
    client.send(&head).await.expect("send");
    let started = Instant::now();
    assert!(
        client.closed_within(Duration::from_secs(6)).await,
        "a client that stops sending its announced body is cut off"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    assert!(backend.complete_requests().is_empty(), "{}", backend.dump());
    // Others are still served.
    let mut other = RawClient::connect(sluice.sluice.http_addr).await;
    assert_eq!(exchange(&mut other, &get_req("/ok")).await.status, 200);
}

#[tokio::test]
async fn a_slow_head_is_cut_by_the_header_read_timeout() {
    let backend = RawBackend::echo().await;
    let sluice = raw_fixture(&[("", &backend)], |s| {
        s.connections.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut slow = RawClient::connect(sluice.sluice.http_addr).await;
    slow.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .expect("send");
    let mut other = RawClient::connect(sluice.sluice.http_addr).await;
    assert_eq!(
        exchange(&mut other, &get_req("/meanwhile")).await.status,
        200
    );
    assert!(
        slow.closed_within(WAIT).await,
        "a slowloris connection is closed by the header-read timeout"
    );
    assert!(
        backend.requests().iter().all(|r| r.target == "/meanwhile"),
        "{}",
        backend.dump()
    );
}

#[tokio::test]
async fn oversized_targets_and_heads_are_refused_before_forwarding() {
    let (backend, sluice) = echo_fixture().await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(17 * 1024));
    // A 414 is answered after the whole head is read: the connection may stay.
    refused(&sluice, &backend, long_target.as_bytes(), 414, false).await;
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    assert_refused(&sluice, &backend, big_header.as_bytes(), 431).await;
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_refused(&sluice, &backend, many.as_bytes(), 431).await;
}

#[tokio::test]
async fn valid_but_unusual_framing_and_fields_are_accepted_and_forwarded_exactly() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let cases: &[(&[u8], &str, &[u8])] = &[
        // Transfer-coding names are case-insensitive (RFC 9112 §7).
        (
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "/a",
            b"hello",
        ),
        // Leading zeros and upper-case hex in chunk sizes.
        (
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
            "/b",
            b"hello0123456789",
        ),
        // Chunk extensions, quoted values, BWS around `;` and `=`, an extension
        // on the last chunk, and a trailer section (RFC 9112 §7.1.1, §7.1.2).
        (
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"quoted ; value\"\r\nhello\r\n5 ; x = y\r\nworld\r\n0;last=1\r\nX-Trailer: t\r\n\r\n",
            "/c",
            b"helloworld",
        ),
        // OWS around a Content-Length value.
        (
            b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length:   5  \r\n\r\nhello",
            "/d",
            b"hello",
        ),
        (
            b"GET /e HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "/e",
            b"",
        ),
    ];
    for (request, target, body) in cases {
        let resp = exchange(&mut client, request).await;
        assert_eq!(resp.status, 200, "{}: {}", show(request), resp.head);
        let seen = recorded(&backend, target);
        assert!(seen.complete, "{}", backend.dump());
        assert_eq!(seen.body, *body, "{}", show(request));
    }
    // Extension methods, empty values, inner whitespace and obs-text pass as sent.
    let resp = exchange(
        &mut client,
        b"PURGE /f HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces: a  b\t c\r\nX-Obs: caf\xe9\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "PURGE /f 0".into()));
    let seen = recorded(&backend, "/f");
    let value = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not forwarded: {:?}", seen.headers))
    };
    assert_eq!(value("x-empty"), b"");
    assert_eq!(value("x-spaces"), b"a  b\t c");
    assert_eq!(value("x-obs"), b"caf\xe9");
}

#[tokio::test]
async fn an_empty_line_before_the_request_line_is_ignored() {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, b"\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!((resp.status, resp.text()), (200, "GET /lead 0".into()));
    // Some clients add a CRLF after a POST body; it does not break the next request.
    let resp = exchange(
        &mut client,
        b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "POST /body 2".into()));
    let resp = client.response(false, WAIT).await.expect("/next");
    assert_eq!((resp.status, resp.text()), (200, "GET /next 0".into()));
    assert!(backend.errors().is_empty(), "{}", backend.dump());
}

#[tokio::test]
async fn large_bodies_stream_intact_both_ways() {
    let down: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let reply_body = down.clone();
    let backend = RawBackend::start(echo_except("/down", move |_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in reply_body.chunks(65_000) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        Reply::raw(bytes).in_pieces(16)
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let mut rng = XorShift::new(7);

    let up: Vec<u8> = (0..2_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let mut request = format!(
        "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        up.len()
    )
    .into_bytes();
    request.extend_from_slice(&up);
    client
        .send_split(&request, &mut rng, 2)
        .await
        .expect("send");
    let (_, resp) = client.final_response(false, WAIT).await.expect("/up");
    assert_eq!((resp.status, resp.text()), (200, "POST /up 2000000".into()));
    assert!(
        recorded(&backend, "/up").body == up,
        "the upload arrives intact"
    );

    let mut request =
        b"PUT /up-chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = &up[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(100_000)).min(rest.len());
        request.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        request.extend_from_slice(&rest[..n]);
        request.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    request.extend_from_slice(b"0\r\n\r\n");
    client
        .send_split(&request, &mut rng, 2)
        .await
        .expect("send");
    let (_, resp) = client
        .final_response(false, WAIT)
        .await
        .expect("/up-chunked");
    assert_eq!(
        (resp.status, resp.text()),
        (200, "PUT /up-chunked 2000000".into())
    );
    assert!(
        recorded(&backend, "/up-chunked").body == up,
        "the chunked upload arrives intact"
    );

    // The download with a request pipelined behind it.
    let mut two = get_req("/down");
    two.extend_from_slice(&get_req("/after"));
    client.send(&two).await.expect("send");
    let resp = client.response(false, WAIT).await.expect("/down");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body.len(), down.len());
    assert!(resp.body == down, "the download arrives intact");
    let resp = client.response(false, WAIT).await.expect("/after");
    assert_eq!((resp.status, resp.text()), (200, "GET /after 0".into()));
}

#[tokio::test]
async fn backend_responses_written_in_pieces_are_relayed_intact() {
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        let reply = match req.target.as_str() {
            "/chunked" => Reply::raw(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
            ),
            "/length" => Reply::raw(
                "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 11\r\n\r\nhello world",
            ),
            _ => echo_reply(req),
        };
        reply.in_pieces(8)
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    for target in ["/chunked", "/length", "/echo"] {
        let resp = exchange(&mut client, &get_req(target)).await;
        let want = if target == "/echo" {
            "GET /echo 0"
        } else {
            "hello world"
        };
        assert_eq!((resp.status, resp.text()), (200, want.into()), "{target}");
    }
}

#[tokio::test]
async fn a_truncated_backend_body_never_reaches_the_client_as_complete() {
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        match req.target.as_str() {
            "/length" => {
                Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789").then_close()
            }
            "/chunked" => {
                Reply::raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                    .then_close()
            }
            "/silent" => Reply::raw("").then_close(),
            _ => echo_reply(req),
        }
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    for target in ["/length", "/chunked", "/silent"] {
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        client.send(&get_req(target)).await.expect("send");
        match client.response(false, WAIT).await {
            // Nothing sent yet when the backend failed: a 502.
            Ok(resp) => assert_eq!(
                resp.status,
                502,
                "{target}: {} {:?}",
                resp.head,
                resp.text()
            ),
            // Already relaying: the client sees the truncation (the connection
            // closes mid-body), never a well-terminated body.
            Err(e) => assert!(
                e.contains("closed") || e.contains("truncated"),
                "{target}: {e}"
            ),
        }
        let mut next = RawClient::connect(sluice.sluice.http_addr).await;
        let resp = exchange(&mut next, &get_req("/next")).await;
        assert_eq!(
            (resp.status, resp.text()),
            (200, "GET /next 0".into()),
            "after {target}"
        );
    }
}

#[tokio::test]
async fn a_backend_closing_an_idle_connection_does_not_fail_the_next_request() {
    // Closes after each answer without saying so, as a backend whose
    // keep-alive timeout is very short does.
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        echo_reply(req).then_close()
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    for i in 0..5 {
        let target = format!("/idle{i}");
        let resp = exchange(&mut client, &get_req(&target)).await;
        assert_eq!((resp.status, resp.text()), (200, format!("GET {target} 0")));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend.complete_requests().len(), 5, "{}", backend.dump());
}

#[tokio::test]
async fn a_client_connection_close_ends_the_connection_after_that_response() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    client
        .send(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    let resp = client.response(false, WAIT).await.expect("/last");
    assert_eq!((resp.status, resp.text()), (200, "GET /last 0".into()));
    assert!(
        client.closed_within(WAIT).await,
        "closed after the response to a request with `Connection: close` (RFC 9112 §9.6)"
    );
    assert!(client.leftover().is_empty(), "{}", show(client.leftover()));
    assert!(
        backend.requests().iter().all(|r| r.target != "/ignored"),
        "no request after `Connection: close` is processed:\n{}",
        backend.dump()
    );
}

#[tokio::test]
async fn hop_by_hop_fields_are_not_forwarded_either_way() {
    let backend = RawBackend::start(echo_except("/hop", |_| {
        Reply::raw(
            "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok",
        )
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(
        &mut client,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "ok".into()));
    assert_eq!(resp.header("x-kept"), Some("yes"));
    assert_eq!(resp.header("x-secret"), None, "{}", resp.head);
    assert_eq!(resp.header("proxy-authenticate"), None, "{}", resp.head);
    assert_ne!(
        resp.header("keep-alive"),
        Some("timeout=5"),
        "{}",
        resp.head
    );

    let seen = recorded(&backend, "/hop");
    for name in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            seen.header(name).is_none(),
            "{name} forwarded: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_all("x-kept"), vec!["yes"]);
    for te in seen.header_all("te") {
        assert_eq!(te, "trailers", "only `trailers` survives in TE");
    }
    for connection in seen.header_all("connection") {
        assert!(
            !connection.to_ascii_lowercase().contains("x-hop"),
            "Connection: {connection}"
        );
    }

    // `Upgrade: h2c` through a proxy is never tunnelled; the request is served as HTTP/1.1.
    let resp = exchange(
        &mut client,
        b"GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    assert_eq!((resp.status, resp.text()), (200, "GET /h2c 0".into()));
    let seen = recorded(&backend, "/h2c");
    for name in ["upgrade", "http2-settings"] {
        assert!(
            seen.header(name).is_none(),
            "{name} forwarded: {:?}",
            seen.headers
        );
    }
}

#[tokio::test]
async fn requests_just_inside_the_limits_are_forwarded_intact() {
    let (backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    // A target of exactly 16 KiB.
    let target = format!("/{}", "t".repeat(16 * 1024 - 1));
    let resp = exchange(&mut client, &get_req(&target)).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(recorded(&backend, &target).target.len(), 16 * 1024);
    // 100 header fields, Host included.
    let mut many = String::from("GET /many HTTP/1.1\r\nHost: a\r\n");
    for i in 0..99 {
        many.push_str(&format!("X-H{i}: v{i}\r\n"));
    }
    many.push_str("\r\n");
    let resp = exchange(&mut client, many.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen = recorded(&backend, "/many");
    assert!((0..99).all(|i| seen.header(&format!("x-h{i}")) == Some(format!("v{i}"))));
    // A 60 KiB head.
    let big = "b".repeat(60 * 1024);
    let resp = exchange(
        &mut client,
        format!("GET /big HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(recorded(&backend, "/big").header("x-big"), Some(big));
}

#[tokio::test]
async fn large_backend_response_heads_are_relayed() {
    let value = "v".repeat(40 * 1024);
    let reply_value = value.clone();
    let backend = RawBackend::start(echo_except("/bighead", move |_| {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..50 {
            head.push_str(&format!("Set-Cookie: c{i}=v{i}\r\n"));
        }
        head.push_str(&format!(
            "X-Big: {reply_value}\r\nContent-Length: 2\r\n\r\nok"
        ));
        Reply::raw(head)
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    let resp = exchange(&mut client, &get_req("/bighead")).await;
    assert_eq!((resp.status, resp.text()), (200, "ok".into()));
    assert_eq!(resp.header("x-big"), Some(value.as_str()));
    let cookies = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .count();
    assert_eq!(cookies, 50, "every Set-Cookie field is relayed separately");
}

#[tokio::test]
async fn a_half_closed_client_still_gets_its_response() {
    if !native_only("answer a client that half-closed after its request (it drops the request)") {
        return;
    }
    let (_backend, sluice) = echo_fixture().await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    client
        .send(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("send");
    tokio::io::AsyncWriteExt::shutdown(&mut client.stream)
        .await
        .expect("half-close");
    let resp = client.response(false, WAIT).await.expect("the response");
    assert_eq!((resp.status, resp.text()), (200, "GET /half 0".into()));
    assert!(
        client.closed_within(WAIT).await,
        "then the connection closes"
    );
}

#[tokio::test]
async fn websocket_bytes_sent_right_after_the_upgrade_request_reach_the_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Fixture {
        sluice,
        backends: _backends,
        manifests: _manifests,
    } = fixture(&["web"], &[("", "/", "Prefix", "web")], |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(sluice.http_addr)
        .await
        .expect("connect");
    // The handshake and a masked text frame "hi" in one write, before any 101.
    let mut bytes = b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x82]);
    bytes.extend_from_slice(&mask);
    bytes.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    stream.write_all(&bytes).await.expect("send");
    let mut got = Vec::new();
    let expected_frame = [0x81u8, 0x02, b'h', b'i'];
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early: {}", show(&got));
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got[end + 4..].starts_with(&expected_frame) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no 101 and echo: {}", show(&got));
    assert!(got.starts_with(b"HTTP/1.1 101"), "{}", show(&got));
}

#[tokio::test]
async fn a_request_stream_cut_at_every_offset_is_parsed_the_same() {
    let (backend, sluice) = echo_fixture().await;
    let stream: &[u8] = b"POST /cut HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: t\r\n\r\nPUT /len HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyzGET /last HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 1..stream.len() {
        let mut client = RawClient::connect(sluice.sluice.http_addr).await;
        client.send(&stream[..cut]).await.expect("send");
        tokio::time::sleep(Duration::from_millis(3)).await;
        client.send(&stream[cut..]).await.expect("send");
        for want in ["POST /cut 13", "PUT /len 4", "GET /last 0"] {
            let resp = client
                .response(false, WAIT)
                .await
                .unwrap_or_else(|e| panic!("cut at {cut}, {want}: {e}"));
            assert_eq!(
                (resp.status, resp.text()),
                (200, want.into()),
                "cut at {cut}"
            );
        }
    }
    assert!(backend.errors().is_empty(), "{}", backend.dump());
    let bodies: Vec<Vec<u8>> = backend
        .complete_requests()
        .iter()
        .filter(|r| r.target == "/cut")
        .map(|r| r.body.clone())
        .collect();
    assert!(bodies.iter().all(|b| b == b"abc0123456789"), "{bodies:?}");
}

#[tokio::test]
async fn a_backend_response_cut_at_every_offset_is_relayed_the_same() {
    const RESPONSE: &str = "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: t\r\n\r\n";
    let backend = RawBackend::start(std::sync::Arc::new(|req: &Recorded| {
        match req
            .target
            .strip_prefix("/cut/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(cut) => Reply::raw(RESPONSE).cut_at(&[cut]),
            None => echo_reply(req),
        }
    }))
    .await;
    let sluice = raw_fixture(&[("", &backend)], |_| {}).await;
    let mut client = RawClient::connect(sluice.sluice.http_addr).await;
    for cut in 1..RESPONSE.len() {
        let resp = exchange(&mut client, &get_req(&format!("/cut/{cut}"))).await;
        assert_eq!(
            (resp.status, resp.text()),
            (200, "abc0123456789".into()),
            "cut at {cut}"
        );
        assert_eq!(resp.header("x-a"), Some("1"), "cut at {cut}");
    }
}
