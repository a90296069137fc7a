//! The certificate index: which certificate each SNI name gets. Built once per
//! route table, read on every handshake without locks or (usually) allocation.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::client_auth::HostClientAuth;

/// Longest DNS name we look up; longer SNI values cannot be hosts and get the default.
const MAX_HOST: usize = 253;

/// Which certificate each SNI name gets: exact names, then single-label wildcards, then the default.
#[derive(Debug, Default, Clone)]
pub struct CertIndex {
    /// Lowercased host without trailing dot.
    exact: HashMap<Box<str>, Arc<CertifiedKey>>,
    /// `*.example.com` stored under `example.com`.
    wildcard: HashMap<Box<str>, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    infos: Vec<CertInfo>,
    /// Hosts whose handshakes ask for a client certificate (ingress-nginx
    /// `auth-tls-*`), matched like certificates: exact names, then `*.suffix`.
    client_auth: HashMap<Box<str>, Arc<HostClientAuth>>,
    client_auth_wildcard: HashMap<Box<str>, Arc<HostClientAuth>>,
}

/// What the admin API shows about one installed certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// The Secret it came from (namespace, name); None for the generated default.
    pub secret: Option<(String, String)>,
    /// The hosts it was installed for.
    pub hosts: Vec<String>,
    /// notAfter of the leaf, Unix seconds.
    pub not_after: i64,
    /// Whether this is the certificate served for unknown or missing SNI.
    pub is_default: bool,
    /// The leaf's issuer.
    pub issuer: String,
    /// The leaf's subject.
    pub subject: String,
    /// The Ingress whose TLS section installed it (`None` for the default).
    pub used_by: Option<crate::router::ObjectRef>,
}

impl CertIndex {
    /// Starts an empty index.
    pub fn builder() -> CertIndexBuilder {
        CertIndexBuilder::default()
    }

    /// The certificate for a ClientHello's SNI (None: no SNI). Exact (case-insensitive,
    /// trailing dot ignored) beats `*.suffix` (exactly one extra label), else the default.
    /// No allocation for lowercase names (stack buffer otherwise), no lock.
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            let name = name.strip_suffix('.').unwrap_or(name);
            let mut buf = [0u8; MAX_HOST];
            self.lookup(lowercase(name, &mut buf)?)
        });
        found.or_else(|| self.default.clone())
    }

    fn lookup(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = self.exact.get(host) {
            return Some(key.clone());
        }
        // `*.example.com` covers `a.example.com`, never `example.com` or `a.b.example.com`.
        let (label, suffix) = host.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(suffix).cloned()
    }

    /// Whether any host asks for client certificates (when none does, the
    /// listener skips the per-SNI config choice).
    pub fn has_client_auth(&self) -> bool {
        !self.client_auth.is_empty() || !self.client_auth_wildcard.is_empty()
    }

    /// The client-certificate authentication of the host a ClientHello's SNI
    /// names (exact, then `*.suffix`); none without SNI. No allocation for
    /// lowercase names, no lock.
    pub fn client_auth(&self, sni: Option<&str>) -> Option<&Arc<HostClientAuth>> {
        let name = sni?;
        let name = name.strip_suffix('.').unwrap_or(name);
        let mut buf = [0u8; MAX_HOST];
        let host = lowercase(name, &mut buf)?;
        if let Some(auth) = self.client_auth.get(host) {
            return Some(auth);
        }
        let (label, suffix) = host.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.client_auth_wildcard.get(suffix)
    }

    /// What is installed, for the admin API.
    pub fn infos(&self) -> &[CertInfo] {
        &self.infos
    }

    /// True when no host has a certificate (a default alone does not count).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// `name` itself when already lowercase; otherwise a lowercased copy in `buf`.
fn lowercase<'a>(name: &'a str, buf: &'a mut [u8; MAX_HOST]) -> Option<&'a str> {
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(name);
    }
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    // ASCII lowercasing keeps UTF-8 valid, so this only fails on a bug.
    std::str::from_utf8(out).ok()
}

/// Collects certificates for a [`CertIndex`]; the first certificate for a host wins.
#[derive(Debug, Default)]
pub struct CertIndexBuilder {
    index: CertIndex,
}

impl CertIndexBuilder {
    /// Installs `key` for `host` (`a.example.com` or `*.example.com`, any case). Returns false
    /// (and keeps the earlier one) when the host already has a certificate.
    pub fn insert(&mut self, host: &str, key: Arc<CertifiedKey>) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let (map, name) = match host.strip_prefix("*.") {
            Some(suffix) => (&mut self.index.wildcard, suffix.to_owned()),
            None => (&mut self.index.exact, host),
        };
        match map.entry(name.into_boxed_str()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(key);
                true
            }
        }
    }

    /// Makes handshakes for `host` (`a.example.com` or `*.example.com`) ask
    /// for a client certificate as `auth` says. Returns false (and keeps the
    /// earlier one) when the host already has one.
    pub fn client_auth(&mut self, host: &str, auth: Arc<HostClientAuth>) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let (map, name) = match host.strip_prefix("*.") {
            Some(suffix) => (&mut self.index.client_auth_wildcard, suffix.to_owned()),
            None => (&mut self.index.client_auth, host),
        };
        match map.entry(name.into_boxed_str()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(auth);
                true
            }
        }
    }

    /// Sets the certificate for unknown names and for clients that send no SNI.
    pub fn default_cert(&mut self, key: Arc<CertifiedKey>) {
        self.index.default = Some(key);
    }

    /// Records what was installed, for [`CertIndex::infos`].
    pub fn info(&mut self, info: CertInfo) {
        self.index.infos.push(info);
    }

    /// Finishes the index.
    pub fn build(self) -> CertIndex {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::self_signed_default;

    fn key() -> Arc<CertifiedKey> {
        self_signed_default().expect("generates").key
    }

    fn same(a: Option<Arc<CertifiedKey>>, b: &Arc<CertifiedKey>) -> bool {
        a.is_some_and(|a| Arc::ptr_eq(&a, b))
    }

    #[test]
    fn exact_beats_wildcard_and_wildcard_covers_one_label() {
        let (exact, wild, default) = (key(), key(), key());
        let mut builder = CertIndex::builder();
        assert!(builder.insert("a.example.com", exact.clone()));
        assert!(builder.insert("*.example.com", wild.clone()));
        builder.default_cert(default.clone());
        let index = builder.build();
        assert!(same(index.resolve(Some("a.example.com")), &exact));
        assert!(same(index.resolve(Some("b.example.com")), &wild));
        assert!(same(index.resolve(Some("x.b.example.com")), &default));
        assert!(same(index.resolve(Some("example.com")), &default));
        assert!(same(index.resolve(Some(".example.com")), &default));
    }

    #[test]
    fn case_and_trailing_dot_are_ignored() {
        let (exact, wild) = (key(), key());
        let mut builder = CertIndex::builder();
        builder.insert("A.Example.COM", exact.clone());
        builder.insert("*.Apps.Example.com.", wild.clone());
        let index = builder.build();
        assert!(same(index.resolve(Some("a.example.com")), &exact));
        assert!(same(index.resolve(Some("A.EXAMPLE.com.")), &exact));
        assert!(same(index.resolve(Some("Web.APPS.example.com.")), &wild));
    }

    #[test]
    fn default_for_unknown_missing_and_oversized_sni() {
        let default = key();
        let mut builder = CertIndex::builder();
        builder.insert("a.example.com", key());
        builder.default_cert(default.clone());
        let index = builder.build();
        assert!(same(index.resolve(Some("other.test")), &default));
        assert!(same(index.resolve(None), &default));
        let long = "A".repeat(300);
        assert!(same(index.resolve(Some(&long)), &default));
    }

    #[test]
    fn no_default_means_no_certificate() {
        let index = CertIndex::builder().build();
        assert!(index.is_empty());
        assert!(index.resolve(Some("a.example.com")).is_none());
        assert!(index.resolve(None).is_none());
    }

    #[test]
    fn client_auth_is_found_by_sni_like_certificates() {
        let ca = crate::tls::fixtures::ca("client CA");
        let client_ca =
            crate::tls::client_auth::ClientCa::from_pem(ca.pem().as_bytes(), None).expect("CA");
        let auth = || {
            Arc::new(HostClientAuth::new(
                client_ca.clone(),
                1,
                crate::tls::client_auth::VerifyClient::On,
            ))
        };
        let (exact, wild) = (auth(), auth());
        assert!(!CertIndex::builder().build().has_client_auth());
        let mut builder = CertIndex::builder();
        assert!(builder.client_auth("Secure.Example.com.", exact.clone()));
        assert!(!builder.client_auth("secure.example.com", auth()));
        assert!(builder.client_auth("*.apps.example.com", wild.clone()));
        let index = builder.build();
        assert!(index.has_client_auth());
        // Client authentication alone installs no certificate.
        assert!(index.is_empty());
        let found = |sni| index.client_auth(sni).cloned();
        assert!(found(Some("SECURE.example.com.")).is_some_and(|a| Arc::ptr_eq(&a, &exact)));
        assert!(found(Some("web.apps.example.com")).is_some_and(|a| Arc::ptr_eq(&a, &wild)));
        assert!(found(Some("x.web.apps.example.com")).is_none());
        assert!(found(Some("apps.example.com")).is_none());
        assert!(found(Some("other.example.com")).is_none());
        let long = "a".repeat(300);
        assert!(found(Some(&long)).is_none());
        assert!(found(None).is_none());
    }

    #[test]
    fn first_insert_wins() {
        let (first, second) = (key(), key());
        let mut builder = CertIndex::builder();
        assert!(builder.insert("a.example.com", first.clone()));
        assert!(!builder.insert("A.example.com.", second.clone()));
        assert!(builder.insert("*.example.com", first.clone()));
        assert!(!builder.insert("*.EXAMPLE.com", second));
        builder.info(CertInfo {
            secret: Some(("ns".into(), "tls".into())),
            hosts: vec!["a.example.com".into()],
            not_after: 1,
            is_default: false,
            issuer: String::new(),
            subject: String::new(),
            used_by: None,
        });
        let index = builder.build();
        assert!(!index.is_empty());
        assert!(same(index.resolve(Some("a.example.com")), &first));
        assert!(same(index.resolve(Some("b.example.com")), &first));
        assert_eq!(index.infos().len(), 1);
    }
}
