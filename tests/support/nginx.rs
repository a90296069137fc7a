//! Support for the ingress-nginx annotation tests: one annotated Ingress in
//! front of a real whoami backend, requests sent to it, and the diagnostics
//! from the admin API.

use super::*;

/// The prefix of every ingress-nginx annotation.
pub const P: &str = "nginx.ingress.kubernetes.io/";

/// The ingress-nginx annotations `nginx` (names without the prefix) with
/// their full names.
pub fn prefixed(nginx: &[(&str, &str)]) -> Vec<(String, String)> {
    nginx
        .iter()
        .map(|(k, v)| (format!("{P}{k}"), (*v).to_owned()))
        .collect()
}

/// `pairs` borrowed, as the manifest builders and request helpers take them.
pub fn str_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// An Ingress `name` in `default` with `rules` (`(host, path, pathType,
/// service)`) carrying the ingress-nginx annotations `nginx` (names without
/// the prefix).
pub fn nginx_ingress(
    name: &str,
    nginx: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
) -> String {
    annotated_ingress(name, "default", &str_pairs(&prefixed(nginx)), rules)
}

/// A ConfigMap `namespace/name` with `data`.
pub fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n"
    );
    for (k, v) in data {
        out.push_str(&format!("  {k}: {}\n", serde_json::Value::from(*v)));
    }
    out
}

/// Starts sluice with one Service `web` and one Ingress `nginxed` with
/// `rules` (`(host, path, pathType, service)`) carrying the ingress-nginx
/// annotations `nginx` (names without the prefix) and the `extra` ones (full
/// names), written with the documents `docs` (Secrets...), and waits until
/// `probe` on the first rule's host stops answering 404.
pub async fn nginx_app(
    nginx: &[(&str, &str)],
    extra: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
    docs: &str,
    probe: &str,
) -> Fixture {
    let mut keys = prefixed(nginx);
    keys.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let f = fixture(&["web"], &[], |_| {}).await;
    let ing = annotated_ingress("nginxed", "default", &str_pairs(&keys), rules);
    f.manifests.write("b.yaml", &format!("{docs}\n---\n{ing}"));
    wait_for_status(&f, "the annotated Ingress", rules[0].0, probe, |s| s != 404).await;
    f
}

/// Waits (as `what`, see [`wait_for`]) until GET `path` on `host` through
/// `f`'s HTTP listener answers a status that `ready` accepts.
pub async fn wait_for_status(
    f: &Fixture,
    what: &str,
    host: &str,
    path: &str,
    ready: impl Fn(u16) -> bool,
) {
    let c = client();
    let addr = f.sluice.http_addr;
    let ready = &ready;
    wait_for(what, || {
        let c = c.clone();
        async move { ready(get(&c, addr, host, path, &[]).await.status) }
    })
    .await;
}

/// Sends `method path` to `host` through `f`'s HTTP listener, with `headers`
/// and `body`, on a new client; the whole answer.
pub async fn send(
    f: &Fixture,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", f.sluice.http_addr))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let (head, body) = client().request(req).await.expect("response").into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: head.status.as_u16(),
        headers: head.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The `/api/errors` diagnostics as text.
pub async fn diagnostics(f: &Fixture) -> String {
    get(
        &client(),
        f.sluice.admin_addr,
        "localhost",
        "/api/errors",
        &[],
    )
    .await
    .body
}

/// Asserts the `/api/errors` diagnostics mention each of `needles`; the
/// diagnostics.
pub async fn assert_reported(f: &Fixture, needles: &[&str]) -> String {
    let d = diagnostics(f).await;
    for needle in needles {
        assert!(d.contains(needle), "no {needle:?} in the diagnostics: {d}");
    }
    d
}

/// Asserts GET `/` on `host` answers 500 (the route failed closed) and the
/// diagnostics mention each of `needles`.
pub async fn assert_fails_closed(f: &Fixture, host: &str, needles: &[&str]) {
    let status = get(&client(), f.sluice.http_addr, host, "/", &[])
        .await
        .status;
    assert_eq!(status, 500, "GET {host}/ ({needles:?})");
    assert_reported(f, needles).await;
}
