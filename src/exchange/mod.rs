//! The types the data plane and the middlewares share, kept below both so the
//! dependency arrows run one way: `proxy` → `middleware` → `exchange`.
//!
//! - [`ClientInfo`]: the client connection a request came on (address, TLS).
//! - [`ProxyError`]: why the proxy answered itself; the one place a failure
//!   becomes a status code and a short body.
//! - [`BadRequest`]: why a request was refused before routing.

mod bad_request;
mod client;
mod error;

pub use bad_request::{BadRequest, MAX_HEADERS, MAX_TARGET_LEN};
pub use client::{AuthenticatedUser, ClientInfo};
pub use error::ProxyError;
