//! ingress-nginx's client-certificate authentication (`auth-tls-*`) through
//! a real sluice: real TLS handshakes from a rustls client that presents
//! (or not) certificates made with rcgen and records whether the server
//! asked for one, a real whoami backend echoing the `ssl-client-*` headers,
//! HTTP/1.1 and HTTP/2, and the diagnostics of the admin API.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use support::nginx::*;
use support::*;
use tls_support::{any_cert_config, ca_secret, HttpConn, Reply, Versions};

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A self-signed CA with subject `CN=<cn>`.
fn ca(cn: &str) -> Ca {
    CertifiedIssuer::self_signed(ca_params(cn), KeyPair::generate().expect("key")).expect("CA")
}

/// An intermediate CA signed by `parent`.
fn intermediate(parent: &Ca, cn: &str) -> Ca {
    CertifiedIssuer::signed_by(ca_params(cn), KeyPair::generate().expect("key"), parent)
        .expect("intermediate")
}

/// A client certificate and its key, as a TLS client presents them.
struct Identity {
    /// The leaf, PEM (as rcgen writes it: 64 columns, LF).
    pem: String,
    key: Arc<CertifiedKey>,
}

/// A client certificate `O=Acme, CN=<cn>` from `issuer`, sent with `chain`
/// (intermediates, closest first).
fn identity(issuer: &Ca, cn: &str, chain: &[&Ca]) -> Identity {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("client certificate");
    let mut certs: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    certs.extend(chain.iter().map(|c| c.der().clone()));
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).expect("signing key");
    Identity {
        pem: cert.pem(),
        key: Arc::new(CertifiedKey::new(certs, signer)),
    }
}

/// The DER subject of `ca`, as a CertificateRequest names it.
fn subject_der(ca: &Ca) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca.der()).expect("parse CA");
    cert.subject().as_raw().to_vec()
}

// ---------------------------------------------------------------------------
// A TLS client that records whether it was asked for a certificate
// ---------------------------------------------------------------------------

/// Presents `key` (or nothing) when asked, and remembers the CA names the
/// server's CertificateRequest listed.
#[derive(Debug, Default)]
struct Presenter {
    key: Option<Arc<CertifiedKey>>,
    asked: Mutex<Option<Vec<Vec<u8>>>>,
}

impl ResolvesClientCert for Presenter {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let hints = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
        *self.asked.lock().expect("lock") = Some(hints);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

impl Presenter {
    /// The CA names of the CertificateRequest, `None` if none came.
    fn asked(&self) -> Option<Vec<Vec<u8>>> {
        self.asked.lock().expect("lock").clone()
    }
}

/// A client config (any server certificate, offering `alpn`) presenting
/// `who` when asked; the presenter beside it. Connections made with the
/// same config share its session cache (resumption).
fn client_config(alpn: &[&str], who: Option<&Identity>) -> (Arc<ClientConfig>, Arc<Presenter>) {
    let presenter = Arc::new(Presenter {
        key: who.map(|w| w.key.clone()),
        ..Presenter::default()
    });
    let mut config = (*any_cert_config(alpn, Versions::Both)).clone();
    config.client_auth_cert_resolver = presenter.clone();
    (Arc::new(config), presenter)
}

/// An HTTPS connection to `f` with SNI `sni` and `config`.
async fn connect_with(f: &Fixture, sni: &str, config: Arc<ClientConfig>) -> HttpConn {
    HttpConn::try_https(config, f.sluice.https_addr, Some(sni))
        .await
        .unwrap_or_else(|e| panic!("HTTPS to {sni} failed: {e}"))
}

/// An HTTPS connection to `f` with SNI `sni`, offering `alpn`, presenting
/// `who` when asked; the presenter beside it.
async fn connect_alpn(
    f: &Fixture,
    sni: &str,
    alpn: &[&str],
    who: Option<&Identity>,
) -> (HttpConn, Arc<Presenter>) {
    let (config, presenter) = client_config(alpn, who);
    (connect_with(f, sni, config).await, presenter)
}

/// [`connect_alpn`] offering HTTP/1.1.
async fn connect(f: &Fixture, sni: &str, who: Option<&Identity>) -> (HttpConn, Arc<Presenter>) {
    connect_alpn(f, sni, &["http/1.1"], who).await
}

/// [`connect_alpn`] offering HTTP/2.
async fn connect_h2(f: &Fixture, sni: &str, who: Option<&Identity>) -> (HttpConn, Arc<Presenter>) {
    connect_alpn(f, sni, &["h2"], who).await
}

/// GET `path` on `host` over `conn`, asking for whoami's JSON report.
async fn get_json(conn: &mut HttpConn, host: &str, path: &str) -> Reply {
    conn.get(host, path, &[("accept", "application/json")])
        .await
}

/// GET `/` on `host` over a new HTTP/1.1 connection (SNI = host).
async fn https(f: &Fixture, host: &str, who: Option<&Identity>) -> Reply {
    let (mut conn, _) = connect(f, host, who).await;
    get_json(&mut conn, host, "/").await
}

/// [`https`] to `secure.test` presenting a new certificate for `cn` from
/// `issuer`.
async fn https_as(f: &Fixture, issuer: &Ca, cn: &str) -> Reply {
    https(f, "secure.test", Some(&identity(issuer, cn, &[]))).await
}

/// The value of request header `name` the whoami backend reports.
fn seen(reply: &Reply, name: &str) -> Option<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["headers"][name][0].as_str().map(str::to_owned)
}

/// The `ssl-client-verify` header the whoami backend reports.
fn verdict(reply: &Reply) -> Option<String> {
    seen(reply, "ssl-client-verify")
}

/// Percent-decodes `text`.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

// ---------------------------------------------------------------------------
// sluice
// ---------------------------------------------------------------------------

/// The annotation that passes the client certificate to the backend.
const PASS: (&str, &str) = ("auth-tls-pass-certificate-to-upstream", "true");

/// A running sluice: Service `web` (whoami), the CA Secret `client-ca` in
/// `default` (`ca.crt` of `ca`, unless `docs` brings its own), Ingress
/// `secure` on `secure.test` with the `auth-tls-*` annotations `nginx`
/// (names without the prefix), Ingress `open` on `open.test` without any,
/// and the documents `docs`.
async fn app(ca: &Ca, nginx: &[(&str, &str)], docs: &str) -> Fixture {
    let web = whoami("web").await;
    let manifests = Manifests::new();
    let all = [
        service("web", &[web.addr]),
        ca_secret("default", "client-ca", &ca.pem()),
        nginx_ingress("secure", nginx, &[("secure.test", "/", "Prefix", "web")]),
        nginx_ingress("open", &[], &[("open.test", "/", "Prefix", "web")]),
        docs.to_owned(),
    ];
    manifests.write("a.yaml", &all.join("\n---\n"));
    let sluice = start(settings(&manifests.path())).await;
    let f = Fixture {
        backends: vec![web],
        manifests,
        sluice,
    };
    wait_for_status(&f, "the Ingresses", "open.test", "/", |s| s == 200).await;
    wait_for_status(&f, "the Ingresses", "secure.test", "/", |s| s != 404).await;
    f
}

/// [`app`] with `auth-tls-secret: client-ca`, the annotations `more` and
/// the documents `docs`.
async fn secured(ca: &Ca, more: &[(&str, &str)], docs: &str) -> Fixture {
    let mut nginx = vec![("auth-tls-secret", "client-ca")];
    nginx.extend_from_slice(more);
    app(ca, &nginx, docs).await
}

/// Another Ingress `name`, with `auth-tls-secret: secret`, on `host` +
/// `path` (Prefix, Service `web`).
fn auth_tls_ingress(name: &str, secret: &str, host: &str, path: &str) -> String {
    nginx_ingress(
        name,
        &[("auth-tls-secret", secret)],
        &[(host, path, "Prefix", "web")],
    )
}

/// Plain-HTTP GET `/` on `host`.
async fn http_status(f: &Fixture, host: &str) -> u16 {
    get(&client(), f.sluice.http_addr, host, "/", &[])
        .await
        .status
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_certificate_from_the_ca_reaches_the_backend_with_the_headers() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let a = app(&root, &[("auth-tls-secret", "default/client-ca"), PASS], "").await;
    let (mut conn, presenter) = connect(&a, "secure.test", Some(&alice)).await;
    // The client's own values never reach the backend.
    let reply = conn
        .get(
            "secure.test",
            "/",
            &[
                ("accept", "application/json"),
                ("ssl-client-verify", "SUCCESS-FORGED"),
                ("ssl-client-subject-dn", "CN=admin"),
            ],
        )
        .await;
    for (name, want) in [
        ("ssl-client-verify", "SUCCESS"),
        ("ssl-client-subject-dn", "CN=alice,O=Acme"),
        ("ssl-client-issuer-dn", "CN=Client CA"),
    ] {
        assert_eq!(seen(&reply, name).as_deref(), Some(want), "{name}");
    }
    let escaped = seen(&reply, "ssl-client-cert").expect("ssl-client-cert");
    assert!(
        escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{escaped}"
    );
    assert!(!escaped.contains(['/', '+', '=', '\n', ' ']), "{escaped}");
    assert_eq!(unescape(&escaped), alice.pem);
    // The CertificateRequest named the CA.
    let hints = presenter.asked().expect("a certificate was asked for");
    assert_eq!(hints, vec![subject_der(&root)]);
    // The verdict is per connection: the next request on it passes too.
    let again = get_json(&mut conn, "secure.test", "/").await;
    assert_eq!(verdict(&again).as_deref(), Some("SUCCESS"));
}

#[tokio::test]
async fn no_certificate_or_another_cas_is_a_400() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = secured(&root, &[], "").await;
    let none = https(&a, "secure.test", None).await;
    assert_eq!(none.status, 400);
    assert!(
        none.body.contains("No required SSL certificate was sent"),
        "{}",
        none.body
    );
    let foreign = https_as(&a, &other, "mallory").await;
    assert_eq!(foreign.status, 400);
    assert!(
        foreign.body.contains("The SSL certificate error"),
        "{}",
        foreign.body
    );
    // A self-signed certificate is no better.
    let own = ca("mallory");
    let foreign = https(&a, "secure.test", Some(&identity(&own, "mallory", &[&own]))).await;
    assert_eq!(foreign.status, 400);
    // Plain HTTP brings no certificate either.
    assert_eq!(http_status(&a, "secure.test").await, 400);
    let ok = https_as(&a, &root, "alice").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn optional_lets_clients_without_a_certificate_through() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = secured(&root, &[("auth-tls-verify-client", "optional")], "").await;
    let none = https(&a, "secure.test", None).await;
    assert_eq!(verdict(&none).as_deref(), Some("NONE"));
    assert_eq!(seen(&none, "ssl-client-subject-dn"), None);
    let alice = https_as(&a, &root, "alice").await;
    assert_eq!(verdict(&alice).as_deref(), Some("SUCCESS"));
    // Without pass-certificate-to-upstream the certificate stays out.
    assert_eq!(seen(&alice, "ssl-client-cert"), None);
    let foreign = https_as(&a, &other, "m").await;
    assert_eq!(foreign.status, 400);
}

#[tokio::test]
async fn optional_no_ca_passes_a_foreign_certificate_with_its_verdict() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = secured(
        &root,
        &[("auth-tls-verify-client", "optional_no_ca"), PASS],
        "",
    )
    .await;
    let mallory = identity(&other, "mallory", &[]);
    let (mut conn, presenter) = connect(&a, "secure.test", Some(&mallory)).await;
    // The certificate is asked for, naming the CA all the same.
    assert_eq!(presenter.asked(), Some(vec![subject_der(&root)]));
    let reply = get_json(&mut conn, "secure.test", "/").await;
    assert_eq!(
        verdict(&reply).as_deref(),
        Some("FAILED:unable to get local issuer certificate")
    );
    assert_eq!(
        seen(&reply, "ssl-client-subject-dn").as_deref(),
        Some("CN=mallory,O=Acme")
    );
    assert_eq!(
        unescape(&seen(&reply, "ssl-client-cert").expect("cert")),
        mallory.pem
    );
    let none = https(&a, "secure.test", None).await;
    assert_eq!(verdict(&none).as_deref(), Some("NONE"));
}

#[tokio::test]
async fn verify_client_off_asks_for_nothing_and_says_none() {
    let root = ca("Client CA");
    let a = secured(&root, &[("auth-tls-verify-client", "off")], "").await;
    let alice = identity(&root, "alice", &[]);
    let (mut conn, presenter) = connect(&a, "secure.test", Some(&alice)).await;
    let reply = get_json(&mut conn, "secure.test", "/").await;
    assert_eq!(presenter.asked(), None);
    assert_eq!(verdict(&reply).as_deref(), Some("NONE"));
}

#[tokio::test]
async fn a_bad_verify_client_value_is_on_and_reported() {
    let root = ca("Client CA");
    let a = secured(&root, &[("auth-tls-verify-client", "maybe")], "").await;
    assert_eq!(https(&a, "secure.test", None).await.status, 400);
    assert_reported(&a, &["auth-tls-verify-client", "invalid_annotation"]).await;
}

#[tokio::test]
async fn the_error_page_gets_the_failed_verifications() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let page = ("auth-tls-error-page", "https://errors.test/cert.html");
    let a = secured(&root, &[page], "").await;
    for who in [None, Some(identity(&other, "m", &[]))] {
        let reply = https(&a, "secure.test", who.as_ref()).await;
        assert_eq!(reply.status, 302, "{}", reply.body);
        assert_eq!(
            reply.header("location"),
            Some("https://errors.test/cert.html")
        );
    }
    let ok = https_as(&a, &root, "alice").await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn match_cn_refuses_other_subjects_with_403() {
    let root = ca("Client CA");
    let a = secured(&root, &[("auth-tls-match-cn", "CN=(alice|carol)")], "").await;
    let alice = https_as(&a, &root, "alice").await;
    assert_eq!(alice.status, 200);
    let bob = https_as(&a, &root, "bob").await;
    assert_eq!(bob.status, 403);
    assert_eq!(bob.body, "client certificate unauthorized");
}

#[tokio::test]
async fn only_hosts_with_auth_tls_ask_for_a_certificate() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let a = secured(&root, &[], "").await;
    let (mut conn, presenter) = connect(&a, "open.test", Some(&alice)).await;
    let reply = get_json(&mut conn, "open.test", "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(presenter.asked(), None, "open.test asked for a certificate");
    assert_eq!(verdict(&reply), None);
    // That connection cannot be used for the host that verifies (nginx's 421).
    let misdirected = conn.get("secure.test", "/", &[]).await;
    assert_eq!(misdirected.status, 421);
    // The other way round: the verified connection may ask for open.test,
    // which does not care.
    let (mut conn, presenter) = connect(&a, "secure.test", Some(&alice)).await;
    assert!(presenter.asked().is_some());
    assert_eq!(conn.get("open.test", "/", &[]).await.status, 200);
}

#[tokio::test]
async fn every_ingress_of_the_host_is_checked() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    // Another Ingress adds /other to secure.test without any annotation: the
    // host's (nginx server's) client authentication applies to it too.
    let other = nginx_ingress("other", &[], &[("secure.test", "/other", "Prefix", "web")]);
    let a = secured(&root, &[], &other).await;
    let (mut conn, _) = connect(&a, "secure.test", None).await;
    assert_eq!(conn.get("secure.test", "/other", &[]).await.status, 400);
    let (mut conn, _) = connect(&a, "secure.test", Some(&alice)).await;
    let reply = get_json(&mut conn, "secure.test", "/other").await;
    assert_eq!(verdict(&reply).as_deref(), Some("SUCCESS"));
}

#[tokio::test]
async fn verify_depth_limits_the_intermediates() {
    let root = ca("Client CA");
    let mid1 = intermediate(&root, "Mid 1");
    let mid2 = intermediate(&mid1, "Mid 2");
    let one = identity(&mid1, "one", &[&mid1]);
    let two = identity(&mid2, "two", &[&mid2, &mid1]);
    // Default depth 1: one intermediate.
    let a = secured(&root, &[], "").await;
    assert_eq!(https(&a, "secure.test", Some(&one)).await.status, 200);
    assert_eq!(https(&a, "secure.test", Some(&two)).await.status, 400);
    let a = secured(&root, &[("auth-tls-verify-depth", "2")], "").await;
    let reply = https(&a, "secure.test", Some(&two)).await;
    assert_eq!(
        seen(&reply, "ssl-client-issuer-dn").as_deref(),
        Some("CN=Mid 2")
    );
    let depth_0 = [
        ("auth-tls-verify-depth", "0"),
        ("auth-tls-verify-client", "optional"),
    ];
    let a = secured(&root, &depth_0, "").await;
    // 0 is read as 1, as ingress-nginx does.
    assert_eq!(https(&a, "secure.test", Some(&one)).await.status, 200);
    assert_eq!(https(&a, "secure.test", Some(&two)).await.status, 400);
}

#[tokio::test]
async fn unusable_secrets_and_values_fail_closed() {
    let root = ca("Client CA");
    let no_ca = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: no-ca\n  namespace: default\nstringData:\n  tls.crt: nothing\n";
    let not_pem = ca_secret("default", "not-pem", "this is not a certificate");
    let elsewhere = ca_secret("other", "client-ca", &root.pem());
    let docs = [no_ca, not_pem.as_str(), elsewhere.as_str()].join("\n---\n");
    // Secrets that cannot be used, and the text the report names them by...
    let secrets = [
        ("missing", "missing"),
        ("no-ca", "no-ca"),
        ("not-pem", "not-pem"),
        ("other/client-ca", "other"),
        ("Bad_Name", "Bad_Name"),
    ];
    // ...and values that cannot be used beside a good Secret.
    let values = [
        ("auth-tls-match-cn", "alice"),
        ("auth-tls-match-cn", "CN=(alice"),
        ("auth-tls-error-page", "https://errors.test/?from=x"),
        ("auth-tls-pass-certificate-to-upstream", "yes"),
        ("auth-tls-verify-depth", "-1"),
    ];
    let cases =
        secrets
            .iter()
            .map(|&(secret, needle)| (vec![("auth-tls-secret", secret)], needle))
            .chain(values.iter().map(|&(name, value)| {
                (vec![("auth-tls-secret", "client-ca"), (name, value)], name)
            }));
    for (annotations, needle) in cases {
        let a = app(&root, &annotations, &docs).await;
        assert_eq!(http_status(&a, "secure.test").await, 500, "{annotations:?}");
        let (mut conn, presenter) = connect(&a, "secure.test", None).await;
        assert_eq!(conn.get("secure.test", "/", &[]).await.status, 500);
        assert_eq!(presenter.asked(), None, "{annotations:?}");
        let errors = diagnostics(&a).await;
        assert!(
            errors.contains("invalid_annotation") && errors.contains(needle),
            "{annotations:?}: {errors}"
        );
        // Other hosts keep serving.
        assert_eq!(http_status(&a, "open.test").await, 200);
    }
}

#[tokio::test]
async fn a_broken_secret_fails_the_whole_host() {
    let root = ca("Client CA");
    // Ingress `other` (on secure.test too) names a missing Secret: nginx
    // fails the whole server, so `secure`'s routes answer 500 as well.
    let other = auth_tls_ingress("other", "missing", "secure.test", "/other");
    let a = secured(&root, &[], &other).await;
    assert_fails_closed(&a, "secure.test", &["fails closed"]).await;
}

#[tokio::test]
async fn auth_tls_annotations_without_a_secret_are_ignored_and_reported() {
    let root = ca("Client CA");
    let a = app(&root, &[("auth-tls-verify-client", "on")], "").await;
    let reply = https(&a, "secure.test", None).await;
    assert_eq!(reply.status, 200);
    assert_reported(&a, &["only applies with auth-tls-secret"]).await;
}

#[tokio::test]
async fn http2_is_checked_alike() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = secured(&root, &[PASS], "").await;
    let alice = identity(&root, "alice", &[]);
    let (mut conn, presenter) = connect_h2(&a, "secure.test", Some(&alice)).await;
    assert!(conn.is_h2());
    assert!(presenter.asked().is_some());
    let reply = get_json(&mut conn, "secure.test", "/").await;
    assert_eq!(verdict(&reply).as_deref(), Some("SUCCESS"));
    assert_eq!(
        unescape(&seen(&reply, "ssl-client-cert").expect("cert")),
        alice.pem
    );
    for who in [None, Some(identity(&other, "m", &[]))] {
        let (mut conn, _) = connect_h2(&a, "secure.test", who.as_ref()).await;
        assert!(conn.is_h2());
        assert_eq!(conn.get("secure.test", "/", &[]).await.status, 400);
    }
    // An HTTP/2 connection made for open.test is not coalesced onto secure.test.
    let (mut conn, _) = connect_h2(&a, "open.test", Some(&alice)).await;
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 421);
}

#[tokio::test]
async fn a_resumed_session_keeps_its_certificate_and_verdict() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let a = secured(&root, &[], "").await;
    for who in [Some(&alice), None] {
        let (config, presenter) = client_config(&["http/1.1"], who);
        let mut first = connect_with(&a, "secure.test", config.clone()).await;
        let want = if who.is_some() { 200 } else { 400 };
        assert_eq!(first.get("secure.test", "/", &[]).await.status, want);
        assert!(presenter.asked().is_some());
        *presenter.asked.lock().expect("lock") = None;
        let mut second = connect_with(&a, "secure.test", config).await;
        assert!(
            second.tls.as_ref().is_some_and(|t| t.resumed),
            "not resumed"
        );
        // No CertificateRequest on resumption: the certificate comes from the session.
        assert_eq!(presenter.asked(), None);
        let reply = get_json(&mut second, "secure.test", "/").await;
        assert_eq!(reply.status, want, "{}", reply.body);
        if who.is_some() {
            assert_eq!(
                seen(&reply, "ssl-client-subject-dn").as_deref(),
                Some("CN=alice,O=Acme")
            );
        }
    }
}

#[tokio::test]
async fn wildcard_hosts_ask_for_certificates_on_their_names() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let wild = auth_tls_ingress("wild", "client-ca", "*.apps.test", "/");
    let a = app(&root, &[], &wild).await;
    let (mut conn, presenter) = connect(&a, "web.apps.test", Some(&alice)).await;
    let reply = get_json(&mut conn, "web.apps.test", "/").await;
    assert_eq!(verdict(&reply).as_deref(), Some("SUCCESS"));
    assert_eq!(presenter.asked(), Some(vec![subject_der(&root)]));
    assert_eq!(https(&a, "other.apps.test", None).await.status, 400);
    // A sibling name on the same connection is another server: 421.
    assert_eq!(conn.get("other.apps.test", "/", &[]).await.status, 421);
    // `secure` has no annotation here: no certificate is asked for.
    let (mut conn, presenter) = connect(&a, "secure.test", None).await;
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 200);
    assert_eq!(presenter.asked(), None);
}

#[tokio::test]
async fn a_rule_without_host_is_refused() {
    let root = ca("Client CA");
    let hostless = auth_tls_ingress("hostless", "client-ca", "", "/");
    let a = app(&root, &[], &hostless).await;
    assert_fails_closed(&a, "anything.test", &["without a host"]).await;
    assert_eq!(http_status(&a, "open.test").await, 200);
}

#[tokio::test]
async fn the_oldest_ingress_of_a_host_sets_its_client_authentication() {
    let root = ca("Client CA");
    // Same age (no timestamps): namespace/name order, so `secure` is older
    // than `zz-later`, whose `optional` is reported and not applied.
    let later = nginx_ingress(
        "zz-later",
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "optional"),
        ],
        &[("secure.test", "/later", "Prefix", "web")],
    );
    let a = secured(&root, &[], &later).await;
    let (mut conn, _) = connect(&a, "secure.test", None).await;
    assert_eq!(conn.get("secure.test", "/later", &[]).await.status, 400);
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 400);
    assert_reported(&a, &["zz-later", "which is older"]).await;
}
