//! `contentType`: sets a `Content-Type` sniffed from the body (Go's
//! `http.DetectContentType`) on responses that have none.
//!
//! sluice, like Traefik 3, never sniffs by default; this middleware turns it
//! on. `autoDetect` (Traefik 2's field) is accepted: `false` keeps it off.
//! Only the first non-empty chunk of the body is looked at (at most 512 bytes),
//! as Go's server does, and the body is then streamed unchanged.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::build::{decode, BuildError, Context};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{BoxError, RequestBody, ResponseBody};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    auto_detect: Option<bool>,
}

/// Builds a `contentType` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    Ok(Arc::new(ContentType {
        detect: config.auto_detect != Some(false),
    }))
}

/// The built `contentType`.
#[derive(Debug)]
struct ContentType {
    detect: bool,
}

impl Middleware for ContentType {
    fn handle<'a>(
        &'a self,
        req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let head = req.method() == Method::HEAD;
            let resp = next.run(req, cx).await?;
            if !self.detect || head || !needs_sniffing(&resp) {
                return Ok(resp);
            }
            Ok(sniff_response(resp).await)
        })
    }
}

/// Go's conditions: no Content-Type, no (non-empty) Content-Encoding, no
/// Transfer-Encoding, and a status that allows a body.
fn needs_sniffing(resp: &Response<ResponseBody>) -> bool {
    let status = resp.status();
    let headers = resp.headers();
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || headers.contains_key(header::CONTENT_TYPE)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.is_empty()))
}

/// Waits for the first non-empty data frame, sniffs it, and gives back the
/// response with the frames read so far replayed in front of the rest.
async fn sniff_response(resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let (mut parts, mut body) = resp.into_parts();
    let mut read = VecDeque::new();
    let mut failed = None;
    let mut ended = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let sniffed = frame
                    .data_ref()
                    .filter(|d| !d.is_empty())
                    .map(|d| detect_content_type(d));
                read.push_back(frame);
                if let Some(content_type) = sniffed {
                    parts
                        .headers
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                    ended = false;
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    Response::from_parts(
        parts,
        ResponseBody::boxed(Replay::new(read, failed, (!ended).then_some(body))),
    )
}

/// Frames already read, then an error if reading failed, then the rest.
pub(super) struct Replay {
    read: VecDeque<Frame<Bytes>>,
    failed: Option<BoxError>,
    rest: Option<ResponseBody>,
}

impl Replay {
    /// Replays `read`, then `failed` (ending the body), else streams `rest`
    /// (`None` when the body already ended).
    pub(super) fn new(
        read: VecDeque<Frame<Bytes>>,
        failed: Option<BoxError>,
        rest: Option<ResponseBody>,
    ) -> Self {
        Self { read, failed, rest }
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.failed.take() {
            this.rest = None;
            return Poll::Ready(Some(Err(e)));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty()
            && self.failed.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .filter_map(Frame::data_ref)
            .map(|d| d.len() as u64)
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + read);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}

/// Go's `http.DetectContentType` (WHATWG MIME sniffing, Go's subset): at most
/// the first 512 bytes are considered; the fallback is
/// `application/octet-stream`.
pub(super) fn detect_content_type(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(512)];
    let first = data
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' '))
        .unwrap_or(data.len());
    let trimmed = &data[first..];

    const HTML: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    for sig in HTML {
        if html_match(trimmed, sig) {
            return "text/html; charset=utf-8";
        }
    }
    if masked(trimmed, b"<?xml", &[0xFF; 5]) {
        return "text/xml; charset=utf-8";
    }
    let exact: [(&[u8], &'static str); 2] = [
        (b"%PDF-", "application/pdf"),
        (b"%!PS-Adobe-", "application/postscript"),
    ];
    for (sig, ct) in exact {
        if data.starts_with(sig) {
            return ct;
        }
    }
    let boms: [(&[u8], &[u8], &'static str); 3] = [
        (
            b"\xFE\xFF\x00\x00",
            b"\xFF\xFF\x00\x00",
            "text/plain; charset=utf-16be",
        ),
        (
            b"\xFF\xFE\x00\x00",
            b"\xFF\xFF\x00\x00",
            "text/plain; charset=utf-16le",
        ),
        (
            b"\xEF\xBB\xBF\x00",
            b"\xFF\xFF\xFF\x00",
            "text/plain; charset=utf-8",
        ),
    ];
    for (pat, mask, ct) in boms {
        if masked(data, pat, mask) {
            return ct;
        }
    }
    let riff_mask: &'static [u8] = b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF";
    let table: [Signature; 22] = [
        (b"\x00\x00\x01\x00", None, "image/x-icon"),
        (b"\x00\x00\x02\x00", None, "image/x-icon"),
        (b"BM", None, "image/bmp"),
        (b"GIF87a", None, "image/gif"),
        (b"GIF89a", None, "image/gif"),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP",
            Some(b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF"),
            "image/webp",
        ),
        (b"\x89PNG\x0D\x0A\x1A\x0A", None, "image/png"),
        (b"\xFF\xD8\xFF", None, "image/jpeg"),
        (b"FORM\x00\x00\x00\x00AIFF", Some(riff_mask), "audio/aiff"),
        (b"ID3", Some(b"\xFF\xFF\xFF"), "audio/mpeg"),
        (
            b"OggS\x00",
            Some(b"\xFF\xFF\xFF\xFF\xFF"),
            "application/ogg",
        ),
        (
            b"MThd\x00\x00\x00\x06",
            Some(b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"),
            "audio/midi",
        ),
        (b"RIFF\x00\x00\x00\x00AVI ", Some(riff_mask), "video/avi"),
        (b"RIFF\x00\x00\x00\x00WAVE", Some(riff_mask), "audio/wave"),
        (b"", None, "mp4"),
        (b"\x1A\x45\xDF\xA3", None, "video/webm"),
        (b"", None, "fontobject"),
        (b"\x00\x01\x00\x00", None, "font/ttf"),
        (b"OTTO", None, "font/otf"),
        (b"ttcf", None, "font/collection"),
        (b"wOFF", None, "font/woff"),
        (b"wOF2", None, "font/woff2"),
    ];
    for (pat, mask, ct) in table {
        let hit = match (ct, mask) {
            ("mp4", _) => mp4(data),
            ("fontobject", _) => {
                let mut mask = [0u8; 36];
                mask[34] = 0xFF;
                mask[35] = 0xFF;
                let mut pat = [0u8; 36];
                pat[34] = b'L';
                pat[35] = b'P';
                masked(data, &pat, &mask)
            }
            (_, Some(mask)) => masked(data, pat, mask),
            (_, None) => data.starts_with(pat),
        };
        if hit {
            return match ct {
                "mp4" => "video/mp4",
                "fontobject" => "application/vnd.ms-fontobject",
                ct => ct,
            };
        }
    }
    let archives: [(&[u8], &'static str); 5] = [
        (b"\x1F\x8B\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"Rar!\x1A\x07\x00", "application/x-rar-compressed"),
        (b"Rar!\x1A\x07\x01\x00", "application/x-rar-compressed"),
        (b"\x00\x61\x73\x6D", "application/wasm"),
    ];
    for (sig, ct) in archives {
        if data.starts_with(sig) {
            return ct;
        }
    }
    let binary = |b: &u8| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    if !trimmed.iter().any(binary) {
        return "text/plain; charset=utf-8";
    }
    "application/octet-stream"
}

/// A pattern, an optional mask (exact prefix without one), and its type.
type Signature = (&'static [u8], Option<&'static [u8]>, &'static str);

/// Go's `htmlSig`: case-insensitive tag followed by a space or `>`.
fn html_match(data: &[u8], sig: &[u8]) -> bool {
    if data.len() < sig.len() + 1 {
        return false;
    }
    let same = sig.iter().zip(data).all(|(s, d)| {
        let d = if s.is_ascii_uppercase() { d & 0xDF } else { *d };
        *s == d
    });
    same && matches!(data[sig.len()], b' ' | b'>')
}

fn masked(data: &[u8], pat: &[u8], mask: &[u8]) -> bool {
    data.len() >= pat.len()
        && pat
            .iter()
            .zip(mask)
            .zip(data)
            .all(|((p, m), d)| d & m == *p)
}

/// Go's `mp4Sig`.
fn mp4(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < size || !size.is_multiple_of(4) || &data[4..8] != b"ftyp" {
        return false;
    }
    (8..size)
        .step_by(4)
        .filter(|st| *st != 12)
        .any(|st| data.get(st..st + 3) == Some(b"mp4"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};

    #[test]
    fn detection_follows_go() {
        let cases: [(&[u8], &str); 16] = [
            (b"  <!doctype html><p>", "text/html; charset=utf-8"),
            (b"<HtMl>", "text/html; charset=utf-8"),
            (b"<b>bold", "text/html; charset=utf-8"),
            (b"<br/>", "text/plain; charset=utf-8"),
            (b"\n<?xml version=\"1.0\"?>", "text/xml; charset=utf-8"),
            (b"%PDF-1.4", "application/pdf"),
            (b"\xEF\xBB\xBFhello", "text/plain; charset=utf-8"),
            (b"\xFE\xFF\x00\x41", "text/plain; charset=utf-16be"),
            (b"GIF89a....", "image/gif"),
            (b"\x89PNG\x0D\x0A\x1A\x0A....", "image/png"),
            (b"\xFF\xD8\xFF\xE0", "image/jpeg"),
            (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
            (
                b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
                "video/mp4",
            ),
            (b"\x1F\x8B\x08\x00", "application/x-gzip"),
            (b"{\"json\": true}", "text/plain; charset=utf-8"),
            (b"\x00\x01\x02binary", "application/octet-stream"),
        ];
        for (data, ct) in cases {
            assert_eq!(
                detect_content_type(data),
                ct,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
        assert_eq!(detect_content_type(b"wOF2xxxx"), "font/woff2");
        assert_eq!(detect_content_type(b"\x00asm\x01"), "application/wasm");
    }

    fn chunked(chunks: &'static [&'static [u8]], content_type: Option<&'static str>) -> Recorder {
        Recorder::with(move || {
            let stream = futures_util::stream::iter(
                chunks
                    .iter()
                    .map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(c)))),
            );
            let mut resp =
                Response::new(ResponseBody::boxed(http_body_util::StreamBody::new(stream)));
            if let Some(ct) = content_type {
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            resp
        })
    }

    #[tokio::test]
    async fn missing_type_is_sniffed_from_the_first_non_empty_chunk() {
        let mw = testing::make(build, json!({})).unwrap();
        let backend = chunked(&[b"", b"<html><body>", b"\x00binary later"], None);
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(body(resp).await, &b"<html><body>\x00binary later"[..]);
    }

    #[tokio::test]
    async fn existing_type_encoding_head_and_bodiless_statuses_are_left_alone() {
        let mw = testing::make(build, json!({"autoDetect": true})).unwrap();
        let backend = chunked(&[b"<html>"], Some("application/json"));
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert_eq!(resp.headers()["content-type"], "application/json");
        let backend = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::full("<html>"));
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        });
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert!(resp.headers().get("content-type").is_none());
        let backend = chunked(&[b"<html>"], None);
        let resp = run_tls(&mw, request(Method::HEAD, "/", &[]), &backend, false).await;
        assert!(resp.headers().get("content-type").is_none());
        let backend = Recorder::with(|| {
            let mut resp = Response::new(ResponseBody::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        });
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert!(resp.headers().get("content-type").is_none());
    }

    #[tokio::test]
    async fn empty_body_gets_no_type() {
        let mw = testing::make(build, json!({})).unwrap();
        let resp = run_tls(&mw, get("/", &[]), &Recorder::ok(), false).await;
        assert!(resp.headers().get("content-type").is_none());
        // A stream that must not be polled once it has ended.
        let backend = Recorder::with(|| {
            let stream = futures_util::stream::unfold(0, |n| async move {
                (n == 0).then(|| (Ok::<_, std::io::Error>(Frame::data(Bytes::new())), 1))
            });
            Response::new(ResponseBody::boxed(http_body_util::StreamBody::new(stream)))
        });
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert!(resp.headers().get("content-type").is_none());
        assert!(body(resp).await.is_empty());
    }

    #[tokio::test]
    async fn auto_detect_false_disables_sniffing() {
        let mw = testing::make(build, json!({"autoDetect": false})).unwrap();
        let backend = chunked(&[b"<html>"], None);
        let resp = run_tls(&mw, get("/", &[]), &backend, false).await;
        assert!(resp.headers().get("content-type").is_none());
        assert_eq!(body(resp).await, "<html>");
    }

    #[test]
    fn config_types_are_checked() {
        assert!(testing::make(build, json!({"autoDetect": "yes"})).is_err());
    }
}
