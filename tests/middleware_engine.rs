//! The middleware engine through a real sluice: `router.middlewares` references,
//! fail-closed answers for references that cannot be built, cross-namespace
//! refusal, `chain` nesting, and recovery when the Middleware is fixed.
//! Real sockets, real whoami backends, manifests on disk.

mod support;

use support::*;

/// [`guarded_app`] with the guarded Ingress on `/guarded`.
async fn guarded(refs: &str, extra: &str, allow_cross: bool) -> (Fixture, Backend) {
    guarded_app("/guarded", refs, extra, allow_cross).await
}

fn middleware_errors(errors: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    errors
        .iter()
        .filter(|e| e["kind"] == "invalid_middleware")
        .collect()
}

#[tokio::test]
async fn a_missing_middleware_fails_closed_with_500_and_is_reported() {
    let (f, _b) = guarded("default-nope@kubernetescrd", "", false).await;
    let c = client();
    let addr = f.sluice.http_addr;
    let guarded = get(&c, addr, "x", "/guarded/a", &[]).await;
    assert_eq!(guarded.status, 500, "{}", guarded.body);
    // No fall-through to a broader route, no serving without the middleware.
    assert!(!guarded.body.contains("Hostname"), "{}", guarded.body);
    assert_eq!(get(&c, addr, "x", "/open", &[]).await.status, 200);
    let errors = api_errors(f.sluice.admin_addr).await;
    let mw = middleware_errors(&errors);
    assert_eq!(mw.len(), 1, "{errors:?}");
    assert_eq!(mw[0]["object"]["name"], "guarded");
    assert!(
        mw[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("default-nope@kubernetescrd")),
        "{mw:?}"
    );
}

#[tokio::test]
async fn an_empty_chain_passes_requests_through() {
    let extra = middleware("noop", "default", "chain:\n  middlewares: []");
    for refs in ["default-noop@kubernetescrd", "noop@kubernetescrd", "noop"] {
        let (f, _b) = guarded(refs, &extra, false).await;
        let answer = get(&client(), f.sluice.http_addr, "x", "/guarded/a", &[]).await;
        assert_eq!(answer.status, 200, "{refs}: {}", answer.body);
        assert!(answer.body.contains("GET /guarded/a"), "{}", answer.body);
        assert!(middleware_errors(&api_errors(f.sluice.admin_addr).await).is_empty());
    }
}

#[tokio::test]
async fn cross_namespace_references_need_the_flag() {
    let extra = middleware("noop", "other", "chain:\n  middlewares: []");
    let (refused, _b) = guarded("other-noop@kubernetescrd", &extra, false).await;
    let answer = get(&client(), refused.sluice.http_addr, "x", "/guarded", &[]).await;
    assert_eq!(answer.status, 500);
    let errors = api_errors(refused.sluice.admin_addr).await;
    let mw = middleware_errors(&errors);
    assert!(
        mw[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cross-namespace")),
        "{mw:?}"
    );

    let (allowed, _b2) = guarded("other-noop@kubernetescrd", &extra, true).await;
    let answer = get(&client(), allowed.sluice.http_addr, "x", "/guarded", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn invalid_definitions_fail_closed() {
    let cases = [
        // Another provider.
        (
            "noop@file",
            middleware("noop", "default", "chain:\n  middlewares: []"),
        ),
        // An unknown middleware type.
        (
            "default-odd@kubernetescrd",
            middleware("odd", "default", "teleport:\n  to: mars"),
        ),
        // Two sections in one object.
        (
            "default-two@kubernetescrd",
            middleware(
                "two",
                "default",
                "chain:\n  middlewares: []\naddPrefix:\n  prefix: /x",
            ),
        ),
        // A chain that names itself through another.
        (
            "default-a@kubernetescrd",
            [
                middleware("a", "default", "chain:\n  middlewares: [b]"),
                middleware(
                    "b",
                    "default",
                    "chain:\n  middlewares: [default-a@kubernetescrd]",
                ),
            ]
            .join(""),
        ),
        // A chain with a broken member.
        (
            "default-outer@kubernetescrd",
            middleware("outer", "default", "chain:\n  middlewares: [missing]"),
        ),
    ];
    for (refs, extra) in cases {
        let (f, _b) = guarded(refs, &extra, false).await;
        let answer = get(&client(), f.sluice.http_addr, "x", "/guarded", &[]).await;
        assert_eq!(answer.status, 500, "{refs}: {}", answer.body);
        assert_eq!(
            get(&client(), f.sluice.http_addr, "x", "/open", &[])
                .await
                .status,
            200
        );
        let errors = api_errors(f.sluice.admin_addr).await;
        assert_eq!(middleware_errors(&errors).len(), 1, "{refs}: {errors:?}");
    }
}

#[tokio::test]
async fn fixing_the_middleware_restores_the_route() {
    let (f, backend) = guarded("default-late@kubernetescrd", "", false).await;
    let c = client();
    let addr = f.sluice.http_addr;
    assert_eq!(get(&c, addr, "x", "/guarded", &[]).await.status, 500);
    f.manifests.write(
        "late.yaml",
        &middleware("late", "default", "chain:\n  middlewares: []"),
    );
    wait_for("the route to serve once the middleware exists", || async {
        get(&c, addr, "x", "/guarded", &[]).await.status == 200
    })
    .await;
    assert!(middleware_errors(&api_errors(f.sluice.admin_addr).await).is_empty());
    drop(backend);
}
