//! Writing heads into the connection's reused output buffer: the request a
//! backend receives and the response a client receives, with hop-by-hop
//! fields removed (RFC 9110 §7.6.1) and the forwarding fields set exactly as
//! the hyper path's `forward.rs` does.

use std::io::Write as _;
use std::net::SocketAddr;

use httparse::Header;

use super::head::{tokens, trim, Framing, RequestHead};
use crate::exchange::ClientInfo;
use crate::proxy::request::port_of;

/// Whether `name` is a hop-by-hop field, or one the proxy writes itself.
fn dropped_from_request(name: &str, connection: &[&Header<'_>]) -> bool {
    is_hop_by_hop(name)
        || matches!(name.len(), 4 | 9 | 15 | 16 | 17)
            && [
                "host",
                "x-real-ip",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-port",
                "x-forwarded-proto",
            ]
            .iter()
            .any(|own| own.eq_ignore_ascii_case(name))
        || named_by_connection(name, connection)
}

/// Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade and `Proxy-*`.
fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 5] = [
        "connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|hop| hop.eq_ignore_ascii_case(name))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

fn named_by_connection(name: &str, connection: &[&Header<'_>]) -> bool {
    connection
        .iter()
        .any(|c| tokens(c.value).any(|token| token.eq_ignore_ascii_case(name.as_bytes())))
}

/// The Connection fields of a head (rarely more than one), without allocating;
/// past four, the rest are ignored for naming hop-by-hop fields.
struct ConnectionFields<'h, 'b> {
    items: [&'h Header<'b>; 4],
    len: usize,
}

static NO_HEADER: Header<'static> = Header {
    name: "",
    value: b"",
};

impl<'h, 'b> ConnectionFields<'h, 'b> {
    fn of(headers: &'h [Header<'b>]) -> Self {
        let mut fields = Self {
            items: [&NO_HEADER; 4],
            len: 0,
        };
        for header in headers {
            if header.name.eq_ignore_ascii_case("connection") && fields.len < fields.items.len() {
                fields.items[fields.len] = header;
                fields.len += 1;
            }
        }
        fields
    }

    fn as_slice(&self) -> &[&'h Header<'b>] {
        &self.items[..self.len]
    }
}

/// The W3C trace-context fields a traced request carries to the backend
/// (the client's own are replaced).
pub(super) struct TraceFields {
    /// `traceparent`: sluice's client span.
    pub traceparent: String,
    /// `tracestate`, when the trace has one.
    pub tracestate: Option<String>,
}

fn is_trace_context(name: &str) -> bool {
    name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("tracestate")
}

/// Writes the head a backend receives for `head` into `out` (cleared first).
///
/// `target` is the path and query to send (dot-segments already removed);
/// `endpoint_host` replaces Host with the endpoint's address
/// (`service.passhostheader: false`).
pub(super) fn request_head(
    out: &mut Vec<u8>,
    head: &RequestHead<'_>,
    target: &str,
    client: &ClientInfo,
    endpoint_host: Option<SocketAddr>,
    trace: Option<&TraceFields>,
) {
    out.clear();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let connection = ConnectionFields::of(head.headers);
    let mut trailers = false;
    for header in head.headers {
        if header.name.eq_ignore_ascii_case("te") {
            trailers |= tokens(header.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
        }
        if !dropped_from_request(header.name, connection.as_slice())
            && (trace.is_none() || !is_trace_context(header.name))
        {
            field(out, header.name.as_bytes(), header.value);
        }
    }
    if let Some(trace) = trace {
        field(out, b"traceparent", trace.traceparent.as_bytes());
        if let Some(state) = &trace.tracestate {
            field(out, b"tracestate", state.as_bytes());
        }
    }
    match endpoint_host {
        Some(endpoint) => {
            let _ = write!(out, "Host: {endpoint}\r\n");
        }
        None => {
            if let Some(host) = head.host {
                field(out, b"Host", host.as_bytes());
            }
        }
    }
    forwarded_for(out, head.headers, client);
    field(out, b"X-Real-Ip", client.ip_header().as_bytes());
    let proto: &[u8] = if client.tls { b"https" } else { b"http" };
    field(out, b"X-Forwarded-Proto", proto);
    if let Some(host) = head.host {
        field(out, b"X-Forwarded-Host", host.as_bytes());
        let default: &str = if client.tls { "443" } else { "80" };
        field(
            out,
            b"X-Forwarded-Port",
            port_of(host).unwrap_or(default).as_bytes(),
        );
    }
    if trailers {
        out.extend_from_slice(b"TE: trailers\r\n");
    }
    if head.framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// X-Forwarded-For: every earlier value, joined, then the client's address.
fn forwarded_for(out: &mut Vec<u8>, headers: &[Header<'_>], client: &ClientInfo) {
    out.extend_from_slice(b"X-Forwarded-For: ");
    for header in headers {
        if header.name.eq_ignore_ascii_case("x-forwarded-for") {
            out.extend_from_slice(trim(header.value));
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(client.ip_header().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the response head written for a client frames the body that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientFraming {
    /// Headers as the backend sent them (Content-Length kept, or no body).
    AsIs,
    /// `Transfer-Encoding: chunked` added (passed through or re-framed).
    Chunked,
    /// No length: the body ends when the connection closes.
    UntilClose,
}

/// What the client side adds to a relayed response head.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseHeadOptions {
    /// Body framing toward the client.
    pub framing: ClientFraming,
    /// Whether the client connection stays open after this response.
    pub keep_alive: bool,
    /// Whether the client spoke HTTP/1.0 (keep-alive must then be explicit).
    pub http10: bool,
}

/// Writes a backend's response head (`code`, `reason`, `headers`) for the
/// client into `out` (cleared first): hop-by-hop fields dropped, Date added
/// when missing, framing and Connection as `options` say.
pub(super) fn response_head(
    out: &mut Vec<u8>,
    code: u16,
    reason: &str,
    headers: &[Header<'_>],
    options: ResponseHeadOptions,
) {
    out.clear();
    // An HTTP/1.0 client is answered in its own version, as hyper does.
    let version = if options.http10 { "1.0" } else { "1.1" };
    let _ = write!(out, "HTTP/{version} {code} {reason}\r\n");
    let connection = ConnectionFields::of(headers);
    let mut has_date = false;
    for header in headers {
        let name = header.name;
        if is_hop_by_hop(name) || named_by_connection(name, connection.as_slice()) {
            continue;
        }
        if options.framing != ClientFraming::AsIs && name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        field(out, name.as_bytes(), header.value);
    }
    if !has_date {
        super::date::append(out);
    }
    finish_response_head(out, options);
}

/// Writes an interim (1xx) response head for the client into `out` (cleared first).
pub(super) fn interim_head(out: &mut Vec<u8>, code: u16, reason: &str, headers: &[Header<'_>]) {
    out.clear();
    let _ = write!(out, "HTTP/1.1 {code} {reason}\r\n");
    let connection = ConnectionFields::of(headers);
    for header in headers {
        if !is_hop_by_hop(header.name) && !named_by_connection(header.name, connection.as_slice()) {
            field(out, header.name.as_bytes(), header.value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The framing and Connection fields and the empty line that end a response head.
pub(super) fn finish_response_head(out: &mut Vec<u8>, options: ResponseHeadOptions) {
    if options.framing == ClientFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if !options.keep_alive {
        if !options.http10 {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    } else if options.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::super::head::{header_slots, parse};
    use super::*;

    fn forwarded(raw: &[u8], tls: bool) -> String {
        let mut buf = raw.to_vec();
        let mut slots = header_slots();
        let head = parse(&mut buf, &mut slots, 4096)
            .expect("ok")
            .expect("complete");
        let client = ClientInfo::new("192.0.2.7:5555".parse().expect("addr"), tls);
        let mut out = Vec::new();
        request_head(&mut out, &head, head.path_and_query, &client, None, None);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarding_fields_are_ours() {
        let out = forwarded(
            b"POST /p HTTP/1.1\r\nHost: app.test:8080\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nTE: trailers, deflate\r\nUpgrade: h2c\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.1\r\nX-Real-Ip: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n",
            false,
        );
        assert_eq!(
            out,
            "POST /p HTTP/1.1\r\nX-Kept: yes\r\nHost: app.test:8080\r\nX-Forwarded-For: 203.0.113.9, 198.51.100.1, 192.0.2.7\r\nX-Real-Ip: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app.test:8080\r\nX-Forwarded-Port: 8080\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_sends_its_authority_as_host() {
        let out = forwarded(
            b"GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\n\r\n",
            true,
        );
        assert!(
            out.starts_with("GET /x HTTP/1.1\r\nHost: a.test\r\n"),
            "{out}"
        );
        assert!(out.contains("X-Forwarded-Port: 443\r\n"), "{out}");
        assert!(out.contains("X-Forwarded-Proto: https\r\n"), "{out}");
        let no_host = forwarded(b"GET / HTTP/1.0\r\nX-Forwarded-Host: evil\r\n\r\n", false);
        assert!(!no_host.contains("evil"), "{no_host}");
        assert!(!no_host.contains("Host"), "{no_host}");
    }

    #[test]
    fn response_heads_drop_hop_by_hop_and_set_framing() {
        let headers = [
            Header {
                name: "Connection",
                value: b"keep-alive, X-Hop",
            },
            Header {
                name: "X-Hop",
                value: b"1",
            },
            Header {
                name: "Transfer-Encoding",
                value: b"chunked",
            },
            Header {
                name: "Date",
                value: b"Mon, 07 Dec 2026 07:00:00 GMT",
            },
            Header {
                name: "Content-Type",
                value: b"text/plain",
            },
        ];
        let mut out = Vec::new();
        let options = ResponseHeadOptions {
            framing: ClientFraming::Chunked,
            keep_alive: false,
            http10: false,
        };
        response_head(&mut out, 200, "OK", &headers, options);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let old = ResponseHeadOptions {
            framing: ClientFraming::AsIs,
            keep_alive: true,
            http10: true,
        };
        response_head(&mut out, 204, "No Content", &headers[3..], old);
        assert!(String::from_utf8_lossy(&out).ends_with("Connection: keep-alive\r\n\r\n"));
    }
}
