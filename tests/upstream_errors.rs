//! Backend failures through a real sluice: refused connections (502), slow
//! backends (504), backends that do not speak HTTP (502), and pooled reuse.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP server that answers every connection with bytes that are not HTTP.
async fn garbage_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n")
                    .await;
            });
        }
    });
    addr
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn backend_failures_map_to_502_and_504() {
    let slow = whoami("slow").await;
    let garbage = garbage_backend().await;
    let closed = closed_port().await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            service("slow", &[slow.addr]),
            service("garbage", &[garbage]),
            service("closed", &[closed]),
            ingress(
                "app",
                &[
                    ("", "/slow", "Prefix", "slow"),
                    ("", "/garbage", "Prefix", "garbage"),
                    ("", "/closed", "Prefix", "closed"),
                ],
            ),
        ]
        .join("---\n"),
    );
    let mut s = settings(&m.path());
    s.pool.response_header_timeout = Duration::from_millis(300);
    let sluice = start(s).await;
    let c = client();
    let refused = get(&c, sluice.http_addr, "a", "/closed", &[]).await;
    assert_eq!(refused.status, 502);
    assert!(refused.body.contains("bad gateway"), "{}", refused.body);
    let timeout = get(&c, sluice.http_addr, "a", "/slow?wait=2s", &[]).await;
    assert_eq!(timeout.status, 504);
    assert!(timeout.body.contains("gateway timeout"), "{}", timeout.body);
    assert_eq!(
        get(&c, sluice.http_addr, "a", "/garbage", &[]).await.status,
        502
    );
    // And a fast request on the same backend is fine.
    assert_eq!(
        get(&c, sluice.http_addr, "a", "/slow", &[]).await.status,
        200
    );
    let metrics = get(&c, sluice.admin_addr, "admin", "/metrics", &[])
        .await
        .body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_requests_total{") && l.contains("code=\"502\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_requests_total{") && l.contains("code=\"504\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    for _ in 0..50 {
        assert_eq!(get(&c, sluice.http_addr, "a", "/", &[]).await.status, 200);
    }
    let metrics = get(&c, sluice.admin_addr, "admin", "/metrics", &[])
        .await
        .body;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    let opened = value("sluice_upstream_connections_opened_total");
    let requests = value("sluice_upstream_requests_total");
    assert_eq!(requests, 50.0);
    assert!(
        opened <= 2.0,
        "sequential requests reuse one pooled connection (opened {opened})"
    );
}
