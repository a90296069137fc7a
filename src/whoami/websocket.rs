//! The WebSocket echo: an HTTP/1.1 upgrade handshake, then text and binary
//! messages sent straight back until the client closes.

use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::respond::Body;
use super::Conn;

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`).
pub(super) fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Answers `101 Switching Protocols` and spawns the echo on the upgraded socket.
///
/// A request without `Sec-WebSocket-Key` gets `400`.
pub(super) fn accept(mut req: Request<Incoming>, conn: &Arc<Conn>) -> Response<Body> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return status_only(StatusCode::BAD_REQUEST);
    };
    let accept_key = derive_accept_key(key.as_bytes());
    let Ok(accept_key) = HeaderValue::from_str(&accept_key) else {
        return status_only(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let mut shutdown = conn.shutdown.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => return tracing::debug!(%err, "whoami: upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None);
        tokio::select! {
            () = echo(ws.await) => {}
            // The socket is dropped: an echo server owes no close handshake at shutdown.
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    });
    let mut resp = status_only(StatusCode::SWITCHING_PROTOCOLS);
    let headers = resp.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept_key);
    resp
}

/// Sends every text and binary message back until the stream ends.
///
/// Pings are answered and close frames acknowledged by tungstenite itself
/// while it reads; the loop ends once the close handshake is done.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => return tracing::debug!(%err, "whoami: websocket read failed"),
        };
        if msg.is_text() || msg.is_binary() {
            if let Err(err) = ws.send(msg).await {
                return tracing::debug!(%err, "whoami: websocket write failed");
            }
        }
    }
}

fn status_only(status: StatusCode) -> Response<Body> {
    let body = Empty::new().map_err(|never| match never {}).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}
