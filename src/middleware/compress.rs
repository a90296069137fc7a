//! `compress`: gzip, brotli or zstd responses, chosen from `Accept-Encoding`
//! as Traefik chooses (q-values, then the `encodings` order).
//!
//! The body is streamed through the encoder, never buffered whole. Whether to
//! compress is decided from `Content-Length` when the backend sent one; when
//! the length is unknown, only the first `minResponseBodyBytes` are held back,
//! and only while the backend keeps them coming: as soon as it pauses (or the
//! held bytes reach the minimum), compression starts, as Traefik's flush does.
//! The encoder is flushed whenever the backend pauses, so streamed responses
//! (server-sent events, long polls) reach the client chunk by chunk.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_compression::codecs::{BrotliEncoder, EncodeV2, GzipEncoder, ZstdEncoder};
use async_compression::core::util::{PartialBuffer, WriteBuffer};
use async_compression::Level;
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::content_type::{detect_content_type, Replay};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{BoxError, RequestBody, ResponseBody};

/// Traefik's default `minResponseBodyBytes`.
const DEFAULT_MIN_SIZE: u64 = 1024;
/// Compressed output is handed on once this much has piled up.
const OUTPUT_CHUNK: usize = 16 * 1024;

/// A content coding this middleware produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Gzip,
    Brotli,
    Zstd,
}

impl Encoding {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gzip" => Some(Self::Gzip),
            "br" => Some(Self::Brotli),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// A fresh encoder at the levels Traefik's libraries default to.
    fn encoder(self) -> Box<dyn EncodeV2 + Send> {
        match self {
            Self::Gzip => Box::new(GzipEncoder::new(Level::Default.into())),
            Self::Brotli => Box::new(BrotliEncoder::new(
                async_compression::brotli::EncoderParams::default().quality(Level::Precise(6)),
            )),
            Self::Zstd => Box::new(ZstdEncoder::new(3)),
        }
    }
}

/// A parsed media type (`mime.ParseMediaType`): lowercased type, parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaType {
    essence: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    /// Go's `mime.ParseMediaType`, to the extent compression needs it.
    fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = text.split(';');
        let essence = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|c| c > 0x20 && c < 0x7f && !br#"()<>@,;:\"/[]?="#.contains(&c))
        };
        let valid = match essence.split_once('/') {
            Some((kind, sub)) => token(kind) && token(sub),
            None => token(&essence),
        };
        if !valid {
            return Err(format!("mime: invalid media type {text:?}"));
        }
        let mut params = Vec::new();
        for piece in pieces {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let (key, value) = piece
                .split_once('=')
                .ok_or_else(|| format!("mime: invalid media parameter in {text:?}"))?;
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\\\"", "\""),
                None if token(value) => value.to_owned(),
                None => return Err(format!("mime: invalid media parameter in {text:?}")),
            };
            if !token(&key) {
                return Err(format!("mime: invalid media parameter in {text:?}"));
            }
            params.push((key, value));
        }
        params.sort();
        Ok(Self { essence, params })
    }

    /// Whether a response's type matches this configured one: same essence,
    /// and, if this one has parameters, exactly the same parameters.
    fn matches(&self, other: &MediaType) -> bool {
        self.essence == other.essence && (self.params.is_empty() || self.params == other.params)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Config {
    excluded_content_types: Vec<String>,
    included_content_types: Vec<String>,
    min_response_body_bytes: i64,
    encodings: Vec<String>,
    default_encoding: String,
}

/// Builds a `compress` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    if !config.excluded_content_types.is_empty() && !config.included_content_types.is_empty() {
        return Err(cx.invalid(
            "excludedContentTypes and includedContentTypes options are mutually exclusive"
                .to_owned(),
        ));
    }
    let parse_all = |list: &[String], what: &str| {
        list.iter()
            .map(|t| {
                MediaType::parse(t)
                    .map_err(|e| cx.invalid(format!("parsing {what} media type: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    // gRPC and server-sent events are never compressed (the issue's contract;
    // Traefik 3.7 compresses event streams).
    let mut excluded = vec![
        MediaType {
            essence: "application/grpc".to_owned(),
            params: Vec::new(),
        },
        MediaType {
            essence: "text/event-stream".to_owned(),
            params: Vec::new(),
        },
    ];
    excluded.extend(parse_all(&config.excluded_content_types, "excluded")?);
    let included = parse_all(&config.included_content_types, "included")?;
    let encodings = if config.encodings.is_empty() {
        vec![Encoding::Gzip, Encoding::Brotli, Encoding::Zstd]
    } else {
        config
            .encodings
            .iter()
            .map(|e| {
                Encoding::parse(e).ok_or_else(|| cx.invalid(format!("unsupported encoding: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let default_encoding = if config.default_encoding.is_empty() {
        None
    } else {
        match Encoding::parse(&config.default_encoding).filter(|e| encodings.contains(e)) {
            Some(e) => Some(e),
            None => {
                return Err(cx.invalid(format!(
                    "unsupported default encoding: {}",
                    config.default_encoding
                )))
            }
        }
    };
    let min_size = u64::try_from(config.min_response_body_bytes)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MIN_SIZE);
    Ok(Arc::new(Compress {
        excluded,
        included,
        min_size,
        encodings,
        default_encoding,
    }))
}

/// The built `compress`.
#[derive(Debug)]
struct Compress {
    /// `application/grpc`, `text/event-stream` plus `excludedContentTypes`: never compressed (and
    /// requests of these types are not compressed either).
    excluded: Vec<MediaType>,
    /// When set, only these response types are compressed.
    included: Vec<MediaType>,
    min_size: u64,
    /// Allowed encodings, by priority.
    encodings: Vec<Encoding>,
    default_encoding: Option<Encoding>,
}

/// What negotiation chose.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    /// No compressing handler: the response passes untouched (no Vary).
    Identity,
    /// Compress with this encoding (if the response qualifies).
    Encode(Encoding),
}

impl Compress {
    /// Traefik's `getCompressionEncoding` over every `Accept-Encoding` line.
    fn negotiate(&self, lines: &[&str]) -> Choice {
        if lines.len() == 1 && lines[0].is_empty() {
            return Choice::Identity;
        }
        // Priority: `*` first, then the encodings' order, `identity` last.
        let priority = |name: &str| -> Option<i64> {
            match name {
                "*" => Some(-1),
                "identity" => Some(self.encodings.len() as i64),
                other => Encoding::parse(other)
                    .and_then(|e| self.encodings.iter().position(|x| *x == e))
                    .map(|i| i as i64),
            }
        };
        let mut acceptable: Vec<(&str, f64, i64)> = Vec::new();
        for line in lines {
            let compact: String = line.chars().filter(|c| *c != ' ').collect();
            for item in compact.split(',') {
                let (name, params) = match item.split_once(';') {
                    Some((name, params)) => (name, Some(params)),
                    None => (item, None),
                };
                let Some(rank) = priority(name) else { continue };
                let weight = match params.and_then(|p| p.strip_prefix("q=")) {
                    Some(q) => match q.parse::<f64>() {
                        Ok(w) => w,
                        Err(_) => continue,
                    },
                    None => 1.0,
                };
                if weight == 0.0 {
                    continue;
                }
                let name = match name {
                    "*" => "*",
                    "identity" => "identity",
                    other => Encoding::parse(other).map_or("", Encoding::name),
                };
                acceptable.push((name, weight, rank));
            }
        }
        let best = acceptable.into_iter().min_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.2.cmp(&b.2))
        });
        match best {
            None | Some(("identity", _, _)) => Choice::Identity,
            Some(("*", _, _)) => Choice::Encode(
                self.default_encoding
                    .or(self.encodings.first().copied())
                    .unwrap_or(Encoding::Gzip),
            ),
            Some((name, _, _)) => Encoding::parse(name).map_or(Choice::Identity, Choice::Encode),
        }
    }

    /// The request-side decision.
    fn choose(&self, req: &Request<RequestBody>) -> Choice {
        if req.method() == Method::HEAD {
            return Choice::Identity;
        }
        let request_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| MediaType::parse(v).ok());
        if let Some(request_type) = request_type {
            if self
                .excluded
                .iter()
                .any(|e| e.essence == request_type.essence)
            {
                return Choice::Identity;
            }
        }
        let lines: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        if lines.is_empty() {
            return self
                .default_encoding
                .map_or(Choice::Identity, Choice::Encode);
        }
        self.negotiate(&lines)
    }

    /// Whether the response's head lets it be compressed.
    fn qualifies(&self, resp: &Response<ResponseBody>) -> bool {
        let status = resp.status();
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return false;
        }
        let headers = resp.headers();
        if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.is_empty())
        {
            return false;
        }
        let Some(content_type) = headers.get(header::CONTENT_TYPE).filter(|v| !v.is_empty()) else {
            return true;
        };
        let Ok(parsed) = content_type
            .to_str()
            .map_err(|_| ())
            .and_then(|t| MediaType::parse(t).map_err(|_| ()))
        else {
            return false;
        };
        if !self.included.is_empty() {
            return self.included.iter().any(|i| i.matches(&parsed));
        }
        !self.excluded.iter().any(|e| e.matches(&parsed))
    }
}

/// gzhttp (Traefik's gzip handler) re-checks the *first* Accept-Encoding line
/// for `gzip` with a non-zero q-value; `*` alone is not enough.
fn gzhttp_accepts(req: &Request<RequestBody>) -> bool {
    let Some(first) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    for item in first.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if !coding.eq_ignore_ascii_case("gzip") {
            continue;
        }
        let mut q = 1.0;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        return q > 0.0;
    }
    false
}

impl Middleware for Compress {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Choice::Encode(encoding) = self.choose(&req) else {
                return next.run(req, cx).await;
            };
            let gzip_refused = encoding == Encoding::Gzip && !gzhttp_accepts(&req);
            let mut resp = next.run(req, cx).await?;
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzip_refused || !self.qualifies(&resp) {
                return Ok(resp);
            }
            Ok(self.compress(resp, encoding).await)
        })
    }
}

impl Compress {
    /// Decides from the length (or the first bytes) and wraps the body.
    async fn compress(
        &self,
        resp: Response<ResponseBody>,
        encoding: Encoding,
    ) -> Response<ResponseBody> {
        let (mut parts, mut body) = resp.into_parts();
        let known = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or_else(|| body.size_hint().exact());
        let sniff = encoding == Encoding::Gzip && !parts.headers.contains_key(header::CONTENT_TYPE);
        // How many bytes to hold back before deciding.
        let hold = match known {
            Some(len) if len < self.min_size => {
                return Response::from_parts(parts, body);
            }
            Some(_) if sniff => 1,
            Some(_) => 0,
            None => self.min_size,
        };
        let mut held: VecDeque<Frame<Bytes>> = VecDeque::new();
        let mut held_len = 0u64;
        let mut ended = false;
        let mut failed: Option<BoxError> = None;
        while held_len < hold {
            let frame = if held_len == 0 {
                body.frame().await
            } else {
                match body.frame().now_or_never() {
                    Some(frame) => frame,
                    // The backend paused: a flush point, compression starts.
                    None => break,
                }
            };
            match frame {
                None => {
                    ended = true;
                    break;
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Some(Ok(frame)) => {
                    let trailers = frame.is_trailers();
                    held_len += frame.data_ref().map_or(0, |d| d.len() as u64);
                    held.push_back(frame);
                    if trailers {
                        ended = true;
                        break;
                    }
                }
            }
        }
        if failed.is_some() || (ended && held_len < self.min_size) {
            return Response::from_parts(
                parts,
                ResponseBody::boxed(Replay::new(held, failed, (!ended).then_some(body))),
            );
        }
        if sniff {
            if let Some(first) = held
                .iter()
                .find_map(|f| f.data_ref().filter(|d| !d.is_empty()))
            {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(detect_content_type(first)),
                );
            }
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.name()),
        );
        if encoding == Encoding::Gzip {
            parts.headers.remove(header::ACCEPT_RANGES);
        }
        let body = Compressed {
            encoder: encoding.encoder(),
            held,
            inner: if ended { None } else { Some(body) },
            out: Vec::new(),
            unflushed: false,
            trailers: None,
            state: State::Streaming,
        };
        Response::from_parts(parts, ResponseBody::boxed(body))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Trailers,
    Done,
}

/// A response body streamed through an encoder.
struct Compressed {
    encoder: Box<dyn EncodeV2 + Send>,
    /// Frames read before compression started.
    held: VecDeque<Frame<Bytes>>,
    /// The rest of the backend's body (`None` once it ended).
    inner: Option<ResponseBody>,
    /// Compressed bytes not handed on yet.
    out: Vec<u8>,
    /// Input given to the encoder since its last flush.
    unflushed: bool,
    trailers: Option<HeaderMap>,
    state: State,
}

impl Compressed {
    /// Runs `step` until it reports completion, collecting its output.
    fn drive(
        &mut self,
        mut step: impl FnMut(&mut dyn EncodeV2, &mut WriteBuffer<'_>) -> io::Result<bool>,
    ) -> io::Result<()> {
        let mut scratch = [0u8; 8 * 1024];
        loop {
            let mut output = WriteBuffer::new_initialized(&mut scratch);
            let done = step(self.encoder.as_mut(), &mut output)?;
            let written = output.written().len();
            self.out.extend_from_slice(&scratch[..written]);
            if done {
                return Ok(());
            }
            if written == 0 && !done {
                // The encoder neither finished nor produced anything: keep going
                // only while it makes progress.
                let mut probe = WriteBuffer::new_initialized(&mut scratch);
                let done = step(self.encoder.as_mut(), &mut probe)?;
                let written = probe.written().len();
                self.out.extend_from_slice(&scratch[..written]);
                if done {
                    return Ok(());
                }
                if written == 0 {
                    return Err(io::Error::other("compression made no progress"));
                }
            }
        }
    }

    fn encode(&mut self, data: &[u8]) -> io::Result<()> {
        let mut input = PartialBuffer::new(data);
        let mut scratch = [0u8; 8 * 1024];
        while !input.unwritten().is_empty() {
            let before = input.written_len();
            let mut output = WriteBuffer::new_initialized(&mut scratch);
            self.encoder.encode(&mut input, &mut output)?;
            let written = output.written().len();
            self.out.extend_from_slice(&scratch[..written]);
            if written == 0 && input.written_len() == before {
                return Err(io::Error::other("compression made no progress"));
            }
        }
        self.unflushed = true;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.unflushed = false;
        self.drive(|encoder, output| encoder.flush(output))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.unflushed = false;
        self.drive(|encoder, output| encoder.finish(output))
    }

    fn take_out(&mut self) -> Frame<Bytes> {
        Frame::data(Bytes::from(std::mem::take(&mut self.out)))
    }

    /// The next input frame: held ones first, then the backend's.
    fn poll_input(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut self.inner {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Body for Compressed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Trailers => {
                    this.state = State::Done;
                    return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                State::Streaming => {}
            }
            match this.poll_input(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if !data.is_empty() {
                            this.encode(&data)?;
                        }
                        if this.out.len() >= OUTPUT_CHUNK {
                            return Poll::Ready(Some(Ok(this.take_out())));
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        this.inner = None;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    this.finish()?;
                    this.state = State::Trailers;
                    if !this.out.is_empty() {
                        return Poll::Ready(Some(Ok(this.take_out())));
                    }
                }
                Poll::Pending => {
                    // The backend paused: push out everything it sent so far.
                    if this.unflushed {
                        this.flush()?;
                    }
                    if !this.out.is_empty() {
                        return Poll::Ready(Some(Ok(this.take_out())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::middleware::testing::{self, *};

    async fn decompress(encoding: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await.unwrap(),
            "br" => BrotliDecoder::new(data)
                .read_to_end(&mut out)
                .await
                .unwrap(),
            "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await.unwrap(),
            other => panic!("unexpected encoding {other}"),
        };
        out
    }

    fn compress_mw(config: Value) -> Arc<dyn Middleware> {
        testing::make(build, config).unwrap()
    }

    fn text(len: usize) -> String {
        "sluice compresses text. ".repeat(len / 24 + 1)[..len].to_owned()
    }

    fn full(body: String, content_type: Option<&'static str>) -> Recorder {
        Recorder::with(move || {
            let mut resp = Response::new(ResponseBody::full(body.clone()));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
            if let Some(ct) = content_type {
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            resp
        })
    }

    fn negotiate(config: Value, accept: &[&str]) -> Choice {
        build_compress(config).negotiate(accept)
    }

    fn build_compress(config: Value) -> Compress {
        let config: Config = serde_json::from_value(config).unwrap();
        let encodings = if config.encodings.is_empty() {
            vec![Encoding::Gzip, Encoding::Brotli, Encoding::Zstd]
        } else {
            config
                .encodings
                .iter()
                .filter_map(|e| Encoding::parse(e))
                .collect()
        };
        Compress {
            excluded: Vec::new(),
            included: Vec::new(),
            min_size: DEFAULT_MIN_SIZE,
            default_encoding: Encoding::parse(&config.default_encoding),
            encodings,
        }
    }

    #[test]
    fn negotiation_matches_traefik() {
        use Choice::*;
        use Encoding::*;
        let d = json!({});
        assert_eq!(negotiate(d.clone(), &["gzip, br"]), Encode(Gzip));
        assert_eq!(negotiate(d.clone(), &["br, gzip"]), Encode(Gzip));
        assert_eq!(negotiate(d.clone(), &["zstd, br"]), Encode(Brotli));
        assert_eq!(negotiate(d.clone(), &["br"]), Encode(Brotli));
        assert_eq!(
            negotiate(d.clone(), &["br;q=1, gzip;q=0.5"]),
            Encode(Brotli)
        );
        assert_eq!(negotiate(d.clone(), &["gzip;q=0.5, identity"]), Identity);
        assert_eq!(negotiate(d.clone(), &["deflate"]), Identity);
        assert_eq!(negotiate(d.clone(), &["*;q=0"]), Identity);
        assert_eq!(negotiate(d.clone(), &[""]), Identity);
        assert_eq!(negotiate(d.clone(), &["GZIP"]), Identity);
        assert_eq!(negotiate(d.clone(), &["*"]), Encode(Gzip));
        assert_eq!(negotiate(d.clone(), &["gzip;q=bad, zstd"]), Encode(Zstd));
        assert_eq!(negotiate(d.clone(), &["zstd;q=0.9", "br"]), Encode(Brotli));
        let ordered = json!({"encodings": ["zstd", "br"], "defaultEncoding": "br"});
        assert_eq!(
            negotiate(ordered.clone(), &["gzip, br, zstd"]),
            Encode(Zstd)
        );
        assert_eq!(negotiate(ordered.clone(), &["*"]), Encode(Brotli));
        assert_eq!(negotiate(ordered, &["gzip"]), Identity);
    }

    async fn fetch(
        mw: &Arc<dyn Middleware>,
        backend: &Recorder,
        headers: &[(&str, &str)],
    ) -> (Response<ResponseBody>, Bytes) {
        let resp = run_tls(mw, get("/", headers), backend, false).await;
        let (parts, body_) = resp.into_parts();
        let bytes = body(Response::new(body_)).await;
        (Response::from_parts(parts, ResponseBody::empty()), bytes)
    }

    #[tokio::test]
    async fn each_encoding_round_trips() {
        let payload = text(5000);
        for (accept, encoding) in [("gzip", "gzip"), ("br", "br"), ("zstd", "zstd")] {
            let mw = compress_mw(json!({}));
            let backend = full(payload.clone(), Some("text/plain"));
            let (resp, bytes) = fetch(&mw, &backend, &[("accept-encoding", accept)]).await;
            assert_eq!(resp.headers()["content-encoding"], encoding);
            assert_eq!(resp.headers()["vary"], "Accept-Encoding");
            assert!(resp.headers().get("content-length").is_none());
            assert!(
                bytes.len() < payload.len() / 4,
                "{encoding}: {}",
                bytes.len()
            );
            assert_eq!(decompress(encoding, &bytes).await, payload.as_bytes());
        }
    }

    #[tokio::test]
    async fn small_bodies_are_not_compressed_but_vary_is_added() {
        let mw = compress_mw(json!({}));
        let backend = full("hello".to_owned(), Some("text/plain"));
        let (resp, bytes) = fetch(&mw, &backend, &[("accept-encoding", "gzip")]).await;
        assert!(resp.headers().get("content-encoding").is_none());
        assert_eq!(resp.headers()["vary"], "Accept-Encoding");
        assert_eq!(resp.headers()["content-length"], "5");
        assert_eq!(bytes, "hello");
        let mw = compress_mw(json!({"minResponseBodyBytes": 4}));
        let (resp, _) = fetch(&mw, &backend, &[("accept-encoding", "gzip")]).await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
    }

    #[tokio::test]
    async fn request_side_skips_add_no_vary() {
        let mw = compress_mw(json!({}));
        let backend = full(text(4000), Some("text/plain"));
        let (resp, _) = fetch(&mw, &backend, &[]).await;
        assert!(resp.headers().get("vary").is_none());
        assert!(resp.headers().get("content-encoding").is_none());
        let resp = run_tls(
            &mw,
            request(Method::HEAD, "/", &[("accept-encoding", "gzip")]),
            &backend,
            false,
        )
        .await;
        assert!(resp.headers().get("vary").is_none());
        let grpc = [
            ("accept-encoding", "gzip"),
            ("content-type", "application/grpc"),
        ];
        let (resp, _) = fetch(&mw, &backend, &grpc).await;
        assert!(resp.headers().get("vary").is_none());
        let (resp, _) = fetch(&mw, &backend, &[("accept-encoding", "identity")]).await;
        assert!(resp.headers().get("vary").is_none());
    }

    #[tokio::test]
    async fn default_encoding_applies_without_accept_encoding() {
        let mw = compress_mw(json!({"defaultEncoding": "zstd"}));
        let backend = full(text(4000), Some("text/plain"));
        let (resp, bytes) = fetch(&mw, &backend, &[]).await;
        assert_eq!(resp.headers()["content-encoding"], "zstd");
        assert_eq!(decompress("zstd", &bytes).await, text(4000).as_bytes());
    }

    #[tokio::test]
    async fn star_picks_gzip_but_gzhttp_does_not_compress() {
        let mw = compress_mw(json!({}));
        let backend = full(text(4000), Some("text/plain"));
        let (resp, _) = fetch(&mw, &backend, &[("accept-encoding", "*")]).await;
        assert!(resp.headers().get("content-encoding").is_none());
        assert_eq!(resp.headers()["vary"], "Accept-Encoding");
        let mw = compress_mw(json!({"defaultEncoding": "br"}));
        let (resp, _) = fetch(&mw, &backend, &[("accept-encoding", "*")]).await;
        assert_eq!(resp.headers()["content-encoding"], "br");
    }

    #[tokio::test]
    async fn response_side_skips() {
        let mw = compress_mw(
            json!({"excludedContentTypes": ["image/png", "text/plain; charset=ascii"]}),
        );
        let ae = [("accept-encoding", "br")];
        for ct in [
            "image/png",
            "application/grpc+proto; x=1",
            "application/grpc",
            "text/plain;charset=ascii",
            "not a type",
        ] {
            let backend = full(text(4000), Some(Box::leak(ct.to_owned().into_boxed_str())));
            let (resp, _) = fetch(&mw, &backend, &ae).await;
            let compressed = resp.headers().get("content-encoding").is_some();
            assert_eq!(compressed, ct == "application/grpc+proto; x=1", "{ct}");
        }
        let backend = full(text(4000), Some("text/plain; charset=utf-8"));
        let (resp, _) = fetch(&mw, &backend, &ae).await;
        assert_eq!(resp.headers()["content-encoding"], "br");
        let encoded = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::full(text(4000)));
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        });
        let (resp, bytes) = fetch(&mw, &encoded, &ae).await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        assert_eq!(bytes, text(4000));
        let not_modified = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            resp
        });
        let (resp, _) = fetch(&mw, &not_modified, &ae).await;
        assert!(resp.headers().get("content-encoding").is_none());
    }

    #[tokio::test]
    async fn included_types_limit_compression() {
        let mw = compress_mw(json!({"includedContentTypes": ["application/json"]}));
        let ae = [("accept-encoding", "gzip")];
        let (resp, _) = fetch(
            &mw,
            &full(text(4000), Some("application/json; charset=utf-8")),
            &ae,
        )
        .await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let (resp, _) = fetch(&mw, &full(text(4000), Some("text/html")), &ae).await;
        assert!(resp.headers().get("content-encoding").is_none());
    }

    #[tokio::test]
    async fn gzip_sniffs_a_missing_type_and_drops_accept_ranges() {
        let mw = compress_mw(json!({}));
        let backend = Recorder::with(|| {
            let body = format!("<html>{}", text(4000));
            let mut resp = Response::new(ResponseBody::full(body.clone()));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
            resp.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            resp
        });
        let (resp, _) = fetch(&mw, &backend, &[("accept-encoding", "gzip")]).await;
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        assert!(resp.headers().get("accept-ranges").is_none());
    }

    /// A streamed body fed through a channel, as a slow backend sends it.
    fn channel_backend(content_type: &'static str) -> (tokio::sync::mpsc::Sender<Bytes>, Recorder) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let rx = std::sync::Mutex::new(Some(rx));
        let recorder = Recorder::with(move || {
            let rx = rx.lock().unwrap().take().expect("one request");
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, io::Error>(Frame::data(b)), rx))
            });
            let mut resp =
                Response::new(ResponseBody::boxed(http_body_util::StreamBody::new(stream)));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            resp
        });
        (tx, recorder)
    }

    #[tokio::test]
    async fn event_streams_are_never_compressed() {
        let mw = compress_mw(json!({}));
        let (tx, backend) = channel_backend("text/event-stream; charset=utf-8");
        tx.send(Bytes::from(text(2000))).await.unwrap();
        drop(tx);
        let resp = run_tls(
            &mw,
            get("/", &[("accept-encoding", "gzip")]),
            &backend,
            false,
        )
        .await;
        assert!(resp.headers().get("content-encoding").is_none());
        assert_eq!(body(resp).await, text(2000));
    }

    #[tokio::test]
    async fn streamed_chunks_are_compressed_and_flushed_one_by_one() {
        let mw = compress_mw(json!({}));
        let (tx, backend) = channel_backend("application/x-ndjson");
        tx.send(Bytes::from_static(b"data: one\n\n")).await.unwrap();
        let resp = run_tls(
            &mw,
            get("/", &[("accept-encoding", "gzip")]),
            &backend,
            false,
        )
        .await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let mut body = resp.into_body();
        let mut seen = Vec::new();
        // Each event must be decodable before the next one is sent.
        for event in ["data: one\n\n", "data: two\n\n", "data: three\n\n"] {
            if event != "data: one\n\n" {
                tx.send(Bytes::from(event)).await.unwrap();
            }
            let frame = tokio::time::timeout(Duration::from_secs(2), body.frame())
                .await
                .expect("event flushed without waiting for more")
                .unwrap()
                .unwrap();
            seen.extend_from_slice(frame.data_ref().unwrap());
            let mut partial = Vec::new();
            let _ = GzipDecoder::new(&seen[..]).read_to_end(&mut partial).await;
            assert!(
                String::from_utf8_lossy(&partial).ends_with(event),
                "{partial:?}"
            );
        }
        drop(tx);
        while let Some(frame) = body.frame().await {
            seen.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        assert_eq!(
            decompress("gzip", &seen).await,
            b"data: one\n\ndata: two\n\ndata: three\n\n"
        );
    }

    #[tokio::test]
    async fn unknown_length_holds_back_only_while_data_keeps_coming() {
        let mw = compress_mw(json!({}));
        // Short and complete before the decision: sent as is.
        let (tx, backend) = channel_backend("application/octet-stream");
        tx.send(Bytes::from_static(b"tiny")).await.unwrap();
        drop(tx);
        let resp = run_tls(&mw, get("/", &[("accept-encoding", "br")]), &backend, false).await;
        assert!(resp.headers().get("content-encoding").is_none());
        assert_eq!(body(resp).await, "tiny");
        // Large and ready: compressed.
        let (tx, backend) = channel_backend("application/octet-stream");
        for _ in 0..4 {
            tx.send(Bytes::from(text(600))).await.unwrap();
        }
        drop(tx);
        let resp = run_tls(&mw, get("/", &[("accept-encoding", "br")]), &backend, false).await;
        assert_eq!(resp.headers()["content-encoding"], "br");
        let bytes = body(resp).await;
        assert_eq!(
            decompress("br", &bytes).await,
            text(600).repeat(4).as_bytes()
        );
    }

    #[test]
    fn config_is_validated() {
        for bad in [
            json!({"excludedContentTypes": ["a/b"], "includedContentTypes": ["c/d"]}),
            json!({"encodings": ["gzip", "deflate"]}),
            json!({"encodings": ["gzip"], "defaultEncoding": "br"}),
            json!({"excludedContentTypes": ["text/"]}),
            json!({"minResponseBodyBytes": "big"}),
        ] {
            assert!(testing::make(build, bad.clone()).is_err(), "{bad}");
        }
        assert!(testing::make(build, json!({"minResponseBodyBytes": -5})).is_ok());
    }

    #[test]
    fn media_types_parse_like_go() {
        let t = MediaType::parse("Text/HTML; Charset=\"utf-8\"").unwrap();
        assert_eq!(t.essence, "text/html");
        assert_eq!(t.params, [("charset".to_owned(), "utf-8".to_owned())]);
        assert!(MediaType::parse("").is_err());
        assert!(MediaType::parse("text/").is_err());
        assert!(MediaType::parse("text/plain; x").is_err());
    }
}
