//! `digestAuth`: HTTP Digest authentication (RFC 2617, MD5, `qop=auth`) against
//! htdigest users (`user:realm:HA1`), as Traefik does it with go-http-auth.
//!
//! Every challenge issues a fresh nonce (12 random bytes, base64); nonces live in
//! a bounded cache (1000 + 100, least recently seen evicted, as go-http-auth).
//! Each nonce's `nc` must strictly increase: a replayed count gets a new
//! challenge with `stale="true"`. The `opaque` is random per built middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Request;
use md5::{Digest as _, Md5};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::basic_auth::{header_field, quote, unauthorized};
use super::build::{decode, BuildError, Context};
use super::htpasswd;
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::RequestBody;

/// Nonces remembered before a purge (go-http-auth's ClientCacheSize).
const NONCE_CACHE_SIZE: usize = 1000;
/// Slack above [`NONCE_CACHE_SIZE`]; a purge drops twice this many (ClientCacheTolerance).
const NONCE_CACHE_TOLERANCE: usize = 100;

/// Builds a `digestAuth` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: htpasswd::AuthConfig = decode(config, cx)?;
    let lines = htpasswd::load_lines(cx, "digestAuth", &config, false)?;
    let realm = config
        .realm
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "traefik".to_owned());
    let mut users = HashMap::new();
    for line in &lines {
        let (user, line_realm, ha1) = parse_line(line).map_err(|e| cx.invalid(e))?;
        // Users are looked up by (user, realm): other realms' lines never match.
        if line_realm == realm {
            users.insert(user.to_owned(), ha1);
        }
    }
    if users.is_empty() {
        tracing::warn!(
            namespace = cx.namespace(),
            %realm,
            "digestAuth: no user line has the middleware's realm; every request will get 401"
        );
    }
    let header_field = header_field(config.header_field.as_deref()).map_err(|e| cx.invalid(e))?;
    let challenge_start = format!("Digest realm=\"{}\", nonce=\"", quote(&realm));
    if HeaderValue::from_str(&challenge_start).is_err() {
        return Err(cx.invalid("realm is not a valid header value".to_owned()));
    }
    Ok(Arc::new(DigestAuth {
        users,
        challenge_start,
        opaque: random_token(),
        header_field,
        remove_header: config.remove_header,
        nonces: Mutex::new(Nonces::default()),
    }))
}

/// `user:realm:HA1` with HA1 32 hex digits (lowercased).
fn parse_line(line: &str) -> Result<(&str, &str, String), String> {
    let mut parts = line.split(':');
    let (Some(user), Some(realm), Some(ha1), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "users entry {:?} is not `user:realm:HA1`",
            line.split(':').next().unwrap_or("")
        ));
    };
    if ha1.len() != 32 || !ha1.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "user {user:?}: HA1 must be 32 hex digits (md5 of user:realm:password, as htdigest writes)"
        ));
    }
    Ok((user, realm, ha1.to_ascii_lowercase()))
}

/// 12 random bytes as 16 base64 characters (nonces and the opaque).
fn random_token() -> String {
    STANDARD.encode(rand::random::<[u8; 12]>())
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            md5.update(b":");
        }
        md5.update(part);
    }
    hex(&md5.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[derive(Debug, Default)]
struct Nonces {
    /// Nonce → (highest nc seen, last-seen tick).
    issued: HashMap<String, (u64, u64)>,
    tick: u64,
}

impl Nonces {
    fn issue(&mut self) -> String {
        if self.issued.len() > NONCE_CACHE_SIZE + NONCE_CACHE_TOLERANCE {
            let mut by_age: Vec<(u64, String)> = self
                .issued
                .iter()
                .map(|(nonce, (_, seen))| (*seen, nonce.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, nonce) in by_age.into_iter().take(NONCE_CACHE_TOLERANCE * 2) {
                self.issued.remove(&nonce);
            }
        }
        let nonce = random_token();
        self.tick += 1;
        self.issued.insert(nonce.clone(), (0, self.tick));
        nonce
    }

    /// Accepts `nc` for `nonce` if the nonce is ours and the count is new.
    fn accept(&mut self, nonce: &str, nc: u64) -> Check {
        self.tick += 1;
        match self.issued.get_mut(nonce) {
            None => Check::Refused,
            Some((last, _)) if nc <= *last => Check::Stale,
            Some((last, seen)) => {
                *last = nc;
                *seen = self.tick;
                Check::Ok
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    Ok,
    Refused,
    Stale,
}

/// The built `digestAuth`.
#[derive(Debug)]
struct DigestAuth {
    /// User → HA1 (lowercase hex), for the middleware's realm only.
    users: HashMap<String, String>,
    /// `Digest realm="...", nonce="`.
    challenge_start: String,
    opaque: String,
    header_field: Option<HeaderName>,
    remove_header: bool,
    nonces: Mutex<Nonces>,
}

/// go-http-auth's ParseList + ParsePairs: comma-separated `k=v` / `k="v"` pairs.
fn parse_pairs(value: &str) -> HashMap<&str, String> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escape) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escape => escape = false,
            '\\' if quoted => escape = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    let mut pairs = HashMap::new();
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        let (key, raw) = item.split_once('=').unwrap_or((item, ""));
        let value = match raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => raw.to_owned(),
        };
        pairs.insert(key.trim(), value);
    }
    pairs
}

impl DigestAuth {
    fn challenge(&self, stale: bool) -> http::Response<crate::body::ResponseBody> {
        let nonce = self
            .nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .issue();
        let stale = if stale { "stale=\"true\", " } else { "" };
        let value = format!(
            "{}{nonce}\", opaque=\"{}\", {stale}algorithm=\"MD5\", qop=\"auth\"",
            self.challenge_start, self.opaque
        );
        // Checked at build time; the nonce and opaque are base64.
        let value = HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("Digest realm=\"traefik\""));
        unauthorized(value)
    }

    /// Checks the request's Digest credentials → the user name, or how it failed.
    fn check(&self, req: &Request<RequestBody>) -> Result<String, Check> {
        let header = req.headers().get(AUTHORIZATION).ok_or(Check::Refused)?;
        let header = header.to_str().map_err(|_| Check::Refused)?;
        let params = header.strip_prefix("Digest ").ok_or(Check::Refused)?;
        let auth = parse_pairs(params);
        let get = |k: &str| auth.get(k).map(String::as_str).unwrap_or("");
        let algorithm = auth.get("algorithm").map_or("MD5", String::as_str);
        if get("opaque") != self.opaque || algorithm != "MD5" || get("qop") != "auth" {
            return Err(Check::Refused);
        }
        let uri = get("uri");
        let target = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |pq| pq.as_str());
        if uri != target {
            // go-http-auth also accepts a `uri` whose path is a prefix of the request path.
            let path = uri.parse::<http::Uri>().map_err(|_| Check::Refused)?;
            let path = path.path();
            if path.is_empty() || !req.uri().path().starts_with(path) {
                return Err(Check::Refused);
            }
        }
        let user = get("username");
        let known = self.users.get(user);
        // Unknown users are hashed against a dummy HA1 so they cost the same.
        let ha1 = known.map_or("00000000000000000000000000000000", String::as_str);
        let (nonce, nc, cnonce) = (get("nonce"), get("nc"), get("cnonce"));
        let ha2 = md5_hex(&[req.method().as_str().as_bytes(), uri.as_bytes()]);
        let expected = md5_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        let matches: bool = expected.as_bytes().ct_eq(get("response").as_bytes()).into();
        if !matches || known.is_none() {
            return Err(Check::Refused);
        }
        let nc = u64::from_str_radix(nc, 16).map_err(|_| Check::Refused)?;
        let verdict = self
            .nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accept(nonce, nc);
        match verdict {
            Check::Ok => Ok(user.to_owned()),
            failed => Err(failed),
        }
    }
}

impl Middleware for DigestAuth {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let user = match self.check(&req) {
                Ok(user) => user,
                Err(failed) => return Ok(self.challenge(failed == Check::Stale)),
            };
            if let Some(field) = &self.header_field {
                match HeaderValue::from_str(&user) {
                    Ok(value) => {
                        req.headers_mut().insert(field, value);
                    }
                    Err(_) => return Ok(self.challenge(false)),
                }
            }
            if self.remove_header {
                req.headers_mut().remove(AUTHORIZATION);
            }
            next.run(req, cx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::testing::{run, text, FakeBuild, Recorder};
    use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
    use serde_json::json;

    /// htdigest line for alice / traefik / secret.
    fn alice(realm: &str) -> String {
        format!(
            "alice:{realm}:{}",
            md5_hex(&[b"alice", realm.as_bytes(), b"secret"])
        )
    }

    struct Challenge {
        nonce: String,
        opaque: String,
        stale: bool,
        realm: String,
    }

    fn challenge_of(resp: &http::Response<crate::body::ResponseBody>) -> Challenge {
        assert_eq!(resp.status(), 401);
        let value = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        let params = value.strip_prefix("Digest ").expect("a Digest challenge");
        let p = parse_pairs(params);
        Challenge {
            nonce: p["nonce"].clone(),
            opaque: p["opaque"].clone(),
            stale: p.get("stale").is_some_and(|s| s == "true"),
            realm: p["realm"].clone(),
        }
    }

    /// An RFC 2617 client: the Authorization header for one request.
    fn answer(
        c: &Challenge,
        (user, password): (&str, &str),
        method: &str,
        uri: &str,
        nc: u32,
    ) -> String {
        let cnonce = "0a4f113b";
        let nc = format!("{nc:08x}");
        let ha1 = md5_hex(&[user.as_bytes(), c.realm.as_bytes(), password.as_bytes()]);
        let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
        let response = md5_hex(&[
            ha1.as_bytes(),
            c.nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]);
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\", opaque=\"{}\"",
            c.realm, c.nonce, c.opaque
        )
    }

    fn get(path: &str, auth: Option<&str>) -> Request<RequestBody> {
        let mut req = Request::get(path);
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        req.body(RequestBody::empty()).unwrap()
    }

    fn middleware(extra: Value) -> Arc<dyn Middleware> {
        let mut config = json!({ "users": [alice("traefik")] });
        if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
            c.extend(extra);
        }
        FakeBuild::default().build(build, config).unwrap()
    }

    #[tokio::test]
    async fn the_challenge_has_traefiks_exact_shape() {
        let mw = middleware(json!({}));
        let backend = Recorder::default();
        let resp = run(&mw, &backend, get("/", None)).await;
        let value = resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        let c = challenge_of(&resp);
        assert_eq!(
            value,
            format!(
                "Digest realm=\"traefik\", nonce=\"{}\", opaque=\"{}\", algorithm=\"MD5\", qop=\"auth\"",
                c.nonce, c.opaque
            )
        );
        assert_eq!((c.nonce.len(), c.opaque.len()), (16, 16));
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(text(resp).await, "401 Unauthorized\n");
        let again = challenge_of(&run(&mw, &backend, get("/", None)).await);
        assert_ne!(again.nonce, c.nonce, "a fresh nonce per challenge");
        assert_eq!(again.opaque, c.opaque, "one opaque per middleware");
        assert_eq!(backend.count(), 0);
    }

    #[tokio::test]
    async fn the_handshake_succeeds_and_replays_are_stale() {
        let mw = middleware(json!({}));
        let backend = Recorder::default();
        let c = challenge_of(&run(&mw, &backend, get("/a?b=1", None)).await);
        let creds = ("alice", "secret");
        let first = answer(&c, creds, "GET", "/a?b=1", 1);
        let resp = run(&mw, &backend, get("/a?b=1", Some(&first))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(backend.count(), 1);
        // The same nc again: a new challenge with stale=true, backend not called.
        let replay = run(&mw, &backend, get("/a?b=1", Some(&first))).await;
        let stale = challenge_of(&replay);
        assert!(stale.stale);
        let header = replay.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            header.ends_with(&format!(
                "opaque=\"{}\", stale=\"true\", algorithm=\"MD5\", qop=\"auth\"",
                c.opaque
            )),
            "{header}"
        );
        assert_eq!(backend.count(), 1);
        // The next count on the same nonce works; the stale challenge's nonce works too.
        let second = answer(&c, creds, "GET", "/a?b=1", 2);
        assert_eq!(
            run(&mw, &backend, get("/a?b=1", Some(&second)))
                .await
                .status(),
            200
        );
        let fresh = answer(&stale, creds, "GET", "/a?b=1", 1);
        assert_eq!(
            run(&mw, &backend, get("/a?b=1", Some(&fresh)))
                .await
                .status(),
            200
        );
        // A prefix `uri` is accepted (go-http-auth quirk); another path is not.
        let prefix = answer(&c, creds, "GET", "/a", 3);
        assert_eq!(
            run(&mw, &backend, get("/a/deeper", Some(&prefix)))
                .await
                .status(),
            200
        );
        let other = answer(&c, creds, "GET", "/elsewhere", 4);
        assert_eq!(
            run(&mw, &backend, get("/a", Some(&other))).await.status(),
            401
        );
        // The method is part of HA2.
        let post = answer(&c, creds, "POST", "/a", 5);
        assert_eq!(
            run(&mw, &backend, get("/a", Some(&post))).await.status(),
            401
        );
    }

    #[tokio::test]
    async fn wrong_credentials_and_foreign_nonces_get_a_plain_challenge() {
        let mw = middleware(json!({}));
        let backend = Recorder::default();
        let c = challenge_of(&run(&mw, &backend, get("/", None)).await);
        let cases = [
            answer(&c, ("alice", "wrong"), "GET", "/", 1),
            answer(&c, ("bob", "secret"), "GET", "/", 1),
            answer(
                &Challenge {
                    nonce: "bm90IG91cnMgYXQgYWxs".into(),
                    ..challenge_of(&run(&mw, &backend, get("/", None)).await)
                },
                ("alice", "secret"),
                "GET",
                "/",
                1,
            ),
            answer(&c, ("alice", "secret"), "GET", "/", 1).replace(&c.opaque, "AAAAAAAAAAAAAAAA"),
            answer(&c, ("alice", "secret"), "GET", "/", 1).replace("qop=auth", "qop=auth-int"),
            answer(&c, ("alice", "secret"), "GET", "/", 1)
                .replace("algorithm=MD5", "algorithm=SHA-256"),
            answer(&c, ("alice", "secret"), "GET", "/", 1).replacen("Digest", "digest", 1),
            "Basic YWxpY2U6c2VjcmV0".to_owned(),
        ];
        for auth in cases {
            let resp = run(&mw, &backend, get("/", Some(&auth))).await;
            let again = challenge_of(&resp);
            assert!(!again.stale, "{auth}");
        }
        assert_eq!(backend.count(), 0);
        // Omitting `algorithm` is accepted (treated as MD5).
        let bare = answer(&c, ("alice", "secret"), "GET", "/", 1).replace("algorithm=MD5, ", "");
        assert_eq!(
            run(&mw, &backend, get("/", Some(&bare))).await.status(),
            200
        );
    }

    #[tokio::test]
    async fn realm_header_field_remove_header_and_secret() {
        let lines = format!("{}\n{}\n", alice("zone"), alice("other"));
        let mw = FakeBuild::default()
            .with_secret("digest", None, &[("users", lines.as_bytes())])
            .build(
                build,
                json!({"secret": "digest", "realm": "zone", "headerField": "X-User", "removeHeader": true}),
            )
            .unwrap();
        let backend = Recorder::default();
        let c = challenge_of(&run(&mw, &backend, get("/", None)).await);
        assert_eq!(c.realm, "zone");
        let auth = answer(&c, ("alice", "secret"), "GET", "/", 1);
        let req = Request::get("/")
            .header(AUTHORIZATION, auth)
            .header("x-user", "mallory")
            .body(RequestBody::empty())
            .unwrap();
        assert_eq!(run(&mw, &backend, req).await.status(), 200);
        let seen = backend.last();
        assert_eq!(seen.headers["x-user"], "alice");
        assert!(!seen.headers.contains_key(AUTHORIZATION));

        // A user line of another realm never matches.
        let other = middleware(json!({"users": [alice("other")]}));
        let c = challenge_of(&run(&other, &backend, get("/", None)).await);
        let auth = answer(&c, ("alice", "secret"), "GET", "/", 1);
        assert_eq!(
            run(&other, &backend, get("/", Some(&auth))).await.status(),
            401
        );
    }

    #[tokio::test]
    async fn old_nonces_are_evicted_from_a_bounded_cache() {
        let mw = middleware(json!({}));
        let backend = Recorder::default();
        let first = challenge_of(&run(&mw, &backend, get("/", None)).await);
        for _ in 0..(NONCE_CACHE_SIZE + NONCE_CACHE_TOLERANCE + 2) {
            run(&mw, &backend, get("/", None)).await;
        }
        let auth = answer(&first, ("alice", "secret"), "GET", "/", 1);
        let resp = run(&mw, &backend, get("/", Some(&auth))).await;
        assert!(
            !challenge_of(&resp).stale,
            "evicted: unknown nonce, plain 401"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, want) in [
            (json!({}), "needs users or a secret"),
            (json!({"users": ["alice:traefik"]}), "user:realm:HA1"),
            (json!({"users": ["alice:traefik:secret"]}), "32 hex digits"),
            (json!({"secret": "nope"}), "not found"),
        ] {
            let err = FakeBuild::default()
                .build(build, config.clone())
                .unwrap_err();
            assert!(err.to_string().contains(want), "{config}: {err}");
        }
    }

    #[test]
    fn pairs_parse_quotes_and_commas() {
        let p = parse_pairs(r#"username="a,b", realm="x \"y\"", nc=00000001 , qop=auth"#);
        assert_eq!(p["username"], "a,b");
        assert_eq!(p["realm"], "x \"y\"");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["qop"], "auth");
    }
}
