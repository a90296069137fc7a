//! Test material made at test time with rcgen, plus one RSA key made once with
//! openssl (ring cannot generate RSA keys, so rcgen cannot either).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

/// A CA (root or intermediate) that can sign certificates.
pub type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate P-256 key")
}

/// A self-signed root CA with `name` as its CN.
pub fn ca(name: &str) -> Ca {
    CertifiedIssuer::self_signed(ca_params(name), p256()).expect("self-sign CA")
}

/// An intermediate CA signed by `parent`.
pub fn intermediate(parent: &Ca, name: &str) -> Ca {
    CertifiedIssuer::signed_by(ca_params(name), p256(), parent).expect("sign intermediate")
}

/// A leaf for `names` signed by `ca` with a fresh key: (cert PEM, PKCS#8 key PEM).
pub fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = p256();
    let cert = leaf_params(names).signed_by(&key, ca).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

/// Parameters for a leaf covering `names` (SAN dNSName entries).
pub fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    CertificateParams::new(names).expect("valid SAN names")
}

/// A self-signed leaf for `names` with `key`: the cert PEM.
pub fn self_signed(names: &[&str], key: &KeyPair) -> String {
    leaf_params(names)
        .self_signed(key)
        .expect("self-sign")
        .pem()
}

/// The SEC1 `EC PRIVATE KEY` inside a P-256 PKCS#8 document, with the curve
/// parameters added as openssl writes them (`[0] prime256v1`).
pub fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, outer, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(outer);
    let (_, _algorithm, rest) = tlv(rest);
    let (_, sec1, _) = tlv(rest);
    let (_, body, _) = tlv(sec1);
    let (_, _, after_version) = tlv(body);
    let (_, _, after_private) = tlv(after_version);
    let head = &body[..body.len() - after_private.len()];
    let params = b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
    let inner = [head, params.as_slice(), after_private].concat();
    assert!(inner.len() < 128, "short-form length");
    [&[0x30, inner.len() as u8][..], &inner].concat()
}

/// One DER tag-length-value: (tag, content, rest). Short and 1-byte long lengths only.
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, len, start) = match der[1] {
        0x81 => (der[0], usize::from(der[2]), 3),
        len if len < 0x80 => (der[0], usize::from(len), 2),
        other => panic!("unexpected DER length byte {other:#x}"),
    };
    (tag, &der[start..start + len], &der[start + len..])
}

/// PEM-armours `der` under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A 2048-bit RSA key in PKCS#8 (`openssl genrsa 2048`).
pub const RSA_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCv5X5n4LOMWFsN\n\
kGY3HW9/1n8CQcAEvIHkm3MaNhsfOxp1w4PFKYJojdhO5bsQHE9f7SgEcSbJ0dJE\n\
3z19x4a/M05jFZIxg9nfaPgxXAx/2tyyJ61LJLrEmEXPiSo6+EwdJV88IoBjqYeV\n\
nPLHhly0DdUMcGaspk31DnhQlZ93bBRlPR/L72bLaE9CB6mdCL1tPl7cxJYNUERJ\n\
F24KFtOOEwJOjR/6buZXoyxQFjs3Rrs2F2lf32Ho87/pSBIplUsszv+9EK9oQrTw\n\
zG66cQejI1jsL5LXgZEA290OA9ZqPp9k7t9clIX44D587M9a0sygOG9fkbYUJHTp\n\
5np0tNJNAgMBAAECggEAJXocvi5Coy76K4AuPyT+6jp98jGnI3s0o8w5MIcBrVxO\n\
7XN8YmhPOE6snVbWTf7yLIqfoZ6oOI0Do5f7Bo8aFyfr1jG05eblZ3P6ma22nhE4\n\
P58zjZSkVJnrGeZsQIdB1F3vliT1vQZUdJytn7RxkQ13bMCQJ84BQyrTmLvgb7WV\n\
VG86zep39fO2W7/qn7MJiZrOnMmczGr1+LvcyViCH9HfC4GSjkqqh+NboQaPyy9Y\n\
wGtO3I/Jl29pBGLoA2ffOfWbd/Sd0K1W8NEAYxOQwBF/Ba8EPYPXvqkF4KalrxNU\n\
Y0rixHzcT9ZyT1FPS6fZgo8SpBudHzm7ZA7YbFxgwQKBgQDj9b7Ad7Jk/I3670nZ\n\
X+GNQHcmFHyrmjsguXo7yd/fZwteQ26ox0SuZxqk0znlLH0vrYJ4xWFuBy55U4P8\n\
Gb6x1Pw0K2nuTfCrnlfg7rYf2A0UfewvgySB438vdf+kogKgrgSaf7yDVvcxT1nx\n\
A98RscNJQPrObc/L5f4UJWLZ4QKBgQDFiFDtqvNo0Pny8glLeYEJUH6nXkzII0f9\n\
KsOyQGkyf6wmXpSF7JYDft4ZwS+qTGZ9gOYiQx70ay4k8AXzf1qdvwabZYCyuVVV\n\
k9VqT1Q0S+4t7qSX+5msjb3V+rbik8qFN1FpiDITzFRRcnpfdDy419d6Hs4Hj+lX\n\
xi8HpBa97QKBgQC927Oma0q6DxpVL6yrDc82LMXPgmqfJZIvXCsw1p7NWu498R2e\n\
FnDebGLlekMS2y3cYr9yxLmzwOl1BRi9A9guFjyDWtEcN+/Fj9iTL12iQfgK5CGt\n\
JKVoRMhuB/IF9SUJHEYbQ14HaYvxlqxLLrU/8HS8cxEwkobpxEEMGGMvIQKBgQCp\n\
TklvLBMtR9C0dteYpTAAN8oW0jClafgN+lV5ttNzwRJgYLiUgU+i916OXJLqOEmw\n\
UIbv3u/tNuB6MHApYILeqhiToNBKX6fQjcFiOVRG7r3bCKxyx+fTijmn6hhO47W1\n\
sNBKz718UqoClUhmAE77b6T0uuqEeMjbvrYYqoADkQKBgQCKQuvxdlvjkfm1Gjf3\n\
L9YMjYGMtRme7X8SakbLmVTdIto5MXJAXIeYLLrInRWuSudPOBD1WRZYMUUS578Y\n\
Rb7UznhxizAoFUyYBGXtXpwxwUDQzEqqrKFH9MGSz4FYTa0a7DKuEMO5iGNI7FIX\n\
mMwVg4gtcpdtO/WlZXHLC5G+WQ==\n\
-----END PRIVATE KEY-----\n\
";

/// The same key in PKCS#1 (`openssl rsa -traditional`).
pub const RSA_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEpQIBAAKCAQEAr+V+Z+CzjFhbDZBmNx1vf9Z/AkHABLyB5JtzGjYbHzsadcOD\n\
xSmCaI3YTuW7EBxPX+0oBHEmydHSRN89fceGvzNOYxWSMYPZ32j4MVwMf9rcsiet\n\
SyS6xJhFz4kqOvhMHSVfPCKAY6mHlZzyx4ZctA3VDHBmrKZN9Q54UJWfd2wUZT0f\n\
y+9my2hPQgepnQi9bT5e3MSWDVBESRduChbTjhMCTo0f+m7mV6MsUBY7N0a7Nhdp\n\
X99h6PO/6UgSKZVLLM7/vRCvaEK08MxuunEHoyNY7C+S14GRANvdDgPWaj6fZO7f\n\
XJSF+OA+fOzPWtLMoDhvX5G2FCR06eZ6dLTSTQIDAQABAoIBACV6HL4uQqMu+iuA\n\
Lj8k/uo6ffIxpyN7NKPMOTCHAa1cTu1zfGJoTzhOrJ1W1k3+8iyKn6GeqDiNA6OX\n\
+waPGhcn69YxtOXm5Wdz+pmttp4ROD+fM42UpFSZ6xnmbECHQdRd75Yk9b0GVHSc\n\
rZ+0cZENd2zAkCfOAUMq05i74G+1lVRvOs3qd/Xztlu/6p+zCYmazpzJnMxq9fi7\n\
3MlYgh/R3wuBko5KqofjW6EGj8svWMBrTtyPyZdvaQRi6ANn3zn1m3f0ndCtVvDR\n\
AGMTkMARfwWvBD2D176pBeCmpa8TVGNK4sR83E/Wck9RT0un2YKPEqQbnR85u2QO\n\
2GxcYMECgYEA4/W+wHeyZPyN+u9J2V/hjUB3JhR8q5o7ILl6O8nf32cLXkNuqMdE\n\
rmcapNM55Sx9L62CeMVhbgcueVOD/Bm+sdT8NCtp7k3wq55X4O62H9gNFH3sL4Mk\n\
geN/L3X/pKICoK4Emn+8g1b3MU9Z8QPfEbHDSUD6zm3Py+X+FCVi2eECgYEAxYhQ\n\
7arzaND58vIJS3mBCVB+p15MyCNH/SrDskBpMn+sJl6UheyWA37eGcEvqkxmfYDm\n\
IkMe9GsuJPAF839anb8Gm2WAsrlVVZPVak9UNEvuLe6kl/uZrI291fq24pPKhTdR\n\
aYgyE8xUUXJ6X3Q8uNfXeh7OB4/pV8YvB6QWve0CgYEAvduzpmtKug8aVS+sqw3P\n\
NizFz4JqnyWSL1wrMNaezVruPfEdnhZw3mxi5XpDEtst3GK/csS5s8DpdQUYvQPY\n\
LhY8g1rRHDfvxY/Yky9dokH4CuQhrSSlaETIbgfyBfUlCRxGG0NeB2mL8ZasSy61\n\
P/B0vHMRMJKG6cRBDBhjLyECgYEAqU5JbywTLUfQtHbXmKUwADfKFtIwpWn4DfpV\n\
ebbTc8ESYGC4lIFPovdejlyS6jhJsFCG797v7TbgejBwKWCC3qoYk6DQSl+n0I3B\n\
YjlURu692wiscsfn04o5p+oYTuO1tbDQSs+9fFKqApVIZgBO+2+k9LrqhHjI2762\n\
GKqAA5ECgYEAikLr8XZb45H5tRo39y/WDI2BjLUZnu1/EmpGy5lU3SLaOTFyQFyH\n\
mCy6yJ0VrkrnTzgQ9VkWWDFFEue/GEW+1M54cYswKBVMmARl7V6cMcFA0MxKqqyh\n\
R/TBks+BWE2tGuwyrhDDuYhjSOxSF5jMFYOILXKXbTv1pWVxywuRvlk=\n\
-----END RSA PRIVATE KEY-----\n\
";

/// What a finished handshake showed the client.
pub struct Handshake {
    /// The leaf certificate the server sent.
    pub leaf: Vec<u8>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The negotiated TLS version.
    pub version: Option<rustls::ProtocolVersion>,
}

/// Runs one TLS handshake over an in-memory pipe; the client's error if it fails.
pub async fn handshake(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
    server_name: &str,
) -> std::io::Result<Handshake> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (client, _server) = tokio::join!(
        connector.connect(name, client_io),
        acceptor.accept(server_io)
    );
    let (_, conn) = client?.into_inner();
    Ok(Handshake {
        leaf: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version(),
    })
}
