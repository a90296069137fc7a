//! Access logs through a real sluice: real HTTP/1.1 (curl-like raw and hyper)
//! and HTTP/2 clients, a real whoami backend, and the log file read back as
//! written by the writer thread.

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use sluice::accesslog::{AccessLogSettings, Format, Target};
use support::*;

/// The lines of `path` once there are at least `n` (the writer flushes when
/// its queue runs dry).
async fn lines(path: &Path, n: usize) -> Vec<String> {
    let mut last = Vec::new();
    for _ in 0..60 {
        last = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if last.len() >= n {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} access-log lines in {}, got {last:?}",
        path.display()
    );
}

async fn start_logged(
    format: Format,
    statuses: &str,
) -> (Fixture, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let target = Target::Path(path.clone());
    let statuses = statuses.parse().expect("statuses");
    let rules = [
        ("app.test", "/", "Prefix", "web"),
        ("", "/h2", "Prefix", "web"),
    ];
    let f = fixture(&["web"], &rules, |s| {
        s.access_log = AccessLogSettings {
            target,
            format,
            headers: vec![
                http::HeaderName::from_static("x-request-id"),
                http::HeaderName::from_static("authorization"),
            ],
            statuses,
            min_duration: Duration::ZERO,
        };
    })
    .await;
    (f, path, dir)
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test]
async fn json_lines_describe_http1_and_http2_requests_with_traefiks_fields() {
    let (f, path, _dir) = start_logged(Format::Json, "").await;
    let req = b"GET /a/b?x=1 HTTP/1.1\r\nHost: app.test\r\nReferer: http://r.test/\r\nUser-Agent: tester/1\r\nX-Request-Id: abc-123\r\nAuthorization: Basic dXNlcjpwYXNz\r\nConnection: close\r\n\r\n";
    let answer = raw(f.sluice.http_addr, req, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body_len = answer.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    let first = json(&lines(&path, 1).await[0]);
    assert_eq!(first["RequestMethod"], "GET");
    assert_eq!(first["RequestPath"], "/a/b?x=1");
    assert_eq!(first["RequestProtocol"], "HTTP/1.1");
    assert_eq!(first["RequestHost"], "app.test");
    assert_eq!(first["RequestScheme"], "http");
    assert_eq!(first["DownstreamStatus"], 200);
    assert_eq!(first["OriginStatus"], 200);
    assert_eq!(first["DownstreamContentSize"], body_len as u64);
    assert_eq!(first["entryPointName"], "web");
    assert_eq!(first["IngressName"], "app");
    assert_eq!(first["IngressNamespace"], "default");
    assert_eq!(first["ServiceName"], "default/web");
    assert_eq!(
        first["ServiceURL"],
        format!("http://{}", f.backends[0].addr)
    );
    assert_eq!(first["ClientHost"], "127.0.0.1");
    assert_eq!(first["request_X-Request-Id"], "abc-123");
    assert_eq!(
        first["request_Authorization"], "REDACTED",
        "credentials are never written"
    );
    assert!(
        first.get("request_Referer").is_none(),
        "unnamed headers are dropped"
    );
    let duration = first["Duration"].as_u64().expect("Duration in ns");
    let origin = first["OriginDuration"]
        .as_u64()
        .expect("OriginDuration in ns");
    assert!(duration > 0 && origin <= duration, "{first}");
    assert_eq!(first["Overhead"].as_u64(), Some(duration - origin));
    assert!(first["RouterName"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(first["StartUTC"].as_str().is_some_and(|t| t.ends_with('Z')));

    // HTTP/2 (prior knowledge) goes through hyper: the same fields.
    let h2: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let uri = format!("http://{}/h2", f.sluice.http_addr);
    let resp = h2
        .request(http::Request::get(uri).body(Empty::new()).expect("req"))
        .await
        .expect("h2 response");
    assert_eq!(resp.status(), 200);
    let h2_body = resp.into_body().collect().await.expect("body").to_bytes();
    let second = json(&lines(&path, 2).await[1]);
    assert_eq!(second["RequestProtocol"], "HTTP/2.0");
    assert_eq!(second["RequestPath"], "/h2");
    assert_eq!(second["DownstreamStatus"], 200);
    assert_eq!(second["DownstreamContentSize"], h2_body.len() as u64);
    assert_eq!(
        second["ServiceURL"],
        format!("http://{}", f.backends[0].addr)
    );

    // No route: logged with its 404 and no router.
    let answer = raw(
        f.sluice.http_addr,
        b"GET /nowhere HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let third = json(&lines(&path, 3).await[2]);
    assert_eq!(third["DownstreamStatus"], 404);
    assert!(third.get("RouterName").is_none());
}

#[tokio::test]
async fn common_lines_follow_traefiks_clf_and_filters_apply() {
    let (f, path, _dir) = start_logged(Format::Common, "400-499").await;
    let c = client();
    let ok = get(&c, f.sluice.http_addr, "app.test", "/fine", &[]).await;
    assert_eq!(ok.status, 200);
    let missing = get(&c, f.sluice.http_addr, "nope.test", "/missing?q=1", &[]).await;
    assert_eq!(missing.status, 404);
    let lines = lines(&path, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lines_after = std::fs::read_to_string(&path).expect("log");
    assert_eq!(
        lines_after.lines().count(),
        1,
        "only the 404 passes the filter: {lines_after}"
    );
    let line = &lines[0];
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /missing\?q=1 HTTP/1\.1" 404 \d+ "-" "[^"]*" \d+ "-" "-" \d+ms$"#,
    )
    .expect("regex");
    assert!(re.is_match(line), "not Traefik's CLF: {line}");
}

#[tokio::test]
async fn sigusr1_reopens_the_file_for_logrotate() {
    let (f, path, dir) = start_logged(Format::Common, "").await;
    let c = client();
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/one", &[])
            .await
            .status,
        200
    );
    lines(&path, 1).await;
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    sluice::accesslog::request_reopen();
    // The writer notices the request on its next wake (at most ~200 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/two", &[])
            .await
            .status,
        200
    );
    let fresh = lines(&path, 1).await;
    assert!(fresh[0].contains("/two"), "{fresh:?}");
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    assert!(old.contains("/one") && !old.contains("/two"), "{old}");
}

/// A route behind basicAuth (the native engine's bridge, or hyper): the line
/// names the accepted user, and the bytes and backend of the response.
#[tokio::test]
async fn the_basic_auth_user_is_the_client_username() {
    let web = whoami("web").await;
    let m = Manifests::new();
    let auth = middlewares_annotation(&["default-auth@kubernetescrd"]);
    m.write(
        "a.yaml",
        &[
            service("web", &[web.addr]),
            middleware(
                "auth",
                "default",
                "basicAuth:\n  users: [\"alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\"]",
            ),
            annotated_ingress(
                "app",
                "default",
                &[(auth.0, auth.1.as_str())],
                &[("", "/", "Prefix", "web")],
            ),
        ]
        .join("---\n"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let mut s = settings(&m.path());
    s.access_log = AccessLogSettings {
        target: Target::Path(path.clone()),
        format: Format::Json,
        ..AccessLogSettings::default()
    };
    let sluice = start(s).await;
    let c = client();
    let denied = get(&c, sluice.http_addr, "a.test", "/private", &[]).await;
    assert_eq!(denied.status, 401);
    let basic = format!("Basic {}", "YWxpY2U6c2VjcmV0"); // alice:secret
    let ok = get(
        &c,
        sluice.http_addr,
        "a.test",
        "/private",
        &[("authorization", &basic)],
    )
    .await;
    assert_eq!(ok.status, 200);
    let lines = lines(&path, 2).await;
    let first = json(&lines[0]);
    assert_eq!(first["DownstreamStatus"], 401);
    assert_eq!(first["ClientUsername"], "-");
    let second = json(&lines[1]);
    assert_eq!(second["DownstreamStatus"], 200);
    assert_eq!(second["ClientUsername"], "alice");
    assert_eq!(second["DownstreamContentSize"], ok.body.len() as u64);
    assert_eq!(second["ServiceURL"], format!("http://{}", web.addr));
}
