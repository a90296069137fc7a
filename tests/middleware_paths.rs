//! The path, redirect, header and body middlewares through a real sluice:
//! stripPrefix, stripPrefixRegex, addPrefix, replacePath, replacePathRegex,
//! redirectScheme, redirectRegex, headers, contentType and compress.
//! Real sockets, real whoami backends (plus two tiny hand-written backends for
//! an untyped body and a server-sent event stream), manifests on disk.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use support::*;

const MW: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// A sluice with Service `web` (whoami) and, per `(path, middleware specs)`,
/// an Ingress on that Prefix path running those Middlewares in order.
/// `extra_services` are `(name, address)` pairs for hand-written backends,
/// routed by `(path, service, middleware specs)`.
async fn proxy(
    routes: &[(&str, &[&str])],
    extra: &[(&str, &str, SocketAddr, &[&str])],
) -> (Fixture, Backend) {
    let backend = whoami("web").await;
    let mut docs = vec![service("web", &[backend.addr])];
    let mut n = 0;
    let mut add = |path: &str, svc: &str, specs: &[&str], docs: &mut Vec<String>| {
        let mut refs = Vec::new();
        for spec in specs {
            n += 1;
            let name = format!("mw{n}");
            docs.push(middleware(&name, "default", spec));
            refs.push(format!("default-{name}@kubernetescrd"));
        }
        let ingress_name = format!("ing{n}-{}", path.trim_matches('/').replace('/', "-"));
        docs.push(annotated_ingress(
            &ingress_name,
            "default",
            &[(MW, &refs.join(","))],
            &[("", path, "Prefix", svc)],
        ));
    };
    for (path, specs) in routes {
        add(path, "web", specs, &mut docs);
    }
    for (path, svc, addr, specs) in extra {
        docs.push(service(svc, &[*addr]));
        add(path, svc, specs, &mut docs);
    }
    let m = Manifests::new();
    m.write("a.yaml", &docs.join("\n---\n"));
    let sluice = start(settings(&m.path())).await;
    let fixture = Fixture {
        backends: Vec::new(),
        manifests: m,
        sluice,
    };
    (fixture, backend)
}

fn header_values(report: &serde_json::Value, name: &str) -> Vec<String> {
    report["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn path_middlewares_rewrite_what_the_backend_sees() {
    let (f, _b) = proxy(
        &[
            ("/strip", &["stripPrefix:\n  prefixes: [/strip/a, /strip]"]),
            ("/sre", &["stripPrefixRegex:\n  regex: ['/sre/[a-z]+']"]),
            ("/addp", &["addPrefix:\n  prefix: /pre"]),
            ("/repl", &["replacePath:\n  path: /replaced/p%20q"]),
            (
                "/replre",
                &["replacePathRegex:\n  regex: '^/replre/(?P<name>[^/]+)/(.*)'\n  replacement: '/new/${name}/$2/$1x'"],
            ),
            (
                "/both",
                &[
                    "stripPrefix:\n  prefixes: [/both]",
                    "addPrefix:\n  prefix: /inner",
                ],
            ),
        ],
        &[],
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;

    let r = whoami_json(&c, addr, "h", "/strip/abc?q=1").await;
    assert_eq!(r["uri"], "/bc?q=1");
    assert_eq!(header_values(&r, "x-forwarded-prefix"), ["/strip/a"]);
    let r = whoami_json(&c, addr, "h", "/strip/x%2Fy").await;
    assert_eq!(r["uri"], "/x%2Fy");
    assert_eq!(header_values(&r, "x-forwarded-prefix"), ["/strip"]);

    let r = whoami_json(&c, addr, "h", "/sre/abc/def?x=1").await;
    assert_eq!(r["uri"], "/def?x=1");
    assert_eq!(header_values(&r, "x-forwarded-prefix"), ["/sre/abc"]);

    let r = whoami_json(&c, addr, "h", "/addp/x%2Fy?q=1").await;
    assert_eq!(r["uri"], "/pre/addp/x%2Fy?q=1");

    let r = whoami_json(&c, addr, "h", "/repl/a?q=1").await;
    assert_eq!(r["uri"], "/replaced/p%20q?q=1");
    assert_eq!(header_values(&r, "x-replaced-path"), ["/repl/a"]);

    let r = whoami_json(&c, addr, "h", "/replre/nm/rest/x%2Fy").await;
    assert_eq!(r["uri"], "/new/nm/rest/x%2Fy/");
    assert_eq!(
        header_values(&r, "x-replaced-path"),
        ["/replre/nm/rest/x%2Fy"]
    );

    let r = whoami_json(&c, addr, "h", "/both/z").await;
    assert_eq!(r["uri"], "/inner/z");
}

#[tokio::test]
async fn redirects_answer_without_the_backend() {
    let (f, _b) = proxy(
        &[
            ("/tohttps", &["redirectScheme:\n  scheme: https"]),
            ("/perm", &["redirectScheme:\n  scheme: https\n  port: \"8443\"\n  permanent: true"]),
            (
                "/rregex",
                &["redirectRegex:\n  regex: '^(.*)/rregex/(.*)'\n  replacement: 'http://new.example/o?u=$1&p=$2'"],
            ),
        ],
        &[],
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;

    let a = get(&c, addr, "foo.example:8080", "/tohttps/x?q=1", &[]).await;
    assert_eq!(a.status, 302);
    assert_eq!(a.headers["location"], "https://foo.example/tohttps/x?q=1");
    assert_eq!(a.body, "Found");
    assert!(a.headers.get("content-type").is_none());

    let post = raw(
        addr,
        b"POST /tohttps/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 307"), "{post}");
    assert!(
        post.to_ascii_lowercase()
            .contains("location: https://h/tohttps/x\r\n"),
        "{post}"
    );

    let a = get(&c, addr, "h.example", "/perm/y", &[]).await;
    assert_eq!(a.status, 301);
    assert_eq!(a.headers["location"], "https://h.example:8443/perm/y");

    let a = get(&c, addr, "127.0.0.1:18080", "/rregex/a/b?c=d", &[]).await;
    assert_eq!(a.status, 302);
    assert_eq!(
        a.headers["location"],
        "http://new.example/o?u=http://127.0.0.1:18080&p=a/b?c=d"
    );
}

#[tokio::test]
async fn headers_middleware_sets_request_response_cors_and_security_headers() {
    let spec = r#"headers:
  customRequestHeaders:
    X-Script-Name: test
    User-Agent: ""
  customResponseHeaders:
    X-Custom-Response: "yes"
    X-Body-Length: ""
  accessControlAllowMethods: [GET, OPTIONS, PUT]
  accessControlAllowHeaders: [X-Foo]
  accessControlAllowOriginList: ["https://a.example"]
  accessControlMaxAge: 100
  addVaryHeader: true
  frameDeny: true
  contentTypeNosniff: true
  stsSeconds: 31536000
  forceSTSHeader: true"#;
    let (f, _b) = proxy(&[("/hdr", &[spec])], &[]).await;
    let c = client();
    let addr = f.sluice.http_addr;

    let a = get(
        &c,
        addr,
        "h",
        "/hdr/x",
        &[
            ("origin", "https://a.example"),
            ("accept", "application/json"),
            ("user-agent", "test-agent"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let report: serde_json::Value = serde_json::from_str(&a.body).expect("whoami JSON");
    assert_eq!(header_values(&report, "x-script-name"), ["test"]);
    assert!(header_values(&report, "user-agent").is_empty(), "{report}");
    assert_eq!(a.headers["x-custom-response"], "yes");
    assert!(a.headers.get("x-body-length").is_none());
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://a.example"
    );
    assert_eq!(a.headers["vary"], "Origin");
    assert_eq!(a.headers["x-frame-options"], "DENY");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["strict-transport-security"], "max-age=31536000");

    // A preflight is answered by sluice itself, without security headers.
    let preflight = raw(
        addr,
        b"OPTIONS /hdr/x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let lower = preflight.to_ascii_lowercase();
    assert!(preflight.starts_with("HTTP/1.1 200"), "{preflight}");
    assert!(
        lower.contains("access-control-allow-origin: https://a.example\r\n"),
        "{preflight}"
    );
    assert!(
        lower.contains("access-control-allow-methods: get,options,put\r\n"),
        "{preflight}"
    );
    assert!(
        lower.contains("access-control-allow-headers: x-foo\r\n"),
        "{preflight}"
    );
    assert!(
        lower.contains("access-control-max-age: 100\r\n"),
        "{preflight}"
    );
    assert!(lower.contains("content-length: 0\r\n"), "{preflight}");
    assert!(!lower.contains("strict-transport-security"), "{preflight}");
    assert!(
        !lower.contains("hostname:"),
        "backend answered: {preflight}"
    );
}

/// A backend that answers every request with `response` (raw bytes) and closes.
async fn fixed_backend(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut stream).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// A backend that answers one request with a chunked stream of `content_type`,
/// writing each event it is handed as one chunk.
async fn event_backend(
    content_type: &'static str,
) -> (SocketAddr, mpsc::UnboundedSender<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        read_head(&mut stream).await;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        while let Some(event) = rx.recv().await {
            let chunk = format!("{:x}\r\n{event}\r\n", event.len());
            let _ = stream.write_all(chunk.as_bytes()).await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let _ = stream.shutdown().await;
    });
    (addr, tx)
}

async fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = GzipDecoder::new(data).read_to_end(&mut out).await;
    out
}

#[tokio::test]
async fn content_type_sniffs_untyped_bodies() {
    let untyped = fixed_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 25\r\nConnection: close\r\n\r\n<html><body>hi</body></ht",
    )
    .await;
    let (f, _b) = proxy(
        &[],
        &[
            ("/sniff", "untyped", untyped, &["contentType: {}"]),
            ("/nosniff", "untyped", untyped, &[]),
        ],
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;
    let a = get(&c, addr, "h", "/sniff", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(a.body, "<html><body>hi</body></ht");
    let a = get(&c, addr, "h", "/nosniff", &[]).await;
    assert!(a.headers.get("content-type").is_none(), "{:?}", a.headers);
}

#[tokio::test]
async fn compress_negotiates_and_streams() {
    let (f, _b) = proxy(&[("/z", &["compress: {}"])], &[]).await;
    let c = client();
    let addr = f.sluice.http_addr;

    // whoami's ?size=N has a Content-Length: decided from it.
    let raw_get = |path: &str, ae: &str| {
        let req = http::Request::get(format!("http://{addr}{path}"))
            .header("host", "h")
            .header("accept-encoding", ae)
            .body(Full::new(Bytes::new()))
            .expect("request");
        c.request(req)
    };
    let resp = raw_get("/z/big?size=5000", "br;q=1, gzip;q=0.5")
        .await
        .expect("response");
    assert_eq!(resp.headers()["content-encoding"], "br");
    assert_eq!(resp.headers()["vary"], "Accept-Encoding");
    assert!(resp.headers().get("content-length").is_none());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(bytes.len() < 1000, "{}", bytes.len());
    let mut plain = Vec::new();
    BrotliDecoder::new(&bytes[..])
        .read_to_end(&mut plain)
        .await
        .expect("brotli");
    assert_eq!(plain.len(), 5000);
    assert!(plain.starts_with(b"0123456789abcdef"));

    let resp = raw_get("/z/small?size=100", "gzip")
        .await
        .expect("response");
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.headers()["vary"], "Accept-Encoding");
    assert_eq!(resp.headers()["content-length"], "100");

    let a = get(&c, addr, "h", "/z/big?size=5000", &[]).await;
    assert!(a.headers.get("content-encoding").is_none());
    assert!(a.headers.get("vary").is_none());
    assert_eq!(a.body.len(), 5000);
}

#[tokio::test]
async fn event_streams_are_never_compressed_and_arrive_event_by_event() {
    let (events, tx) = event_backend("text/event-stream").await;
    let (f, _b) = proxy(&[], &[("/events", "events", events, &["compress: {}"])]).await;
    let addr = f.sluice.http_addr;
    let req = http::Request::get(format!("http://{addr}/events"))
        .header("host", "h")
        .header("accept-encoding", "gzip, br, zstd")
        .body(Full::new(Bytes::new()))
        .expect("request");
    tx.send("data: one\n\n").expect("backend alive");
    let resp = client().request(req).await.expect("response");
    assert!(resp.headers().get("content-encoding").is_none());
    let mut body = resp.into_body();
    let mut received = Vec::new();
    let mut expected = String::new();
    for (i, event) in ["data: one\n\n", "data: two\n\n"].into_iter().enumerate() {
        if i > 0 {
            tx.send(event).expect("backend alive");
        }
        expected.push_str(event);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while received != expected.as_bytes() {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .unwrap_or_else(|_| panic!("event {i} was held back"))
                .expect("stream open")
                .expect("frame");
            if let Some(data) = frame.data_ref() {
                received.extend_from_slice(data);
            }
        }
    }
}

#[tokio::test]
async fn compressed_streams_are_not_delayed() {
    let (events, tx) = event_backend("application/x-ndjson").await;
    let (f, _b) = proxy(&[], &[("/events", "events", events, &["compress: {}"])]).await;
    let addr = f.sluice.http_addr;
    let req = http::Request::get(format!("http://{addr}/events"))
        .header("host", "h")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .expect("request");
    tx.send("data: one\n\n").expect("backend alive");
    let resp = client().request(req).await.expect("response");
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut body = resp.into_body();
    let mut received = Vec::new();
    let mut expected = String::new();
    for (i, event) in ["data: one\n\n", "data: two\n\n", "data: three\n\n"]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            tx.send(event).expect("backend alive");
        }
        expected.push_str(event);
        // The event must arrive (decodable) while the backend sends nothing more.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .unwrap_or_else(|_| panic!("event {i} was held back"))
                .expect("stream open")
                .expect("frame");
            if let Some(data) = frame.data_ref() {
                received.extend_from_slice(data);
            }
            if String::from_utf8_lossy(&gunzip(&received).await) == expected {
                break;
            }
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("frame").data_ref() {
            received.extend_from_slice(data);
        }
    }
    assert_eq!(gunzip(&received).await, expected.as_bytes());
}

#[tokio::test]
async fn invalid_definitions_of_these_middlewares_fail_closed() {
    let (f, _b) = proxy(
        &[
            (
                "/badregex",
                &["replacePathRegex:\n  regex: '('\n  replacement: /x"],
            ),
            (
                "/badheader",
                &["headers:\n  customRequestHeaders:\n    \"Bad Name\": x"],
            ),
            ("/noscheme", &["redirectScheme:\n  permanent: true"]),
            ("/badcompress", &["compress:\n  encodings: [deflate]"]),
            ("/fine", &["addPrefix:\n  prefix: /ok"]),
        ],
        &[],
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;
    for path in ["/badregex", "/badheader", "/noscheme", "/badcompress"] {
        let a = get(&c, addr, "h", path, &[]).await;
        assert_eq!(a.status, 500, "{path}: {}", a.body);
        assert!(!a.body.contains("Hostname"), "{path}: {}", a.body);
    }
    assert_eq!(get(&c, addr, "h", "/fine", &[]).await.status, 200);
    let errors = api_errors(f.sluice.admin_addr).await;
    let invalid = errors
        .iter()
        .filter(|e| e["kind"] == "invalid_middleware")
        .count();
    assert_eq!(invalid, 4, "{errors:?}");
}
