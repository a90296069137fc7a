//! The upstream for `benches/load.sh`: the smallest useful HTTP/1.1 server.
//!
//! It answers every request with `200` and the body `ok`, keeps connections
//! alive, and runs on one current-thread runtime so it can be pinned to one
//! core next to the load generator (see `bench-method.md`). Usage:
//!
//! ```text
//! bench-backend [ADDR]    # default 127.0.0.1:8900
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Where to listen when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8900";

fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    let addr: SocketAddr = arg
        .as_deref()
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad address: {err}"),
            )
        })?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

/// Accepts forever; each connection is served on the same thread.
async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("bench-backend listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE and friends: keep serving the connections we have.
                eprintln!("bench-backend: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(ok));
            // Clients going away mid-request is normal under wrk; stay quiet.
            let _ = conn.await;
        });
    }
}

/// The whole application: `200 ok`.
async fn ok(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    let text = HeaderValue::from_static("text/plain");
    resp.headers_mut().insert(http::header::CONTENT_TYPE, text);
    Ok(resp)
}
