//! Upstream clients by protocol and TLS settings, shared across routes and reloads.

use std::sync::Arc;

use super::pool::{BackendProtocol, BackendTls, PoolSettings, UpstreamClient};
use crate::identity::WeakRegistry;
use crate::tls::CertError;

pub use crate::tls::backend_verify::SubjectAltName;
use crate::tls::backend_verify::{backend_client_config, TrustRoots};

/// Backend certificate verification (Ingress `proxy-ssl-*`, Gateway API BackendTLSPolicy):
/// the CAs to trust and the names to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verify {
    /// PEM CA certificates (the `ca.crt` of the referenced Secret); empty, and ignored,
    /// with `system_roots`.
    pub ca_pem: Arc<[u8]>,
    /// The SNI sent to the backend; also the name the certificate must carry when
    /// `subject_alt_names` is empty.
    pub server_name: String,
    /// BackendTLSPolicy `subjectAltNames`: when not empty the certificate must carry one
    /// of them, and `server_name` is only the SNI.
    pub subject_alt_names: Vec<SubjectAltName>,
    /// Trust the well-known public CAs instead of `ca_pem` (BackendTLSPolicy
    /// `wellKnownCACertificates: System`).
    pub system_roots: bool,
}

impl Verify {
    /// Trust `ca_pem`, check `server_name`.
    pub fn new(ca_pem: Arc<[u8]>, server_name: String) -> Self {
        Self {
            ca_pem,
            server_name,
            subject_alt_names: Vec::new(),
            system_roots: false,
        }
    }

    /// Accept a certificate that carries one of `subject_alt_names` (when not empty)
    /// instead of one valid for the server name, which stays the SNI.
    pub fn with_subject_alt_names(mut self, subject_alt_names: Vec<SubjectAltName>) -> Self {
        self.subject_alt_names = subject_alt_names;
        self
    }

    /// Trust the well-known public CAs instead of a CA bundle (`ca_pem` is emptied).
    pub fn with_system_roots(mut self) -> Self {
        self.ca_pem = Arc::from(&[][..]);
        self.system_roots = true;
        self
    }

    /// The rustls client config that enforces this verification → CertError::BadCa when
    /// `ca_pem` holds no usable CA certificate.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, CertError> {
        let roots = if self.system_roots {
            TrustRoots::WellKnown
        } else {
            TrustRoots::Pem(&self.ca_pem)
        };
        backend_client_config(roots, &self.subject_alt_names, alpn)
    }
}

/// What makes two routes share an upstream client (and so a connection pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// How to speak to the backend.
    pub protocol: BackendProtocol,
    /// Certificate verification for the TLS protocols (`None`: not verified).
    pub verify: Option<Verify>,
    /// Timeouts that differ from the defaults (ingress-nginx's `proxy-*-timeout`).
    pub timeouts: Timeouts,
}

/// Per-route overrides of the `--connect-timeout` and
/// `--response-header-timeout` defaults; routes that set them get a client
/// (and pool) of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Backend connect.
    pub connect: Option<std::time::Duration>,
    /// Waiting for the backend's response head.
    pub response_header: Option<std::time::Duration>,
}

impl ClientKey {
    /// Plain HTTP/1.1, the default.
    pub fn http() -> Self {
        Self {
            protocol: BackendProtocol::Http,
            verify: None,
            timeouts: Timeouts::default(),
        }
    }
}

/// The registry of upstream clients: one per [`ClientKey`], alive while a table uses it.
#[derive(Debug, Default)]
pub struct Clients {
    settings: PoolSettings,
    clients: WeakRegistry<ClientKey, UpstreamClient>,
}

impl Clients {
    /// A registry whose clients use `settings`.
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            clients: WeakRegistry::default(),
        }
    }

    /// The client for `key`: the live one, or a new one (with its own pool).
    pub fn get(&self, key: &ClientKey) -> Result<Arc<UpstreamClient>, CertError> {
        // hyper-rustls sets ALPN itself from the HTTP versions it enables.
        let alpn: &[&[u8]] = &[];
        let tls = match (&key.protocol, &key.verify) {
            (BackendProtocol::Http | BackendProtocol::H2c, _) => None,
            (_, Some(verify)) => Some(BackendTls {
                config: verify.client_config(alpn)?,
                server_name: Some(verify.server_name.clone()),
            }),
            (_, None) => Some(BackendTls {
                config: crate::tls::insecure_client_config(alpn),
                server_name: None,
            }),
        };
        let mut settings = self.settings.clone();
        if let Some(connect) = key.timeouts.connect {
            settings.connect_timeout = connect;
        }
        if let Some(head) = key.timeouts.response_header {
            settings.response_header_timeout = head;
        }
        Ok(self.clients.get_or_insert_with(key, || {
            UpstreamClient::with_protocol(&settings, key.protocol.clone(), tls)
        }))
    }

    /// Every client some table still uses (for pool metrics).
    pub fn live(&self) -> Vec<Arc<UpstreamClient>> {
        self.clients.live().into_iter().map(|(_, c)| c).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use http::{Request, StatusCode};
    use hyper_util::rt::TokioIo;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        PKCS_ECDSA_P256_SHA256,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::body::RequestBody;
    use crate::upstream::UpstreamError;

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn p256() -> KeyPair {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key")
    }

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, p256()).expect("self-sign CA")
    }

    /// A backend certificate signed by `ca` with exactly `sans` (`spiffe:`… ones are URIs).
    fn leaf(ca: &Ca, sans: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = p256();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                let ia5 = (*san).try_into().expect("ia5");
                if san.contains("://") {
                    SanType::URI(ia5)
                } else {
                    SanType::DnsName(ia5)
                }
            })
            .collect();
        let cert = params.signed_by(&key, ca).expect("sign leaf");
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        (cert.der().clone(), key)
    }

    /// An HTTPS/1.1 backend on loopback that answers 200 to everything; records the SNI of
    /// each handshake that completed.
    async fn backend(
        cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    ) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.0], cert.1)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let snis = Arc::new(Mutex::new(Vec::new()));
        let seen = snis.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    seen.lock().expect("lock").push(sni);
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, snis)
    }

    /// One GET through the client [`Clients::get`] builds for `verify`.
    async fn get(verify: Verify, addr: SocketAddr) -> Result<StatusCode, UpstreamError> {
        let clients = Clients::default();
        let client = clients
            .get(&ClientKey {
                protocol: BackendProtocol::Https,
                verify: Some(verify),
                timeouts: Timeouts::default(),
            })
            .expect("client");
        let req = Request::get("/")
            .body(RequestBody::empty())
            .expect("request");
        client.send(addr, req).await.map(|resp| resp.status())
    }

    fn pem(ca: &Ca) -> Arc<[u8]> {
        Arc::from(ca.pem().into_bytes())
    }

    /// The outcome must be a connect error (the proxy answers 502 and never sends the
    /// request) caused by rustls refusing the backend's certificate.
    fn refused(outcome: Result<StatusCode, UpstreamError>, what: &str) {
        let err = match outcome {
            Err(UpstreamError::Connect(e)) if e.is_connect() => e,
            other => panic!("{what}: expected a refused handshake, got {other:?}"),
        };
        match rustls_error(&err) {
            Some(tls) => assert!(
                matches!(tls, rustls::Error::InvalidCertificate(_)),
                "{what}: {tls:?}"
            ),
            None => panic!("{what}: no certificate error in {err:?}"),
        }
    }

    /// The rustls error in `err`'s chain (io::Error hides its payload from `source()`).
    fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return rustls_error(inner);
        }
        err.source().and_then(rustls_error)
    }

    #[tokio::test]
    async fn ca_and_hostname_verify_the_backend() {
        let ca = ca("backend CA");
        let (addr, snis) = backend(leaf(&ca, &["backend.ns.svc"])).await;
        let ok = get(Verify::new(pem(&ca), "backend.ns.svc".into()), addr).await;
        assert_eq!(ok.expect("verified"), StatusCode::OK);
        refused(
            get(Verify::new(pem(&ca), "other.ns.svc".into()), addr).await,
            "wrong hostname",
        );
        assert_eq!(
            *snis.lock().expect("lock"),
            vec![Some("backend.ns.svc".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_listed_san_stands_in_for_the_hostname() {
        let ca = ca("backend CA");
        let (addr, snis) = backend(leaf(&ca, &["api.internal"])).await;
        let verify = Verify::new(pem(&ca), "backend.ns.svc".into()).with_subject_alt_names(vec![
            SubjectAltName::Hostname("other.internal".into()),
            SubjectAltName::Hostname("api.internal".into()),
        ]);
        assert_eq!(get(verify, addr).await.expect("SAN"), StatusCode::OK);
        // The hostname stays the SNI.
        assert_eq!(
            *snis.lock().expect("lock"),
            vec![Some("backend.ns.svc".to_owned())]
        );
    }

    #[tokio::test]
    async fn listed_sans_the_certificate_lacks_are_refused() {
        let ca = ca("backend CA");
        let (addr, _) = backend(leaf(&ca, &["backend.ns.svc"])).await;
        let verify = Verify::new(pem(&ca), "backend.ns.svc".into()).with_subject_alt_names(vec![
            SubjectAltName::Hostname("api.internal".into()),
            SubjectAltName::Uri("spiffe://cluster.local/ns/ns/sa/backend".into()),
        ]);
        refused(get(verify, addr).await, "no listed SAN");
    }

    #[tokio::test]
    async fn a_uri_san_is_matched() {
        let ca = ca("backend CA");
        let id = "spiffe://cluster.local/ns/shop/sa/cart";
        let (addr, _) = backend(leaf(&ca, &[id])).await;
        let verify = |uri: &str| {
            Verify::new(pem(&ca), "cart.shop.svc".into())
                .with_subject_alt_names(vec![SubjectAltName::Uri(uri.into())])
        };
        assert_eq!(get(verify(id), addr).await.expect("URI"), StatusCode::OK);
        refused(
            get(verify("spiffe://cluster.local/ns/shop/sa/other"), addr).await,
            "another URI",
        );
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused() {
        let (ours, theirs) = (ca("our CA"), ca("their CA"));
        let (addr, _) = backend(leaf(&theirs, &["backend.ns.svc"])).await;
        refused(
            get(Verify::new(pem(&ours), "backend.ns.svc".into()), addr).await,
            "other CA",
        );
        let with_sans = Verify::new(pem(&ours), "backend.ns.svc".into())
            .with_subject_alt_names(vec![SubjectAltName::Hostname("backend.ns.svc".into())]);
        refused(get(with_sans, addr).await, "other CA, SAN listed");
    }

    #[tokio::test]
    async fn system_roots_do_not_trust_a_private_ca() {
        let ca = ca("private CA");
        let (addr, _) = backend(leaf(&ca, &["backend.ns.svc"])).await;
        let verify = Verify::new(pem(&ca), "backend.ns.svc".into()).with_system_roots();
        assert!(verify.system_roots && verify.ca_pem.is_empty());
        refused(get(verify, addr).await, "private CA under system roots");
    }

    #[test]
    fn verify_settings_are_part_of_the_key() {
        let base = Verify::new(Arc::from(&b"pem"[..]), "a.svc".into());
        let sans = base
            .clone()
            .with_subject_alt_names(vec![SubjectAltName::Uri("spiffe://x/y".into())]);
        let system = base.clone().with_system_roots();
        assert_ne!(base, sans);
        assert_ne!(base, system);
        assert_eq!(base, Verify::new(Arc::from(&b"pem"[..]), "a.svc".into()));
        let garbage = Clients::default().get(&ClientKey {
            protocol: BackendProtocol::Https,
            verify: Some(base),
            timeouts: Timeouts::default(),
        });
        assert!(matches!(garbage, Err(CertError::BadCa(_))));
    }
}
