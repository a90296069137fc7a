//! Differential tests of the two HTTP/1.1 engines: the same generated client
//! byte streams go through a sluice running the hyper engine and a sluice
//! running the native engine, each in front of its own [`RawBackend`] that
//! answers deterministically, and the outcomes are compared.
//!
//! Streams are generated from a seeded xorshift PRNG: 1–3 pipelined requests
//! with random methods, targets (origin- and absolute-form, dot segments,
//! queries), header fields (duplicates, odd case, hop-by-hop and
//! `Connection`-listed fields, obs-text), `Content-Length` or chunked bodies
//! with random chunk sizes, extensions and trailers, HTTP/1.0 and
//! `Connection: close` endings; a third of them carry one injected
//! malformation (conflicting or invalid framing headers, unknown transfer
//! codings, bare CR/LF, obs-fold, whitespace before a colon, control bytes,
//! unknown versions, bad chunk framing). Each stream is written in pieces cut
//! at random points with small pauses.
//!
//! For a well-formed stream both backends must receive the same requests (the
//! request line, the multiset of header fields with lowercased names —
//! `X-Forwarded-*` and `X-Real-Ip` aside — and the decoded body) and both
//! clients the same answers (status codes in order, and the body bytes of
//! every backend answer). For a malformed stream the requests before the
//! malformed one are compared the same way, and the malformed one must be
//! refused by the native engine (a 4xx or 505, then the connection closed,
//! nothing of it forwarded whole), as the contract says; the hyper engine must
//! refuse it too, or accept it in a way the tests know it does (printed, not
//! failed). Accepted differences: hyper accepts a bare LF as a head line
//! terminator; hyper swallows the request after a chunked body ended by a bare
//! LF, which the native engine answers (or refuses); refusals may use
//! different 4xx/505 codes. A malformed request that asks for an Upgrade is
//! handed by the native engine to hyper, so there both must do the same.
//!
//! `SLUICE_DIFF_CASES=N` runs N cases (default 150), `SLUICE_DIFF_SEED=S`
//! changes the base seed; every failure prints the seed of its case.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::proxy::Http1Engine;
use support::raw_backend::*;

/// The backend's answer: what it saw, compactly, framed one of several ways
/// chosen by the target (so both backends choose alike): `Content-Length`,
/// chunked (cut by the digest), or `204` without a body.
fn digest_reply(req: &Recorded) -> Reply {
    let fnv = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let hash = fnv(&req.body);
    let text = format!(
        "{} {} {} {:016x}",
        req.method,
        req.target,
        req.body.len(),
        hash
    );
    let head = req.method == "HEAD";
    match fnv(req.target.as_bytes()) % 5 {
        0 => {
            let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            if !head {
                let cut = 1 + (hash as usize) % (text.len() - 1);
                for part in [&text[..cut], &text[cut..]] {
                    bytes.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            Reply::raw(bytes)
        }
        1 => Reply::raw("HTTP/1.1 204 No Content\r\nX-Seen: yes\r\n\r\n"),
        _ if head => Reply::raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            text.len()
        )),
        _ => Reply::ok(text.as_bytes()),
    }
}

/// A malformation injected into one request of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    ContentLengthAndChunked,
    TwoContentLengths,
    SignedContentLength,
    HexContentLength,
    ContentLengthList,
    TransferGzip,
    TransferChunkedGzip,
    TransferIdentity,
    ObsFold,
    SpaceBeforeColon,
    ControlInValue,
    ControlInName,
    BareCrInHead,
    BareLfInHead,
    BadVersion,
    ChunkSizeJunk,
    ChunkBareLf,
    ChunkEndBareLf,
}

const MUTATIONS: &[Mutation] = &[
    Mutation::ContentLengthAndChunked,
    Mutation::TwoContentLengths,
    Mutation::SignedContentLength,
    Mutation::HexContentLength,
    Mutation::ContentLengthList,
    Mutation::TransferGzip,
    Mutation::TransferChunkedGzip,
    Mutation::TransferIdentity,
    Mutation::ObsFold,
    Mutation::SpaceBeforeColon,
    Mutation::ControlInValue,
    Mutation::ControlInName,
    Mutation::BareCrInHead,
    Mutation::BareLfInHead,
    Mutation::BadVersion,
    Mutation::ChunkSizeJunk,
    Mutation::ChunkBareLf,
    Mutation::ChunkEndBareLf,
];

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<Vec<u8>>,
        ext: Vec<bool>,
        upper: bool,
        trailers: Vec<(String, String)>,
    },
}

/// One generated request, serialised by [`Req::bytes`].
#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    version: String,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Body,
}

impl Req {
    fn head_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Length(b) => b.clone(),
            Body::Chunked {
                chunks,
                ext,
                upper,
                trailers,
            } => {
                let mut out = Vec::new();
                for (chunk, ext) in chunks.iter().zip(ext) {
                    let size = if *upper {
                        format!("{:X}", chunk.len())
                    } else {
                        format!("{:x}", chunk.len())
                    };
                    out.extend_from_slice(size.as_bytes());
                    if *ext {
                        out.extend_from_slice(b";ext=1");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    fn decoded_len(&self) -> usize {
        match &self.body {
            Body::None => 0,
            Body::Length(b) => b.len(),
            Body::Chunked { chunks, .. } => chunks.iter().map(Vec::len).sum(),
        }
    }
}

/// One generated stream.
#[derive(Debug, Clone)]
struct Case {
    bytes: Vec<u8>,
    /// Whether each request is HEAD (to read its answer without a body).
    heads: Vec<bool>,
    /// The index of the malformed request and its malformation.
    mutation: Option<(usize, Mutation)>,
    /// The malformed request asks for an Upgrade: the native engine hands
    /// such requests to hyper, so its outcome is hyper's.
    mutated_upgrade: bool,
}

const PATH_CHARS: &[u8] = b"abcdefxyzABCXYZ0123456789-._~!$&'()*+,;=:@";
const VALUE_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const TCHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";

fn token(rng: &mut XorShift, chars: &[u8], min: usize, max: usize) -> String {
    let len = min + rng.below(max - min + 1);
    (0..len).map(|_| char::from(rng.pick(chars))).collect()
}

fn gen_target(rng: &mut XorShift) -> String {
    let mut t = String::new();
    if rng.chance(8) {
        t.push_str("http://app.test");
    }
    let segments = rng.below(4);
    if segments == 0 {
        t.push('/');
    }
    for _ in 0..segments {
        t.push('/');
        t.push_str(&token(rng, PATH_CHARS, 1, 8));
        if rng.chance(10) {
            t.push_str(rng.pick(&["%2F", "%41", "%7e", "%20"]));
        }
    }
    if rng.chance(8) {
        t.push_str(rng.pick(&["/../up", "/./here", "/a/.."]));
    }
    if rng.chance(30) {
        t.push('?');
        t.push_str(&token(rng, b"abcxyz0123=&-_.~%2F", 1, 12).replace('%', "%25"));
    }
    t
}

fn gen_value(rng: &mut XorShift) -> Vec<u8> {
    let mut v = token(rng, VALUE_CHARS, 0, 24).trim().as_bytes().to_vec();
    if rng.chance(5) {
        // obs-text is allowed in field values (RFC 9110 §5.5).
        v.push(0x80 + rng.below(0x80) as u8);
        v.extend_from_slice(b"x");
    }
    v
}

fn gen_body(rng: &mut XorShift) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(8),
        1 | 2 => rng.below(300),
        _ => rng.below(5000),
    };
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn gen_request(rng: &mut XorShift, last: bool) -> Req {
    let method = rng
        .pick(&[
            "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD",
            "PROPFIND",
        ])
        .to_string();
    let target = gen_target(rng);
    let version = if last && rng.chance(10) {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let host = rng.pick(&["app.test", "a", "APP.test", "app.test:80", "localhost:8080"]);
    headers.push((
        rng.pick(&["Host", "host", "HOST"]).as_bytes().to_vec(),
        host.as_bytes().to_vec(),
    ));
    for _ in 0..rng.below(6) {
        let name = match rng.below(12) {
            0 => "Accept".to_string(),
            1 => "user-agent".to_string(),
            2 => "X-Dup".to_string(),
            3 => "x-dup".to_string(),
            4 => "Cookie".to_string(),
            5 => "Cache-Control".to_string(),
            6 => "X-UPPER".to_string(),
            7 => "If-None-Match".to_string(),
            8 => "X-Forwarded-For".to_string(),
            _ => format!("X-{}", token(rng, TCHARS, 1, 10)),
        };
        headers.push((name.into_bytes(), gen_value(rng)));
    }
    if rng.chance(10) {
        headers.push((b"Connection".to_vec(), b"keep-alive, X-Hop".to_vec()));
        headers.push((b"X-Hop".to_vec(), b"dropped".to_vec()));
    }
    if rng.chance(5) {
        headers.push((b"TE".to_vec(), b"trailers".to_vec()));
    }
    if rng.chance(5) {
        headers.push((b"Keep-Alive".to_vec(), b"timeout=5".to_vec()));
    }
    if rng.chance(4) {
        headers.push((b"Proxy-Connection".to_vec(), b"keep-alive".to_vec()));
    }
    if rng.chance(4) {
        headers.push((b"Proxy-Authorization".to_vec(), b"Basic eA==".to_vec()));
    }
    if method == "GET" && rng.chance(4) {
        // An h2c upgrade (never tunnelled) or a WebSocket upgrade the backend declines.
        if rng.chance(50) {
            headers.push((b"Connection".to_vec(), b"Upgrade, HTTP2-Settings".to_vec()));
            headers.push((b"Upgrade".to_vec(), b"h2c".to_vec()));
            headers.push((b"HTTP2-Settings".to_vec(), b"AAMAAABkAAQAAP__".to_vec()));
        } else {
            headers.push((b"Connection".to_vec(), b"Upgrade".to_vec()));
            headers.push((b"Upgrade".to_vec(), b"websocket".to_vec()));
            headers.push((b"Sec-WebSocket-Version".to_vec(), b"13".to_vec()));
            headers.push((
                b"Sec-WebSocket-Key".to_vec(),
                b"dGhlIHNhbXBsZSBub25jZQ==".to_vec(),
            ));
        }
    }
    let bodied = matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "PROPFIND");
    let body = if method == "HEAD" {
        Body::None
    } else if bodied || rng.chance(10) {
        match rng.below(5) {
            0 => Body::None,
            1 | 2 => Body::Length(gen_body(rng)),
            _ if version == "HTTP/1.0" => Body::Length(gen_body(rng)),
            _ => {
                let data = gen_body(rng);
                let mut chunks = Vec::new();
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let n = 1 + rng.below(rest.len().min(2000));
                    chunks.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                let ext = chunks.iter().map(|_| rng.chance(10)).collect();
                let trailers = if rng.chance(20) {
                    vec![("X-Trailer".to_string(), "t".to_string())]
                } else {
                    Vec::new()
                };
                Body::Chunked {
                    chunks,
                    ext,
                    upper: rng.chance(50),
                    trailers,
                }
            }
        }
    } else {
        Body::None
    };
    match &body {
        Body::Length(b) => {
            // Leading zeros are still 1*DIGIT (RFC 9110 §8.6).
            let zeros = if rng.chance(5) { "00" } else { "" };
            headers.push((
                b"Content-Length".to_vec(),
                format!("{zeros}{}", b.len()).into_bytes(),
            ))
        }
        Body::Chunked { .. } => {
            // Transfer-coding names are case-insensitive.
            let name = rng.pick(&[
                &b"chunked"[..],
                b"chunked",
                b"chunked",
                b"Chunked",
                b"CHUNKED",
            ]);
            headers.push((b"Transfer-Encoding".to_vec(), name.to_vec()))
        }
        Body::None => {}
    }
    if last && version == "HTTP/1.1" && rng.chance(30) {
        headers.push((b"Connection".to_vec(), b"close".to_vec()));
    }
    if version == "HTTP/1.0" && rng.chance(50) {
        headers.push((b"Connection".to_vec(), b"keep-alive".to_vec()));
    }
    // Shuffle the fields (Host need not come first).
    for i in (1..headers.len()).rev() {
        let j = rng.below(i + 1);
        headers.swap(i, j);
    }
    Req {
        method,
        target,
        version: version.to_string(),
        headers,
        body,
    }
}

fn set_header(req: &mut Req, name: &str, value: &[u8]) {
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    req.headers.push((name.as_bytes().to_vec(), value.to_vec()));
}

fn ensure_length_body(rng: &mut XorShift, req: &mut Req) -> usize {
    if !matches!(req.body, Body::Length(ref b) if !b.is_empty()) {
        let mut b = gen_body(rng);
        b.push(b'!');
        req.body = Body::Length(b);
    }
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(b"transfer-encoding"));
    let n = req.decoded_len();
    set_header(req, "Content-Length", n.to_string().as_bytes());
    n
}

fn ensure_chunked_body(rng: &mut XorShift, req: &mut Req) {
    if !matches!(req.body, Body::Chunked { ref chunks, .. } if !chunks.is_empty()) {
        let mut data = gen_body(rng);
        data.push(b'!');
        let cut = 1 + rng.below(data.len());
        let chunks: Vec<Vec<u8>> = if cut < data.len() {
            vec![data[..cut].to_vec(), data[cut..].to_vec()]
        } else {
            vec![data]
        };
        req.body = Body::Chunked {
            ext: vec![false; chunks.len()],
            chunks,
            upper: false,
            trailers: Vec::new(),
        };
    }
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
    set_header(req, "Transfer-Encoding", b"chunked");
}

/// The bytes of `req` with `mutation` applied.
fn mutate(rng: &mut XorShift, req: &mut Req, mutation: Mutation) -> Vec<u8> {
    if req.method == "HEAD" || req.version != "HTTP/1.1" {
        req.method = "POST".into();
        req.version = "HTTP/1.1".into();
    }
    match mutation {
        Mutation::ContentLengthAndChunked => {
            ensure_chunked_body(rng, req);
            let n = req.decoded_len().to_string();
            let at = rng.below(req.headers.len() + 1);
            req.headers
                .insert(at, (b"Content-Length".to_vec(), n.into_bytes()));
        }
        Mutation::TwoContentLengths => {
            let n = ensure_length_body(rng, req);
            req.headers
                .push((b"Content-Length".to_vec(), (n + 1).to_string().into_bytes()));
        }
        Mutation::SignedContentLength => {
            let n = ensure_length_body(rng, req);
            set_header(req, "Content-Length", format!("+{n}").as_bytes());
        }
        Mutation::HexContentLength => {
            let n = ensure_length_body(rng, req);
            set_header(req, "Content-Length", format!("0x{n:x}").as_bytes());
        }
        Mutation::ContentLengthList => {
            let n = ensure_length_body(rng, req);
            set_header(req, "Content-Length", format!("{n}, {}", n + 1).as_bytes());
        }
        Mutation::TransferGzip => {
            ensure_length_body(rng, req);
            req.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
            set_header(req, "Transfer-Encoding", b"gzip");
        }
        Mutation::TransferChunkedGzip => {
            ensure_chunked_body(rng, req);
            set_header(req, "Transfer-Encoding", b"chunked, gzip");
        }
        Mutation::TransferIdentity => {
            ensure_length_body(rng, req);
            req.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
            set_header(req, "Transfer-Encoding", b"identity");
        }
        Mutation::ObsFold => {
            let i = rng.below(req.headers.len());
            let fold: &[u8] = rng.pick(&[&b"\r\n folded"[..], &b"\r\n\tfolded"[..]]);
            req.headers[i].1.extend_from_slice(fold);
        }
        Mutation::SpaceBeforeColon => {
            let i = rng.below(req.headers.len());
            let ws: &[u8] = rng.pick(&[&b" "[..], &b"\t"[..]]);
            req.headers[i].0.extend_from_slice(ws);
        }
        Mutation::ControlInValue => {
            let ctl = rng.pick(&[0u8, 1, 0x1b, 0x7f, 0x0b, 0x0c]);
            let value = b"a\x00b".map(|b| if b == 0 { ctl } else { b }).to_vec();
            req.headers.push((b"X-Ctl".to_vec(), value));
        }
        Mutation::ControlInName => {
            let ctl = rng.pick(&[0u8, 1, 0x7f]);
            req.headers.push((vec![b'X', ctl, b'C'], b"v".to_vec()));
        }
        Mutation::BadVersion => {
            req.version = rng
                .pick(&["HTTP/3.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1.1", "HTTX/1.1"])
                .to_string();
        }
        Mutation::BareCrInHead | Mutation::BareLfInHead => {
            let head = req.head_bytes();
            // Line endings other than the blank line's.
            let ends: Vec<usize> = head
                .windows(2)
                .enumerate()
                .filter(|(i, w)| *w == b"\r\n" && i + 2 < head.len())
                .map(|(i, _)| i)
                .collect();
            let at = rng.pick(&ends);
            let mut out = head[..at].to_vec();
            out.push(if mutation == Mutation::BareCrInHead {
                b'\r'
            } else {
                b'\n'
            });
            out.extend_from_slice(&head[at + 2..]);
            out.extend_from_slice(&req.body_bytes());
            return out;
        }
        Mutation::ChunkSizeJunk | Mutation::ChunkBareLf | Mutation::ChunkEndBareLf => {
            ensure_chunked_body(rng, req);
            let mut out = req.head_bytes();
            let body = req.body_bytes();
            let Body::Chunked { chunks, .. } = &req.body else {
                unreachable!("ensure_chunked_body makes a chunked body");
            };
            let first = chunks[0].len();
            let size_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a size line");
            let mut mutated = Vec::new();
            match mutation {
                Mutation::ChunkSizeJunk => {
                    let junk =
                        rng.pick(&["zz", "-1", "fffffffffffffffffffff", "10000000000000001"]);
                    let bad = match rng.below(3) {
                        0 => format!("{first:x}x"),
                        1 => format!("0x{first:x}"),
                        _ => junk.to_string(),
                    };
                    mutated.extend_from_slice(bad.as_bytes());
                    mutated.extend_from_slice(&body[size_end..]);
                }
                Mutation::ChunkBareLf => {
                    // The CRLF after the first chunk's data becomes a bare LF.
                    let data_end = size_end + 2 + first;
                    mutated.extend_from_slice(&body[..data_end]);
                    mutated.push(b'\n');
                    mutated.extend_from_slice(&body[data_end + 2..]);
                }
                _ => {
                    // The blank line that ends the chunked body becomes a bare LF.
                    mutated.extend_from_slice(&body[..body.len() - 2]);
                    mutated.push(b'\n');
                }
            }
            out.extend_from_slice(&mutated);
            return out;
        }
    }
    let mut out = req.head_bytes();
    out.extend_from_slice(&req.body_bytes());
    out
}

fn gen_case(seed: u64) -> Case {
    let mut rng = XorShift::new(seed);
    let n = 1 + rng.below(3);
    let mut reqs: Vec<Req> = (0..n).map(|i| gen_request(&mut rng, i + 1 == n)).collect();
    let mutation = rng.chance(33).then(|| {
        let mut at = rng.below(n);
        let m = rng.pick(MUTATIONS);
        if m == Mutation::ChunkEndBareLf && at + 1 == n {
            // Nothing may end the connection before the request that follows.
            reqs[at]
                .headers
                .retain(|(h, v)| !(h.eq_ignore_ascii_case(b"connection") && v == b"close"));
            // Only interesting with a request after it.
            let mut next = gen_request(&mut rng, true);
            next.method = "GET".into();
            next.body = Body::None;
            next.headers.retain(|(h, _)| {
                !h.eq_ignore_ascii_case(b"content-length")
                    && !h.eq_ignore_ascii_case(b"transfer-encoding")
            });
            reqs.push(next);
            at = n - 1;
        }
        (at, m)
    });
    let mutated_upgrade = mutation.is_some_and(|(at, _)| {
        reqs[at]
            .headers
            .iter()
            .any(|(h, _)| h.eq_ignore_ascii_case(b"upgrade"))
    });
    let mut bytes = Vec::new();
    let mut heads = Vec::new();
    for (i, req) in reqs.iter_mut().enumerate() {
        match mutation {
            Some((at, m)) if at == i => bytes.extend_from_slice(&mutate(&mut rng, req, m)),
            _ => {
                bytes.extend_from_slice(&req.head_bytes());
                bytes.extend_from_slice(&req.body_bytes());
            }
        }
        heads.push(req.method == "HEAD");
    }
    Case {
        bytes,
        heads,
        mutation,
        mutated_upgrade,
    }
}

/// What one engine did with a stream.
#[derive(Debug, Default)]
struct Outcome {
    /// Final answers: status and body (interim answers are not expected here).
    answers: Vec<(u16, Vec<u8>)>,
    /// Interim (1xx) answers seen.
    interim: usize,
    /// Whether the connection was closed by the server.
    closed: bool,
    /// What the client could not parse, if anything.
    garbage: Option<String>,
    /// The requests the backend received whole, normalised.
    forwarded: Vec<Seen>,
}

/// A forwarded request, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    line: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Fields the engines legitimately set differently (none today but the
/// proxy's own forwarding headers, which carry the client port).
fn compared(name: &str) -> bool {
    !(name.starts_with("x-forwarded-") || name == "x-real-ip")
}

fn normalise(req: &Recorded) -> Seen {
    let mut headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| compared(n))
        .collect();
    headers.sort();
    Seen {
        line: req.line(),
        headers,
        body: req.body.clone(),
    }
}

struct Side {
    engine: Http1Engine,
    backend: RawBackend,
    fixture: RawFixture,
}

async fn side(engine: Http1Engine) -> Side {
    let backend = RawBackend::start(std::sync::Arc::new(digest_reply)).await;
    let fixture = raw_fixture(&[("", &backend)], |s| {
        s.connections.http1_engine = engine;
        s.connections.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    Side {
        engine,
        backend,
        fixture,
    }
}

/// Sends `case` through `side` (split at the points `split_seed` picks) and
/// reads the answers until the server closes, the expected answers are all
/// in, or nothing arrives for a while.
async fn run(side: &Side, case: &Case, split_seed: u64) -> Outcome {
    side.backend.clear_requests();
    let mut client = RawClient::connect(side.fixture.sluice.http_addr).await;
    let mut rng = XorShift::new(split_seed);
    let _ = client.send_split(&case.bytes, &mut rng, 2).await;
    let mut out = Outcome::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let eof = client.is_eof();
        let (responses, rest) = parse_stream(client.leftover(), &case.heads, eof);
        let finals = responses.iter().filter(|r| r.status >= 200).count();
        // A malformed stream is read to its end: whether it closes is the point.
        let all_in = case.mutation.is_none() && finals == case.heads.len() && rest.is_none();
        let idle = !eof
            && !all_in
            && tokio::time::Instant::now() < deadline
            && !client.read_more(Duration::from_millis(300)).await;
        if eof || all_in || idle || tokio::time::Instant::now() >= deadline {
            out.closed = eof;
            out.interim = responses.iter().filter(|r| r.status < 200).count();
            out.answers = responses
                .iter()
                .filter(|r| r.status >= 200)
                .map(|r| (r.status, r.body.clone()))
                .collect();
            out.garbage = rest;
            break;
        }
    }
    // Whatever was forwarded was recorded before it was answered; a short
    // pause lets a request refused mid-body settle.
    tokio::time::sleep(Duration::from_millis(20)).await;
    out.forwarded = side
        .backend
        .complete_requests()
        .iter()
        .map(normalise)
        .collect();
    out
}

fn escaped(bytes: &[u8]) -> String {
    let text: String = bytes.escape_ascii().to_string();
    if text.len() > 1500 {
        format!("{}…({} bytes)", &text[..1500], bytes.len())
    } else {
        text
    }
}

/// Lines describing how two forwarded-request lists differ.
fn forwarded_diff(hyper: &[Seen], native: &[Seen]) -> String {
    let mut out = String::new();
    for i in 0..hyper.len().max(native.len()) {
        match (hyper.get(i), native.get(i)) {
            (Some(h), Some(n)) if h == n => {}
            (Some(h), Some(n)) => {
                out.push_str(&format!("  request {i}:\n"));
                if h.line != n.line {
                    out.push_str(&format!(
                        "    line: hyper {:?} / native {:?}\n",
                        h.line, n.line
                    ));
                }
                let mut count: BTreeMap<&(String, Vec<u8>), i32> = BTreeMap::new();
                for f in &h.headers {
                    *count.entry(f).or_default() += 1;
                }
                for f in &n.headers {
                    *count.entry(f).or_default() -= 1;
                }
                for ((name, value), c) in count {
                    if c > 0 {
                        out.push_str(&format!("    - hyper only:  {name}: {}\n", escaped(value)));
                    } else if c < 0 {
                        out.push_str(&format!("    + native only: {name}: {}\n", escaped(value)));
                    }
                }
                if h.body != n.body {
                    out.push_str(&format!(
                        "    body: hyper {} bytes / native {} bytes\n",
                        h.body.len(),
                        n.body.len()
                    ));
                }
            }
            (Some(h), None) => out.push_str(&format!("  request {i} only via hyper: {}\n", h.line)),
            (None, Some(n)) => {
                out.push_str(&format!("  request {i} only via native: {}\n", n.line))
            }
            (None, None) => {}
        }
    }
    out
}

/// One line on what an engine did, for failure messages.
fn summary(o: &Outcome) -> String {
    let forwarded: Vec<String> = o
        .forwarded
        .iter()
        .map(|r| format!("{} ({} body bytes)", r.line, r.body.len()))
        .collect();
    format!(
        "answers {:?}, closed {}, forwarded whole {forwarded:?}{}",
        statuses(o),
        o.closed,
        o.garbage
            .as_ref()
            .map_or(String::new(), |g| format!(", unparsable: {g}"))
    )
}

fn statuses(o: &Outcome) -> Vec<u16> {
    o.answers.iter().map(|(s, _)| *s).collect()
}

/// A refusal of the request at `at`: the answers before it, then one 4xx (or
/// 505), then the connection closed.
fn refused_at(o: &Outcome, at: usize) -> bool {
    o.answers.len() == at + 1
        && o.closed
        && o.answers
            .last()
            .is_some_and(|(s, _)| (400..500).contains(s) || *s == 505)
        && o.forwarded.len() <= at
}

/// The verdict on one case: `Ok(note)` when the engines agree (or differ in
/// an accepted way, described by the note), `Err(why)` otherwise.
fn judge(case: &Case, hyper: &Outcome, native: &Outcome) -> Result<Option<String>, String> {
    if let Some(g) = &native.garbage {
        return Err(format!("the native engine's answers do not parse: {g}"));
    }
    if native.interim > 0 {
        return Err(format!(
            "the native engine sent {} unexpected 1xx",
            native.interim
        ));
    }
    let Some((at, mutation)) = case.mutation else {
        // Well-formed: the same everywhere.
        if let Some(g) = &hyper.garbage {
            return Err(format!("the hyper engine's answers do not parse: {g}"));
        }
        if hyper.answers != native.answers {
            return Err(format!(
                "different answers: hyper {:?} / native {:?}",
                statuses(hyper),
                statuses(native)
            ));
        }
        if hyper.forwarded != native.forwarded {
            return Err(format!(
                "different forwarded requests:\n{}",
                forwarded_diff(&hyper.forwarded, &native.forwarded)
            ));
        }
        return Ok(None);
    };
    // Malformed: the requests before it behave the same.
    let before = |o: &Outcome| o.answers.iter().take(at).cloned().collect::<Vec<_>>();
    if before(hyper) != before(native) {
        return Err(format!(
            "different answers before the malformed request {at}: hyper {:?} / native {:?}",
            statuses(hyper),
            statuses(native)
        ));
    }
    let forwarded_before = |o: &Outcome| o.forwarded.iter().take(at).cloned().collect::<Vec<_>>();
    if forwarded_before(hyper) != forwarded_before(native) {
        return Err(format!(
            "different requests forwarded before the malformed one:\n{}",
            forwarded_diff(&hyper.forwarded, &native.forwarded)
        ));
    }
    if case.mutated_upgrade
        && native.answers == hyper.answers
        && native.forwarded == hyper.forwarded
        && native.closed == hyper.closed
    {
        return Ok(Some(format!(
            "upgrade request handed to hyper ({mutation:?})"
        )));
    }
    if mutation == Mutation::ChunkEndBareLf {
        // Native: the request after the body is answered, or the stream refused.
        // The backend answers 200 or 204 (by target), never anything else.
        let all_answered = native.answers.len() == case.heads.len()
            && native.forwarded.len() == case.heads.len()
            && native.answers.iter().all(|(s, _)| matches!(s, 200 | 204));
        let refused = native.closed
            && native.answers.len() > at
            && native.answers.last().is_some_and(|(s, _)| *s == 400);
        if !(all_answered || refused) {
            return Err(format!(
                "the request after a bare-LF-terminated chunked body was swallowed: native {:?}, closed {}",
                statuses(native),
                native.closed
            ));
        }
        return Ok(Some(format!(
            "bare LF ending a chunked body: native {:?}, hyper {:?}",
            statuses(native),
            statuses(hyper)
        )));
    }
    if !refused_at(native, at) {
        return Err(format!(
            "the native engine did not refuse the malformed request {at} ({mutation:?}): answers {:?}, closed {}, {} of {} requests forwarded whole",
            statuses(native),
            native.closed,
            native.forwarded.len(),
            case.heads.len()
        ));
    }
    if refused_at(hyper, at) {
        let (h, n) = (hyper.answers[at].0, native.answers[at].0);
        return Ok((h != n).then(|| format!("{mutation:?}: hyper {h}, native {n}")));
    }
    // Known hyper leniencies: reported, not failed.
    Ok(Some(format!(
        "hyper accepts what native refuses ({mutation:?}): hyper {:?} (closed {}, {} forwarded), native {:?}",
        statuses(hyper),
        hyper.closed,
        hyper.forwarded.len(),
        statuses(native)
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_forward_and_refuse_the_same_streams() {
    let cases: u64 = std::env::var("SLUICE_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let base: u64 = std::env::var("SLUICE_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1e55);
    let hyper = side(Http1Engine::Hyper).await;
    let native = side(Http1Engine::Native).await;
    let mut failures = Vec::new();
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut malformed = 0;
    for i in 0..cases {
        let seed = base.wrapping_add(i.wrapping_mul(0x9E37_79B9));
        let case = gen_case(seed);
        malformed += usize::from(case.mutation.is_some());
        let (h, n) = tokio::join!(run(&hyper, &case, seed ^ 1), run(&native, &case, seed ^ 1));
        match judge(&case, &h, &n) {
            Ok(None) => {}
            Ok(Some(note)) => {
                let kind = note.split(':').next().unwrap_or_default().to_owned();
                *notes.entry(kind).or_default() += 1;
            }
            Err(why) => failures.push(format!(
                "seed {seed} (SLUICE_DIFF_SEED={seed} SLUICE_DIFF_CASES=1), mutation {:?}:\n  {why}\n  stream: {}\n  hyper: {}\n  native: {}",
                case.mutation,
                escaped(&case.bytes),
                summary(&h),
                summary(&n),
            )),
        }
    }
    eprintln!(
        "{cases} cases ({malformed} malformed), base seed {base}: {} divergences; accepted differences: {notes:#?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} streams diverge between the engines ({} engines: {:?} vs {:?}):\n\n{}",
        failures.len(),
        2,
        hyper.engine,
        native.engine,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
