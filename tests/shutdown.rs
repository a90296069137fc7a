//! Process-level behaviour of the built binary: graceful shutdown on SIGTERM
//! completes an in-flight request and exits 0; SIGHUP does not kill; SIGUSR1
//! reopens the access log; no
//! `--manifests` exits with a clear message.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Starts the binary on port 0 and reads the bound address from its log.
fn spawn_sluice(manifests: &std::path::Path) -> (Child, SocketAddr, SocketAddr) {
    spawn_sluice_with(manifests, &[])
}

/// [`spawn_sluice`] with environment variables set for the child.
fn spawn_sluice_with(
    manifests: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(BIN)
        .envs(env.iter().copied())
        .args(["--manifests"])
        .arg(manifests)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sluice");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (http, admin) = loop {
        let line = lines
            .next()
            .expect("sluice logs its addresses")
            .expect("read log");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let (Some(h), Some(a)) = (
            v["fields"]["http_addr"].as_str(),
            v["fields"]["admin_addr"].as_str(),
        ) {
            break (
                h.parse().expect("http addr"),
                a.parse().expect("admin addr"),
            );
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, http, admin)
}

/// Kills the child if the test ends before it exited (a failed assertion must
/// not leave a sluice running).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let (child, http, admin) = spawn_sluice(&m.path());
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_ref().expect("child");
    let c = client();
    wait_for("ready", || async {
        get(&c, admin, "admin", "/readyz", &[]).await.status == 200
    })
    .await;
    signal(child, "HUP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        get(&c, http, "a", "/", &[]).await.status,
        200,
        "SIGHUP does not kill sluice"
    );

    let slow = tokio::spawn({
        let c = client();
        async move { get(&c, http, "a", "/?wait=1500ms", &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(child, "TERM");
    let answer = slow.await.expect("slow request task");
    assert_eq!(answer.status, 200, "the in-flight request completes");
    let mut child = guard.0.take().expect("child");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "no longer accepting"
    );
}

#[test]
fn without_manifests_it_exits_with_a_clear_message() {
    let out = Command::new(BIN)
        .args(["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .env_remove("SLUICE_MANIFESTS")
        .output()
        .expect("run sluice");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--manifests"), "{stderr}");
}

#[test]
fn flags_read_environment_variables() {
    let out = Command::new(BIN)
        .env("SLUICE_MANIFESTS", "/definitely/not/here")
        .args(["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .output()
        .expect("run sluice");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/definitely/not/here"),
        "SLUICE_MANIFESTS was read: {stderr}"
    );
}

/// logrotate's way: the file is renamed, SIGUSR1 sent, and the next lines go
/// to a new file at the old path.
#[tokio::test]
async fn sigusr1_reopens_the_access_log() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let (child, http, admin) =
        spawn_sluice_with(&m.path(), &[("SLUICE_ACCESS_LOG", log.as_os_str())]);
    let guard = KillOnDrop(Some(child));
    let child = guard.0.as_ref().expect("child");
    let c = client();
    wait_for("ready", || async {
        get(&c, admin, "admin", "/readyz", &[]).await.status == 200
    })
    .await;
    assert_eq!(get(&c, http, "a", "/before", &[]).await.status, 200);
    wait_for("the first line", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("/before"))
    })
    .await;
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    signal(child, "USR1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&c, http, "a", "/after", &[]).await.status, 200);
    wait_for("the line in the new file", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("/after"))
    })
    .await;
    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    assert!(old.contains("/before") && !old.contains("/after"), "{old}");
}
