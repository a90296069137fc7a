//! Why a request was refused before routing, and what the client gets for it.

use http::StatusCode;

/// The longest request target (path + query) accepted; longer answers 414.
pub const MAX_TARGET_LEN: usize = 16 * 1024;

/// The most header fields a request may carry; more answers 431. HTTP/1 is
/// also limited by hyper's parser; this check covers HTTP/2.
pub const MAX_HEADERS: usize = 100;

/// Why a request was refused before routing, and the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Both Content-Length and Transfer-Encoding, differing Content-Lengths, or an
    /// unknown transfer coding: the framing is ambiguous, so the connection is closed.
    #[error("ambiguous message framing")]
    Framing,
    /// HTTP/1.1 without a Host header, with two, or with one that is not a valid host.
    #[error("missing, repeated or invalid Host header")]
    Host,
    /// The request target is longer than [`MAX_TARGET_LEN`].
    #[error("request target too long")]
    TargetTooLong,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("too many header fields")]
    TooManyHeaders,
    /// CONNECT: sluice is not a forward proxy.
    #[error("method not allowed")]
    Method,
    /// A request head that is not valid HTTP/1.1 (bare LF or CR, obs-fold,
    /// whitespace before a colon, control bytes, a bad request line) or a
    /// malformed chunked body: the connection is closed.
    #[error("malformed request")]
    Malformed,
    /// A request head larger than the limit: 431, and the connection is closed.
    #[error("request head too large")]
    HeadTooLarge,
    /// An HTTP version other than 1.x in an HTTP/1 request line.
    #[error("HTTP version not supported")]
    Version,
    /// The client stopped sending its request body for the body-read
    /// timeout: 408, and the connection is closed.
    #[error("request body not sent in time")]
    BodyTimeout,
}

impl BadRequest {
    /// The status code the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Framing | Self::Host | Self::Malformed => StatusCode::BAD_REQUEST,
            Self::TargetTooLong => StatusCode::URI_TOO_LONG,
            Self::TooManyHeaders | Self::HeadTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The short plain-text body the client gets.
    pub fn body(self) -> &'static str {
        match self {
            Self::Framing | Self::Host | Self::Malformed => "400 bad request\n",
            Self::TargetTooLong => "414 request target too long\n",
            Self::TooManyHeaders | Self::HeadTooLarge => "431 request header fields too large\n",
            Self::Method => "405 method not allowed\n",
            Self::Version => "505 http version not supported\n",
            Self::BodyTimeout => "408 request timeout\n",
        }
    }

    /// Whether the connection must be closed after answering (no smuggling, ever).
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Self::Framing
                | Self::Malformed
                | Self::HeadTooLarge
                | Self::Version
                | Self::BodyTimeout
        )
    }
}
