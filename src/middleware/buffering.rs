//! `buffering`: the request body is read whole before the backend sees it, and
//! the response body before the client does (Traefik's oxy `buffer`).
//!
//! - A request body above the request limit gets **413** `Request Entity Too
//!   Large` and never reaches the backend; a `Content-Length` above the limit is
//!   refused before anything is read, and reading stops at the first byte past it.
//! - A response body above `maxResponseBodyBytes` gets **500** `Internal Server Error`.
//! - `retryExpression` (`IsNetworkError() && Attempts() < 2`) sends the buffered
//!   request again while it holds (at most 10 attempts, as oxy).
//!
//! sluice keeps buffered bodies in memory; it has no disk spill. So:
//! - the request limit is `maxRequestBodyBytes`, or `memRequestBodyBytes`
//!   (1 MiB by default) when no maximum is set: a client cannot make sluice
//!   hold an unbounded body;
//! - a response with no `maxResponseBodyBytes` is buffered up to
//!   `memResponseBodyBytes`, and whatever is beyond streams through.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::content_type::Replay;
use super::source::reply;
use super::{BoxFuture, Failure, Middleware, Next, Outcome, RequestContext};
use crate::body::{BoxError, RequestBody, ResponseBody};
use crate::exchange::ProxyError;
use crate::upstream::UpstreamError;

/// Traefik's default for the `mem*BodyBytes` fields.
const DEFAULT_MEM_BYTES: u64 = 1024 * 1024;
/// oxy's cap on attempts when a retry expression keeps holding.
const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    max_request_body_bytes: i64,
    #[serde(default)]
    mem_request_body_bytes: i64,
    #[serde(default)]
    max_response_body_bytes: i64,
    #[serde(default)]
    mem_response_body_bytes: i64,
    #[serde(default)]
    retry_expression: String,
}

/// Builds a `buffering` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let field = |name: &str, value: i64| {
        u64::try_from(value).map_err(|_| cx.invalid(format!("{name} {value} is negative")))
    };
    let max_request = field("maxRequestBodyBytes", config.max_request_body_bytes)?;
    let mem_request = field("memRequestBodyBytes", config.mem_request_body_bytes)?;
    let max_response = field("maxResponseBodyBytes", config.max_response_body_bytes)?;
    let mem_response = field("memResponseBodyBytes", config.mem_response_body_bytes)?;
    let or_default = |mem: u64| if mem == 0 { DEFAULT_MEM_BYTES } else { mem };
    let retry = match config.retry_expression.trim() {
        "" => None,
        text => Some(
            Expr::parse(text).map_err(|e| cx.invalid(format!("retryExpression {text:?}: {e}")))?,
        ),
    };
    Ok(Arc::new(Buffering {
        request_limit: if max_request > 0 {
            max_request
        } else {
            or_default(mem_request)
        },
        response: if max_response > 0 {
            ResponseLimit::Max(max_response)
        } else {
            ResponseLimit::Memory(or_default(mem_response))
        },
        retry,
    }))
}

/// What happens to a response body beyond a size.
#[derive(Debug, Clone, Copy)]
enum ResponseLimit {
    /// `maxResponseBodyBytes`: beyond it the client gets 500.
    Max(u64),
    /// No maximum: buffered up to this much, the rest streams.
    Memory(u64),
}

/// The built `buffering`.
#[derive(Debug)]
struct Buffering {
    request_limit: u64,
    response: ResponseLimit,
    retry: Option<Expr>,
}

impl Middleware for Buffering {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let declared = content_length(&parts.headers);
            if declared.is_some_and(|len| len > self.request_limit) {
                return Ok(too_large());
            }
            let body = match read_request(body, self.request_limit, declared).await {
                Ok(body) => body,
                Err(ReadError::TooLarge) => return Ok(too_large()),
                Err(ReadError::Failed) => {
                    return Ok(reply(StatusCode::BAD_REQUEST, "Bad Request"));
                }
            };
            let mut headers = parts.headers.clone();
            if declared.is_some() || !body.is_empty() {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            let head_only = parts.method == Method::HEAD;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut req = Request::new(RequestBody::full(body.clone()));
                *req.method_mut() = parts.method.clone();
                *req.uri_mut() = parts.uri.clone();
                *req.version_mut() = parts.version;
                *req.headers_mut() = headers.clone();
                *req.extensions_mut() = parts.extensions.clone();
                let outcome = next.run(req, cx).await;
                let status = match &outcome {
                    Ok(resp) => resp.status(),
                    Err(failure) => failure.error.status(),
                };
                let again = self.retry.as_ref().is_some_and(|expr| {
                    attempt < MAX_ATTEMPTS
                        && expr.holds(&Facts {
                            attempts: attempt,
                            status: status.as_u16(),
                        })
                });
                if again {
                    tracing::debug!(route = %cx.route.name, attempt, %status, "buffering: retrying");
                    continue;
                }
                let resp = outcome?;
                return self.buffer_response(resp, head_only).await;
            }
        })
    }
}

impl Buffering {
    async fn buffer_response(&self, resp: Response<ResponseBody>, head_only: bool) -> Outcome {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let (mut parts, mut body) = resp.into_parts();
        let (limit, strict) = match self.response {
            ResponseLimit::Max(max) => (max, true),
            ResponseLimit::Memory(mem) => (mem, false),
        };
        if strict && content_length(&parts.headers).is_some_and(|len| len > limit) {
            return Ok(internal_error());
        }
        let mut buffered = BytesMut::new();
        loop {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => return backend_failed(e),
            };
            let Ok(data) = frame.into_data() else {
                // Trailers: not kept in a buffered response.
                continue;
            };
            if (buffered.len() + data.len()) as u64 > limit {
                if strict {
                    return Ok(internal_error());
                }
                // No maximum: what is beyond memory streams through.
                buffered.extend_from_slice(&data);
                let prefix = buffered.freeze();
                let body = ResponseBody::boxed(Replay::new(
                    VecDeque::from([Frame::data(prefix)]),
                    None,
                    Some(body),
                ));
                return Ok(Response::from_parts(parts, body));
            }
            buffered.extend_from_slice(&data);
        }
        let bytes = buffered.freeze();
        if !head_only && body_allowed(parts.status) {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        Ok(Response::from_parts(parts, ResponseBody::full(bytes)))
    }
}

fn body_allowed(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn too_large() -> Response<ResponseBody> {
    reply(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
}

fn internal_error() -> Response<ResponseBody> {
    reply(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The backend's body broke while it was being buffered: 502, as when it
/// breaks before the head.
fn backend_failed(error: BoxError) -> Outcome {
    match error.downcast::<hyper::Error>() {
        Ok(e) => Err(Failure::from(ProxyError::Upstream(UpstreamError::Backend(
            *e,
        )))),
        Err(_) => Ok(reply(StatusCode::BAD_GATEWAY, "Bad Gateway")),
    }
}

enum ReadError {
    TooLarge,
    Failed,
}

/// Reads a request body whole, stopping at the first byte past `limit`.
async fn read_request<B>(mut body: B, limit: u64, declared: Option<u64>) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buffered = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buffered.len() + data.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        buffered.extend_from_slice(&data);
    }
    Ok(buffered.freeze())
}

/// What a retry expression can ask about the attempt that just ended.
struct Facts {
    /// Attempts made so far (1 after the first).
    attempts: u32,
    /// The status the client would get (502/504 for a failed exchange).
    status: u16,
}

/// oxy's retry expressions: `IsNetworkError()`, `Attempts()`, `ResponseCode()`,
/// integers, `== != < > <= >=`, `&& || !` and parentheses. Checked when built:
/// the whole expression must be a condition, comparisons compare numbers.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Int(i64),
    NetworkError,
    Attempts,
    ResponseCode,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
}

impl Expr {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser { text, pos: 0 };
        let expr = parser.or()?;
        parser.skip_space();
        if parser.pos != text.len() {
            return Err(format!("unexpected {:?}", &text[parser.pos..]));
        }
        if expr.kind()? != Kind::Bool {
            return Err("the expression is a number, not a condition".to_owned());
        }
        Ok(expr)
    }

    fn kind(&self) -> Result<Kind, String> {
        let need = |e: &Expr, kind: Kind| -> Result<(), String> {
            if e.kind()? == kind {
                Ok(())
            } else {
                Err(format!("{e:?} is not a {kind:?}"))
            }
        };
        match self {
            Self::Int(_) | Self::Attempts | Self::ResponseCode => Ok(Kind::Int),
            Self::NetworkError => Ok(Kind::Bool),
            Self::Not(e) => need(e, Kind::Bool).map(|()| Kind::Bool),
            Self::And(a, b) | Self::Or(a, b) => {
                need(a, Kind::Bool)?;
                need(b, Kind::Bool).map(|()| Kind::Bool)
            }
            Self::Compare(_, a, b) => {
                need(a, Kind::Int)?;
                need(b, Kind::Int).map(|()| Kind::Bool)
            }
        }
    }

    fn holds(&self, facts: &Facts) -> bool {
        self.value(facts) != 0
    }

    fn value(&self, facts: &Facts) -> i64 {
        let b = i64::from;
        match self {
            Self::Int(n) => *n,
            Self::Attempts => i64::from(facts.attempts),
            Self::ResponseCode => i64::from(facts.status),
            // oxy: a 502 or 504 (sluice answers those when the exchange failed).
            Self::NetworkError => b(facts.status == 502 || facts.status == 504),
            Self::Not(e) => b(!e.holds(facts)),
            Self::And(x, y) => b(x.holds(facts) && y.holds(facts)),
            Self::Or(x, y) => b(x.holds(facts) || y.holds(facts)),
            Self::Compare(cmp, x, y) => {
                let (x, y) = (x.value(facts), y.value(facts));
                b(match cmp {
                    Cmp::Eq => x == y,
                    Cmp::Ne => x != y,
                    Cmp::Lt => x < y,
                    Cmp::Gt => x > y,
                    Cmp::Le => x <= y,
                    Cmp::Ge => x >= y,
                })
            }
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if !self.text[self.pos..].trim_start().starts_with("!=") && self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        // Longest operators first.
        let ops = [
            ("==", Cmp::Eq),
            ("!=", Cmp::Ne),
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ];
        for (token, cmp) in ops {
            if self.eat(token) {
                let right = self.primary()?;
                return Ok(Expr::Compare(cmp, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.skip_space();
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err("missing )".to_owned());
            }
            return Ok(inner);
        }
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        if word.is_empty() {
            return Err(format!("expected a value at {rest:?}"));
        }
        self.pos += len;
        if let Ok(n) = word.parse::<i64>() {
            return Ok(Expr::Int(n));
        }
        let call = match word {
            "IsNetworkError" => Expr::NetworkError,
            "Attempts" => Expr::Attempts,
            "ResponseCode" => Expr::ResponseCode,
            other => return Err(format!("unknown function {other:?}")),
        };
        if !(self.eat("(") && self.eat(")")) {
            return Err(format!("{word} takes no arguments: write {word}()"));
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context as TaskContext, Poll};

    use super::super::Terminal;
    use super::*;
    use crate::middleware::testing::{context_at, read, run_in, FakeBuild, Recorder};

    fn buffering(config: serde_json::Value) -> Arc<dyn Middleware> {
        build(&config, &mut FakeBuild::default()).expect("built")
    }

    fn post(body: &'static str, content_length: bool) -> Request<RequestBody> {
        let mut req = Request::post("/upload");
        if content_length {
            req = req.header("content-length", body.len());
        }
        req.body(RequestBody::full(body)).expect("request")
    }

    #[tokio::test]
    async fn request_bodies_are_buffered_with_a_length() {
        let mw = buffering(serde_json::json!({"maxRequestBodyBytes": 10}));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        let (status, _) = read(run_in(&mw, &backend, post("0123456789", false), &cx).await).await;
        assert_eq!(status, StatusCode::OK);
        let seen = backend.seen.lock().expect("lock");
        let (parts, body) = &seen[0];
        assert_eq!(&body[..], b"0123456789");
        assert_eq!(parts.headers[CONTENT_LENGTH], "10");
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri, "/upload");
    }

    #[tokio::test]
    async fn too_large_requests_get_413_and_never_reach_the_backend() {
        let mw = buffering(serde_json::json!({"maxRequestBodyBytes": 10}));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        for declared in [true, false] {
            let (status, body) =
                read(run_in(&mw, &backend, post("0123456789A", declared), &cx).await).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(body, "Request Entity Too Large");
        }
        assert_eq!(backend.count(), 0);
    }

    /// A request body that yields `chunks` then would yield forever; counts what was read.
    struct Endless {
        chunk: Bytes,
        read: Arc<Mutex<usize>>,
    }

    impl Body for Endless {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            *self.read.lock().expect("lock") += 1;
            Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
        }
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let read_count = Arc::new(Mutex::new(0));
        let body = Endless {
            chunk: Bytes::from_static(&[b'x'; 100]),
            read: read_count.clone(),
        };
        // The limit is enforced while reading: an endless body ends after 11 chunks.
        let result = read_request(body, 1000, None).await;
        assert!(matches!(result, Err(ReadError::TooLarge)));
        assert_eq!(*read_count.lock().expect("lock"), 11);
    }

    #[tokio::test]
    async fn without_a_maximum_the_memory_size_bounds_requests() {
        let mw = buffering(serde_json::json!({"memRequestBodyBytes": 4}));
        let backend = Recorder::default();
        let cx = context_at("192.0.2.1:1", false);
        assert_eq!(
            read(run_in(&mw, &backend, post("1234", true), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            read(run_in(&mw, &backend, post("12345", false), &cx).await)
                .await
                .0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    fn answering(body: &'static str) -> Recorder {
        Recorder {
            body: Some(Bytes::from_static(body.as_bytes())),
            ..Recorder::default()
        }
    }

    #[tokio::test]
    async fn responses_are_buffered_up_to_their_maximum() {
        let mw = buffering(serde_json::json!({"maxResponseBodyBytes": 5}));
        let cx = context_at("192.0.2.1:1", false);
        let get = || {
            Request::get("/")
                .body(RequestBody::empty())
                .expect("request")
        };
        let resp = run_in(&mw, &answering("12345"), get(), &cx)
            .await
            .expect("response");
        assert_eq!(resp.headers()[CONTENT_LENGTH], "5");
        assert!(matches!(resp.body(), ResponseBody::Full(_)));
        let (status, body) = read(run_in(&mw, &answering("123456"), get(), &cx).await).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        );
    }

    #[tokio::test]
    async fn without_a_maximum_large_responses_stream_past_memory() {
        let mw = buffering(serde_json::json!({"memResponseBodyBytes": 3}));
        let cx = context_at("192.0.2.1:1", false);
        let get = || {
            Request::get("/")
                .body(RequestBody::empty())
                .expect("request")
        };
        let small = run_in(&mw, &answering("123"), get(), &cx)
            .await
            .expect("response");
        assert!(
            matches!(small.body(), ResponseBody::Full(_)),
            "fits: buffered"
        );
        let large = run_in(&mw, &answering("123456"), get(), &cx)
            .await
            .expect("response");
        assert!(
            matches!(large.body(), ResponseBody::Boxed(_)),
            "too large: streamed"
        );
        let (status, body) = read(Ok(large)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "123456"));
    }

    /// Answers each attempt with the next status of a script.
    struct Script {
        statuses: Mutex<Vec<u16>>,
        bodies: Mutex<Vec<Bytes>>,
    }

    impl Terminal for Script {
        fn forward<'a>(
            &'a self,
            req: Request<RequestBody>,
            _: &'a RequestContext,
        ) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let body = req.into_body().collect().await.expect("body").to_bytes();
                self.bodies.lock().expect("lock").push(body);
                let status = self.statuses.lock().expect("lock").remove(0);
                if status == 0 {
                    return Err(ProxyError::NoEndpoints.into());
                }
                Ok(reply(
                    StatusCode::from_u16(status).expect("status"),
                    "answer",
                ))
            })
        }
    }

    #[tokio::test]
    async fn retry_expression_resends_the_buffered_request() {
        let mw =
            buffering(serde_json::json!({"retryExpression": "IsNetworkError() && Attempts() < 3"}));
        let cx = context_at("192.0.2.1:1", false);
        let script = Script {
            statuses: Mutex::new(vec![502, 504, 502, 200]),
            bodies: Mutex::default(),
        };
        let (status, _) = read(run_in(&mw, &script, post("payload", true), &cx).await).await;
        // Attempts 1 and 2 are retried; the 3rd (502) is not (Attempts() < 3 fails).
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let bodies = script.bodies.lock().expect("lock").clone();
        assert_eq!(bodies.len(), 3);
        assert!(bodies.iter().all(|b| &b[..] == b"payload"));

        let mw = buffering(serde_json::json!({"retryExpression": "ResponseCode() == 503"}));
        let script = Script {
            statuses: Mutex::new(vec![0, 200]),
            bodies: Mutex::default(),
        };
        // A failure with no response (503 no endpoints) counts by its status.
        assert_eq!(
            read(run_in(&mw, &script, post("x", true), &cx).await)
                .await
                .0,
            StatusCode::OK
        );
    }

    #[test]
    fn retry_expressions_parse_and_evaluate() {
        let facts = |attempts, status| Facts { attempts, status };
        let holds = |text: &str, f: Facts| Expr::parse(text).expect(text).holds(&f);
        assert!(holds("IsNetworkError() && Attempts() < 2", facts(1, 502)));
        assert!(!holds("IsNetworkError() && Attempts() < 2", facts(2, 502)));
        assert!(!holds("IsNetworkError()", facts(1, 500)));
        assert!(holds(
            "ResponseCode() >= 500 || Attempts() == 0",
            facts(1, 503)
        ));
        assert!(holds("!(ResponseCode() != 404)", facts(1, 404)));
        assert!(holds("Attempts() <= 1 && !IsNetworkError()", facts(1, 200)));
        assert!(holds(
            "ResponseCode() > 499&&ResponseCode()<600",
            facts(1, 599)
        ));
        for bad in [
            "Attempts()",
            "Attempts < 2",
            "IsNetworkError() && 3",
            "IsNetworkError() < 2",
            "Foo()",
            "(IsNetworkError()",
            "IsNetworkError() IsNetworkError()",
            "",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn negative_sizes_are_refused() {
        for config in [
            serde_json::json!({"maxRequestBodyBytes": -1}),
            serde_json::json!({"memResponseBodyBytes": -1}),
            serde_json::json!({"retryExpression": "Attempts() <"}),
        ] {
            assert!(
                build(&config, &mut FakeBuild::default()).is_err(),
                "{config} was accepted"
            );
        }
    }
}
