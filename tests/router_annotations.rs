//! Traefik's `router.priority`, `router.pathmatcher` (Ingress) and
//! `service.nativelb` (Service) annotations through a real sluice: real
//! sockets, real whoami backends, manifests edited while it runs.

mod support;

use std::net::SocketAddr;

use support::*;

const PRIORITY: &str = "traefik.ingress.kubernetes.io/router.priority";
const PATH_MATCHER: &str = "traefik.ingress.kubernetes.io/router.pathmatcher";

/// The whoami name that answered (`Hostname: <name>` in its report), or the status.
async fn who(addr: SocketAddr, host: &str, path: &str) -> String {
    let answer = get(&client(), addr, host, path, &[]).await;
    if answer.status != 200 {
        return answer.status.to_string();
    }
    answer
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `host path` is answered by `want` (a whoami name or a status).
async fn wait_who(addr: SocketAddr, host: &str, path: &str, want: &str) {
    let what = format!("{host}{path} answered by {want}");
    wait_for(&what, || async { who(addr, host, path).await == want }).await;
}

/// Whether `/api/errors` lists an `invalid_annotation` naming `ingress`.
async fn reported(admin: SocketAddr, ingress: &str) -> bool {
    api_errors(admin).await.iter().any(|e| {
        let text = e.to_string();
        text.contains("invalid_annotation") && text.contains(ingress)
    })
}

#[tokio::test]
async fn priority_makes_the_shorter_prefix_win_and_back() {
    let api = whoami("api").await;
    let v1 = whoami("v1").await;
    let m = Manifests::new();
    m.write(
        "svc.yaml",
        &[service("api", &[api.addr]), service("v1", &[v1.addr])].join("---\n"),
    );
    let v1_rules = [("p.test", "/api/v1", "Prefix", "v1")];
    let api_rules = [("p.test", "/api", "Prefix", "api")];
    m.write("v1.yaml", &ingress("v1", &v1_rules));
    m.write(
        "api.yaml",
        &annotated_ingress("api", "default", &[(PRIORITY, "100")], &api_rules),
    );
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    wait_who(addr, "p.test", "/api/v1/users", "api").await;
    assert_eq!(who(addr, "p.test", "/api/v2").await, "api");

    // Without the priority, the Kubernetes order: the longest prefix wins.
    m.write("api.yaml", &ingress("api", &api_rules));
    wait_who(addr, "p.test", "/api/v1/users", "v1").await;
    assert_eq!(who(addr, "p.test", "/api/v2").await, "api");

    // And back.
    m.write(
        "api.yaml",
        &annotated_ingress("api", "default", &[(PRIORITY, "100")], &api_rules),
    );
    wait_who(addr, "p.test", "/api/v1/users", "api").await;

    // A higher priority on the longer prefix wins again.
    m.write(
        "v1.yaml",
        &annotated_ingress("v1", "default", &[(PRIORITY, "200")], &v1_rules),
    );
    wait_who(addr, "p.test", "/api/v1/users", "v1").await;

    // A bad value is reported; the routes keep working without a priority.
    m.write(
        "api.yaml",
        &annotated_ingress("api", "default", &[(PRIORITY, "high")], &api_rules),
    );
    m.write("v1.yaml", &ingress("v1", &v1_rules));
    let admin = sluice.admin_addr;
    wait_for("the bad priority is reported", || reported(admin, "api")).await;
    assert_eq!(who(addr, "p.test", "/api/v1/users").await, "v1");
    assert_eq!(who(addr, "p.test", "/api/x").await, "api");
}

#[tokio::test]
async fn path_regexp_routes_by_regex_and_refuses_a_bad_one() {
    let re = whoami("re").await;
    let root = whoami("root").await;
    let m = Manifests::new();
    m.write(
        "svc.yaml",
        &[service("re", &[re.addr]), service("root", &[root.addr])].join("---\n"),
    );
    let regexp = [(PATH_MATCHER, "PathRegexp")];
    let docs = [
        ingress("root", &[("r.test", "/", "Prefix", "root")]),
        annotated_ingress(
            "re",
            "default",
            &regexp,
            &[("r.test", "^/v[0-9]+/items", "ImplementationSpecific", "re")],
        ),
        annotated_ingress(
            "loose",
            "default",
            &regexp,
            &[("r.test", "/ids/[0-9]+$", "ImplementationSpecific", "re")],
        ),
        annotated_ingress(
            "broken",
            "default",
            &regexp,
            &[("r.test", "/broken/(", "ImplementationSpecific", "re")],
        ),
    ];
    m.write("ing.yaml", &docs.join("---\n"));
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    assert_eq!(who(addr, "r.test", "/v2/items/7").await, "re");
    assert_eq!(who(addr, "r.test", "/v12/items").await, "re");
    assert_eq!(who(addr, "r.test", "/vx/items").await, "root");
    assert_eq!(
        who(addr, "r.test", "/x/v2/items").await,
        "root",
        "anchored by ^"
    );
    // Not anchored unless the pattern says so: found anywhere in the path.
    assert_eq!(who(addr, "r.test", "/a/ids/42").await, "re");
    assert_eq!(who(addr, "r.test", "/a/ids/42/b").await, "root");
    // The invalid regex is left out (never a route that matches anything) and reported.
    assert_eq!(who(addr, "r.test", "/broken/(").await, "root");
    assert!(reported(sluice.admin_addr, "broken").await);
}

#[tokio::test]
async fn path_and_path_prefix_for_implementation_specific_paths() {
    let a = whoami("a").await;
    let m = Manifests::new();
    m.write("svc.yaml", &service("a", &[a.addr]));
    let docs = [
        annotated_ingress(
            "exact",
            "default",
            &[(PATH_MATCHER, "Path")],
            &[("e.test", "/only", "ImplementationSpecific", "a")],
        ),
        annotated_ingress(
            "prefix",
            "default",
            &[(PATH_MATCHER, "PathPrefix")],
            &[("p.test", "/only", "ImplementationSpecific", "a")],
        ),
        ingress(
            "default-matcher",
            &[("d.test", "/only", "ImplementationSpecific", "a")],
        ),
        annotated_ingress(
            "unknown",
            "default",
            &[(PATH_MATCHER, "Regex")],
            &[
                ("u.test", "/only", "ImplementationSpecific", "a"),
                ("u.test", "/kept", "Prefix", "a"),
            ],
        ),
    ];
    m.write("ing.yaml", &docs.join("---\n"));
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    assert_eq!(who(addr, "e.test", "/only").await, "a");
    assert_eq!(who(addr, "e.test", "/only/x").await, "404");
    for host in ["p.test", "d.test"] {
        assert_eq!(who(addr, host, "/only").await, "a", "{host}");
        assert_eq!(who(addr, host, "/only/x").await, "a", "{host}");
        assert_eq!(who(addr, host, "/onlyx").await, "404", "{host}");
    }
    // An unknown matcher leaves the ImplementationSpecific path out, reported.
    assert_eq!(who(addr, "u.test", "/only").await, "404");
    assert_eq!(who(addr, "u.test", "/kept").await, "a");
    assert!(reported(sluice.admin_addr, "unknown").await);
}

/// Service `name` with `service.nativelb: "true"`, the given clusterIP line
/// (`""`: none), Service port `port` and a targetPort that points elsewhere.
fn native_service(name: &str, cluster_ip: &str, port: u16, target: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n    \
         traefik.ingress.kubernetes.io/service.nativelb: \"true\"\nspec:\n{cluster_ip}  \
         ports:\n  - name: http\n    port: {port}\n    targetPort: {target}\n"
    )
}

/// A loopback address nothing listens on (bound, then closed).
fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// One Prefix rule of host `n.test` to Service `service` port `port`.
fn rule(path: &str, service: &str, port: u16) -> String {
    format!(
        "      - path: {path}\n        pathType: Prefix\n        backend:\n          service:\n            \
         name: {service}\n            port:\n              number: {port}\n"
    )
}

#[tokio::test]
async fn native_lb_sends_to_the_cluster_ip_and_service_port() {
    let backend = whoami("native").await;
    let port = backend.addr.port();
    // The pod IPs point at ports nothing listens on: they must not be used.
    let (dead, dead2) = (dead_addr(), dead_addr());
    let m = Manifests::new();
    let services = [
        native_service("native", "  clusterIP: 127.0.0.1\n", port, dead.port()),
        native_service("headless", "  clusterIP: None\n", port, port),
        // Not native: its endpoints decide.
        format!("---\n{}", service("plain", &[])),
    ];
    m.write("svc.yaml", &services.concat());
    let slices = |native: SocketAddr, plain: SocketAddr| {
        [
            endpoint_slice("native", "native-0", native, true),
            endpoint_slice("headless", "headless-0", backend.addr, true),
            endpoint_slice("plain", "plain-0", plain, true),
        ]
        .concat()
    };
    m.write("slices.yaml", &slices(dead, dead));
    let ingress = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\nspec:\n  \
         rules:\n  - host: n.test\n    http:\n      paths:\n{}{}{}",
        rule("/", "native", port),
        rule("/headless", "headless", port),
        rule("/plain", "plain", 80),
    );
    m.write("ing.yaml", &ingress);
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    assert_eq!(who(addr, "n.test", "/").await, "native");
    assert_eq!(who(addr, "n.test", "/plain").await, "502", "pod IP is dead");
    // A headless Service has no ClusterIP: 503, even though its endpoint is alive.
    assert_eq!(who(addr, "n.test", "/headless").await, "503");
    assert!(reported(sluice.admin_addr, "headless").await);

    // An endpoint-only change: the plain Service follows its slice, the native
    // one keeps its ClusterIP.
    m.write("slices.yaml", &slices(dead2, backend.addr));
    wait_who(addr, "n.test", "/plain", "native").await;
    assert_eq!(who(addr, "n.test", "/").await, "native");
}

/// ingress-nginx's `service-upstream: "true"` on the Ingress: the Services
/// of that Ingress are reached at their ClusterIP and port, while another
/// Ingress naming the same Service still uses its endpoints.
#[tokio::test]
async fn nginx_service_upstream_sends_one_ingress_to_the_cluster_ip() {
    let backend = whoami("clusterip").await;
    let port = backend.addr.port();
    let dead = dead_addr();
    let m = Manifests::new();
    m.write(
        "svc.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  clusterIP: 127.0.0.1\n  \
             ports:\n  - name: http\n    port: {port}\n    targetPort: {}\n{}",
            dead.port(),
            endpoint_slice("web", "web-0", dead, true)
        ),
    );
    let ingress = |name: &str, host: &str, value: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  \
             annotations:\n    nginx.ingress.kubernetes.io/service-upstream: \"{value}\"\nspec:\n  \
             rules:\n  - host: {host}\n    http:\n      paths:\n{}",
            rule("/", "web", port)
        )
    };
    m.write(
        "ing.yaml",
        &[
            ingress("up", "up.test", "true"),
            ingress("pods", "pods.test", "false"),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    assert_eq!(who(addr, "up.test", "/").await, "clusterip");
    assert_eq!(
        who(addr, "pods.test", "/").await,
        "502",
        "the pod IP is dead"
    );
}
