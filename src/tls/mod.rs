//! TLS: certificates from Secrets, SNI selection, and client configs for HTTPS backends.
//!
//! - [`certs`]: a `kubernetes.io/tls` Secret (or raw PEM) becomes a checked [`LoadedCert`]
//!   (chain, key, DNS names, validity); [`self_signed_default`] makes the fallback certificate.
//! - [`index`]: a [`CertIndex`] maps SNI names to certificates (exact, then single-label
//!   wildcard, then default). The compiler builds one per route table.
//! - [`server`]: [`SniResolver`] asks the current table's index on each handshake;
//!   [`server_config`] is the listener's rustls config (ALPN h2/http1.1, resumption).
//! - [`client`]: rustls client configs for HTTPS backends, with or without verification.
//! - [`client_auth`]: client certificates (ingress-nginx `auth-tls-*`): the per-host
//!   config that asks for one, and the chain's verdict after the handshake.
//!
//! Everything uses rustls' ring provider.

pub mod backend_verify;
pub mod certs;
pub mod client;
pub mod client_auth;
pub mod index;
mod leaf;
pub mod server;

#[cfg(test)]
mod fixtures;

pub use certs::{load_pem, load_tls_secret, self_signed_default, CertError, LoadedCert};
pub use client::{insecure_client_config, insecure_with_versions, verifying_client_config};
pub use client_auth::{ClientCa, HostClientAuth, PeerCertificate, VerifyClient};
pub use index::{CertIndex, CertIndexBuilder, CertInfo};
pub use server::{server_config, SniResolver, TlsVersion};
