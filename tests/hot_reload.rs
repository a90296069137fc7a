//! Hot reload through the real file provider: routes follow file edits and
//! endpoint changes while a concurrent client sees zero failed requests.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_drop_no_request() {
    let a = whoami("a").await;
    let b = whoami("b").await;
    let m = Manifests::new();
    m.write("web.yaml", &service("web", &[a.addr]));
    m.write(
        "ingress.yaml",
        &ingress("app", &[("r.test", "/", "Prefix", "web")]),
    );
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        loaders.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let answer = get(&c, addr, "r.test", "/", &[]).await;
                if answer.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed: {} {}", answer.status, answer.body);
                }
            }
        }));
    }
    let c = client();
    for i in 0..20 {
        match i % 4 {
            // Endpoint change: the pod moves to the other backend.
            0 => m.write("web.yaml", &service("web", &[b.addr])),
            1 => m.write("web.yaml", &service("web", &[a.addr, b.addr])),
            // Add and remove an unrelated Ingress.
            2 => m.write(
                "extra.yaml",
                &ingress("extra", &[(&format!("x{i}.test"), "/", "Prefix", "web")]),
            ),
            _ => m.write("web.yaml", &service("web", &[a.addr])),
        }
        if i % 4 == 2 {
            let host = format!("x{i}.test");
            wait_for("new Ingress serves", || async {
                get(&c, addr, &host, "/", &[]).await.status == 200
            })
            .await;
            m.remove("extra.yaml");
            wait_for("deleted Ingress is gone", || async {
                get(&c, addr, &host, "/", &[]).await.status == 404
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    // Edit a path: / becomes /v2 only.
    m.write(
        "ingress.yaml",
        &ingress(
            "app",
            &[
                ("r.test", "/", "Prefix", "web"),
                ("r.test", "/v2", "Exact", "web"),
            ],
        ),
    );
    wait_for("edited path serves", || async {
        get(&c, addr, "r.test", "/v2", &[]).await.status == 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.expect("loader");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during reloads",
        ok + failed
    );
    assert!(ok > 100, "the client kept sending ({ok} requests)");
}

#[tokio::test]
async fn endpoint_changes_are_followed() {
    let a = whoami("a").await;
    let b = whoami("b").await;
    let m = Manifests::new();
    m.write("web.yaml", &service("web", &[a.addr]));
    m.write(
        "ingress.yaml",
        &ingress("app", &[("", "/", "Prefix", "web")]),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    assert_eq!(
        whoami_json(&c, sluice.http_addr, "e.test", "/").await["name"],
        "a"
    );
    m.write("web.yaml", &service("web", &[b.addr]));
    wait_for("endpoint moves to b", || async {
        whoami_json(&c, sluice.http_addr, "e.test", "/").await["name"] == "b"
    })
    .await;
    // Only an EndpointSlice changed: the live backend was updated in place, the
    // routes were not recompiled.
    assert_counted(&c, sluice.admin_addr, 1, 1).await;
}

/// Asserts how many endpoint-only updates and full reloads (compiles)
/// sluice's `/metrics` counted.
async fn assert_counted(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    admin: std::net::SocketAddr,
    endpoint_updates: u32,
    reloads: u32,
) {
    let metrics = get(c, admin, "admin", "/metrics", &[]).await.body;
    for line in [
        format!("sluice_endpoint_updates_total {endpoint_updates}"),
        format!("sluice_config_reloads_total {reloads}"),
    ] {
        assert!(metrics.contains(&line), "want {line:?}: {metrics}");
    }
}

/// Pod churn between and after config changes: every endpoint-only update
/// (which patches the last compile's service index forward, and marks the
/// Services it refreshed for the next compile) lands on the right Service
/// and leaves the other alone, before and after a config change.
#[tokio::test]
async fn endpoint_changes_are_followed_across_config_changes() {
    let pods = [
        whoami("a").await,
        whoami("b").await,
        whoami("c").await,
        whoami("d").await,
    ];
    let m = Manifests::new();
    m.write("web.yaml", &service("web", &[pods[0].addr]));
    m.write("api.yaml", &service("api", &[pods[3].addr]));
    m.write(
        "ingress.yaml",
        &ingress(
            "app",
            &[
                ("w.test", "/", "Prefix", "web"),
                ("a.test", "/", "Prefix", "api"),
            ],
        ),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let name = |host: &'static str| {
        let c = c.clone();
        async move { whoami_json(&c, sluice.http_addr, host, "/").await["name"].clone() }
    };
    // web's pod moves; web follows it, api is left alone.
    let move_web = |pod: usize, want: &'static str| {
        let (m, name, addr) = (&m, &name, pods[pod].addr);
        async move {
            m.write("web.yaml", &service("web", &[addr]));
            wait_for("web follows its pod", || async {
                name("w.test").await == want
            })
            .await;
            assert_eq!(name("a.test").await, "d", "api is left alone");
        }
    };
    assert_eq!(name("w.test").await, "a");
    // a -> b -> c, then a config change, then c -> a -> b.
    for (pod, want) in [(1, "b"), (2, "c")] {
        move_web(pod, want).await;
    }
    m.write(
        "ingress.yaml",
        &ingress(
            "app",
            &[
                ("w.test", "/", "Prefix", "web"),
                ("a.test", "/", "Prefix", "api"),
                ("n.test", "/", "Prefix", "api"),
            ],
        ),
    );
    wait_for("the new host serves", || async {
        get(&c, sluice.http_addr, "n.test", "/", &[]).await.status == 200
    })
    .await;
    assert_eq!(name("n.test").await, "d");
    for (pod, want) in [(0, "a"), (1, "b")] {
        move_web(pod, want).await;
    }
    // api's pod moves too, on the index patched by the updates before.
    m.write("api.yaml", &service("api", &[pods[2].addr]));
    wait_for("api follows its pod", || async {
        name("a.test").await == "c"
    })
    .await;
    assert_eq!(name("w.test").await, "b");
    // Five endpoint-only updates, two compiles.
    assert_counted(&c, sluice.admin_addr, 5, 2).await;
}

#[tokio::test]
async fn broken_file_keeps_the_last_good_routes() {
    let a = whoami("a").await;
    let m = Manifests::new();
    m.write("web.yaml", &service("web", &[a.addr]));
    m.write(
        "ingress.yaml",
        &ingress("app", &[("k.test", "/", "Prefix", "web")]),
    );
    m.write(
        "other.yaml",
        &ingress("other", &[("o.test", "/", "Prefix", "web")]),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    assert_eq!(
        get(&c, sluice.http_addr, "k.test", "/", &[]).await.status,
        200
    );
    // A typo: the YAML no longer parses.
    m.write(
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app\nspec: [",
    );
    wait_for("the parse error is reported", || async {
        get(&c, sluice.admin_addr, "admin", "/api/errors", &[])
            .await
            .body
            .contains("parse_error")
    })
    .await;
    let errors = get(&c, sluice.admin_addr, "admin", "/api/errors", &[])
        .await
        .body;
    assert!(
        errors.contains("ingress.yaml"),
        "the file is named: {errors}"
    );
    assert_eq!(
        get(&c, sluice.http_addr, "k.test", "/", &[]).await.status,
        200,
        "last good route kept"
    );
    assert_eq!(
        get(&c, sluice.http_addr, "o.test", "/", &[]).await.status,
        200,
        "other files unaffected"
    );
    let metrics = get(&c, sluice.admin_addr, "admin", "/metrics", &[])
        .await
        .body;
    assert!(
        metrics.contains("sluice_config_rejected_objects{kind=\"parse_error\"} 1"),
        "{metrics}"
    );
    // Fixing the file applies the fix.
    m.write(
        "ingress.yaml",
        &ingress("app", &[("k2.test", "/", "Prefix", "web")]),
    );
    wait_for("the fix applies", || async {
        get(&c, sluice.http_addr, "k2.test", "/", &[]).await.status == 200
    })
    .await;
    assert_eq!(
        get(&c, sluice.http_addr, "k.test", "/", &[]).await.status,
        404
    );
}
