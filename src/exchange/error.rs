//! The one place that turns a failure into a response: short plain-text bodies,
//! fixed status codes.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::upstream::UpstreamError;

/// Why the proxy answered itself instead of relaying a backend's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request was refused before routing (framing, Host, target length).
    #[error(transparent)]
    BadRequest(#[from] super::BadRequest),
    /// No rule and no default backend matched.
    #[error("no route matches")]
    NoRoute,
    /// The route's backend cannot be resolved (missing Service or port).
    #[error("route is not available: {0}")]
    Unavailable(std::sync::Arc<str>, StatusCode),
    /// The route's Service has no ready endpoint.
    #[error("no ready endpoints")]
    NoEndpoints,
    /// The request could not be turned into an upstream request.
    #[error("the request target cannot be forwarded")]
    BadTarget,
    /// An HTTP/2 request for a host whose certificate is not the one the
    /// connection's handshake served (421: the client opens a new connection).
    #[error("the request's authority is served with another certificate than the connection's")]
    Misdirected,
    /// A middleware the route references is missing or invalid: 500, never
    /// served without it.
    #[error("the route's middlewares are unavailable: {0}")]
    MiddlewareUnavailable(std::sync::Arc<str>),
    /// Forwarding to the backend failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ProxyError {
    /// The status code the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(bad) => bad.status(),
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Unavailable(_, status) => *status,
            Self::NoEndpoints => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadTarget => StatusCode::BAD_REQUEST,
            Self::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Self::MiddlewareUnavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Upstream(UpstreamError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The response body: short, plain text, and free of internal details.
    fn body(&self) -> &'static str {
        match self {
            Self::BadRequest(bad) => bad.body(),
            Self::BadTarget => "400 bad request\n",
            Self::NoRoute => "404 page not found\n",
            Self::Misdirected => "421 misdirected request\n",
            Self::Unavailable(_, status) if *status == StatusCode::INTERNAL_SERVER_ERROR => {
                "500 internal server error\n"
            }
            Self::Unavailable(..) | Self::NoEndpoints => "503 service unavailable\n",
            Self::MiddlewareUnavailable(_) => "500 internal server error\n",
            Self::Upstream(UpstreamError::Timeout(_)) => "504 gateway timeout\n",
            Self::Upstream(_) => "502 bad gateway\n",
        }
    }

    /// Whether the client connection must close after this answer.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::BadRequest(bad) if bad.closes_connection())
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<ResponseBody> {
        let mut resp = Response::new(ResponseBody::full(Bytes::from_static(
            self.body().as_bytes(),
        )));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.closes_connection() {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::BadRequest;

    #[test]
    fn statuses_match_the_contract() {
        assert_eq!(ProxyError::NoRoute.status(), 404);
        assert_eq!(ProxyError::NoEndpoints.status(), 503);
        assert_eq!(ProxyError::BadRequest(BadRequest::Host).status(), 400);
        let resp = ProxyError::BadRequest(BadRequest::Framing).into_response();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()[CONNECTION], "close");
    }
}
