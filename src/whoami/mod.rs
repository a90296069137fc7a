//! The built-in echo backend, in the style of Traefik's `whoami`.
//!
//! It answers every request, whatever its method or path, with what it
//! received: its own name, the request line, the headers (in the order they
//! arrived) and the peer address. It is the upstream that tests, demos and
//! `sluice whoami` point the proxy at, so it is kept apart from the proxy code
//! and shares nothing with it.
//!
//! Query options make it useful as a test fixture:
//!
//! | option | effect |
//! |---|---|
//! | `?size=N` | answer with `N` bytes of the pattern `0123456789abcdef…`, streamed in chunks |
//! | `?echo=1` or path `/echo` | stream the request body back as the response body |
//! | `?status=NNN` | answer with that status (200–599) |
//! | `?wait=DURATION` | sleep first (`humantime` syntax: `500ms`, `2s`) |
//!
//! The reply is text by default and JSON when `Accept` contains
//! `application/json`. Unless it echoes, the backend reads and discards the
//! request body and reports its length in the `x-body-length` response header
//! (and as `body_length` in the JSON report).
//! A request with `Upgrade: websocket` becomes a WebSocket that echoes text and
//! binary messages until the client closes.
//!
//! One listener speaks HTTP/1.1 (keep-alive, upgrades) and HTTP/2 with prior
//! knowledge.

mod respond;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long open connections get to finish after shutdown before they are cut.
const GRACE: Duration = Duration::from_secs(5);

/// What a request handler knows about the connection it arrived on.
#[derive(Debug)]
struct Conn {
    /// The backend's name, reported as `Hostname`.
    name: Arc<str>,
    /// The client's address.
    remote: SocketAddr,
    /// The local address the connection was accepted on.
    local: SocketAddr,
    /// Turns true when the server shuts down; upgraded sockets watch it.
    shutdown: watch::Receiver<bool>,
}

/// Binds `addr` and serves the echo backend on it until `shutdown` resolves.
///
/// See [`serve`] for what it answers.
pub async fn bind_and_serve(
    addr: SocketAddr,
    name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, name, shutdown).await
}

/// Serves the echo backend on `listener` until `shutdown` resolves.
///
/// On shutdown it stops accepting, asks open connections to finish their
/// current request, and cuts whatever is still open after a few seconds.
/// Errors accepting a single connection are logged and do not stop the server.
pub async fn serve(
    listener: TcpListener,
    name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let name: Arc<str> = name.into();
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connection tasks so the set stays small.
        while conns.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Usually EMFILE or a connection reset before accept; back off
                // briefly instead of spinning.
                tracing::warn!(%err, "whoami: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Conn {
            name: name.clone(),
            remote,
            local: stream.local_addr().unwrap_or(remote),
            shutdown: stop_rx.clone(),
        };
        conns.spawn(serve_connection(&builder, &graceful, stream, conn));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("whoami: grace period over, closing connections");
    }
    conns.shutdown().await;
    Ok(())
}

/// Builds the future that serves one accepted connection.
fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    conn: Conn,
) -> impl Future<Output = ()> + Send + 'static {
    // Small responses are the common case; don't let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(conn);
    let service = service_fn(move |req| respond::handle(req, conn.clone()));
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let watched = graceful.watch(connection);
    async move {
        if let Err(err) = watched.await {
            tracing::debug!(err = %err, "whoami: connection ended with an error");
        }
    }
}
