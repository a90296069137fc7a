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
    pub service: Option<&'a str>,
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
        match self {
            Self::Common => common(entry),
            Self::Json => json(entry),
        }
    }
}

fn dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

fn server_url(entry: &Entry<'_>) -> Option<String> {
    entry
        .server
        .map(|addr| format!("{}://{addr}", entry.server_scheme))
}

/// `<ip> - <user> [<time>] "<method> <path> <proto>" <status> <size> "<referer>"
/// "<agent>" <count> "<router>" "<server URL>" <ms>ms`, as Traefik writes it.
fn common(entry: &Entry<'_>) -> String {
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        "{} - {} [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} \"{}\" \"{}\" {}ms",
        entry.client.ip(),
        dash(entry.user),
        clf_time(entry.start),
        entry.method,
        entry.target,
        entry.protocol,
        entry.status,
        entry.downstream_size,
        dash(entry.referer),
        dash(entry.user_agent),
        entry.request_count,
        dash(entry.router),
        dash(server_url(entry).as_deref()),
        entry.duration.as_millis(),
    );
    line
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One JSON line, serialised in one pass with no intermediate map.
#[derive(serde::Serialize)]
#[allow(non_snake_case)] // Traefik's field names
struct JsonLine<'a> {
    ClientAddr: String,
    ClientHost: String,
    ClientPort: String,
    ClientUsername: &'a str,
    DownstreamContentSize: u64,
    DownstreamStatus: u16,
    Duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    OriginContentSize: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    OriginDuration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    OriginStatus: Option<u16>,
    Overhead: u64,
    RequestAddr: &'a str,
    RequestContentSize: u64,
    RequestCount: u64,
    RequestHost: &'a str,
    RequestMethod: &'a str,
    RequestPath: &'a str,
    RequestPort: String,
    RequestProtocol: &'a str,
    RequestScheme: &'a str,
    RetryAttempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    RouterName: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ServiceAddr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ServiceName: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ServiceURL: Option<String>,
    StartLocal: &'a str,
    StartUTC: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    TLSVersion: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    TLSCipher: Option<&'a str>,
    entryPointName: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    IngressNamespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    IngressName: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    TraceId: Option<&'a str>,
    level: &'a str,
    msg: &'a str,
    time: &'a str,
}

fn json(entry: &Entry<'_>) -> String {
    let (host, port) = split_authority(entry.authority, entry.tls.is_some());
    let started = rfc3339(entry.start);
    let origin = entry.origin_duration.map(nanos);
    let duration = nanos(entry.duration);
    let line = JsonLine {
        ClientAddr: entry.client.to_string(),
        ClientHost: entry.client.ip().to_string(),
        ClientPort: entry.client.port().to_string(),
        ClientUsername: dash(entry.user),
        DownstreamContentSize: entry.downstream_size,
        DownstreamStatus: entry.status,
        Duration: duration,
        OriginContentSize: entry.origin_status.map(|_| entry.downstream_size),
        OriginDuration: origin,
        OriginStatus: entry.origin_status,
        Overhead: duration.saturating_sub(origin.unwrap_or(0)),
        RequestAddr: entry.authority,
        RequestContentSize: entry.request_size,
        RequestCount: entry.request_count,
        RequestHost: host,
        RequestMethod: entry.method,
        RequestPath: entry.target,
        RequestPort: port,
        RequestProtocol: entry.protocol,
        RequestScheme: if entry.tls.is_some() { "https" } else { "http" },
        RetryAttempts: entry.retry_attempts,
        RouterName: entry.router,
        ServiceAddr: entry.server.map(|a| a.to_string()),
        ServiceName: entry.service,
        ServiceURL: server_url(entry),
        StartLocal: &started,
        StartUTC: &started,
        TLSVersion: entry.tls.map(|(v, _)| v),
        TLSCipher: entry.tls.map(|(_, c)| c),
        entryPointName: entry.entrypoint,
        IngressNamespace: entry.ingress.map(|(ns, _)| ns),
        IngressName: entry.ingress.map(|(_, n)| n),
        TraceId: entry.trace_id,
        level: "info",
        msg: "",
        time: &started,
    };
    let mut out = serde_json::to_string(&line).unwrap_or_default();
    if !entry.headers.is_empty() && out.ends_with('}') {
        out.pop();
        for (name, value) in entry.headers {
            let shown = if REDACTED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                "REDACTED"
            } else {
                value
            };
            let key = format!("request_{}", canonical(name));
            out.push(',');
            out.push_str(&serde_json::to_string(&key).unwrap_or_default());
            out.push(':');
            out.push_str(&serde_json::to_string(shown).unwrap_or_default());
        }
        out.push('}');
    }
    out
}

/// `Header-Name` capitalisation, as Go's canonical MIME header keys (Traefik's
/// `request_User-Agent`).
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// The host and the port of an authority (the scheme's default port when none).
fn split_authority(authority: &str, tls: bool) -> (&str, String) {
    let default = if tls { "443" } else { "80" };
    match crate::proxy::request::port_of(authority) {
        Some(port) => {
            let host = &authority[..authority.len() - port.len() - 1];
            (host, port.to_owned())
        }
        None => (authority, default.to_owned()),
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

/// `02/Jan/2006:15:04:05 +0000`.
fn clf_time(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc(t);
    let month = MONTHS[usize::try_from(mo.saturating_sub(1)).unwrap_or(0).min(11)];
    format!("{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000")
}

/// `2006-01-02T15:04:05.999999999Z`.
fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ns) = utc(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}Z")
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
            service: Some("default/web"),
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
    fn calendar_dates_are_right_across_leap_years() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_819), (2027, 1, 1));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }
}
