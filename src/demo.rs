//! `sluice demo`: bundled whoami backends plus the bundled `examples/` manifests.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
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
    print_instructions(&settings);
    let result = crate::serve_until_signal(settings).await;
    stop_backends.send_replace(true);
    for backend in backends {
        let _ = backend.await;
    }
    result
}

fn print_instructions(settings: &sluice::app::Settings) {
    let port = settings.http_addr.port();
    let tls_port = settings.https_addr.port();
    let admin = settings.admin_addr;
    let manifests = match &settings.source {
        sluice::app::Source::Manifests(path) => path.display().to_string(),
        sluice::app::Source::Kube(_) => "the cluster".to_owned(),
    };
    println!(
        "\nsluice demo: serving {} on port {port}, with whoami backends on {}\n\
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
         curl http://{admin}/api/routes\n  \
         curl http://{admin}/metrics\n\
         Edit the files in {} and watch the routes change. Ctrl-C stops everything.\n",
        manifests,
        BACKENDS.map(|(n, a)| format!("{a} ({n})")).join(", "),
        manifests,
    );
}
