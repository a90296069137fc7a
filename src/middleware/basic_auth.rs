//! `basicAuth`: HTTP Basic authentication against htpasswd users (bcrypt, apr1 /
//! MD5-crypt, `{SHA}`), from an inline `users` list and/or a Secret.
//!
//! bcrypt is deliberately slow, so a flood of guesses must not starve the proxy:
//! bcrypt checks run on the blocking pool, at most one per core at a time across
//! every basicAuth middleware ([`bcrypt_slots`]), and a successful check is
//! remembered for [`CACHE_TTL`] so a browser's repeated requests cost one bcrypt
//! run, not one each. Unknown users are checked against a decoy hash (the most
//! expensive one configured) so they take as long as known users with a wrong
//! password.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::build::{decode, BuildError, Context};
use super::htpasswd::{self, Hash};
use super::{BoxFuture, Middleware, Next, Outcome, RequestContext};
use crate::body::{RequestBody, ResponseBody};

/// How long a successful (bcrypt) verification is remembered.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(30);
/// How many verified credentials one middleware remembers at most.
const CACHE_CAPACITY: usize = 1024;

/// Builds a `basicAuth` middleware from its config section.
pub(super) fn build(
    config: &Value,
    cx: &mut dyn Context,
) -> Result<Arc<dyn Middleware>, BuildError> {
    let config: htpasswd::AuthConfig = decode(config, cx)?;
    let lines = htpasswd::load_lines(cx, "basicAuth", &config, true)?;
    let mut users = HashMap::new();
    for line in &lines {
        let (user, hash) = parse_line(line).map_err(|e| cx.invalid(e))?;
        users.insert(user.to_owned(), Arc::new(hash));
    }
    let decoy = users
        .values()
        .max_by_key(|h| h.work())
        .cloned()
        .ok_or_else(|| cx.invalid("basicAuth needs users or a secret".to_owned()))?;
    let realm = config.realm.filter(|r| !r.is_empty());
    let challenge = challenge(realm.as_deref().unwrap_or("traefik"))
        .ok_or_else(|| cx.invalid("realm is not a valid header value".to_owned()))?;
    let header_field = header_field(config.header_field.as_deref()).map_err(|e| cx.invalid(e))?;
    Ok(Arc::new(BasicAuth {
        users,
        decoy,
        challenge,
        header_field,
        remove_header: config.remove_header,
        cache: VerifiedCache::new(),
        expensive_runs: AtomicU64::new(0),
    }))
}

/// `user:hash` (exactly one colon, as Traefik's parser wants).
fn parse_line(line: &str) -> Result<(&str, Hash), String> {
    let mut parts = line.split(':');
    let (Some(user), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "users entry {:?} is not `name:hash`",
            line.split(':').next().unwrap_or("")
        ));
    };
    let hash = Hash::parse(hash).map_err(|e| format!("user {user:?}: {e}"))?;
    Ok((user, hash))
}

/// `Basic realm="<realm>"` (quotes and backslashes in the realm escaped).
fn challenge(realm: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Basic realm=\"{}\"", quote(realm))).ok()
}

/// Escapes `"` and `\` for a quoted-string.
pub(crate) fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The `headerField` option as a header name.
pub(crate) fn header_field(field: Option<&str>) -> Result<Option<HeaderName>, String> {
    match field.filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => HeaderName::from_bytes(f.as_bytes())
            .map(Some)
            .map_err(|_| format!("headerField {f:?} is not a valid header name")),
    }
}

/// The 401 Traefik answers: `text/plain`, `401 Unauthorized\n`, and a challenge.
pub(crate) fn unauthorized(challenge: HeaderValue) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full("401 Unauthorized\n"));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    resp
}

/// At most one bcrypt verification per core at a time, across all middlewares.
fn bcrypt_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Runs an expensive verification on the blocking pool, within [`bcrypt_slots`].
async fn verify_expensive(hash: Arc<Hash>, password: Vec<u8>) -> bool {
    let Ok(_permit) = bcrypt_slots().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .unwrap_or(false)
}

/// Verified (user, password) pairs, by a keyed SHA-256 of both, for a short while.
#[derive(Debug)]
struct VerifiedCache {
    /// Random per instance, so the stored digests are useless elsewhere.
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifiedCache {
    fn new() -> Self {
        Self {
            key: rand::random(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.key)
            .chain_update((user.len() as u64).to_le_bytes())
            .chain_update(user)
            .chain_update(password)
            .finalize()
            .into()
    }

    fn hit(&self, digest: &[u8; 32]) -> bool {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(digest).is_some_and(|until| *until > now)
    }

    fn remember(&self, digest: [u8; 32]) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY {
            entries.retain(|_, until| *until > now);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, now + CACHE_TTL);
    }
}

/// The built `basicAuth`.
#[derive(Debug)]
struct BasicAuth {
    users: HashMap<String, Arc<Hash>>,
    /// Checked for unknown users so they cost what a known user costs.
    decoy: Arc<Hash>,
    challenge: HeaderValue,
    header_field: Option<HeaderName>,
    remove_header: bool,
    cache: VerifiedCache,
    /// How many expensive (bcrypt) verifications ran, so tests can tell a
    /// cached answer from a computed one without timing them.
    expensive_runs: AtomicU64,
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn credentials(req: &Request<RequestBody>) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = (value.get(..6)?, value.get(6..)?);
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = STANDARD.decode(rest).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

impl BasicAuth {
    /// Whether `password` is `user`'s; costs about the same for unknown users.
    async fn check(&self, user: &[u8], password: Vec<u8>) -> bool {
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u));
        let hash = known.unwrap_or(&self.decoy).clone();
        if !hash.is_expensive() {
            return hash.verify(&password) && known.is_some();
        }
        let digest = self.cache.digest(user, &password);
        if known.is_some() && self.cache.hit(&digest) {
            return true;
        }
        self.expensive_runs.fetch_add(1, Ordering::Relaxed);
        let ok = verify_expensive(hash, password).await && known.is_some();
        if ok {
            self.cache.remember(digest);
        }
        ok
    }
}

impl Middleware for BasicAuth {
    fn handle<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        cx: &'a RequestContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some((user, password)) = credentials(&req) else {
                return Ok(unauthorized(self.challenge.clone()));
            };
            if !self.check(&user, password).await {
                return Ok(unauthorized(self.challenge.clone()));
            }
            if let Some(field) = &self.header_field {
                match HeaderValue::from_bytes(&user) {
                    Ok(value) => {
                        req.headers_mut().insert(field, value);
                    }
                    Err(_) => return Ok(unauthorized(self.challenge.clone())),
                }
            }
            if self.remove_header {
                req.headers_mut().remove(AUTHORIZATION);
            }
            let mut outcome = next.run(req, cx).await;
            if let (Ok(resp), true) = (&mut outcome, crate::accesslog::enabled()) {
                let user = String::from_utf8_lossy(&user).into_owned();
                resp.extensions_mut()
                    .insert(crate::exchange::AuthenticatedUser(user));
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::testing::{run, text, FakeBuild, Recorder};
    use serde_json::json;

    const APR1: &str = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/";
    const MD5: &str = "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1";
    const SHA: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    fn request(auth: Option<&str>) -> Request<RequestBody> {
        let mut req = Request::get("/x").header("x-user", "spoofed");
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        req.body(RequestBody::empty()).unwrap()
    }

    fn build_users(users: &[String], extra: Value) -> Arc<dyn Middleware> {
        let mut config = json!({ "users": users });
        if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), extra) {
            c.extend(extra);
        }
        FakeBuild::default().build(build, config).unwrap()
    }

    async fn status(mw: &Arc<dyn Middleware>, auth: Option<&str>) -> u16 {
        let backend = Recorder::default();
        run(mw, &backend, request(auth)).await.status().as_u16()
    }

    #[tokio::test]
    async fn every_hash_format_accepts_the_right_password_only() {
        let bcrypt_y = bcrypt::hash("secret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let bcrypt_a = bcrypt::hash("secret", 4)
            .unwrap()
            .replacen("$2b$", "$2a$", 1);
        let bcrypt_b = bcrypt::hash("secret", 4).unwrap();
        let users: Vec<String> = [
            ("y", bcrypt_y.as_str()),
            ("a", &bcrypt_a),
            ("b", &bcrypt_b),
            ("apr", APR1),
            ("md5", MD5),
            ("sha", SHA),
        ]
        .iter()
        .map(|(u, h)| format!("{u}:{h}"))
        .collect();
        let mw = build_users(&users, json!({}));
        for user in ["y", "a", "b", "apr", "md5", "sha"] {
            assert_eq!(
                status(&mw, Some(&basic(user, "secret"))).await,
                200,
                "{user}"
            );
            // Twice: the second may come from the cache and must agree.
            assert_eq!(
                status(&mw, Some(&basic(user, "secret"))).await,
                200,
                "{user}"
            );
            assert_eq!(
                status(&mw, Some(&basic(user, "wrong"))).await,
                401,
                "{user}"
            );
            assert_eq!(status(&mw, Some(&basic(user, ""))).await, 401, "{user}");
        }
        assert_eq!(status(&mw, Some(&basic("nobody", "secret"))).await, 401);
        // A password verified for one user is not accepted for another.
        assert_eq!(status(&mw, Some(&basic("sha", "secret"))).await, 200);
        assert_eq!(status(&mw, Some(&basic("shb", "secret"))).await, 401);
    }

    #[tokio::test]
    async fn missing_or_malformed_credentials_get_the_challenge() {
        let mw = build_users(&[format!("alice:{SHA}")], json!({}));
        let backend = Recorder::default();
        for auth in [
            None,
            Some("Bearer abc"),
            Some("Basic !!!"),
            Some("Basic YWxpY2U="), // "alice" without a colon
            Some("Digest username=\"alice\""),
        ] {
            let resp = run(&mw, &backend, request(auth)).await;
            assert_eq!(resp.status(), 401, "{auth:?}");
            assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Basic realm=\"traefik\"");
            assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain");
            assert_eq!(text(resp).await, "401 Unauthorized\n");
        }
        assert_eq!(
            backend.count(),
            0,
            "the backend never saw a refused request"
        );
        // The scheme is case-insensitive, as in Go's Request.BasicAuth.
        let lower = basic("alice", "secret").replacen("Basic", "bAsIc", 1);
        assert_eq!(status(&mw, Some(&lower)).await, 200);
    }

    #[tokio::test]
    async fn realm_header_field_and_remove_header() {
        let users = [format!("alice:{SHA}")];
        let mw = build_users(
            &users,
            json!({"realm": "my \"zone\"", "headerField": "X-User", "removeHeader": true}),
        );
        let backend = Recorder::default();
        let resp = run(&mw, &backend, request(None)).await;
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Basic realm=\"my \\\"zone\\\"\""
        );
        let resp = run(&mw, &backend, request(Some(&basic("alice", "secret")))).await;
        assert_eq!(resp.status(), 200);
        let seen = backend.last();
        assert_eq!(seen.headers["x-user"], "alice", "spoofed value replaced");
        assert!(!seen.headers.contains_key(AUTHORIZATION));

        let keep = build_users(&users, json!({}));
        run(&keep, &backend, request(Some(&basic("alice", "secret")))).await;
        let seen = backend.last();
        assert!(seen.headers.contains_key(AUTHORIZATION), "kept by default");
        assert_eq!(
            seen.headers["x-user"], "spoofed",
            "no headerField: untouched"
        );
    }

    #[tokio::test]
    async fn users_come_from_secrets_of_both_shapes() {
        let lines = format!("alice:{SHA}\nbob:{APR1}\n");
        let mw = FakeBuild::default()
            .with_secret("htpasswd", None, &[("users", lines.as_bytes())])
            .build(build, json!({"secret": "htpasswd"}))
            .unwrap();
        assert_eq!(status(&mw, Some(&basic("alice", "secret"))).await, 200);
        assert_eq!(status(&mw, Some(&basic("bob", "secret"))).await, 200);
        assert_eq!(status(&mw, Some(&basic("bob", "nope"))).await, 401);

        let typed = FakeBuild::default()
            .with_secret(
                "creds",
                Some("kubernetes.io/basic-auth"),
                &[("username", b"carol"), ("password", b"pa:ss")],
            )
            .build(build, json!({"secret": "creds"}))
            .unwrap();
        assert_eq!(status(&typed, Some(&basic("carol", "pa:ss"))).await, 200);
        assert_eq!(status(&typed, Some(&basic("carol", "pa"))).await, 401);

        // Inline users override the Secret's on a duplicate name.
        let both = FakeBuild::default()
            .with_secret("htpasswd", None, &[("users", lines.as_bytes())])
            .build(
                build,
                json!({"secret": "htpasswd", "users": [format!("alice:{MD5}")]}),
            )
            .unwrap();
        assert_eq!(status(&both, Some(&basic("alice", "secret"))).await, 200);
        assert_eq!(status(&both, Some(&basic("bob", "secret"))).await, 200);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let cases = [
            (json!({}), "needs users or a secret"),
            (json!({"users": ["alice:secret"]}), "plain text"),
            (json!({"users": ["alice"]}), "not `name:hash`"),
            (json!({"users": ["a:b:c"]}), "not `name:hash`"),
            (json!({"secret": "missing"}), "not found"),
            (json!({"secret": ""}), "auth secret must be set"),
            (
                json!({"users": [format!("a:{SHA}")], "headerField": "bad header"}),
                "headerField",
            ),
            (json!({"users": "alice"}), "invalid type"),
        ];
        for (config, want) in cases {
            let err = FakeBuild::default()
                .build(build, config.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{config}: {err}");
        }
        let two_keys = FakeBuild::default()
            .with_secret("s", None, &[("a", b"x:y"), ("b", b"z:w")])
            .build(build, json!({"secret": "s"}))
            .unwrap_err()
            .to_string();
        assert!(two_keys.contains("single element"), "{two_keys}");
    }

    #[tokio::test]
    async fn unknown_users_cost_about_what_known_users_cost() {
        // Cost 8: milliseconds per check, far above the cost of a lookup. Other
        // tests share the machine, which only ever makes a run slower: compare
        // the fastest of a few runs against the fastest bare bcrypt check.
        let hash = bcrypt::hash("secret", 8).unwrap();
        let parsed = Hash::parse(&hash).unwrap();
        let one = (0..3)
            .map(|_| {
                let start = Instant::now();
                assert!(!parsed.verify(b"wrong"));
                start.elapsed()
            })
            .min()
            .unwrap();
        let mw = build_users(&[format!("alice:{hash}")], json!({}));
        let fastest = |user: &'static str| {
            let mw = mw.clone();
            async move {
                let mut best = Duration::MAX;
                for _ in 0..3 {
                    let start = Instant::now();
                    assert_eq!(status(&mw, Some(&basic(user, "wrong"))).await, 401);
                    best = best.min(start.elapsed());
                }
                best
            }
        };
        let known = fastest("alice").await;
        let unknown = fastest("mallory").await;
        assert!(
            unknown * 2 > one && known * 2 > one,
            "bcrypt takes {one:?}; known user {known:?}, unknown user {unknown:?}: both must pay it"
        );
    }

    /// Counts bcrypt runs rather than timing them: a busy machine cannot
    /// make a cached answer look computed or the other way round.
    #[tokio::test]
    async fn successful_bcrypt_checks_are_cached_and_failures_are_not() {
        let hash = bcrypt::hash("secret", 10).unwrap();
        let alice = Arc::new(Hash::parse(&hash).unwrap());
        let auth = BasicAuth {
            users: HashMap::from([("alice".to_owned(), alice.clone())]),
            decoy: alice,
            challenge: challenge("traefik").unwrap(),
            header_field: None,
            remove_header: false,
            cache: VerifiedCache::new(),
            expensive_runs: AtomicU64::new(0),
        };
        let runs = || auth.expensive_runs.load(Ordering::Relaxed);
        assert!(auth.check(b"alice", b"secret".to_vec()).await);
        assert_eq!(runs(), 1, "the first check runs bcrypt");
        assert!(auth.check(b"alice", b"secret".to_vec()).await);
        assert_eq!(runs(), 1, "the second check of the same pair is cached");
        for expected in [2, 3] {
            assert!(!auth.check(b"alice", b"wrong".to_vec()).await);
            assert_eq!(runs(), expected, "a wrong password is never cached");
        }
        assert!(!auth.check(b"mallory", b"secret".to_vec()).await);
        assert_eq!(runs(), 4, "an unknown user pays bcrypt and is never cached");
        assert!(!auth.check(b"mallory", b"secret".to_vec()).await);
        assert_eq!(runs(), 5);
        // Through the middleware: the cached answer still lets the request in.
        let mw = build_users(&[format!("alice:{hash}")], json!({}));
        assert_eq!(status(&mw, Some(&basic("alice", "secret"))).await, 200);
        assert_eq!(status(&mw, Some(&basic("alice", "secret"))).await, 200);
        assert_eq!(status(&mw, Some(&basic("alice", "wrong"))).await, 401);
    }

    /// One runtime thread, as each worker of the per-core data plane has.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flood_of_bad_passwords_leaves_the_runtime_responsive() {
        let hash = bcrypt::hash("secret", 10).unwrap();
        let one = {
            let parsed = Hash::parse(&hash).unwrap();
            let start = Instant::now();
            assert!(!parsed.verify(b"bad"));
            start.elapsed()
        };
        let mw = build_users(&[format!("alice:{hash}")], json!({}));
        let flood: Vec<_> = (0..4)
            .map(|i| {
                let mw = mw.clone();
                let auth = basic("alice", &format!("bad{i}"));
                tokio::spawn(async move { status(&mw, Some(&auth)).await })
            })
            .collect();
        // The flood runs while we sleep; bcrypt must not hold the runtime thread.
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let cheap = build_users(&[format!("bob:{SHA}")], json!({}));
        assert_eq!(status(&cheap, Some(&basic("bob", "secret"))).await, 200);
        let quick = start.elapsed();
        assert!(
            quick * 4 < one,
            "a cheap request took {quick:?}; one bcrypt check takes {one:?}"
        );
        for task in flood {
            assert_eq!(task.await.unwrap(), 401);
        }
    }
}
