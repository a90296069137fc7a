//! Accepting client connections: HTTP/1.1 and HTTP/2 (prior knowledge) on one
//! listener, limits against hostile clients, and graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::{self, ConnState, Limits, Shared};
use super::framing::Guarded;
use super::{ClientInfo, Proxy};
pub use crate::metrics::{HandshakeStats, OpenConnections};
use crate::tls::HostClientAuth;

/// Limits applied to every client connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Time a client has to send a complete request head (slowloris guard); also
    /// bounds how long an idle keep-alive connection waits for its next request.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers), in bytes: 431 beyond.
    pub max_header_bytes: usize,
    /// Most header fields in one request: 431 beyond.
    pub max_headers: usize,
    /// HTTP/2: streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// HTTP/2: largest decoded header list, in bytes.
    pub max_header_list_size: u32,
    /// A connection with no request in flight for this long is closed gracefully
    /// (HTTP/1 idle keep-alive is usually cut sooner by `header_read_timeout`).
    pub idle_timeout: Duration,
    /// A client that sends nothing of a request body it announced for this long
    /// has its connection closed (HTTP/2: the stream is reset).
    pub body_read_timeout: Duration,
    /// Which engine serves HTTP/1.1 clients.
    pub http1_engine: Http1Engine,
}

/// The code that serves HTTP/1.1 clients (`--http1-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Engine {
    /// sluice's own HTTP/1.1 forwarding path (`proxy/native/`): heads parsed
    /// into per-connection buffers, backends driven inside the client's task.
    #[default]
    Native,
    /// hyper's server and client, as before the native engine: the fallback
    /// and the reference the differential tests compare against.
    Hyper,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_concurrent_streams: 250,
            max_header_list_size: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            http1_engine: Http1Engine::default(),
        }
    }
}

/// Decrements the open-connection count when a connection task ends, however it ends.
pub(super) struct ConnectionGuard(pub(super) Arc<OpenConnections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn builder(settings: &ConnectionSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(settings.max_headers)
        // The read buffer must hold the whole head, so its cap is the head limit (431).
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size)
        // Rapid-reset and error-reset floods: hyper's protections, with explicit limits.
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(settings.idle_timeout)
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves `listener` until `shutdown` turns true, then drains open connections
/// for at most `grace` before returning. With `tls`, every connection first
/// completes a TLS handshake (within the header-read timeout).
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    settings: ConnectionSettings,
    open: Arc<OpenConnections>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    tls: Option<TlsEntry>,
) {
    let shared = Shared {
        builder: Arc::new(builder(&settings)),
        proxy,
        limits: Limits {
            first_request: settings.header_read_timeout,
            idle: settings.idle_timeout,
            body_read: settings.body_read_timeout,
        },
        shutdown: shutdown.clone(),
        engine: settings.http1_engine,
        native: super::native::Limits {
            header_read: settings.header_read_timeout,
            body_read: settings.body_read_timeout,
            max_head: settings.max_header_bytes,
        },
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "set_nodelay failed");
                }
                open.open();
                let guard = ConnectionGuard(open.clone());
                match &tls {
                    None if shared.engine == Http1Engine::Native => {
                        let client = ClientInfo::new(remote, false);
                        tokio::spawn(super::native::serve(shared.clone(), stream, client, guard));
                    }
                    None => {
                        let state = Arc::new(ConnState::new(ClientInfo::new(remote, false)));
                        connection::spawn(shared.clone(), Guarded::new(stream), state, guard);
                    }
                    Some(tls) => {
                        tokio::spawn(handshake_then_serve(
                            shared.clone(),
                            tls.clone(),
                            stream,
                            remote,
                            guard,
                        ));
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drain(&open, grace).await;
}

/// The HTTPS entrypoint's TLS side: the acceptor and its handshake counters.
#[derive(Clone)]
pub struct TlsEntry {
    /// Accepts TLS with the SNI resolver over the published table.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Handshakes by outcome and version.
    pub stats: Arc<HandshakeStats>,
    /// `--tls-min-version`, which the acceptor's config was built with (the
    /// client-certificate configs derived from it keep it).
    pub min_version: crate::tls::TlsVersion,
}

impl std::fmt::Debug for TlsEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEntry").finish_non_exhaustive()
    }
}

async fn handshake_then_serve(
    shared: Shared,
    tls: TlsEntry,
    stream: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    guard: ConnectionGuard,
) {
    let accept = accept_tls(&shared, &tls, stream);
    let (stream, client_auth) =
        match tokio::time::timeout(shared.limits.first_request, accept).await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(e)) => {
                tls.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tls.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%remote, "TLS handshake timed out");
                return;
            }
        };
    match stream.get_ref().1.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => {
            tls.stats.ok_tls13.fetch_add(1, Ordering::Relaxed)
        }
        _ => tls.stats.ok_tls12.fetch_add(1, Ordering::Relaxed),
    };
    let session = stream.get_ref().1;
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "",
    };
    let cipher = session
        .negotiated_cipher_suite()
        .and_then(|suite| suite.suite().as_str())
        .unwrap_or("");
    let mut client = ClientInfo::new(remote, true)
        .with_tls_session(version, cipher)
        .with_sni(session.server_name().is_some());
    let h2 = session.alpn_protocol() == Some(b"h2");
    if h2 {
        // What an HTTP/2 request for another host is checked against (421).
        let cert = shared
            .proxy
            .table
            .load()
            .certs()
            .resolve(session.server_name());
        client = client.with_server(session.server_name(), cert);
    }
    if let Some(auth) = client_auth {
        let sni = session.server_name().unwrap_or("");
        let chain = session.peer_certificates();
        let verified = auth.verify(sni, chain, rustls::pki_types::UnixTime::now());
        client = client.with_client_cert(Arc::new(verified));
    }
    if shared.engine == Http1Engine::Native && !h2 {
        return super::native::serve(shared, stream, client, guard).await;
    }
    let state = Arc::new(ConnState::new(client));
    connection::drive(shared, Guarded::new(stream), state, guard).await;
}

/// The TLS handshake. While no host asks for client certificates it is the
/// listener's acceptor as is; otherwise the ClientHello is read first and
/// a host that asks for one (by SNI) gets its own config, whose client
/// authentication is returned beside the stream.
async fn accept_tls(
    shared: &Shared,
    tls: &TlsEntry,
    stream: tokio::net::TcpStream,
) -> std::io::Result<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<Arc<HostClientAuth>>,
)> {
    if !shared.proxy.table.load().certs().has_client_auth() {
        return Ok((tls.acceptor.accept(stream).await?, None));
    }
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = acceptor.await?;
    let auth = shared
        .proxy
        .table
        .load()
        .certs()
        .client_auth(start.client_hello().server_name())
        .cloned();
    let base = tls.acceptor.config();
    let config = match &auth {
        Some(auth) => auth.server_config(base, tls.min_version),
        None => base.clone(),
    };
    Ok((start.into_stream(config).await?, auth))
}

/// Waits until every connection has finished, or `grace` has passed.
async fn drain(open: &OpenConnections, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    while open.get() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                ?grace,
                open = open.get(),
                "shutdown grace period over, closing remaining connections"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resolves once `shutdown` is (or becomes) true, or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
