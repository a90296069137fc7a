//! TLS test support: certificates made with rcgen, Secret and Ingress YAML,
//! a rustls client that reports what the server presented, HTTP/1.1 and
//! HTTP/2 over any connection, and real test backends (an HTTPS echo server
//! and a gRPC-like HTTP/2 cleartext server with trailers). Nothing is mocked.
//!
//! Declared from a test file with `#[path = "support/tls.rs"] mod tls_support;`
//! next to `mod support;` (it uses `crate::support::endpoint_slice`).

#![allow(dead_code)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long any single network step of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// The CN of the certificate sluice generates when no default Secret is set.
pub const DEFAULT_CN: &str = "sluice default certificate";

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// Which key type a test certificate gets. (RSA is not here: rcgen on ring
/// cannot generate RSA keys; sluice's unit tests cover RSA with fixed keys.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

/// A certificate and its private key, in every form the tests need.
pub struct TestCert {
    /// The subject CN, which tests use to tell certificates apart.
    pub cn: String,
    /// What goes into `tls.crt`: the leaf, then any intermediates, PEM.
    pub cert_pem: String,
    /// What goes into `tls.key`: the key as PKCS#8 PEM.
    pub key_pem: String,
    /// The leaf, DER.
    pub der: CertificateDer<'static>,
    /// The chain as served: the leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// notAfter as Unix seconds.
    pub not_after: i64,
    key_der: Vec<u8>,
}

impl TestCert {
    /// The private key for a rustls server config.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

fn key_pair(kind: KeyKind) -> KeyPair {
    let alg = match kind {
        KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
    };
    KeyPair::generate_for(alg).expect("generate key pair")
}

fn leaf_params(cn: &str, sans: &[&str], expired: bool) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("certificate params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    } else {
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn finish(
    cn: &str,
    cert: rcgen::Certificate,
    key: &KeyPair,
    extra: &[(&str, &CertificateDer<'static>)],
) -> TestCert {
    let der = cert.der().clone();
    let mut cert_pem = cert.pem();
    let mut chain = vec![der.clone()];
    for (pem, der) in extra {
        cert_pem.push_str(pem);
        chain.push((*der).clone());
    }
    let not_after = peer_cert(&der).not_after;
    TestCert {
        cn: cn.to_owned(),
        cert_pem,
        key_pem: key.serialize_pem(),
        der,
        chain,
        not_after,
        key_der: key.serialize_der(),
    }
}

/// A self-signed ECDSA P-256 certificate with subject CN `cn` for `sans`
/// (DNS names, wildcards allowed), valid 2024..2099.
pub fn cert(cn: &str, sans: &[&str]) -> TestCert {
    cert_with(cn, sans, KeyKind::EcdsaP256, false)
}

/// A self-signed certificate with the given key type; `expired` makes it
/// valid only during 2020.
pub fn cert_with(cn: &str, sans: &[&str], kind: KeyKind, expired: bool) -> TestCert {
    let key = key_pair(kind);
    let cert = leaf_params(cn, sans, expired)
        .self_signed(&key)
        .expect("self-signed certificate");
    finish(cn, cert, &key, &[])
}

/// A self-signed certificate whose validity ended in 2021.
pub fn expired_cert(cn: &str, sans: &[&str]) -> TestCert {
    cert_with(cn, sans, KeyKind::EcdsaP256, true)
}

/// A test certificate authority.
pub struct TestCa {
    /// The CA certificate, PEM (what goes into a `ca.crt` key).
    pub cert_pem: String,
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new self-signed CA with subject CN `cn`.
    pub fn new(cn: &str) -> Self {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let key = key_pair(KeyKind::EcdsaP256);
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `sans` signed by this CA; `tls.crt` holds the leaf only.
    pub fn issue(&self, cn: &str, sans: &[&str]) -> TestCert {
        let key = key_pair(KeyKind::EcdsaP256);
        let cert = leaf_params(cn, sans, false)
            .signed_by(&key, &self.issuer)
            .expect("CA-signed certificate");
        finish(cn, cert, &key, &[])
    }

    /// A leaf for `sans` signed by this CA; `tls.crt` holds the leaf then the CA
    /// certificate, as a chain with an intermediate would be written.
    pub fn issue_with_chain(&self, cn: &str, sans: &[&str]) -> TestCert {
        let key = key_pair(KeyKind::EcdsaP256);
        let cert = leaf_params(cn, sans, false)
            .signed_by(&key, &self.issuer)
            .expect("CA-signed certificate");
        finish(cn, cert, &key, &[(&self.cert_pem, &self.der)])
    }
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The first subject CN.
    pub cn: Option<String>,
    /// The DNS names of the subjectAltName extension.
    pub sans: Vec<String>,
    /// notAfter as Unix seconds.
    pub not_after: i64,
}

/// Parses a DER certificate.
pub fn peer_cert(der: &[u8]) -> PeerCert {
    let (_, x509) = x509_parser::parse_x509_certificate(der).expect("parse certificate");
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x509.subject_alternative_name() {
        for name in &ext.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                sans.push((*dns).to_owned());
            }
        }
    }
    PeerCert {
        cn,
        sans,
        not_after: x509.validity().not_after.timestamp(),
    }
}

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// Standard base64 with padding (Kubernetes `data` values).
pub fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn block(text: &str) -> String {
    let mut out = String::from("|\n");
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A `kubernetes.io/tls` Secret with base64 `data` (as the API server stores it).
pub fn tls_secret(namespace: &str, name: &str, cert: &TestCert) -> String {
    raw_tls_secret_data(
        namespace,
        name,
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
    )
}

/// A `kubernetes.io/tls` Secret with `data` holding arbitrary bytes.
pub fn raw_tls_secret_data(namespace: &str, name: &str, crt: &[u8], key: &[u8]) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(crt),
        base64(key)
    )
}

/// A `kubernetes.io/tls` Secret with plain `stringData` (as people write it by hand).
pub fn tls_secret_string_data(namespace: &str, name: &str, cert: &TestCert) -> String {
    raw_tls_secret(namespace, name, &cert.cert_pem, &cert.key_pem)
}

/// A `kubernetes.io/tls` Secret with `stringData` holding arbitrary (non-empty) text.
pub fn raw_tls_secret(namespace: &str, name: &str, crt: &str, key: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}  tls.key: {}",
        block(crt),
        block(key)
    )
}

/// A Secret whose `tls.crt` and `tls.key` are not PEM at all.
pub fn not_pem_secret(namespace: &str, name: &str) -> String {
    raw_tls_secret(
        namespace,
        name,
        "this is not a certificate",
        "and this is not a key",
    )
}

/// A Secret with `cert`'s certificate and `other`'s key (they do not match).
pub fn mismatched_secret(namespace: &str, name: &str, cert: &TestCert, other: &TestCert) -> String {
    raw_tls_secret(namespace, name, &cert.cert_pem, &other.key_pem)
}

/// An Opaque Secret with a `ca.crt` key (for backend verification).
pub fn ca_secret(namespace: &str, name: &str, ca_pem: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: Opaque\ndata:\n  ca.crt: {}\n",
        base64(ca_pem.as_bytes())
    )
}

fn annotations_yaml(annotations: &[(&str, &str)]) -> String {
    if annotations.is_empty() {
        return String::new();
    }
    let mut out = String::from("  annotations:\n");
    for (k, v) in annotations {
        out.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    out
}

/// An Ingress in `default` with annotations, a `spec.tls` section and rules.
///
/// `tls` is `(hosts, secretName)` with hosts comma-separated; `""` leaves
/// `hosts` out (the certificate's SANs decide). `rules` is
/// `(host, path, pathType, service)` as in `support::ingress`; the service
/// port is 80.
pub fn tls_ingress(
    name: &str,
    annotations: &[(&str, &str)],
    tls: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
) -> String {
    let mut out = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n{}spec:\n",
        annotations_yaml(annotations)
    );
    if !tls.is_empty() {
        out.push_str("  tls:\n");
        for (hosts, secret) in tls {
            if hosts.is_empty() {
                out.push_str(&format!("  - secretName: {secret}\n"));
            } else {
                let list: Vec<String> = hosts.split(',').map(|h| format!("\"{h}\"")).collect();
                out.push_str(&format!(
                    "  - hosts: [{}]\n    secretName: {secret}\n",
                    list.join(", ")
                ));
            }
        }
    }
    out.push_str("  rules:\n");
    for (host, path, kind, service) in rules {
        if host.is_empty() {
            out.push_str("  - http:\n");
        } else {
            out.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
        }
        out.push_str(&format!(
            "      paths:\n      - path: {path}\n        pathType: {kind}\n        backend:\n          service:\n            name: {service}\n            port:\n              number: 80\n"
        ));
    }
    out
}

/// A Service `name` in `default` with annotations, port `http` (80), and one
/// EndpointSlice per backend.
pub fn annotated_service(
    name: &str,
    annotations: &[(&str, &str)],
    backends: &[SocketAddr],
) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n{}spec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n",
        annotations_yaml(annotations)
    );
    for (i, addr) in backends.iter().enumerate() {
        out.push_str(&crate::support::endpoint_slice(
            name,
            &format!("{name}-{i}"),
            *addr,
            true,
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// TLS client
// ---------------------------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which TLS versions a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.2 and 1.3.
    Both,
    /// TLS 1.2 only.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn versions(v: Versions) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match v {
        Versions::Both => rustls::ALL_VERSIONS,
        Versions::Tls12Only => &TLS12_ONLY,
        Versions::Tls13Only => &TLS13_ONLY,
    }
}

fn alpn_list(alpn: &[&str]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// A client config that accepts any server certificate (signatures are still
/// checked) and offers `alpn`: sluice's own backend config, so tests can look at
/// whatever sluice serves.
pub fn any_cert_config(alpn: &[&str], v: Versions) -> Arc<ClientConfig> {
    let alpn = alpn_list(alpn);
    let alpn: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
    Arc::new(sluice::tls::insecure_with_versions(&alpn, versions(v)))
}

/// A client config that accepts only TLS 1.2 (and any certificate).
pub fn tls12_only_config(alpn: &[&str]) -> Arc<ClientConfig> {
    any_cert_config(alpn, Versions::Tls12Only)
}

/// A client config that verifies the server against `ca_pem` (chain and name).
pub fn verifying_config(ca_pem: &str, alpn: &[&str]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(ca_pem) {
        roots.add(cert).expect("add root");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    Arc::new(config)
}

/// The certificates in a PEM text.
pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// What a finished handshake told the client.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The served leaf.
    pub peer: PeerCert,
    /// The served leaf, DER.
    pub leaf: Vec<u8>,
    /// How many certificates the server sent (leaf + intermediates).
    pub chain_len: usize,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// True if the session was resumed (ticket or session ID).
    pub resumed: bool,
}

fn info(conn: &rustls::ClientConnection) -> TlsInfo {
    let certs = conn.peer_certificates().unwrap_or_default();
    let leaf = certs.first().expect("server sent a certificate");
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        other => format!("{other:?}"),
    };
    TlsInfo {
        peer: peer_cert(leaf),
        leaf: leaf.to_vec(),
        chain_len: certs.len(),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        version,
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    }
}

/// Connects to `addr` and completes a TLS handshake sending `sni` (`None`:
/// no SNI extension at all).
pub async fn tls_connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
) -> io::Result<(tokio_rustls::client::TlsStream<TcpStream>, TlsInfo)> {
    let (config, name) = match sni {
        Some(name) => (
            config,
            ServerName::try_from(name.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => {
            let mut config = (*config).clone();
            config.enable_sni = false;
            (Arc::new(config), ServerName::IpAddress(addr.ip().into()))
        }
    };
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
    };
    let stream = tokio::time::timeout(STEP, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let info = info(stream.get_ref().1);
    Ok((stream, info))
}

/// A handshake with a client that accepts any certificate and offers h2 and
/// http/1.1; panics if it fails.
pub async fn handshake(addr: SocketAddr, sni: Option<&str>) -> TlsInfo {
    try_handshake(
        any_cert_config(&["h2", "http/1.1"], Versions::Both),
        addr,
        sni,
    )
    .await
    .unwrap_or_else(|e| panic!("TLS handshake with {addr} (SNI {sni:?}) failed: {e}"))
}

/// A handshake with `config`; the connection is dropped afterwards.
pub async fn try_handshake(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
) -> io::Result<TlsInfo> {
    tls_connect(config, addr, sni).await.map(|(_, info)| info)
}

// ---------------------------------------------------------------------------
// HTTP over one connection
// ---------------------------------------------------------------------------

/// A request body that can carry trailers.
pub type ReqBody = BoxBody<Bytes, Infallible>;

/// An empty request body.
pub fn empty() -> ReqBody {
    Empty::new().boxed()
}

/// A body of `data` followed by `trailers` (if any).
pub fn body_with_trailers(data: Bytes, trailers: Option<HeaderMap>) -> ReqBody {
    let mut frames = vec![Ok::<_, Infallible>(Frame::data(data))];
    if let Some(t) = trailers {
        frames.push(Ok(Frame::trailers(t)));
    }
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

/// One client connection (TLS or cleartext) speaking HTTP/1.1 or HTTP/2;
/// requests never open another connection.
pub struct HttpConn {
    sender: Sender,
    /// The handshake, for TLS connections.
    pub tls: Option<TlsInfo>,
    scheme: &'static str,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The HTTP version of the response.
    pub version: http::Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text (lossy).
    pub body: String,
    /// The trailers, if any were sent.
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} {}", self.status, self.body))
    }
}

impl HttpConn {
    /// HTTPS to `addr` with `sni`, offering `alpn`, accepting any certificate;
    /// HTTP/2 if the server picks `h2`. Panics on failure.
    pub async fn https(addr: SocketAddr, sni: Option<&str>, alpn: &[&str]) -> Self {
        Self::try_https(any_cert_config(alpn, Versions::Both), addr, sni)
            .await
            .unwrap_or_else(|e| panic!("HTTPS connection to {addr} (SNI {sni:?}) failed: {e}"))
    }

    /// HTTPS with `config`.
    pub async fn try_https(
        config: Arc<ClientConfig>,
        addr: SocketAddr,
        sni: Option<&str>,
    ) -> io::Result<Self> {
        let (stream, info) = tls_connect(config, addr, sni).await?;
        let h2 = info.alpn.as_deref() == Some("h2");
        Self::over(stream, h2, Some(info), "https").await
    }

    /// Cleartext HTTP/2 with prior knowledge (h2c).
    pub async fn h2c(addr: SocketAddr) -> Self {
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::over(tcp, true, None, "http")
            .await
            .expect("h2c handshake")
    }

    /// Cleartext HTTP/1.1.
    pub async fn http1(addr: SocketAddr) -> Self {
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::over(tcp, false, None, "http")
            .await
            .expect("HTTP/1.1 handshake")
    }

    async fn over<IO>(
        io: IO,
        h2: bool,
        tls: Option<TlsInfo>,
        scheme: &'static str,
    ) -> io::Result<Self>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let (sender, driver) = if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(io::Error::other)?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (Sender::H2(send), driver)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(io::Error::other)?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (Sender::H1(send), driver)
        };
        Ok(Self {
            sender,
            tls,
            scheme,
            driver,
        })
    }

    /// True if this connection speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    /// True once the server (or the network) closed the connection.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// A request builder aimed at `authority` + `path`: an absolute URI on
    /// HTTP/2 (so `:authority` is set), origin-form plus `Host` on HTTP/1.1.
    pub fn request(&self, method: &str, authority: &str, path: &str) -> http::request::Builder {
        let builder = Request::builder().method(method);
        if self.is_h2() {
            builder.uri(format!("{}://{authority}{path}", self.scheme))
        } else {
            builder.uri(path).header("host", authority)
        }
    }

    /// Sends `req` and reads the whole response (body and trailers).
    pub async fn try_send(&mut self, req: Request<ReqBody>) -> Result<Reply, String> {
        let exchange = async {
            let resp = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|e| e.to_string())?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|e| e.to_string())?;
                    s.send_request(req).await
                }
            }
            .map_err(|e| e.to_string())?;
            read_reply(resp).await
        };
        tokio::time::timeout(STEP, exchange)
            .await
            .map_err(|_| "request timed out".to_owned())?
    }

    /// Sends `req`; panics on a transport error.
    pub async fn send(&mut self, req: Request<ReqBody>) -> Reply {
        let what = format!("{} {}", req.method(), req.uri());
        self.try_send(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// GET `path` from `authority` with extra headers.
    pub async fn get(&mut self, authority: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut builder = self.request("GET", authority, path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        self.send(builder.body(empty()).expect("request")).await
    }

    /// The whoami JSON report for GET `path` from `authority`; asserts 200.
    pub async fn whoami(&mut self, authority: &str, path: &str) -> serde_json::Value {
        let reply = self
            .get(authority, path, &[("accept", "application/json")])
            .await;
        assert_eq!(reply.status, 200, "GET {authority}{path}: {}", reply.body);
        reply.json()
    }
}

async fn read_reply<B>(resp: Response<B>) -> Result<Reply, String>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    Ok(Reply {
        status,
        version,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        trailers,
    })
}

/// The value of the first header `name` in a whoami-style JSON report.
pub fn json_header(report: &serde_json::Value, name: &str) -> Option<String> {
    report["headers"][name][0].as_str().map(str::to_owned)
}

// ---------------------------------------------------------------------------
// Test backends
// ---------------------------------------------------------------------------

/// A test server on an ephemeral loopback port; stops accepting when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn bind() -> (
    TcpListener,
    SocketAddr,
    watch::Sender<bool>,
    watch::Receiver<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = watch::channel(false);
    (listener, addr, stop, stopped)
}

/// A server config for `cert`, offering h2 and http/1.1.
pub fn server_config(cert: &TestCert, v: Versions) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(v))
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key_der())
        .expect("server certificate");
    config.alpn_protocols = alpn_list(&["h2", "http/1.1"]);
    Arc::new(config)
}

/// An HTTPS echo backend named `name` serving `cert` (TLS 1.2 and 1.3,
/// HTTP/1.1 and HTTP/2 by ALPN). It answers every request with JSON:
/// `name`, `method`, `uri`, `proto`, `host`, `headers` (lowercase name →
/// values), `body_length`, and what the handshake said: `sni` (the server
/// name the client sent, or null), `alpn`, `tls_version`.
pub async fn https_backend(name: &str, cert: &TestCert) -> TestServer {
    https_backend_with(name, server_config(cert, Versions::Both)).await
}

/// An HTTPS echo backend with a given server config.
pub async fn https_backend_with(name: &str, config: Arc<ServerConfig>) -> TestServer {
    let (listener, addr, stop, stopped) = bind().await;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let name: Arc<str> = Arc::from(name);
    tokio::spawn(accept_loop(listener, stopped, move |tcp| {
        let acceptor = acceptor.clone();
        let name = name.clone();
        async move {
            let Ok(Ok(tls)) = tokio::time::timeout(STEP, acceptor.accept(tcp)).await else {
                return;
            };
            let facts = Arc::new(handshake_facts(tls.get_ref().1));
            let service = service_fn(move |req| echo(name.clone(), facts.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    }));
    TestServer { addr, stop }
}

/// Accepts connections until stopped, handing each to `serve` on its own task.
async fn accept_loop<F, Fut>(listener: TcpListener, mut stopped: watch::Receiver<bool>, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stop = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        tokio::spawn(serve(tcp));
    }
}

fn handshake_facts(conn: &rustls::ServerConnection) -> serde_json::Value {
    serde_json::json!({
        "sni": conn.server_name(),
        "alpn": conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        "tls_version": match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            other => format!("{other:?}"),
        },
    })
}

async fn echo(
    name: Arc<str>,
    facts: Arc<serde_json::Value>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body_length = body
        .collect()
        .await
        .map(|c| c.to_bytes().len())
        .unwrap_or(0);
    let mut headers = serde_json::Map::new();
    for key in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(key)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(key.as_str().to_owned(), values.into());
    }
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let mut report = serde_json::json!({
        "name": &*name,
        "method": parts.method.as_str(),
        "uri": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "proto": format!("{:?}", parts.version),
        "host": host,
        "headers": headers,
        "body_length": body_length,
    });
    if let (Some(report), Some(facts)) = (report.as_object_mut(), facts.as_object()) {
        for (k, v) in facts {
            report.insert(k.clone(), v.clone());
        }
    }
    let resp = Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(report.to_string())))
        .expect("echo response");
    Ok(resp)
}

/// A gRPC-like backend named `name`: HTTP/2 cleartext only (prior knowledge).
/// Every request is answered 200 with `content-type: application/grpc`,
/// header `x-backend: <name>`, the request body echoed, and trailers
/// `grpc-status: 0`, `grpc-message: ok`, plus `x-echo-<name>: <value>` for
/// every request trailer received and `x-request-trailers: <count>`.
pub async fn grpc_backend(name: &str) -> TestServer {
    let (listener, addr, stop, stopped) = bind().await;
    let name: Arc<str> = Arc::from(name);
    tokio::spawn(accept_loop(listener, stopped, move |tcp| {
        let name = name.clone();
        async move {
            let service = service_fn(move |req| grpc_echo(name.clone(), req));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        }
    }));
    TestServer { addr, stop }
}

/// The same gRPC-like backend behind TLS with `cert` (ALPN `h2` only), for
/// `backend-protocol: GRPCS`. It also adds `x-sni` (the server name the
/// client sent, if any) to the response headers.
pub async fn grpcs_backend(name: &str, cert: &TestCert) -> TestServer {
    let (listener, addr, stop, stopped) = bind().await;
    let mut config = (*server_config(cert, Versions::Both)).clone();
    config.alpn_protocols = alpn_list(&["h2"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let name: Arc<str> = Arc::from(name);
    tokio::spawn(accept_loop(listener, stopped, move |tcp| {
        let acceptor = acceptor.clone();
        let name = name.clone();
        async move {
            let Ok(Ok(tls)) = tokio::time::timeout(STEP, acceptor.accept(tcp)).await else {
                return;
            };
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let service = service_fn(move |req| {
                let name = name.clone();
                let sni = sni.clone();
                async move {
                    let mut resp = grpc_echo(name, req).await?;
                    if let Some(v) = sni.and_then(|s| HeaderValue::from_str(&s).ok()) {
                        resp.headers_mut().insert("x-sni", v);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    }));
    TestServer { addr, stop }
}

async fn grpc_echo(
    name: Arc<str>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = req.into_parts();
    let (data, request_trailers) = match body.collect().await {
        Ok(c) => {
            let trailers = c.trailers().cloned();
            (c.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), None),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    let received = request_trailers.as_ref().map_or(0, HeaderMap::len);
    trailers.insert(
        "x-request-trailers",
        HeaderValue::from_str(&received.to_string()).expect("count"),
    );
    for (k, v) in request_trailers.iter().flatten() {
        if let Ok(echo) = HeaderName::from_bytes(format!("x-echo-{}", k.as_str()).as_bytes()) {
            trailers.append(echo, v.clone());
        }
    }
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(data)),
        Ok(Frame::trailers(trailers)),
    ];
    let mut resp = Response::builder()
        .header("content-type", "application/grpc")
        .header("x-backend", &*name)
        .header("x-backend-proto", format!("{:?}", parts.version));
    if let Some(ct) = parts.headers.get("content-type") {
        resp = resp.header("x-request-content-type", ct.clone());
    }
    if let Some(te) = parts.headers.get("te") {
        resp = resp.header("x-request-te", te.clone());
    }
    Ok(resp
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .expect("grpc response"))
}

/// A gRPC-style request: POST `path` with `content-type: application/grpc`,
/// `te: trailers`, a length-prefixed message `payload` and optional trailers.
pub fn grpc_request(
    conn: &HttpConn,
    authority: &str,
    path: &str,
    payload: &[u8],
    trailers: Option<HeaderMap>,
) -> Request<ReqBody> {
    conn.request("POST", authority, path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body_with_trailers(grpc_frame(payload), trailers))
        .expect("grpc request")
}

/// A gRPC message frame: uncompressed flag, 4-byte big-endian length, payload.
pub fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

// ---------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------

/// GETs `path` from the admin listener as text.
pub async fn admin_text(admin: SocketAddr, path: &str) -> String {
    let mut conn = HttpConn::http1(admin).await;
    let reply = conn.get("admin", path, &[]).await;
    assert_eq!(reply.status, 200, "admin {path}: {}", reply.body);
    reply.body
}

/// The entries of `/api/errors`.
pub async fn admin_errors(admin: SocketAddr) -> Vec<serde_json::Value> {
    let body = admin_text(admin, "/api/errors").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("errors JSON");
    v["errors"].as_array().cloned().unwrap_or_default()
}

/// The `/api/errors` entries that concern Secret `name`: the Secret itself,
/// or another object whose message names it.
pub async fn errors_about(admin: SocketAddr, name: &str) -> Vec<serde_json::Value> {
    admin_errors(admin)
        .await
        .into_iter()
        .filter(|e| {
            (e["object"]["kind"] == "Secret" && e["object"]["name"] == name)
                || e["message"].as_str().is_some_and(|m| m.contains(name))
        })
        .collect()
}

/// The sample lines of metric `name` whose labels include all of `labels`
/// (each written as `key="value"`), with their values.
pub fn metric_samples(metrics: &str, name: &str, labels: &[&str]) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| {
            let value = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((l.to_owned(), value))
        })
        .collect()
}
