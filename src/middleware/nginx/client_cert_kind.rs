//! `nginxClientCert`: ingress-nginx's client-certificate authentication
//! (`auth-tls-*`) on each request, as nginx applies `ssl_verify_client` to
//! the server the request's host names.
//!
//! The certificate was asked for in the handshake (only on hosts with
//! `auth-tls-secret`) and verified once per connection
//! ([`crate::tls::HostClientAuth::verify`]); this step reads the verdict
//! from the connection's [`ClientInfo`](crate::exchange::ClientInfo), in
//! nginx's order:
//!
//! 1. `421 Misdirected Request` when the handshake named another server
//!    (SNI) than the request's host, and the host verifies certificates
//!    (nginx's check, so a connection made for a host that asks for no
//!    certificate cannot reach one that does).
//! 2. `400` (`No required SSL certificate was sent` with `on` and no
//!    certificate, including plain-HTTP requests; `The SSL certificate
//!    error` for a chain that does not verify, except an unknown issuer
//!    with `optional_no_ca`), or a `302` to `auth-tls-error-page`.
//! 3. `403 client certificate unauthorized` when `auth-tls-match-cn` does
//!    not match the subject (`CN=...,O=...`; an absent certificate has an
//!    empty subject).
//! 4. The backend gets `ssl-client-verify` (`SUCCESS`, `FAILED:<reason>`,
//!    `NONE`), `ssl-client-subject-dn`, `ssl-client-issuer-dn` and, with
//!    `auth-tls-pass-certificate-to-upstream`, `ssl-client-cert` (the PEM,
//!    URL-escaped). Whatever the client sent under these names is removed.
//!
//! The policy is per host (an nginx server): an Ingress's step lists the
//! policy of each of its hosts, the one of the oldest Ingress with
//! `auth-tls-secret` on that host.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::middleware::build::{decode, BuildError, Context};
use crate::middleware::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::tls::client_auth::{PeerCertificate, Verdict, VerifyClient};

/// nginx's `$ssl_client_verify`.
const VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
/// nginx's `$ssl_client_s_dn`.
const SUBJECT: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
/// nginx's `$ssl_client_i_dn`.
const ISSUER: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");
/// nginx's `$ssl_client_escaped_cert`.
const CERT: HeaderName = HeaderName::from_static("ssl-client-cert");

/// Builds `kind` if this module owns it.
pub(super) fn build(
    kind: &str,
    config: &Value,
    cx: &mut dyn Context,
) -> Option<Result<Arc<dyn Middleware>, BuildError>> {
    (kind == "nginxClientCert").then(|| build_client_cert(config, cx))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The policy of each host of the Ingress that has one.
    hosts: Vec<HostConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HostConfig {
    /// `a.example.com` or `*.example.com`.
    host: String,
    /// `on` (default), `off`, `optional`, `optional_no_ca`.
    #[serde(default)]
    verify_client: Option<String>,
    /// `auth-tls-error-page`.
    #[serde(default)]
    error_page: Option<String>,
    /// `auth-tls-match-cn`: a regex on the subject (`CN=...`).
    #[serde(default)]
    match_cn: Option<String>,
    /// `auth-tls-pass-certificate-to-upstream`.
    #[serde(default)]
    pass_certificate: bool,
}

fn build_client_cert(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: Config = decode(config, cx)?;
    let mut hosts = Vec::with_capacity(config.hosts.len());
    for host in config.hosts {
        let mode = match host.verify_client.as_deref() {
            None => VerifyClient::On,
            Some(value) => VerifyClient::parse(value).ok_or_else(|| {
                cx.invalid(format!(
                    "verifyClient {value:?} is not on, off, optional or optional_no_ca"
                ))
            })?,
        };
        let error_page = match host.error_page.filter(|p| !p.is_empty()) {
            None => None,
            Some(page) => Some(ErrorPage::new(&page).map_err(|e| cx.invalid(e))?),
        };
        let match_cn = match host.match_cn.filter(|p| !p.is_empty()) {
            None => None,
            Some(pattern) => Some(
                Regex::new(&pattern)
                    .map_err(|e| cx.invalid(format!("matchCn {pattern:?}: {e}")))?,
            ),
        };
        let name = host.host.trim_end_matches('.').to_ascii_lowercase();
        let key = match name.strip_prefix("*.") {
            Some(suffix) => HostKey::Wildcard(suffix.to_owned()),
            None => HostKey::Exact(name),
        };
        hosts.push((
            key,
            Policy {
                mode,
                error_page,
                match_cn,
                pass_certificate: host.pass_certificate,
            },
        ));
    }
    Ok(Arc::new(ClientCert { hosts }))
}

/// A host a policy applies to.
#[derive(Debug)]
enum HostKey {
    /// This name (lowercase).
    Exact(String),
    /// One label in front of this suffix (lowercase).
    Wildcard(String),
}

impl HostKey {
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name.eq_ignore_ascii_case(host),
            Self::Wildcard(suffix) => host.split_once('.').is_some_and(|(label, rest)| {
                !label.is_empty() && suffix.eq_ignore_ascii_case(rest)
            }),
        }
    }

    /// The pattern as a route shows it.
    fn is_pattern(&self, pattern: &str) -> bool {
        match self {
            Self::Exact(name) => name.eq_ignore_ascii_case(pattern),
            Self::Wildcard(suffix) => pattern
                .strip_prefix("*.")
                .is_some_and(|rest| suffix.eq_ignore_ascii_case(rest)),
        }
    }
}

/// `auth-tls-error-page`: where a failed verification is sent.
#[derive(Debug)]
struct ErrorPage {
    /// The `Location` of the 302.
    location: HeaderValue,
    /// For a page on the same server (`/path`): nginx serves it by an
    /// internal redirect, without checking the certificate again; sluice
    /// redirects there and lets a request for exactly that path through.
    local_path: Option<String>,
}

impl ErrorPage {
    fn new(page: &str) -> Result<Self, String> {
        let location = HeaderValue::from_str(page)
            .map_err(|_| format!("errorPage {page:?} is not a header value"))?;
        let local_path = page.starts_with('/').then(|| page.to_owned());
        Ok(Self {
            location,
            local_path,
        })
    }
}

/// One host's policy.
#[derive(Debug)]
struct Policy {
    mode: VerifyClient,
    error_page: Option<ErrorPage>,
    match_cn: Option<Regex>,
    pass_certificate: bool,
}

/// The built `nginxClientCert`.
#[derive(Debug)]
struct ClientCert {
    hosts: Vec<(HostKey, Policy)>,
}

/// What the connection says about the client's certificate for this request.
#[derive(Clone, Copy)]
enum Presented<'c> {
    /// Plain HTTP: no handshake, nothing to send.
    Plain,
    /// TLS without a certificate request for this host, or none sent.
    Nothing,
    /// The handshake for this host asked for one.
    Asked(&'c PeerCertificate),
}

/// Why the certificate check refuses a request (nginx's 496 and 495).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NoCertificate,
    BadCertificate,
}

impl ClientCert {
    fn policy(&self, host: &str, route_host: Option<&str>) -> Option<&Policy> {
        let by_host = self
            .hosts
            .iter()
            .find(|(key, _)| matches!(key, HostKey::Exact(_)) && key.matches(host))
            .or_else(|| self.hosts.iter().find(|(key, _)| key.matches(host)));
        // A request routed to this route by a name the router saw
        // differently still gets the route host's policy (fail closed).
        by_host
            .or_else(|| {
                let pattern = route_host?;
                self.hosts.iter().find(|(key, _)| key.is_pattern(pattern))
            })
            .map(|(_, policy)| policy)
    }
}

impl Middleware for ClientCert {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        for name in [&VERIFY, &SUBJECT, &ISSUER, &CERT] {
            req.headers_mut().remove(name);
        }
        let host = request_host(&req);
        let Some(policy) = self.policy(host, cx.route.host.as_deref()) else {
            return next.run(req, cx);
        };
        let presented = if !cx.client.tls {
            Presented::Plain
        } else {
            match &cx.client.client_cert {
                Some(peer) if same_name(peer.sni(), host) => Presented::Asked(peer),
                // The handshake was for another server: nginx refuses to
                // let a host that verifies certificates be reached that way.
                Some(_) if policy.mode != VerifyClient::Off => return answer(misdirected()),
                None if cx.client.sni && policy.mode != VerifyClient::Off => {
                    return answer(misdirected())
                }
                _ => Presented::Nothing,
            }
        };
        let verdict = match presented {
            Presented::Asked(peer) if policy.mode != VerifyClient::Off => peer.verdict(),
            _ => Verdict::None,
        };
        let refusal = match (policy.mode, verdict) {
            (VerifyClient::Off, _) | (_, Verdict::Success) => None,
            (VerifyClient::On, Verdict::None) => Some(Refusal::NoCertificate),
            (_, Verdict::None) => None,
            (
                VerifyClient::OptionalNoCa,
                Verdict::Failed {
                    unknown_issuer: true,
                    ..
                },
            ) => None,
            (_, Verdict::Failed { .. }) => Some(Refusal::BadCertificate),
        };
        if let Some(refusal) = refusal {
            match &policy.error_page {
                Some(page) if page.local_path.as_deref() == Some(req.uri().path()) => {}
                Some(page) => return answer(redirect(&page.location)),
                None => return answer(bad_request(refusal)),
            }
        }
        let peer = match presented {
            Presented::Asked(peer) if policy.mode != VerifyClient::Off => Some(peer),
            _ => None,
        };
        if let Some(pattern) = &policy.match_cn {
            let subject = peer
                .and_then(PeerCertificate::subject_dn)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !pattern.is_match(subject) {
                return answer(page(
                    StatusCode::FORBIDDEN,
                    "client certificate unauthorized".into(),
                ));
            }
        }
        let headers = req.headers_mut();
        match (presented, peer) {
            (Presented::Plain, _) => {}
            (_, None) => {
                headers.insert(VERIFY, HeaderValue::from_static("NONE"));
            }
            (_, Some(peer)) => {
                headers.insert(VERIFY, peer.verify_header().clone());
                if let Some(dn) = peer.subject_dn() {
                    headers.insert(SUBJECT, dn.clone());
                }
                if let Some(dn) = peer.issuer_dn() {
                    headers.insert(ISSUER, dn.clone());
                }
                if policy.pass_certificate {
                    if let Some(cert) = peer.escaped_cert() {
                        headers.insert(CERT, cert.clone());
                    }
                }
            }
        }
        next.run(req, cx)
    }
}

/// The request's host without port: the target's authority, else `Host`.
fn request_host<B>(req: &Request<B>) -> &str {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(without_port)
        })
        .unwrap_or("");
    raw.strip_suffix('.').unwrap_or(raw)
}

fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// Whether the handshake's SNI (lowercase) names `host`.
fn same_name(sni: &str, host: &str) -> bool {
    sni.eq_ignore_ascii_case(host)
}

fn answer<'a>(resp: Response<ResponseBody>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move { Ok(resp) })
}

/// An nginx error page: `<code> <title>` with `detail` under it.
fn page(status: StatusCode, detail: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(detail));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

fn bad_request(refusal: Refusal) -> Response<ResponseBody> {
    let why = match refusal {
        Refusal::NoCertificate => "No required SSL certificate was sent",
        Refusal::BadCertificate => "The SSL certificate error",
    };
    page(
        StatusCode::BAD_REQUEST,
        format!(
            "<html>\r\n<head><title>400 {why}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>{why}</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

fn misdirected() -> Response<ResponseBody> {
    page(
        StatusCode::MISDIRECTED_REQUEST,
        "<html>\r\n<head><title>421 Misdirected Request</title></head>\r\n<body>\r\n<center><h1>421 Misdirected Request</h1></center>\r\n</body>\r\n</html>\r\n".into(),
    )
}

/// nginx's `error_page 495 496 = <url>`: a 302 to it.
fn redirect(location: &HeaderValue) -> Response<ResponseBody> {
    let mut resp = page(
        StatusCode::FOUND,
        "<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n<center><h1>302 Found</h1></center>\r\n</body>\r\n</html>\r\n".into(),
    );
    resp.headers_mut().insert(LOCATION, location.clone());
    resp
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, UnixTime};
    use serde_json::json;

    use super::*;
    use crate::middleware::testing::{self, *};
    use crate::tls::client_auth::{ClientCa, HostClientAuth};

    struct Pki {
        ca_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn pki(cn: &str) -> Pki {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn client_cert(pki: &Pki, cn: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        params
            .signed_by(&key, &pki.issuer)
            .expect("client")
            .der()
            .clone()
    }

    /// What the handshake for `sni` made of `chain`, verified against `ca`.
    fn peer(
        ca: &Pki,
        sni: &str,
        chain: Option<&[CertificateDer<'static>]>,
    ) -> Arc<PeerCertificate> {
        let ca = ClientCa::from_pem(ca.ca_pem.as_bytes(), None).expect("CA");
        let auth = HostClientAuth::new(ca, 1, VerifyClient::On);
        Arc::new(auth.verify(sni, chain, UnixTime::now()))
    }

    fn cx_with(peer: Option<Arc<PeerCertificate>>, sni: bool) -> RequestContext {
        let mut cx = context(true);
        cx.client = cx.client.clone().with_sni(sni);
        if let Some(peer) = peer {
            cx.client = cx.client.clone().with_client_cert(peer);
        }
        cx
    }

    fn mw(host: serde_json::Value) -> Arc<dyn Middleware> {
        testing::make(build_client_cert, json!({ "hosts": [host] })).expect("builds")
    }

    async fn status(
        mw: &Arc<dyn Middleware>,
        cx: &RequestContext,
        host: &str,
        path: &str,
    ) -> (StatusCode, Recorder) {
        let backend = Recorder::ok();
        let resp = run_in(
            mw,
            &backend,
            get(path, &[("host", host), ("ssl-client-verify", "SUCCESS")]),
            cx,
        )
        .await
        .expect("a response");
        (resp.status(), backend)
    }

    #[test]
    fn bad_configs_do_not_build() {
        for host in [
            json!({ "host": "a.test", "verifyClient": "maybe" }),
            json!({ "host": "a.test", "matchCn": "CN=(" }),
            json!({ "host": "a.test", "errorPage": "http://x/\n" }),
            json!({ "host": "a.test", "other": 1 }),
        ] {
            assert!(
                testing::make(build_client_cert, json!({ "hosts": [host.clone()] })).is_err(),
                "{host}"
            );
        }
        assert!(testing::make(build_client_cert, json!({})).is_err());
    }

    #[tokio::test]
    async fn verified_certificates_pass_with_the_headers() {
        let ca = pki("Root");
        let chain = [client_cert(&ca, "alice")];
        let cx = cx_with(Some(peer(&ca, "a.test", Some(&chain))), true);
        let mw = mw(json!({ "host": "a.test", "passCertificate": true }));
        let (code, backend) = status(&mw, &cx, "A.test:8443", "/").await;
        assert_eq!(code, 200);
        let seen = backend.got().headers;
        assert_eq!(seen["ssl-client-verify"], "SUCCESS");
        assert_eq!(seen["ssl-client-subject-dn"], "CN=alice");
        assert_eq!(seen["ssl-client-issuer-dn"], "CN=Root");
        let cert = seen["ssl-client-cert"].to_str().expect("ascii");
        assert!(
            cert.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
            "{cert}"
        );
        // Without passCertificate the certificate stays out.
        let mw = self::mw(json!({ "host": "a.test" }));
        let (_, backend) = status(&mw, &cx, "a.test", "/").await;
        assert!(backend.got().headers.get("ssl-client-cert").is_none());
    }

    #[tokio::test]
    async fn missing_and_bad_certificates_follow_verify_client() {
        let ca = pki("Root");
        let other = pki("Other");
        let none = cx_with(Some(peer(&ca, "a.test", None)), true);
        let foreign = [client_cert(&other, "mallory")];
        let bad = cx_with(Some(peer(&ca, "a.test", Some(&foreign))), true);
        let cases = [
            ("on", &none, 400, None),
            ("on", &bad, 400, None),
            ("optional", &none, 200, Some("NONE")),
            ("optional", &bad, 400, None),
            (
                "optional_no_ca",
                &bad,
                200,
                Some("FAILED:unable to get local issuer certificate"),
            ),
            ("optional_no_ca", &none, 200, Some("NONE")),
            ("off", &bad, 200, Some("NONE")),
        ];
        for (mode, cx, want, verify) in cases {
            let mw = mw(json!({ "host": "a.test", "verifyClient": mode }));
            let (code, backend) = status(&mw, cx, "a.test", "/").await;
            assert_eq!(code.as_u16(), want, "{mode}");
            match verify {
                Some(v) => assert_eq!(backend.got().headers["ssl-client-verify"], v, "{mode}"),
                None => assert!(!backend.called(), "{mode}"),
            }
        }
        let mw = mw(json!({ "host": "a.test" }));
        let backend = Recorder::ok();
        let resp = run_in(&mw, &backend, get("/", &[("host", "a.test")]), &none)
            .await
            .expect("response");
        assert!(text(resp)
            .await
            .contains("No required SSL certificate was sent"));
        let resp = run_in(&mw, &backend, get("/", &[("host", "a.test")]), &bad)
            .await
            .expect("response");
        assert!(text(resp).await.contains("The SSL certificate error"));
    }

    #[tokio::test]
    async fn plain_http_has_no_certificate() {
        let mw_on = mw(json!({ "host": "a.test" }));
        let (code, _) = status(&mw_on, &context(false), "a.test", "/").await;
        assert_eq!(code, 400);
        let optional = mw(json!({ "host": "a.test", "verifyClient": "optional" }));
        let (code, backend) = status(&optional, &context(false), "a.test", "/").await;
        assert_eq!(code, 200);
        // Nothing to say, and the client's own value is gone.
        assert!(backend.got().headers.get("ssl-client-verify").is_none());
    }

    #[tokio::test]
    async fn another_server_name_is_misdirected() {
        let ca = pki("Root");
        let chain = [client_cert(&ca, "alice")];
        let mw = mw(json!({ "host": "a.test" }));
        let other_sni = cx_with(Some(peer(&ca, "b.test", Some(&chain))), true);
        assert_eq!(status(&mw, &other_sni, "a.test", "/").await.0, 421);
        // A handshake for a host that asks for nothing.
        assert_eq!(
            status(&mw, &cx_with(None, true), "a.test", "/").await.0,
            421
        );
        // No SNI at all: nginx does not compare; no certificate was sent.
        assert_eq!(
            status(&mw, &cx_with(None, false), "a.test", "/").await.0,
            400
        );
        // `off` hosts verify nothing, so nothing is misdirected.
        let off = self::mw(json!({ "host": "a.test", "verifyClient": "off" }));
        assert_eq!(status(&off, &other_sni, "a.test", "/").await.0, 200);
        // Hosts without a policy pass (the client's headers removed).
        let (code, backend) = status(&mw, &other_sni, "c.test", "/").await;
        assert_eq!(code, 200);
        assert!(backend.got().headers.get("ssl-client-verify").is_none());
    }

    #[tokio::test]
    async fn wildcard_hosts_match_one_label() {
        let ca = pki("Root");
        let chain = [client_cert(&ca, "alice")];
        let mw = mw(json!({ "host": "*.apps.test" }));
        let cx = cx_with(Some(peer(&ca, "web.apps.test", Some(&chain))), true);
        assert_eq!(status(&mw, &cx, "WEB.apps.test", "/").await.0, 200);
        let cx = cx_with(Some(peer(&ca, "web.apps.test", None)), true);
        assert_eq!(status(&mw, &cx, "web.apps.test", "/").await.0, 400);
        let (code, _) = status(&mw, &cx, "x.web.apps.test", "/").await;
        assert_eq!(code, 200);
    }

    #[tokio::test]
    async fn error_pages_redirect() {
        let ca = pki("Root");
        let none = cx_with(Some(peer(&ca, "a.test", None)), true);
        let mw = mw(json!({ "host": "a.test", "errorPage": "https://errors.test/cert.html" }));
        let backend = Recorder::ok();
        let resp = run_in(&mw, &backend, get("/x", &[("host", "a.test")]), &none)
            .await
            .expect("response");
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "https://errors.test/cert.html");
        // A page of the same server is served to clients without a certificate.
        let mw = self::mw(json!({ "host": "a.test", "errorPage": "/cert-error" }));
        let resp = run_in(&mw, &backend, get("/x", &[("host", "a.test")]), &none)
            .await
            .expect("response");
        assert_eq!(resp.headers()["location"], "/cert-error");
        assert_eq!(status(&mw, &none, "a.test", "/cert-error").await.0, 200);
    }

    #[tokio::test]
    async fn match_cn_is_a_regex_on_the_subject() {
        let ca = pki("Root");
        let alice = [client_cert(&ca, "alice")];
        let bob = [client_cert(&ca, "bob")];
        let mw = mw(json!({
            "host": "a.test",
            "verifyClient": "optional",
            "matchCn": "CN=(alice|carol)"
        }));
        let cx = |chain| cx_with(Some(peer(&ca, "a.test", chain)), true);
        assert_eq!(status(&mw, &cx(Some(&alice)), "a.test", "/").await.0, 200);
        let backend = Recorder::ok();
        let resp = run_in(
            &mw,
            &backend,
            get("/", &[("host", "a.test")]),
            &cx(Some(&bob)),
        )
        .await
        .expect("response");
        assert_eq!(resp.status(), 403);
        assert_eq!(text(resp).await, "client certificate unauthorized");
        // No certificate: an empty subject matches nothing.
        assert_eq!(status(&mw, &cx(None), "a.test", "/").await.0, 403);
    }
}
