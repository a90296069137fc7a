//! Middlewares: Traefik's `Middleware` objects compiled into ready-to-run chains.
//!
//! A route's `router.middlewares` annotation names Middleware objects; the
//! compiler resolves them ([`reference`]), builds each once per table
//! ([`build`]: regexes compiled, htpasswd parsed, CIDRs parsed) and puts the
//! resulting [`Chain`] on the route. A chain runs like an onion: each
//! [`Middleware`] gets the request and a [`Next`] that runs the rest of the
//! chain and then the backend; it may answer early (redirect, 401, 429), change
//! the request before calling `next`, or change the response after it.
//!
//! A route without middlewares never touches this module on the request path.
//! State that must survive reloads (rate-limit buckets, in-flight counters,
//! circuit-breaker windows) lives inside the built middleware, and [`build`]
//! hands back the same instance for an unchanged definition, so a reload that
//! does not touch a Middleware keeps its state.

pub mod build;
mod chain;
mod gateway;
mod kinds;
mod nested;
mod nginx;
pub mod object;
pub mod reference;

mod add_prefix;
mod basic_auth;
mod breaker_expr;
mod buffering;
mod circuit_breaker;
mod compress;
mod content_type;
mod digest_auth;
mod errors;
mod forward_auth;
mod headers;
mod htpasswd;
mod in_flight;
mod ip_allow_list;
mod rate_limit;
mod redirect_regex;
mod redirect_scheme;
pub mod redis_store;
mod replace_path;
mod replace_path_regex;
mod retry;
mod source;
pub mod split;
mod strip_prefix;
mod strip_prefix_regex;
#[cfg(test)]
pub(crate) mod testing;

pub mod support;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};

pub use build::{BuildError, Builder, Environment, InlineStep, ServiceTarget};
pub use chain::Chain;
pub use object::MiddlewareObject;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::{ClientInfo, ProxyError};
use crate::router::Route;

/// A boxed future borrowed for `'a`: what every middleware step returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a middleware (or the backend) answers: a response, or a failure that
/// produced none (the proxy turns it into 502/503/504).
pub type Outcome = Result<Response<ResponseBody>, Failure>;

/// A request that got no response from the backend.
#[derive(Debug)]
pub struct Failure {
    /// Why; decides the status the client gets.
    pub error: ProxyError,
}

impl Failure {
    /// Whether the request certainly never reached a backend.
    pub fn never_sent(&self) -> bool {
        match &self.error {
            ProxyError::Upstream(e) => e.never_sent(),
            ProxyError::NoEndpoints | ProxyError::Unavailable(..) => true,
            _ => false,
        }
    }
}

impl From<ProxyError> for Failure {
    fn from(error: ProxyError) -> Self {
        Self { error }
    }
}

/// What a middleware knows about the request besides the request itself.
#[derive(Debug)]
pub struct RequestContext {
    /// The client connection (address, TLS).
    pub client: ClientInfo,
    /// The route the request matched.
    pub route: Arc<Route>,
}

/// One step of a chain.
pub trait Middleware: Send + Sync + fmt::Debug {
    /// Handles `req`: answer it, or pass it (changed or not) to `next` and
    /// return (a possibly changed) response.
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome>;
}

/// Where a chain ends: the backend of the route.
pub trait Terminal: Send + Sync {
    /// Sends `req` to the route's backend.
    fn forward<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
    ) -> BoxFuture<'a, Outcome>;
}

/// The rest of a chain after the running middleware, ending at the backend.
/// Copyable, so a middleware may run it more than once (retry).
#[derive(Clone, Copy)]
pub struct Next<'a> {
    rest: &'a [Arc<dyn Middleware>],
    terminal: &'a dyn Terminal,
}

impl fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.rest.len())
            .finish()
    }
}

impl<'a> Next<'a> {
    /// The whole of `steps`, then `terminal`.
    pub fn new(steps: &'a [Arc<dyn Middleware>], terminal: &'a dyn Terminal) -> Self {
        Self {
            rest: steps,
            terminal,
        }
    }

    /// `steps` in place of the rest of the chain, then the same backend: how
    /// a step hands a request to another route's chain (a Gateway API
    /// backendRef's own filters).
    pub fn with_steps(self, steps: &'a [Arc<dyn Middleware>]) -> Self {
        Self {
            rest: steps,
            terminal: self.terminal,
        }
    }

    /// Runs the rest of the chain, then the backend.
    pub fn run(self, req: Request<RequestBody>, cx: &'a RequestContext) -> BoxFuture<'a, Outcome> {
        match self.rest.split_first() {
            Some((first, rest)) => first.handle(
                req,
                cx,
                Next {
                    rest,
                    terminal: self.terminal,
                },
            ),
            None => self.terminal.forward(req, cx),
        }
    }
}
