//! Support for the ingress-nginx annotation tests: one annotated Ingress in
//! front of a real whoami backend, and the diagnostics from the admin API.

use super::*;

/// The prefix of every ingress-nginx annotation.
pub const P: &str = "nginx.ingress.kubernetes.io/";

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
    let mut keys: Vec<(String, String)> = nginx
        .iter()
        .map(|(k, v)| (format!("{P}{k}"), (*v).to_owned()))
        .collect();
    keys.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let f = fixture(&["web"], &[], |_| {}).await;
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ing = annotated_ingress("nginxed", "default", &refs, rules);
    f.manifests.write("b.yaml", &format!("{docs}\n---\n{ing}"));
    let c = client();
    let addr = f.sluice.http_addr;
    let host = rules[0].0.to_owned();
    let probe = probe.to_owned();
    wait_for("the annotated Ingress", || {
        let (c, host, probe) = (c.clone(), host.clone(), probe.clone());
        async move { get(&c, addr, &host, &probe, &[]).await.status != 404 }
    })
    .await;
    f
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
