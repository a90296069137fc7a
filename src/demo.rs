//! `sluice demo`: bundled whoami backends plus the bundled `examples/` manifests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::RunArgs;

/// The demo backends: the addresses `examples/demo.yaml` points its EndpointSlices at.
const BACKENDS: [(&str, &str); 3] = [
    ("web-1", "127.0.0.1:18081"),
    ("web-2", "127.0.0.1:18082"),
    ("api", "127.0.0.1:18083"),
];

/// Where the bundled manifests are: `./examples` when run from the repository, else
/// the copy next to the sources this binary was built from.
fn examples_dir() -> PathBuf {
    let local = PathBuf::from("examples");
    if local.join("demo.yaml").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(mut args: RunArgs) -> Result<()> {
    let (stop_backends, stopped) = watch::channel(false);
    let mut backends = Vec::new();
    for (name, addr) in BACKENDS {
        let addr: SocketAddr = addr.parse().context("demo backend address")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot start demo backend {name} on {addr}"))?;
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        backends.push(tokio::spawn(sluice::whoami::serve(
            listener,
            name.to_owned(),
            shutdown,
        )));
    }
    if args.manifests.is_none() {
        args.manifests = Some(examples_dir());
    }
    let settings = args.settings()?;
    let traffic = traffic_target(&settings).filter(|_| traffic_wanted());
    print_instructions(&settings, traffic.is_some());
    let generator = traffic.map(|target| tokio::spawn(generate_traffic(target, stopped.clone())));
    let result = crate::serve_until_signal(settings).await;
    stop_backends.send_replace(true);
    if let Some(generator) = generator {
        // It stops at the first signal; this covers a start-up error.
        generator.abort();
        let _ = generator.await;
    }
    for backend in backends {
        let _ = backend.await;
    }
    result
}

/// `SLUICE_DEMO_TRAFFIC=0` (or `false`, `off`, `no`) turns the traffic generator off.
fn traffic_wanted() -> bool {
    match std::env::var("SLUICE_DEMO_TRAFFIC") {
        Ok(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        ),
        Err(_) => true,
    }
}

/// Where the generator sends its requests: sluice's own HTTP port. `None`
/// for an ephemeral port (its number is not known here).
fn traffic_target(settings: &sluice::app::Settings) -> Option<SocketAddr> {
    let addr = reachable(settings.http_addr);
    (addr.port() != 0).then_some(addr)
}

/// `addr`, with loopback in place of "every address".
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// What the generator sends, in turn: (Host, path, Basic credentials).
const TRAFFIC: [(&str, &str, Option<&str>); 8] = [
    ("demo.localhost", "/", None),
    ("demo.localhost", "/api/users", None),
    ("demo.localhost", "/", None),
    ("demo.localhost", "/admin/x", None), // 401: basicAuth
    ("shop.apps.localhost", "/cart", None),
    ("demo.localhost", "/api/users/42", None),
    ("demo.localhost", "/admin/x", Some("ZGVtbzpkZW1v")), // demo:demo
    ("shop.apps.localhost", "/no/such/page", None),
];

/// About 5 requests a second to the demo routes through sluice, so the
/// dashboard's live figures move. Failures are ignored; stops on Ctrl-C or
/// SIGTERM (before sluice drains) or when the backends stop.
async fn generate_traffic(target: SocketAddr, mut stopped: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    // Let sluice bind its ports (and install its own signal handlers) first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (host, path, credentials) in TRAFFIC.iter().cycle() {
        tokio::select! {
            _ = every.tick() => {}
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = stopped.wait_for(|s| *s) => return,
        }
        let mut request = http::Request::get(format!("http://{target}{path}"))
            .header(http::header::HOST, *host)
            .header(http::header::USER_AGENT, "sluice-demo-traffic");
        if let Some(credentials) = credentials {
            request = request.header(http::header::AUTHORIZATION, format!("Basic {credentials}"));
        }
        let Ok(request) = request.body(Empty::new()) else {
            continue;
        };
        let send = async {
            if let Ok(response) = client.request(request).await {
                // Read the body so the connection is kept alive.
                let _ = response.into_body().collect().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), send).await;
    }
}

fn print_instructions(settings: &sluice::app::Settings, traffic: bool) {
    let port = settings.http_addr.port();
    let tls_port = settings.https_addr.port();
    let admin = settings.admin_addr;
    let dashboard = format!("http://{}/dashboard/", reachable(admin));
    let manifests = match &settings.source {
        sluice::app::Source::Manifests(path) => path.display().to_string(),
        sluice::app::Source::Kube(_) => "the cluster".to_owned(),
    };
    let traffic = if traffic {
        "Background traffic: about 5 requests/s to the demo routes (some 401s), so the \
         dashboard's figures move; SLUICE_DEMO_TRAFFIC=0 turns it off.\n"
    } else {
        "Background traffic: off (SLUICE_DEMO_TRAFFIC=0, or an ephemeral HTTP port).\n"
    };
    println!(
        "\nsluice demo: serving {} on port {port}, with whoami backends on {}\n\n  \
         Dashboard:  {dashboard}\n\n\
         {traffic}\
         Try:\n  \
         curl -H 'Host: demo.localhost' http://127.0.0.1:{port}/            # Prefix / -> web (round-robin web-1, web-2)\n  \
         curl -H 'Host: demo.localhost' http://127.0.0.1:{port}/api/users   # Prefix /api -> api\n  \
         curl -H 'Host: DEMO.localhost:{port}' http://127.0.0.1:{port}/api   # hosts match case-insensitively, port ignored\n  \
         curl -H 'Host: shop.apps.localhost' http://127.0.0.1:{port}/       # wildcard *.apps.localhost -> web\n  \
         curl -H 'Host: a.b.apps.localhost' http://127.0.0.1:{port}/        # a wildcard matches one label only -> default backend\n  \
         curl -H 'Host: other.example' http://127.0.0.1:{port}/anything     # no rule -> default backend (api)\n  \
         curl -H 'Host: demo.localhost' -H 'Accept: application/json' http://127.0.0.1:{port}/\n  \
         curl -u demo:demo -H 'Host: demo.localhost' http://127.0.0.1:{port}/admin/x   # Traefik middlewares: basicAuth, stripPrefix, headers (401 without -u)\n  \
         curl -k --resolve demo.localhost:{tls_port}:127.0.0.1 https://demo.localhost:{tls_port}/   # HTTPS (generated default certificate)\n  \
         curl http://{admin}/api/overview                              # the dashboard's JSON API (also /api/routes, /api/match?host=..&path=..)\n  \
         curl http://{admin}/metrics\n\
         Edit the files in {} and watch the routes change. Ctrl-C stops everything.\n",
        manifests,
        BACKENDS.map(|(n, a)| format!("{a} ({n})")).join(", "),
        manifests,
    );
}
