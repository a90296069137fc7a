//! How the proxy listeners run: on the shared runtime, or one single-threaded
//! runtime per core, each with its own `SO_REUSEPORT` listeners (no work
//! stealing, no cross-thread wakeups, per-thread upstream pools).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::StartError;
use crate::proxy::{self, ConnectionSettings, OpenConnections, Proxy, TlsEntry};

/// Where the proxy's listeners run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPlane {
    /// On the runtime that called [`super::start`] (tests, embedding).
    #[default]
    Shared,
    /// On this many threads, each with a current-thread runtime and its own listeners.
    PerCore(usize),
}

/// One entrypoint's listeners, bound and ready to serve.
pub(super) struct Bound {
    listeners: Vec<std::net::TcpListener>,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

/// Binds `addr` once per data-plane thread (`SO_REUSEPORT` when there are several).
pub(super) async fn bind(mode: DataPlane, addr: SocketAddr) -> Result<Bound, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let count = match mode {
        DataPlane::Shared => 1,
        DataPlane::PerCore(n) => n.max(1),
    };
    let mut listeners = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(err)?;
        socket.set_reuseaddr(true).map_err(err)?;
        if count > 1 {
            socket.set_reuseport(true).map_err(err)?;
        }
        // Later sockets join the first one's port (which port 0 chose).
        socket.bind(bound).map_err(err)?;
        let listener = socket.listen(1024).map_err(err)?;
        bound = listener.local_addr().map_err(err)?;
        listeners.push(listener.into_std().map_err(err)?);
    }
    Ok(Bound {
        listeners,
        addr: bound,
    })
}

/// One listener with what it serves with, as handed to a data-plane thread.
type ThreadListener = (
    std::net::TcpListener,
    Arc<OpenConnections>,
    Option<TlsEntry>,
);

/// What every listener of one entrypoint serves with.
pub(super) struct Entrypoint {
    pub bound: Bound,
    pub open: Arc<OpenConnections>,
    pub tls: Option<TlsEntry>,
}

/// Starts serving every entrypoint; the handles finish once the listeners have drained.
pub(super) fn run(
    mode: DataPlane,
    entrypoints: Vec<Entrypoint>,
    proxy: Arc<Proxy>,
    settings: ConnectionSettings,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> Result<Vec<JoinHandle<()>>, StartError> {
    let threads = match mode {
        DataPlane::Shared => 1,
        DataPlane::PerCore(n) => n.max(1),
    };
    // Per thread: one listener of each entrypoint.
    let mut per_thread: Vec<Vec<ThreadListener>> = (0..threads).map(|_| Vec::new()).collect();
    for entry in entrypoints {
        for (i, listener) in entry.bound.listeners.into_iter().enumerate() {
            per_thread[i].push((listener, entry.open.clone(), entry.tls.clone()));
        }
    }
    let serve_all = move |listeners: Vec<ThreadListener>,
                          proxy: Arc<Proxy>,
                          settings: ConnectionSettings,
                          stop: watch::Receiver<bool>| async move {
        let mut serving = tokio::task::JoinSet::new();
        for (listener, open, tls) in listeners {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    serving.spawn(proxy::serve(
                        listener,
                        proxy.clone(),
                        settings.clone(),
                        open,
                        stop.clone(),
                        grace,
                        tls,
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot register a listener"),
            }
        }
        while serving.join_next().await.is_some() {}
    };
    if mode == DataPlane::Shared {
        let listeners = per_thread.into_iter().flatten().collect();
        return Ok(vec![tokio::spawn(serve_all(
            listeners, proxy, settings, stop,
        ))]);
    }
    let mut handles = Vec::with_capacity(threads);
    for (i, listeners) in per_thread.into_iter().enumerate() {
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let (proxy, settings, stop) = (proxy.clone(), settings.clone(), stop.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        std::thread::Builder::new()
            .name(format!("sluice-worker-{i}"))
            .spawn(move || {
                runtime.block_on(serve_all(listeners, proxy, settings, stop));
                let _ = done_tx.send(());
            })
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        handles.push(tokio::spawn(async move {
            let _ = done_rx.await;
        }));
    }
    Ok(handles)
}
