//! The two line formats: Traefik's common log format and Traefik's JSON fields.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--access-log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Traefik's CLF line (the default).
    #[default]
    Common,
    /// One JSON object per line, with Traefik's field names.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "common" => Ok(Self::Common),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown access-log format {other:?} (common or json)"
            )),
        }
    }
}

/// What is known about one finished request.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// When the request started.
    pub start: SystemTime,
    /// From the start to the end of the response.
    pub duration: Duration,
    /// The time the backend exchange took, when a backend was reached.
    pub origin_duration: Option<Duration>,
    /// The client's address.
    pub client: SocketAddr,
    /// The authenticated user (basic auth), if any.
    pub user: Option<&'a str>,
    /// The request method.
    pub method: &'a str,
    /// Path and query as the client sent them.
    pub target: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`...
    pub protocol: &'a str,
    /// The host the client addressed, port included if it sent one.
    pub authority: &'a str,
    /// Over TLS: `(version, cipher suite)`.
    pub tls: Option<(&'a str, &'a str)>,
    /// The entrypoint (`web` or `websecure`).
    pub entrypoint: &'a str,
    /// The status the client got.
    pub status: u16,
    /// The backend's status, when a backend answered.
    pub origin_status: Option<u16>,
    /// Response body bytes sent to the client.
    pub downstream_size: u64,
    /// Request body bytes received (announced length when not counted).
    pub request_size: u64,
    /// The Referer header.
    pub referer: Option<&'a str>,
    /// The User-Agent header.
    pub user_agent: Option<&'a str>,
    /// This request's number since start.
    pub request_count: u64,
    /// The route (router) name.
    pub router: Option<&'a str>,
    /// The Service (`namespace/name`).
    pub service: Option<(&'a str, &'a str)>,
    /// The endpoint that served it.
    pub server: Option<SocketAddr>,
    /// The backend's URL scheme (`http`, `https`).
    pub server_scheme: &'a str,
    /// The Ingress (`namespace`, `name`).
    pub ingress: Option<(&'a str, &'a str)>,
    /// Retries made by the retry middleware.
    pub retry_attempts: u32,
    /// The trace id, when tracing is on.
    pub trace_id: Option<&'a str>,
    /// The request headers named by `--access-log-header`, as sent.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Headers never written as sent, even when named.
const REDACTED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl Format {
    /// The line for `entry`, without its newline.
    pub fn line(self, entry: &Entry<'_>) -> String {
        let mut out = String::with_capacity(match self {
            Self::Common => 192,
            Self::Json => 768,
        });
        self.write(entry, &mut out);
        out
    }

    /// Appends the line for `entry` (without its newline) to `out`.
    pub fn write(self, entry: &Entry<'_>, out: &mut String) {
        match self {
            Self::Common => common(entry, out),
            Self::Json => json(entry, out),
        }
    }
}

fn dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

/// `<ip> - <user> [<time>] "<method> <path> <proto>" <status> <size> "<referer>"
/// "<agent>" <count> "<router>" "<server URL>" <ms>ms`, as Traefik writes it.
fn common(entry: &Entry<'_>, line: &mut String) {
    let _ = write!(line, "{} - {} [", entry.client.ip(), dash(entry.user));
    clf_time(entry.start, line);
    let _ = write!(
        line,
        "] \"{} {} {}\" {} {} \"{}\" \"{}\" {} \"{}\" \"",
        entry.method,
        entry.target,
        entry.protocol,
        entry.status,
        entry.downstream_size,
        dash(entry.referer),
        dash(entry.user_agent),
        entry.request_count,
        dash(entry.router),
    );
    match entry.server {
        Some(addr) => {
            let _ = write!(line, "{}://{addr}", entry.server_scheme);
        }
        None => line.push('-'),
    }
    let _ = write!(line, "\" {}ms", entry.duration.as_millis());
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Writes a JSON object field by field, with no intermediate values.
struct JsonWriter<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> JsonWriter<'o> {
    fn new(out: &'o mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        self.separate();
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// `"request_<Canonical-Name>":`, Traefik's key for a request header.
    fn header_key(&mut self, name: &str) {
        self.separate();
        self.out.push_str("\"request_");
        canonical_into(name, self.out);
        self.out.push_str("\":");
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        escape(value, self.out);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    fn num(&mut self, key: &str, value: impl itoa::Integer) {
        self.key(key);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    /// A number written as a JSON string (Traefik writes ports as strings).
    fn num_str(&mut self, key: &str, value: impl itoa::Integer) {
        self.key(key);
        self.out.push('"');
        self.out.push_str(itoa::Buffer::new().format(value));
        self.out.push('"');
    }

    /// An address (`ip:port`, or just the IP with `port: None`) as a JSON string.
    fn addr(&mut self, key: &str, ip: std::net::IpAddr, port: Option<u16>) {
        self.key(key);
        self.out.push('"');
        match port {
            Some(port) => push_socket(self.out, ip, port),
            None => push_ip(self.out, ip),
        }
        self.out.push('"');
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// An IP address as text: IPv4 digit by digit (the hot case), IPv6 by `Display`
/// in brackets-free form, as `SocketAddr`'s IP part.
fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `ip:port`, with an IPv6 address in brackets (as `SocketAddr` writes it).
fn push_socket(out: &mut String, ip: std::net::IpAddr, port: u16) {
    if ip.is_ipv6() {
        out.push('[');
        push_ip(out, ip);
        out.push(']');
    } else {
        push_ip(out, ip);
    }
    out.push(':');
    out.push_str(itoa::Buffer::new().format(port));
}

/// `value` as a JSON string (quotes included), escaped as RFC 8259 requires.
fn escape(value: &str, out: &mut String) {
    out.push('"');
    let bytes = value.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&value[plain..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
    out.push('"');
}

fn json(entry: &Entry<'_>, out: &mut String) {
    let (host, port) = split_authority(entry.authority, entry.tls.is_some());
    let mut started = [0u8; 30];
    let started = rfc3339_into(entry.start, &mut started);
    let origin = entry.origin_duration.map(nanos);
    let duration = nanos(entry.duration);
    let mut w = JsonWriter::new(out);
    w.addr("ClientAddr", entry.client.ip(), Some(entry.client.port()));
    w.addr("ClientHost", entry.client.ip(), None);
    w.num_str("ClientPort", entry.client.port());
    w.str("ClientUsername", dash(entry.user));
    w.num("DownstreamContentSize", entry.downstream_size);
    w.num("DownstreamStatus", entry.status);
    w.num("Duration", duration);
    if entry.origin_status.is_some() {
        w.num("OriginContentSize", entry.downstream_size);
    }
    if let Some(origin) = origin {
        w.num("OriginDuration", origin);
    }
    if let Some(status) = entry.origin_status {
        w.num("OriginStatus", status);
    }
    w.num("Overhead", duration.saturating_sub(origin.unwrap_or(0)));
    w.str("RequestAddr", entry.authority);
    w.num("RequestContentSize", entry.request_size);
    w.num("RequestCount", entry.request_count);
    w.str("RequestHost", host);
    w.str("RequestMethod", entry.method);
    w.str("RequestPath", entry.target);
    w.str("RequestPort", port);
    w.str("RequestProtocol", entry.protocol);
    w.str(
        "RequestScheme",
        if entry.tls.is_some() { "https" } else { "http" },
    );
    w.num("RetryAttempts", entry.retry_attempts);
    w.opt_str("RouterName", entry.router);
    if let Some(server) = entry.server {
        w.addr("ServiceAddr", server.ip(), Some(server.port()));
    }
    if let Some((namespace, name)) = entry.service {
        w.key("ServiceName");
        w.out.push('"');
        w.out.push_str(namespace);
        w.out.push('/');
        w.out.push_str(name);
        w.out.push('"');
    }
    if let Some(server) = entry.server {
        w.key("ServiceURL");
        w.out.push('"');
        w.out.push_str(entry.server_scheme);
        w.out.push_str("://");
        push_socket(w.out, server.ip(), server.port());
        w.out.push('"');
    }
    w.str("StartLocal", started);
    w.str("StartUTC", started);
    if let Some((version, cipher)) = entry.tls {
        w.str("TLSVersion", version);
        w.str("TLSCipher", cipher);
    }
    w.str("entryPointName", entry.entrypoint);
    if let Some((namespace, name)) = entry.ingress {
        w.str("IngressNamespace", namespace);
        w.str("IngressName", name);
    }
    w.opt_str("TraceId", entry.trace_id);
    w.str("level", "info");
    w.str("msg", "");
    w.str("time", started);
    for (name, value) in entry.headers {
        let shown = if REDACTED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            "REDACTED"
        } else {
            value
        };
        w.header_key(name);
        escape(shown, w.out);
    }
    w.end();
}

/// `Header-Name` capitalisation, as Go's canonical MIME header keys (Traefik's
/// `request_User-Agent`), appended to `out`. Header names are tokens: nothing
/// to escape.
fn canonical_into(name: &str, out: &mut String) {
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
}

/// The host and the port of an authority (the scheme's default port when none).
fn split_authority(authority: &str, tls: bool) -> (&str, &str) {
    let default = if tls { "443" } else { "80" };
    match crate::proxy::request::port_of(authority) {
        Some(port) => {
            let host = &authority[..authority.len() - port.len() - 1];
            (host, port)
        }
        None => (authority, default),
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// UTC calendar fields of `t`: (year, month, day, hour, minute, second, nanos).
fn utc(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rest = secs % 86_400;
    (
        year,
        month,
        day,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_nanos(),
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `02/Jan/2006:15:04:05 +0000`, appended to `out`.
fn clf_time(t: SystemTime, out: &mut String) {
    let (y, mo, d, h, mi, s, _) = utc(t);
    let month = MONTHS[usize::try_from(mo.saturating_sub(1)).unwrap_or(0).min(11)];
    let _ = write!(out, "{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000");
}

/// `2006-01-02T15:04:05.999999999Z`.
#[cfg(test)]
fn rfc3339(t: SystemTime) -> String {
    let mut buf = [0u8; 30];
    rfc3339_into(t, &mut buf).to_owned()
}

/// `2006-01-02T15:04:05.999999999Z` written into `buf` without allocating.
fn rfc3339_into(t: SystemTime, buf: &mut [u8; 30]) -> &str {
    let (y, mo, d, h, mi, s, ns) = utc(t);
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, u64::try_from(y.clamp(0, 9999)).unwrap_or(0), 4);
    put(5, u64::from(mo), 2);
    put(8, u64::from(d), 2);
    put(11, h, 2);
    put(14, mi, 2);
    put(17, s, 2);
    put(20, u64::from(ns), 9);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[29] = b'Z';
    std::str::from_utf8(&buf[..]).unwrap_or("1970-01-01T00:00:00.000000000Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(headers: &'a [(&'a str, &'a str)]) -> Entry<'a> {
        Entry {
            // 2026-12-07T14:40:05.000000123Z
            start: UNIX_EPOCH + Duration::new(1_796_654_405, 123),
            duration: Duration::from_millis(12),
            origin_duration: Some(Duration::from_millis(10)),
            client: "10.1.2.3:40000".parse().expect("addr"),
            user: None,
            method: "GET",
            target: "/a/b?x=1",
            protocol: "HTTP/1.1",
            authority: "app.example.com:8080",
            tls: None,
            entrypoint: "web",
            status: 200,
            origin_status: Some(200),
            downstream_size: 42,
            request_size: 0,
            referer: Some("http://r.example/"),
            user_agent: Some("curl/8.0"),
            request_count: 7,
            router: Some("default-app"),
            service: Some(("default", "web")),
            server: Some("10.0.0.9:8080".parse().expect("addr")),
            server_scheme: "http",
            ingress: Some(("default", "app")),
            retry_attempts: 0,
            trace_id: None,
            headers,
        }
    }

    #[test]
    fn common_lines_are_traefiks() {
        let line = Format::Common.line(&entry(&[]));
        assert_eq!(
            line,
            "10.1.2.3 - - [07/Dec/2026:14:40:05 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 42 \"http://r.example/\" \"curl/8.0\" 7 \"default-app\" \"http://10.0.0.9:8080\" 12ms"
        );
    }

    use serde_json::Value;

    #[test]
    fn json_lines_carry_traefiks_fields_and_redact_credentials() {
        let headers = [
            ("user-agent", "curl/8.0"),
            ("authorization", "Basic eDp5"),
            ("cookie", "a=b"),
        ];
        let line = Format::Json.line(&entry(&headers));
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["ClientHost"], "10.1.2.3");
        assert_eq!(v["ClientPort"], "40000");
        assert_eq!(v["DownstreamStatus"], 200);
        assert_eq!(v["OriginStatus"], 200);
        assert_eq!(v["Duration"], 12_000_000);
        assert_eq!(v["OriginDuration"], 10_000_000);
        assert_eq!(v["Overhead"], 2_000_000);
        assert_eq!(v["RequestHost"], "app.example.com");
        assert_eq!(v["RequestPort"], "8080");
        assert_eq!(v["RequestAddr"], "app.example.com:8080");
        assert_eq!(v["RequestPath"], "/a/b?x=1");
        assert_eq!(v["RequestScheme"], "http");
        assert_eq!(v["RouterName"], "default-app");
        assert_eq!(v["ServiceURL"], "http://10.0.0.9:8080");
        assert_eq!(v["ServiceAddr"], "10.0.0.9:8080");
        assert_eq!(v["StartUTC"], "2026-12-07T14:40:05.000000123Z");
        assert_eq!(v["entryPointName"], "web");
        assert_eq!(v["IngressNamespace"], "default");
        assert_eq!(v["IngressName"], "app");
        assert_eq!(v["request_User-Agent"], "curl/8.0");
        assert_eq!(v["request_Authorization"], "REDACTED");
        assert_eq!(v["request_Cookie"], "REDACTED");
        assert!(v.get("TLSVersion").is_none());
    }

    #[test]
    fn addresses_are_written_as_socket_addr_writes_them_and_strings_are_escaped() {
        let mut e = entry(&[]);
        e.client = "[2001:db8::1]:443".parse().expect("addr");
        e.server = Some("[::1]:8080".parse().expect("addr"));
        e.target = "/a\"b\\c\u{1}\n";
        let v: Value = serde_json::from_str(&Format::Json.line(&e)).expect("valid JSON");
        assert_eq!(v["ClientAddr"], "[2001:db8::1]:443");
        assert_eq!(v["ClientHost"], "2001:db8::1");
        assert_eq!(v["ServiceAddr"], "[::1]:8080");
        assert_eq!(v["ServiceURL"], "http://[::1]:8080");
        assert_eq!(v["RequestPath"], "/a\"b\\c\u{1}\n");
    }

    #[test]
    fn calendar_dates_are_right_across_leap_years() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_819), (2027, 1, 1));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }
}
