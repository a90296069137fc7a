//! A real `redis-server` for the tests (Debian's package; `.ci/run`
//! installs it): started on a free loopback port without persistence,
//! killed on drop. Without the binary a test fails, it does not skip.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::wait_for;

/// A `redis-server` child process on loopback; killed on drop.
pub struct RedisServer {
    pub child: Option<Child>,
    pub port: u16,
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl RedisServer {
    /// Starts a server on `port` (a free one if None), with `--requirepass` if given.
    pub async fn start(port: Option<u16>, password: Option<&str>) -> Self {
        let port = port.unwrap_or_else(free_port);
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string()]);
        if let Some(password) = password {
            cmd.args(["--requirepass", password]);
        }
        Self::spawn(cmd, port).await
    }

    /// Starts a TLS-only server with `cert`/`key` (PEM files); clients need no certificate.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(cert)
            .args(["--tls-auth-clients", "no"]);
        Self::spawn(cmd, port).await
    }

    async fn spawn(mut cmd: Command, port: u16) -> Self {
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: `apt-get install -y redis-server` \
                 (.ci/run does it); these tests need a real Redis"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let server = Self {
            child: Some(child),
            port,
        };
        let addr = server.addr();
        wait_for("redis-server to listen", || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A connection from the test itself (to look at the keys).
    pub async fn connection(&self, password: Option<&str>) -> redis::aio::MultiplexedConnection {
        let url = match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        };
        redis::Client::open(url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("test connection to redis")
    }

    pub async fn exists(&self, key: &str, password: Option<&str>) -> bool {
        let mut conn = self.connection(password).await;
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .expect("EXISTS")
            == 1
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
