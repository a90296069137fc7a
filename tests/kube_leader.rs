//! Leader election between two sluice processes on one host, as a new user
//! first meets it: two instances, no `POD_NAME`, one API server.
//!
//! No real cluster runs here: both instances are real `sluice::app::start`s
//! with `--kubeconfig` pointing at `support/kube_api.rs`, an HTTP server that
//! speaks the real list/watch protocol with real Kubernetes JSON, serves the
//! `coordination.k8s.io/v1` Lease with create/replace and resourceVersion
//! conflicts, and records every status write. The kube Client under test talks
//! to it exactly as it would to an API server.
//!
//! Each instance gets its Lease identity from `sluice::status::unique_identity`,
//! the function the command line calls once per process, with `POD_NAME`
//! removed from the environment, so both start from the same host name. Each
//! publishes its own address (`--publish-status-address`), so every status
//! write the fake records says which instance sent it.

#[path = "support/kube_api.rs"]
mod kube_api;
mod support;

use std::time::Duration;

use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::app::{Running, Source};
use sluice::status::{LeaseSettings, StatusSettings};
use sluice::watch::KubeSettings;

const PATIENCE: Duration = Duration::from_secs(10);

/// One instance's identity and the address it publishes.
#[derive(Clone)]
struct Instance {
    identity: String,
    address: &'static str,
}

/// Starts an instance the way `sluice --kubeconfig ... --publish-status-address
/// <address>` would, with the identity the command line builds.
async fn start(api: &FakeApi, dir: &tempfile::TempDir, me: &Instance) -> Running {
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..KubeSettings::default()
    });
    settings.status.publish = StatusSettings {
        publish_service: None,
        publish_addresses: vec![me.address.to_owned()],
        refresh: Duration::from_millis(200),
    };
    settings.status.lease = LeaseSettings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
        ..LeaseSettings::new("sluice".into(), "sluice-leader".into(), me.identity.clone())
    };
    let running = sluice::app::start(settings).await.expect("sluice starts");
    eventually("ready", || running.is_ready()).await;
    running
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"));
}

fn ingress(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "ingressClassName": "sluice",
            "rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}
            }]}}]
        }
    })
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get("Lease", "sluice", "sluice-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// The addresses of every status write to Ingress `apps/mine`, in order: one
/// entry per write, naming the instance that sent it.
fn status_writes(api: &FakeApi) -> Vec<String> {
    api.writes()
        .iter()
        .filter(|w| w.path.ends_with("/namespaces/apps/ingresses/mine/status"))
        .map(|w| {
            w.body["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["ip"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// The name part of an identity, `<name>_<16 hex digits>`.
fn name_of(identity: &str) -> &str {
    let (name, suffix) = identity
        .rsplit_once('_')
        .unwrap_or_else(|| panic!("no _ suffix in {identity:?}"));
    assert_eq!(suffix.len(), 16, "{identity}");
    assert!(suffix.bytes().all(|c| c.is_ascii_hexdigit()), "{identity}");
    name
}

/// Watches for `window`: the Lease stays with `leader`, and every status write
/// is `leader`'s.
async fn only_leader_acts(api: &FakeApi, leader: &Instance, window: Duration) {
    let until = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < until {
        assert_eq!(holder(api).as_deref(), Some(leader.identity.as_str()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances on one host without `POD_NAME`: exactly one holds the Lease
/// and only it writes Ingress status; when it stops, the other takes the Lease
/// over and writes.
///
/// A plain `#[test]` so `POD_NAME` is removed before any thread exists.
#[test]
fn two_instances_without_pod_name_elect_one_status_writer() {
    std::env::remove_var("POD_NAME");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(two_instances_one_writer());
}

async fn two_instances_one_writer() {
    let a = Instance {
        identity: sluice::status::unique_identity(),
        address: "192.0.2.1",
    };
    let b = Instance {
        identity: sluice::status::unique_identity(),
        address: "192.0.2.2",
    };
    // Same host, no POD_NAME: the same name, told apart by the suffix.
    assert_eq!(name_of(&a.identity), name_of(&b.identity));
    assert_ne!(a.identity, b.identity);
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        assert_eq!(name_of(&a.identity), host.trim());
    }

    let api = FakeApi::start_new().await;
    api.apply(ingress("mine"));
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let run_a = start(&api, &dir_a, &a).await;
    let run_b = start(&api, &dir_b, &b).await;

    eventually("a status write", || !status_writes(&api).is_empty()).await;
    let first = status_writes(&api)[0].clone();
    let (leader, follower, run_leader, run_follower) = if first == a.address {
        (a, b, run_a, run_b)
    } else {
        (b, a, run_b, run_a)
    };
    assert_eq!(first, leader.address, "{first}");
    assert_eq!(holder(&api).as_deref(), Some(leader.identity.as_str()));

    // Many renewals and status refreshes later: still one holder, one writer,
    // and a single write (nobody undoes the other's).
    only_leader_acts(&api, &leader, Duration::from_secs(3)).await;
    assert_eq!(status_writes(&api), [leader.address]);

    // The leader stops: the other instance takes the Lease over and writes.
    run_leader.stop();
    run_leader.wait().await;
    eventually("the other instance to hold the lease", || {
        holder(&api).as_deref() == Some(follower.identity.as_str())
    })
    .await;
    eventually("the new leader's status write", || {
        status_writes(&api).last().map(String::as_str) == Some(follower.address)
    })
    .await;
    only_leader_acts(&api, &follower, Duration::from_secs(1)).await;
    assert_eq!(status_writes(&api), [leader.address, follower.address]);
    drop(run_follower);
}
