//! Credentials for `basicAuth` and `digestAuth`: htpasswd hashes (bcrypt,
//! MD5-crypt/apr1, `{SHA}`), user lines, and reading them from Secrets the way
//! Traefik's Kubernetes provider does.
//!
//! Everything is parsed when the middleware is built; a request only verifies.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use md5::{Digest as _, Md5};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::build::{BuildError, Context};

/// A stored password hash from an htpasswd line.
#[derive(Clone)]
pub(crate) enum Hash {
    /// `$2y$` / `$2a$` / `$2b$` / `$2x$` bcrypt; kept as text, verified by the bcrypt crate.
    Bcrypt {
        /// The whole hash (`$2y$10$...`, 60 characters).
        text: String,
        /// Its cost factor (log2 of the rounds).
        cost: u32,
    },
    /// `$apr1$salt$hash` (Apache) or `$1$salt$hash` (MD5-crypt): 1000 MD5 rounds.
    Md5Crypt {
        /// `$apr1$` or `$1$`.
        magic: &'static str,
        /// The salt (at most 8 bytes).
        salt: Vec<u8>,
        /// The whole expected string, compared in constant time.
        expected: Vec<u8>,
    },
    /// `{SHA}` + base64(SHA-1(password)).
    Sha1([u8; 20]),
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print hashes: they are offline-crackable.
        match self {
            Self::Bcrypt { cost, .. } => write!(f, "Bcrypt(cost {cost})"),
            Self::Md5Crypt { magic, .. } => write!(f, "Md5Crypt({magic})"),
            Self::Sha1(_) => f.write_str("Sha1"),
        }
    }
}

impl Hash {
    /// Parses the hash part of an htpasswd line. Plain text and crypt(3) DES are
    /// refused: Traefik never matches them, so a line holding one is a mistake.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(b64) = text.strip_prefix("{SHA}") {
            let bytes = STANDARD
                .decode(b64)
                .map_err(|_| "{SHA} hash is not valid base64".to_owned())?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| "{SHA} hash is not 20 bytes".to_owned())?;
            return Ok(Self::Sha1(digest));
        }
        if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            let parts =
                bcrypt::HashParts::from_str(text).map_err(|e| format!("bad bcrypt hash: {e}"))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(format!("bad bcrypt hash: cost {cost} is outside 4..=31"));
            }
            return Ok(Self::Bcrypt {
                text: text.to_owned(),
                cost,
            });
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = text.strip_prefix(magic) {
                let (salt, hash) = rest
                    .split_once('$')
                    .ok_or_else(|| format!("bad {magic} hash: expected {magic}salt$hash"))?;
                if salt.len() > 8 || hash.len() != 22 {
                    return Err(format!("bad {magic} hash: expected {magic}salt$hash"));
                }
                return Ok(Self::Md5Crypt {
                    magic,
                    salt: salt.as_bytes().to_vec(),
                    expected: text.as_bytes().to_vec(),
                });
            }
        }
        Err("unsupported password hash (use bcrypt, apr1/MD5-crypt or {SHA}, e.g. `htpasswd -nbB user password`; plain text is not accepted)".to_owned())
    }

    /// Whether verifying costs enough to belong off the async threads (bcrypt).
    pub(crate) fn is_expensive(&self) -> bool {
        matches!(self, Self::Bcrypt { .. })
    }

    /// A rough ordering of verification cost, to pick the decoy for unknown users.
    pub(crate) fn work(&self) -> u64 {
        match self {
            Self::Bcrypt { cost, .. } => 1u64 << cost.min(&40),
            Self::Md5Crypt { .. } => 2,
            Self::Sha1(_) => 1,
        }
    }

    /// Whether `password` matches, in constant time with respect to the hash.
    /// Blocking for bcrypt (milliseconds at cost 10).
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt { text, .. } => bcrypt::verify(password, text).unwrap_or(false),
            Self::Md5Crypt {
                magic,
                salt,
                expected,
            } => {
                let got = md5_crypt(password, salt, magic.as_bytes());
                got.as_bytes().ct_eq(expected).into()
            }
            Self::Sha1(digest) => {
                let got: [u8; 20] = Sha1::digest(password).into();
                got.ct_eq(digest).into()
            }
        }
    }
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (`$1$`, and Apache's `$apr1$` which differs only by its magic):
/// returns `magic + salt + "$" + 22 characters`.
pub(crate) fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut last = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(last);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(last);
        } else {
            c.update(password);
        }
        last = c.finalize();
    }
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(&String::from_utf8_lossy(magic));
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut put = |value: u32, n: usize| {
        let mut v = value;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let b = |i: usize| u32::from(last[i]);
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((b(x) << 16) | (b(y) << 8) | b(z), 4);
    }
    put(b(11), 2);
    out
}

/// Splits credential text into lines: empty lines, surrounding blanks and `#`
/// comments are skipped.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The credential lines of an auth Secret, as Traefik's Kubernetes provider reads
/// them: a `kubernetes.io/basic-auth` Secret (only when `basic_auth_type` is set)
/// gives one `username:{SHA}...` line; any other Secret must have exactly one data
/// key whose value holds the lines.
pub(crate) fn secret_lines(
    secret: &Secret,
    name: &str,
    basic_auth_type: bool,
) -> Result<Vec<String>, String> {
    let empty = BTreeMap::new();
    let data: &BTreeMap<String, ByteString> = secret.data.as_ref().unwrap_or(&empty);
    if basic_auth_type && secret.type_.as_deref() == Some("kubernetes.io/basic-auth") {
        let (Some(user), Some(password)) = (data.get("username"), data.get("password")) else {
            return Err(format!(
                "secret {name:?} of type kubernetes.io/basic-auth needs both \"username\" and \"password\""
            ));
        };
        let user = std::str::from_utf8(&user.0)
            .map_err(|_| format!("secret {name:?}: username is not UTF-8"))?;
        let digest: [u8; 20] = Sha1::digest(&password.0).into();
        return Ok(vec![format!("{user}:{{SHA}}{}", STANDARD.encode(digest))]);
    }
    if data.len() != 1 {
        return Err(format!(
            "found {} elements for secret {name:?}, must be single element exactly",
            data.len()
        ));
    }
    let value = data.values().next().map(|v| v.0.as_slice()).unwrap_or(&[]);
    let text = std::str::from_utf8(value)
        .map_err(|_| format!("secret {name:?}: credentials are not UTF-8"))?;
    let found: Vec<String> = lines(text).map(str::to_owned).collect();
    if found.is_empty() {
        return Err(format!("secret {name:?} does not contain any credentials"));
    }
    Ok(found)
}

/// The config section `basicAuth` and `digestAuth` share.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthConfig {
    /// Credential lines: `name:hash` (basicAuth) or `user:realm:HA1`
    /// (digestAuth); Traefik's dynamic-config field, sluice also reads it from
    /// the CRD.
    #[serde(default)]
    pub(crate) users: Vec<String>,
    /// A Secret of the Middleware's namespace holding the users.
    #[serde(default)]
    pub(crate) secret: Option<String>,
    #[serde(default)]
    pub(crate) realm: Option<String>,
    #[serde(default)]
    pub(crate) remove_header: bool,
    #[serde(default)]
    pub(crate) header_field: Option<String>,
}

/// The credential lines of an auth middleware: those of the Secret
/// `config.secret` names (when set) first, then the inline `config.users`, so that on a duplicate name
/// the later wins (Traefik). `kind` names the middleware in the error when
/// there are none; `basic_auth_type` is as for [`secret_lines`].
pub(crate) fn load_lines(
    cx: &mut dyn Context,
    kind: &str,
    config: &AuthConfig,
    basic_auth_type: bool,
) -> Result<Vec<String>, BuildError> {
    let mut found = Vec::new();
    if let Some(name) = &config.secret {
        if name.is_empty() {
            return Err(cx.invalid("auth secret must be set".to_owned()));
        }
        let secret = cx
            .secret(name)
            .ok_or_else(|| cx.invalid(format!("secret {name:?} not found")))?;
        found = secret_lines(&secret, name, basic_auth_type).map_err(|e| cx.invalid(e))?;
    }
    found.extend(lines(&config.users.join("\n")).map(str::to_owned));
    if found.is_empty() {
        return Err(cx.invalid(format!("{kind} needs users or a secret")));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_matches_openssl() {
        // `openssl passwd -apr1 -salt abcdefgh secret` and `-1`.
        assert_eq!(
            md5_crypt(b"secret", b"abcdefgh", b"$apr1$"),
            "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"
        );
        assert_eq!(
            md5_crypt(b"secret", b"abcdefgh", b"$1$"),
            "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"
        );
    }

    #[test]
    fn each_format_verifies_and_refuses() {
        let bcrypt = bcrypt::hash("secret", 4).unwrap();
        let cases = [
            bcrypt.clone(),
            bcrypt.replacen("$2b$", "$2y$", 1),
            bcrypt.replacen("$2b$", "$2a$", 1),
            "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/".to_owned(),
            "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1".to_owned(),
            "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=".to_owned(),
        ];
        for text in cases {
            let hash = Hash::parse(&text).unwrap();
            assert!(hash.verify(b"secret"), "{text}");
            assert!(!hash.verify(b"Secret"), "{text}");
            assert!(!hash.verify(b""), "{text}");
        }
    }

    #[test]
    fn plain_text_and_garbage_are_refused() {
        for bad in [
            "secret",
            "{SHA}nope",
            "{SHA}AAAA",
            "$apr1$nosep",
            "$2y$10$short",
            "rl3rgi4NcZkpAEcacZnQ2VuOfJ0FxAqCRaKB/SwdZoQBdgpiMRqRQ",
        ] {
            assert!(Hash::parse(bad).is_err(), "{bad}");
        }
    }

    fn secret(type_: Option<&str>, data: &[(&str, &str)]) -> Secret {
        Secret {
            type_: type_.map(str::to_owned),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn secrets_follow_the_single_key_and_basic_auth_rules() {
        let one = secret(None, &[("users", "a:x\n\n# note\r\nb:y\r\n")]);
        assert_eq!(secret_lines(&one, "s", true).unwrap(), ["a:x", "b:y"]);
        let two = secret(None, &[("users", "a:x"), ("more", "b:y")]);
        let err = secret_lines(&two, "s", true).unwrap_err();
        assert!(err.contains("found 2 elements"), "{err}");
        let empty = secret(None, &[("users", "\n\n")]);
        assert!(secret_lines(&empty, "s", true)
            .unwrap_err()
            .contains("does not contain any credentials"));
        let typed = secret(
            Some("kubernetes.io/basic-auth"),
            &[("username", "alice"), ("password", "secret")],
        );
        assert_eq!(
            secret_lines(&typed, "s", true).unwrap(),
            ["alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]
        );
        // digestAuth has no basic-auth special case: two keys is an error.
        assert!(secret_lines(&typed, "s", false).is_err());
        let half = secret(Some("kubernetes.io/basic-auth"), &[("username", "alice")]);
        assert!(secret_lines(&half, "s", true).is_err());
    }
}
