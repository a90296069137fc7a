//! The built-in echo backend. TEMPORARY STUB: replaced by the whoami branch.

use std::future::Future;

/// Serves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    name: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, name);
    shutdown.await;
    Ok(())
}
