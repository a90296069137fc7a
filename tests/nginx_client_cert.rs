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
use sluice::app::Running;
use support::nginx::P;
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

/// An HTTPS connection to `sluice` with SNI `sni` and `config`.
async fn connect_with(sluice: &Running, sni: &str, config: Arc<ClientConfig>) -> HttpConn {
    HttpConn::try_https(config, sluice.https_addr, Some(sni))
        .await
        .unwrap_or_else(|e| panic!("HTTPS to {sni} failed: {e}"))
}

/// An HTTPS connection to `sluice` with SNI `sni`, offering `alpn`,
/// presenting `who` when asked; the presenter beside it.
async fn connect(
    sluice: &Running,
    sni: &str,
    alpn: &[&str],
    who: Option<&Identity>,
) -> (HttpConn, Arc<Presenter>) {
    let (config, presenter) = client_config(alpn, who);
    (connect_with(sluice, sni, config).await, presenter)
}

/// GET `/` on `host` over a new HTTP/1.1 connection (SNI = host).
async fn https(sluice: &Running, host: &str, who: Option<&Identity>) -> Reply {
    let (mut conn, _) = connect(sluice, host, &["http/1.1"], who).await;
    conn.get(host, "/", &[("accept", "application/json")]).await
}

/// The value of request header `name` the whoami backend reports.
fn seen(reply: &Reply, name: &str) -> Option<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["headers"][name][0].as_str().map(str::to_owned)
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

/// A running sluice: Service `web` (whoami), the CA Secret `client-ca` in
/// `default` (`ca.crt` of `ca`, unless `docs` brings its own), Ingress
/// `secure` on `secure.test` with the `auth-tls-*` annotations `nginx`
/// (names without the prefix), Ingress `open` on `open.test` without any,
/// and the documents `docs`.
struct App {
    sluice: Running,
    _manifests: Manifests,
    _web: Backend,
}

async fn app(ca: &Ca, nginx: &[(&str, &str)], docs: &str) -> App {
    let web = whoami("web").await;
    let annotations: Vec<(String, String)> = nginx
        .iter()
        .map(|(k, v)| (format!("{P}{k}"), (*v).to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let manifests = Manifests::new();
    let all = [
        service("web", &[web.addr]),
        ca_secret("default", "client-ca", &ca.pem()),
        annotated_ingress(
            "secure",
            "default",
            &refs,
            &[("secure.test", "/", "Prefix", "web")],
        ),
        annotated_ingress(
            "open",
            "default",
            &[],
            &[("open.test", "/", "Prefix", "web")],
        ),
        docs.to_owned(),
    ];
    manifests.write("a.yaml", &all.join("\n---\n"));
    let sluice = start(settings(&manifests.path())).await;
    let addr = sluice.http_addr;
    wait_for("the Ingresses", || async move {
        let c = client();
        get(&c, addr, "open.test", "/", &[]).await.status == 200
            && get(&c, addr, "secure.test", "/", &[]).await.status != 404
    })
    .await;
    App {
        sluice,
        _manifests: manifests,
        _web: web,
    }
}

/// The `/api/errors` body.
async fn errors(sluice: &Running) -> String {
    get(
        &client(),
        sluice.admin_addr,
        "localhost",
        "/api/errors",
        &[],
    )
    .await
    .body
}

/// Plain-HTTP GET `/` on `host`.
async fn http_status(sluice: &Running, host: &str) -> u16 {
    get(&client(), sluice.http_addr, host, "/", &[])
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
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "default/client-ca"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
        "",
    )
    .await;
    let (mut conn, presenter) =
        connect(&a.sluice, "secure.test", &["http/1.1"], Some(&alice)).await;
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
    assert_eq!(
        seen(&reply, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        seen(&reply, "ssl-client-subject-dn").as_deref(),
        Some("CN=alice,O=Acme")
    );
    assert_eq!(
        seen(&reply, "ssl-client-issuer-dn").as_deref(),
        Some("CN=Client CA")
    );
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
    let again = conn
        .get("secure.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(
        seen(&again, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
}

#[tokio::test]
async fn no_certificate_or_another_cas_is_a_400() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = app(&root, &[("auth-tls-secret", "client-ca")], "").await;
    let none = https(&a.sluice, "secure.test", None).await;
    assert_eq!(none.status, 400);
    assert!(
        none.body.contains("No required SSL certificate was sent"),
        "{}",
        none.body
    );
    let foreign = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&other, "mallory", &[])),
    )
    .await;
    assert_eq!(foreign.status, 400);
    assert!(
        foreign.body.contains("The SSL certificate error"),
        "{}",
        foreign.body
    );
    // A self-signed certificate is no better.
    let own = ca("mallory");
    let foreign = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&own, "mallory", &[&own])),
    )
    .await;
    assert_eq!(foreign.status, 400);
    // Plain HTTP brings no certificate either.
    assert_eq!(http_status(&a.sluice, "secure.test").await, 400);
    let ok = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&root, "alice", &[])),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn optional_lets_clients_without_a_certificate_through() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "optional"),
        ],
        "",
    )
    .await;
    let none = https(&a.sluice, "secure.test", None).await;
    assert_eq!(seen(&none, "ssl-client-verify").as_deref(), Some("NONE"));
    assert_eq!(seen(&none, "ssl-client-subject-dn"), None);
    let alice = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&root, "alice", &[])),
    )
    .await;
    assert_eq!(
        seen(&alice, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
    // Without pass-certificate-to-upstream the certificate stays out.
    assert_eq!(seen(&alice, "ssl-client-cert"), None);
    let foreign = https(&a.sluice, "secure.test", Some(&identity(&other, "m", &[]))).await;
    assert_eq!(foreign.status, 400);
}

#[tokio::test]
async fn optional_no_ca_passes_a_foreign_certificate_with_its_verdict() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "optional_no_ca"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
        "",
    )
    .await;
    let mallory = identity(&other, "mallory", &[]);
    let (mut conn, presenter) =
        connect(&a.sluice, "secure.test", &["http/1.1"], Some(&mallory)).await;
    // The certificate is asked for, naming the CA all the same.
    assert_eq!(presenter.asked(), Some(vec![subject_der(&root)]));
    let reply = conn
        .get("secure.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(
        seen(&reply, "ssl-client-verify").as_deref(),
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
    let none = https(&a.sluice, "secure.test", None).await;
    assert_eq!(seen(&none, "ssl-client-verify").as_deref(), Some("NONE"));
}

#[tokio::test]
async fn verify_client_off_asks_for_nothing_and_says_none() {
    let root = ca("Client CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "off"),
        ],
        "",
    )
    .await;
    let alice = identity(&root, "alice", &[]);
    let (mut conn, presenter) =
        connect(&a.sluice, "secure.test", &["http/1.1"], Some(&alice)).await;
    let reply = conn
        .get("secure.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(presenter.asked(), None);
    assert_eq!(seen(&reply, "ssl-client-verify").as_deref(), Some("NONE"));
}

#[tokio::test]
async fn a_bad_verify_client_value_is_on_and_reported() {
    let root = ca("Client CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "maybe"),
        ],
        "",
    )
    .await;
    assert_eq!(https(&a.sluice, "secure.test", None).await.status, 400);
    let errors = errors(&a.sluice).await;
    assert!(
        errors.contains("auth-tls-verify-client") && errors.contains("invalid_annotation"),
        "{errors}"
    );
}

#[tokio::test]
async fn the_error_page_gets_the_failed_verifications() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-error-page", "https://errors.test/cert.html"),
        ],
        "",
    )
    .await;
    for who in [None, Some(identity(&other, "m", &[]))] {
        let reply = https(&a.sluice, "secure.test", who.as_ref()).await;
        assert_eq!(reply.status, 302, "{}", reply.body);
        assert_eq!(
            reply.header("location"),
            Some("https://errors.test/cert.html")
        );
    }
    let ok = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&root, "alice", &[])),
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn match_cn_refuses_other_subjects_with_403() {
    let root = ca("Client CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-match-cn", "CN=(alice|carol)"),
        ],
        "",
    )
    .await;
    let alice = https(
        &a.sluice,
        "secure.test",
        Some(&identity(&root, "alice", &[])),
    )
    .await;
    assert_eq!(alice.status, 200);
    let bob = https(&a.sluice, "secure.test", Some(&identity(&root, "bob", &[]))).await;
    assert_eq!(bob.status, 403);
    assert_eq!(bob.body, "client certificate unauthorized");
}

#[tokio::test]
async fn only_hosts_with_auth_tls_ask_for_a_certificate() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let a = app(&root, &[("auth-tls-secret", "client-ca")], "").await;
    let (mut conn, presenter) = connect(&a.sluice, "open.test", &["http/1.1"], Some(&alice)).await;
    let reply = conn
        .get("open.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(presenter.asked(), None, "open.test asked for a certificate");
    assert_eq!(seen(&reply, "ssl-client-verify"), None);
    // That connection cannot be used for the host that verifies (nginx's 421).
    let misdirected = conn.get("secure.test", "/", &[]).await;
    assert_eq!(misdirected.status, 421);
    // The other way round: the verified connection may ask for open.test,
    // which does not care.
    let (mut conn, presenter) =
        connect(&a.sluice, "secure.test", &["http/1.1"], Some(&alice)).await;
    assert!(presenter.asked().is_some());
    assert_eq!(conn.get("open.test", "/", &[]).await.status, 200);
}

#[tokio::test]
async fn every_ingress_of_the_host_is_checked() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    // Another Ingress adds /other to secure.test without any annotation: the
    // host's (nginx server's) client authentication applies to it too.
    let other = annotated_ingress(
        "other",
        "default",
        &[],
        &[("secure.test", "/other", "Prefix", "web")],
    );
    let a = app(&root, &[("auth-tls-secret", "client-ca")], &other).await;
    let (mut conn, _) = connect(&a.sluice, "secure.test", &["http/1.1"], None).await;
    assert_eq!(conn.get("secure.test", "/other", &[]).await.status, 400);
    let (mut conn, _) = connect(&a.sluice, "secure.test", &["http/1.1"], Some(&alice)).await;
    let reply = conn
        .get("secure.test", "/other", &[("accept", "application/json")])
        .await;
    assert_eq!(
        seen(&reply, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
}

#[tokio::test]
async fn verify_depth_limits_the_intermediates() {
    let root = ca("Client CA");
    let mid1 = intermediate(&root, "Mid 1");
    let mid2 = intermediate(&mid1, "Mid 2");
    let one = identity(&mid1, "one", &[&mid1]);
    let two = identity(&mid2, "two", &[&mid2, &mid1]);
    // Default depth 1: one intermediate.
    let a = app(&root, &[("auth-tls-secret", "client-ca")], "").await;
    assert_eq!(
        https(&a.sluice, "secure.test", Some(&one)).await.status,
        200
    );
    assert_eq!(
        https(&a.sluice, "secure.test", Some(&two)).await.status,
        400
    );
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-depth", "2"),
        ],
        "",
    )
    .await;
    let reply = https(&a.sluice, "secure.test", Some(&two)).await;
    assert_eq!(
        seen(&reply, "ssl-client-issuer-dn").as_deref(),
        Some("CN=Mid 2")
    );
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-depth", "0"),
            ("auth-tls-verify-client", "optional"),
        ],
        "",
    )
    .await;
    // 0 is read as 1, as ingress-nginx does.
    assert_eq!(
        https(&a.sluice, "secure.test", Some(&one)).await.status,
        200
    );
    assert_eq!(
        https(&a.sluice, "secure.test", Some(&two)).await.status,
        400
    );
}

#[tokio::test]
async fn unusable_secrets_and_values_fail_closed() {
    let root = ca("Client CA");
    let no_ca = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: no-ca\n  namespace: default\nstringData:\n  tls.crt: nothing\n";
    let not_pem = ca_secret("default", "not-pem", "this is not a certificate");
    let elsewhere = ca_secret("other", "client-ca", &root.pem());
    let docs = [no_ca, not_pem.as_str(), elsewhere.as_str()].join("\n---\n");
    for (annotations, needle) in [
        (vec![("auth-tls-secret", "missing")], "missing"),
        (vec![("auth-tls-secret", "no-ca")], "no-ca"),
        (vec![("auth-tls-secret", "not-pem")], "not-pem"),
        (vec![("auth-tls-secret", "other/client-ca")], "other"),
        (vec![("auth-tls-secret", "Bad_Name")], "Bad_Name"),
        (
            vec![
                ("auth-tls-secret", "client-ca"),
                ("auth-tls-match-cn", "alice"),
            ],
            "auth-tls-match-cn",
        ),
        (
            vec![
                ("auth-tls-secret", "client-ca"),
                ("auth-tls-match-cn", "CN=(alice"),
            ],
            "auth-tls-match-cn",
        ),
        (
            vec![
                ("auth-tls-secret", "client-ca"),
                ("auth-tls-error-page", "https://errors.test/?from=x"),
            ],
            "auth-tls-error-page",
        ),
        (
            vec![
                ("auth-tls-secret", "client-ca"),
                ("auth-tls-pass-certificate-to-upstream", "yes"),
            ],
            "auth-tls-pass-certificate-to-upstream",
        ),
        (
            vec![
                ("auth-tls-secret", "client-ca"),
                ("auth-tls-verify-depth", "-1"),
            ],
            "auth-tls-verify-depth",
        ),
    ] {
        let a = app(&root, &annotations, &docs).await;
        assert_eq!(
            http_status(&a.sluice, "secure.test").await,
            500,
            "{annotations:?}"
        );
        let (mut conn, presenter) = connect(&a.sluice, "secure.test", &["http/1.1"], None).await;
        assert_eq!(conn.get("secure.test", "/", &[]).await.status, 500);
        assert_eq!(presenter.asked(), None, "{annotations:?}");
        let errors = errors(&a.sluice).await;
        assert!(
            errors.contains("invalid_annotation") && errors.contains(needle),
            "{annotations:?}: {errors}"
        );
        // Other hosts keep serving.
        assert_eq!(http_status(&a.sluice, "open.test").await, 200);
    }
}

#[tokio::test]
async fn a_broken_secret_fails_the_whole_host() {
    let root = ca("Client CA");
    // Ingress `other` (on secure.test too) names a missing Secret: nginx
    // fails the whole server, so `secure`'s routes answer 500 as well.
    let other = annotated_ingress(
        "other",
        "default",
        &[(&format!("{P}auth-tls-secret"), "missing")],
        &[("secure.test", "/other", "Prefix", "web")],
    );
    let a = app(&root, &[("auth-tls-secret", "client-ca")], &other).await;
    assert_eq!(http_status(&a.sluice, "secure.test").await, 500);
    let errors = errors(&a.sluice).await;
    assert!(errors.contains("fails closed"), "{errors}");
}

#[tokio::test]
async fn auth_tls_annotations_without_a_secret_are_ignored_and_reported() {
    let root = ca("Client CA");
    let a = app(&root, &[("auth-tls-verify-client", "on")], "").await;
    let reply = https(&a.sluice, "secure.test", None).await;
    assert_eq!(reply.status, 200);
    let errors = errors(&a.sluice).await;
    assert!(
        errors.contains("only applies with auth-tls-secret"),
        "{errors}"
    );
}

#[tokio::test]
async fn http2_is_checked_alike() {
    let root = ca("Client CA");
    let other = ca("Other CA");
    let a = app(
        &root,
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
        "",
    )
    .await;
    let alice = identity(&root, "alice", &[]);
    let (mut conn, presenter) = connect(&a.sluice, "secure.test", &["h2"], Some(&alice)).await;
    assert!(conn.is_h2());
    assert!(presenter.asked().is_some());
    let reply = conn
        .get("secure.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(
        seen(&reply, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(
        unescape(&seen(&reply, "ssl-client-cert").expect("cert")),
        alice.pem
    );
    for who in [None, Some(identity(&other, "m", &[]))] {
        let (mut conn, _) = connect(&a.sluice, "secure.test", &["h2"], who.as_ref()).await;
        assert!(conn.is_h2());
        assert_eq!(conn.get("secure.test", "/", &[]).await.status, 400);
    }
    // An HTTP/2 connection made for open.test is not coalesced onto secure.test.
    let (mut conn, _) = connect(&a.sluice, "open.test", &["h2"], Some(&alice)).await;
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 421);
}

#[tokio::test]
async fn a_resumed_session_keeps_its_certificate_and_verdict() {
    let root = ca("Client CA");
    let alice = identity(&root, "alice", &[]);
    let a = app(&root, &[("auth-tls-secret", "client-ca")], "").await;
    for who in [Some(&alice), None] {
        let (config, presenter) = client_config(&["http/1.1"], who);
        let mut first = connect_with(&a.sluice, "secure.test", config.clone()).await;
        let want = if who.is_some() { 200 } else { 400 };
        assert_eq!(first.get("secure.test", "/", &[]).await.status, want);
        assert!(presenter.asked().is_some());
        *presenter.asked.lock().expect("lock") = None;
        let mut second = connect_with(&a.sluice, "secure.test", config).await;
        assert!(
            second.tls.as_ref().is_some_and(|t| t.resumed),
            "not resumed"
        );
        // No CertificateRequest on resumption: the certificate comes from the session.
        assert_eq!(presenter.asked(), None);
        let reply = second
            .get("secure.test", "/", &[("accept", "application/json")])
            .await;
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
    let wild = annotated_ingress(
        "wild",
        "default",
        &[(&format!("{P}auth-tls-secret"), "client-ca")],
        &[("*.apps.test", "/", "Prefix", "web")],
    );
    let a = app(&root, &[], &wild).await;
    let (mut conn, presenter) =
        connect(&a.sluice, "web.apps.test", &["http/1.1"], Some(&alice)).await;
    let reply = conn
        .get("web.apps.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(
        seen(&reply, "ssl-client-verify").as_deref(),
        Some("SUCCESS")
    );
    assert_eq!(presenter.asked(), Some(vec![subject_der(&root)]));
    assert_eq!(https(&a.sluice, "other.apps.test", None).await.status, 400);
    // A sibling name on the same connection is another server: 421.
    assert_eq!(conn.get("other.apps.test", "/", &[]).await.status, 421);
    // `secure` has no annotation here: no certificate is asked for.
    let (mut conn, presenter) = connect(&a.sluice, "secure.test", &["http/1.1"], None).await;
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 200);
    assert_eq!(presenter.asked(), None);
}

#[tokio::test]
async fn a_rule_without_host_is_refused() {
    let root = ca("Client CA");
    let hostless = annotated_ingress(
        "hostless",
        "default",
        &[(&format!("{P}auth-tls-secret"), "client-ca")],
        &[("", "/", "Prefix", "web")],
    );
    let a = app(&root, &[], &hostless).await;
    assert_eq!(http_status(&a.sluice, "anything.test").await, 500);
    let errors = errors(&a.sluice).await;
    assert!(errors.contains("without a host"), "{errors}");
    assert_eq!(http_status(&a.sluice, "open.test").await, 200);
}

#[tokio::test]
async fn the_oldest_ingress_of_a_host_sets_its_client_authentication() {
    let root = ca("Client CA");
    // Same age (no timestamps): namespace/name order, so `secure` is older
    // than `zz-later`, whose `optional` is reported and not applied.
    let later = annotated_ingress(
        "zz-later",
        "default",
        &[
            (&format!("{P}auth-tls-secret"), "client-ca"),
            (&format!("{P}auth-tls-verify-client"), "optional"),
        ],
        &[("secure.test", "/later", "Prefix", "web")],
    );
    let a = app(&root, &[("auth-tls-secret", "client-ca")], &later).await;
    let (mut conn, _) = connect(&a.sluice, "secure.test", &["http/1.1"], None).await;
    assert_eq!(conn.get("secure.test", "/later", &[]).await.status, 400);
    assert_eq!(conn.get("secure.test", "/", &[]).await.status, 400);
    let errors = errors(&a.sluice).await;
    assert!(
        errors.contains("zz-later") && errors.contains("which is older"),
        "{errors}"
    );
}
