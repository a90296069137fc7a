//! Traefik's Service annotations through a real sluice: sticky sessions by
//! cookie (pinning, fallback when the pinned endpoint goes away, attributes)
//! and `service.passhostheader`. Real sockets, real whoami backends.

mod support;

use std::net::SocketAddr;

use support::*;

/// Service `web` with `annotations` and one EndpointSlice per backend.
fn annotated_service(annotations: &[(&str, &str)], backends: &[SocketAddr]) -> String {
    let mut meta = String::from("  name: web\n");
    if !annotations.is_empty() {
        meta.push_str("  annotations:\n");
        for (k, v) in annotations {
            meta.push_str(&format!("    {k}: {}\n", serde_json::Value::from(*v)));
        }
    }
    service("web", backends).replacen("  name: web\n", &meta, 1)
}

fn hostname(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .unwrap_or_default()
        .to_owned()
}

const STICKY: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie";

#[tokio::test]
async fn sticky_cookie_pins_a_client_and_falls_back_when_its_endpoint_goes() {
    let a = whoami("a").await;
    let b = whoami("b").await;
    let m = Manifests::new();
    let annotations = [
        (STICKY, "true"),
        (
            "traefik.ingress.kubernetes.io/service.sticky.cookie.name",
            "pin",
        ),
        (
            "traefik.ingress.kubernetes.io/service.sticky.cookie.httponly",
            "true",
        ),
        (
            "traefik.ingress.kubernetes.io/service.sticky.cookie.samesite",
            "lax",
        ),
    ];
    m.write(
        "svc.yaml",
        &annotated_service(&annotations, &[a.addr, b.addr]),
    );
    m.write("ing.yaml", &ingress("app", &[("", "/", "Prefix", "web")]));
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let addr = sluice.http_addr;

    let first = get(&c, addr, "x", "/", &[]).await;
    assert_eq!(first.status, 200);
    let set = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a sticky cookie on the first answer")
        .to_owned();
    assert!(set.starts_with("pin="), "{set}");
    assert!(
        set.contains("; Path=/") && set.contains("; HttpOnly") && set.contains("; SameSite=Lax"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap_or_default().to_owned();
    let pinned = hostname(&first.body);

    for _ in 0..10 {
        let again = get(
            &c,
            addr,
            "x",
            "/",
            &[("cookie", &format!("other=1; {cookie}"))],
        )
        .await;
        assert_eq!(
            hostname(&again.body),
            pinned,
            "the cookie pins the endpoint"
        );
        assert!(
            again.headers.get("set-cookie").is_none(),
            "no new cookie while pinned"
        );
    }
    // Without the cookie, requests still spread.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(hostname(&get(&c, addr, "x", "/", &[]).await.body));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // The pinned endpoint leaves: the client moves to the other one and gets a new cookie.
    let remaining = if pinned == "a" { b.addr } else { a.addr };
    m.write("svc.yaml", &annotated_service(&annotations, &[remaining]));
    let other = if pinned == "a" { "b" } else { "a" };
    wait_for("the endpoint change", || async {
        hostname(&get(&c, addr, "x", "/", &[]).await.body) == other
            && hostname(&get(&c, addr, "x", "/", &[]).await.body) == other
    })
    .await;
    let moved = get(&c, addr, "x", "/", &[("cookie", &cookie)]).await;
    assert_eq!(moved.status, 200);
    assert_eq!(hostname(&moved.body), other);
    let renewed = moved
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a new cookie after the fallback");
    assert_ne!(renewed.split(';').next(), Some(cookie.as_str()));
}

#[tokio::test]
async fn pass_host_header_false_sends_the_endpoint_address() {
    let a = whoami("a").await;
    let m = Manifests::new();
    m.write(
        "svc.yaml",
        &annotated_service(
            &[(
                "traefik.ingress.kubernetes.io/service.passhostheader",
                "false",
            )],
            &[a.addr],
        ),
    );
    m.write("ing.yaml", &ingress("app", &[("", "/", "Prefix", "web")]));
    let sluice = start(settings(&m.path())).await;
    let answer = get(&client(), sluice.http_addr, "example.com", "/", &[]).await;
    assert!(
        answer.body.contains(&format!("Host: {}", a.addr)),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("X-Forwarded-Host: example.com"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn bad_service_annotations_are_reported_and_the_route_keeps_working() {
    let a = whoami("a").await;
    let m = Manifests::new();
    m.write(
        "svc.yaml",
        &annotated_service(
            &[
                (STICKY, "maybe"),
                (
                    "traefik.ingress.kubernetes.io/service.passhostheader",
                    "sometimes",
                ),
            ],
            &[a.addr],
        ),
    );
    m.write("ing.yaml", &ingress("app", &[("", "/", "Prefix", "web")]));
    let sluice = start(settings(&m.path())).await;
    let answer = get(&client(), sluice.http_addr, "example.com", "/", &[]).await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers.get("set-cookie").is_none());
    assert!(answer.body.contains("Host: example.com"), "{}", answer.body);
    let errors = api_errors(sluice.admin_addr).await;
    let bad: Vec<_> = errors
        .iter()
        .filter(|e| e["kind"] == "invalid_annotation" && e["object"]["kind"] == "Service")
        .collect();
    assert_eq!(bad.len(), 2, "{errors:?}");
}
