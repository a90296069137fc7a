//! `chain` in Traefik's CRD form (`middlewares: [{name: a}, {name: b, namespace: x}]`)
//! through a real sluice, beside the string form; real whoami backends.

mod support;

use support::*;

/// [`guarded_app`] with the guarded Ingress on `/api`.
async fn guarded(refs: &str, extra: &str, allow_cross: bool) -> (Fixture, Backend) {
    guarded_app("/api", refs, extra, allow_cross).await
}

fn members() -> String {
    [
        middleware("strip", "default", "stripPrefix:\n  prefixes: [/api]"),
        middleware(
            "tag",
            "default",
            "headers:\n  customRequestHeaders:\n    X-Chain: crd",
        ),
    ]
    .join("")
}

fn middleware_errors(errors: &[serde_json::Value]) -> Vec<serde_json::Value> {
    errors
        .iter()
        .filter(|e| e["kind"] == "invalid_middleware")
        .cloned()
        .collect()
}

/// What the backend saw for GET /api/users through the chain `both`.
async fn through_chain(chain_spec: &str) -> (u16, String, Vec<serde_json::Value>) {
    let extra = members() + &middleware("both", "default", chain_spec);
    let (f, _b) = guarded("default-both@kubernetescrd", &extra, false).await;
    let answer = get(&client(), f.sluice.http_addr, "x", "/api/users", &[]).await;
    let errors = middleware_errors(&api_errors(f.sluice.admin_addr).await);
    (answer.status, answer.body, errors)
}

#[tokio::test]
async fn the_object_form_runs_its_members_in_order() {
    for spec in [
        // Namespace omitted: the chain's own.
        "chain:\n  middlewares:\n  - name: strip\n  - name: tag",
        // Namespace written out, the same as the chain's.
        "chain:\n  middlewares:\n  - name: strip\n    namespace: default\n  - name: tag\n    namespace: default",
        // Both forms mixed.
        "chain:\n  middlewares:\n  - strip\n  - name: tag",
    ] {
        let (status, body, errors) = through_chain(spec).await;
        assert_eq!(status, 200, "{spec}: {body}");
        assert!(body.contains("GET /users"), "prefix not stripped: {body}");
        assert!(body.contains("X-Chain: crd"), "header not added: {body}");
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[tokio::test]
async fn the_string_form_still_works() {
    let (status, body, errors) =
        through_chain("chain:\n  middlewares: [strip, default-tag@kubernetescrd]").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GET /users"), "{body}");
    assert!(body.contains("X-Chain: crd"), "{body}");
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn a_missing_member_fails_closed_with_a_diagnostic() {
    for spec in [
        "chain:\n  middlewares:\n  - name: strip\n  - name: missing",
        "chain:\n  middlewares: [strip, missing]",
        // A malformed member is refused, not skipped.
        "chain:\n  middlewares:\n  - name: strip\n  - {nom: tag}",
    ] {
        let (status, body, errors) = through_chain(spec).await;
        assert_eq!(status, 500, "{spec}: {body}");
        assert!(!body.contains("Hostname"), "{body}");
        assert_eq!(errors.len(), 1, "{spec}: {errors:?}");
        assert_eq!(errors[0]["object"]["name"], "guarded");
    }
}

#[tokio::test]
async fn an_object_in_another_namespace_is_a_cross_namespace_reference() {
    let extra = [
        middleware(
            "tag",
            "other",
            "headers:\n  customRequestHeaders:\n    X-Chain: other",
        ),
        middleware(
            "both",
            "default",
            "chain:\n  middlewares:\n  - name: tag\n    namespace: other",
        ),
    ]
    .join("");
    let (refused, _b) = guarded("default-both@kubernetescrd", &extra, false).await;
    let answer = get(&client(), refused.sluice.http_addr, "x", "/api", &[]).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    let errors = middleware_errors(&api_errors(refused.sluice.admin_addr).await);
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cross-namespace")),
        "{errors:?}"
    );

    let (allowed, _b2) = guarded("default-both@kubernetescrd", &extra, true).await;
    let answer = get(&client(), allowed.sluice.http_addr, "x", "/api", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("X-Chain: other"), "{}", answer.body);
}
