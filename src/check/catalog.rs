//! Every annotation sluice knows of: all of ingress-nginx's
//! (`nginx.ingress.kubernetes.io/*`, as documented for ingress-nginx v1.15 and
//! read by its `internal/ingress/annotations/` parsers) and Traefik's Kubernetes
//! Ingress provider's (`traefik.ingress.kubernetes.io/router.*`, `service.*`),
//! each with what sluice does with it.
//!
//! This table is the single source of truth: `sluice check` reports from it
//! and the table in `docs/annotations.md` is rendered from it (a unit test
//! keeps them equal). To record that an annotation is now implemented, change
//! its status on its one line, e.g. `Ignored("...")` to `Supported`, then run
//! `SLUICE_BLESS=1 cargo test --lib check::` to rewrite the docs.
//!
//! Statuses describe valid values; a value sluice cannot use is reported by
//! the compiler (`invalid_annotation`), which `sluice check` shows as well.

use std::fmt;

use serde::Serialize;

/// What sluice does with an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Honoured, with ingress-nginx's (or Traefik's, for its own annotations) semantics.
    Supported,
    /// Honoured, but it behaves differently; the reason says how.
    Differs(&'static str),
    /// The Ingress's routes fail closed (answer 500); the reason says when.
    Refused(&'static str),
    /// Not implemented: no effect; the reason says what is lost.
    Ignored(&'static str),
}

impl Status {
    /// The status's stable lowercase name (`supported`, `differs`, `refused`, `ignored`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Supported => "supported",
            Self::Differs(_) => "differs",
            Self::Refused(_) => "refused",
            Self::Ignored(_) => "ignored",
        }
    }

    /// The reason, empty for [`Status::Supported`].
    pub fn reason(self) -> &'static str {
        match self {
            Self::Supported => "",
            Self::Differs(r) | Self::Refused(r) | Self::Ignored(r) => r,
        }
    }

    /// Whether an Ingress carrying it behaves as it did under its previous controller.
    pub fn is_supported(self) -> bool {
        self == Self::Supported
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// How Traefik's ingress-nginx provider treats an ingress-nginx annotation
/// (its documentation as of Traefik v3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traefik {
    /// Supported, no caveat documented.
    Supported,
    /// Supported with a documented limitation or difference.
    Partial(&'static str),
    /// Not supported (listed as unsupported, or not listed at all).
    Unsupported,
    /// One of Traefik's own Ingress-provider annotations.
    Own,
}

impl fmt::Display for Traefik {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Supported => f.write_str("supported"),
            Self::Partial(note) => write!(f, "partly: {note}"),
            Self::Unsupported => f.write_str("not supported"),
            Self::Own => f.write_str("Traefik's own annotation"),
        }
    }
}

/// The kind of object an annotation belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum On {
    /// The Ingress.
    Ingress,
    /// The backend Service.
    Service,
}

/// One annotation and what sluice does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The full key, exactly as ingress-nginx or Traefik spells it (Traefik's
    /// `router.tls.domains.n.*` stand for any index `n`).
    pub key: &'static str,
    /// The object it belongs on.
    pub on: On,
    /// What sluice does with it.
    pub status: Status,
    /// How Traefik's ingress-nginx provider treats it.
    pub traefik: Traefik,
}

impl Entry {
    /// The key without its `nginx.ingress.kubernetes.io/` or
    /// `traefik.ingress.kubernetes.io/` prefix.
    pub fn short_name(&self) -> &'static str {
        self.key
            .strip_prefix(NGINX_PREFIX)
            .or_else(|| self.key.strip_prefix(TRAEFIK_PREFIX))
            .unwrap_or(self.key)
    }

    /// Whether it is one of ingress-nginx's annotations.
    pub fn is_nginx(&self) -> bool {
        self.key.starts_with(NGINX_PREFIX)
    }

    /// The status for one value: the entry's status, unless [`VALUE_NOTES`]
    /// says this value behaves differently.
    pub fn status_for(&self, value: &str) -> Status {
        VALUE_NOTES
            .iter()
            .find(|(key, v, _)| *key == self.key && v.eq_ignore_ascii_case(value.trim()))
            .map_or(self.status, |(_, _, status)| *status)
    }
}

/// The prefix of ingress-nginx's annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The prefix of Traefik's Kubernetes Ingress provider's annotations.
pub const TRAEFIK_PREFIX: &str = "traefik.ingress.kubernetes.io/";

/// The entry for an annotation key, if the key is one sluice knows of
/// (`router.tls.domains.0.main` finds `router.tls.domains.n.main`).
pub fn lookup(annotation_key: &str) -> Option<&'static Entry> {
    if let Some(entry) = CATALOG.iter().find(|e| e.key == annotation_key) {
        return Some(entry);
    }
    let rest = annotation_key.strip_prefix(TRAEFIK_PREFIX)?;
    let index = rest.strip_prefix("router.tls.domains.")?;
    let (n, field) = index.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    CATALOG
        .iter()
        .find(|e| e.key.strip_prefix(TRAEFIK_PREFIX_DOMAINS) == Some(field))
}

const TRAEFIK_PREFIX_DOMAINS: &str = "traefik.ingress.kubernetes.io/router.tls.domains.n.";

/// Every entry: ingress-nginx's annotations first (alphabetically), then Traefik's.
pub fn all() -> &'static [Entry] {
    CATALOG
}

/// ingress-nginx's annotations only.
pub fn nginx() -> impl Iterator<Item = &'static Entry> {
    CATALOG.iter().filter(|e| e.is_nginx())
}

/// Values of a supported annotation that behave differently: (key, value, status).
pub static VALUE_NOTES: &[(&str, &str, Status)] = &[
    (
        "nginx.ingress.kubernetes.io/backend-protocol",
        "AUTO_HTTP",
        Differs("AUTO_HTTP always speaks plain HTTP to the backend; ingress-nginx uses the client's scheme (HTTPS clients, HTTPS backend)"),
    ),
];

macro_rules! nginx {
    ($name:literal) => {
        concat!("nginx.ingress.kubernetes.io/", $name)
    };
}

macro_rules! traefik {
    ($name:literal) => {
        concat!("traefik.ingress.kubernetes.io/", $name)
    };
}

const fn ing(key: &'static str, status: Status, traefik: Traefik) -> Entry {
    Entry {
        key,
        on: On::Ingress,
        status,
        traefik,
    }
}

const fn svc(key: &'static str, status: Status) -> Entry {
    Entry {
        key,
        on: On::Service,
        status,
        traefik: Traefik::Own,
    }
}

use Status::{Differs, Ignored, Refused, Supported};
use Traefik::{Own, Partial, Unsupported};
/// Traefik's provider supports it (short alias for the table).
const YES: Traefik = Traefik::Supported;
const NO: Traefik = Unsupported;

// Reasons shared by several annotations.
const EXTERNAL_AUTH_PART: &str = "not implemented (part of auth-url external authentication): the route is served WITHOUT external authentication; use a forwardAuth Middleware";
const AFFINITY: &str = "not implemented here: no sticky sessions; put traefik.ingress.kubernetes.io/service.sticky.cookie on the Service";
const BUFFERS: &str =
    "no effect: sluice streams bodies through small fixed buffers and never spools to disk";
const BACKEND_TLS: &str = "not read: backend TLS uses rustls' defaults (TLS 1.2 and 1.3, its cipher suites, no chain depth limit)";
const CLIENT_TLS: &str = "not read: client TLS uses rustls' cipher suites for every host (--tls-min-version sets the lowest version)";
const TRACING: &str = "not read per route: tracing is global (--tracing-otlp-endpoint) and an incoming traceparent is always continued";
const WAF: &str = "no WAF: the route is served WITHOUT ModSecurity inspection";
const MIRROR: &str = "not implemented: requests are not mirrored";
const FASTCGI: &str =
    "not implemented: no FastCGI backends (backend-protocol FCGI is reported as invalid)";
const OWN_TLS: &str = "not implemented: certificates come only from the Ingress's spec.tls Secrets (use cert-manager)";
const OWN_OBSERVABILITY: &str =
    "not read: access logs, metrics and tracing are configured globally by flags";

/// The catalog. One line per annotation: flip its status here.
#[rustfmt::skip]
static CATALOG: &[Entry] = &[
    ing(nginx!("affinity"), Differs("only `cookie`; the cookie value is sluice's own endpoint id, not nginx's hash"), YES),
    ing(nginx!("affinity-canary-behavior"), Ignored(AFFINITY), Partial("only the sticky behaviour")),
    ing(nginx!("affinity-mode"), Differs("read but both modes behave alike: a client stays on its endpoint while it is ready, and moves (with a new cookie) when it is gone"), Partial("only persistent mode")),
    ing(nginx!("allowlist-source-range"), Supported, YES),
    ing(nginx!("app-root"), Supported, YES),
    ing(nginx!("auth-always-set-cookie"), Ignored(EXTERNAL_AUTH_PART), NO),
    ing(nginx!("auth-cache-duration"), Supported, NO),
    ing(nginx!("auth-cache-key"), Supported, NO),
    ing(nginx!("auth-keepalive"), Ignored(EXTERNAL_AUTH_PART), NO),
    ing(nginx!("auth-keepalive-requests"), Ignored(EXTERNAL_AUTH_PART), NO),
    ing(nginx!("auth-keepalive-share-vars"), Ignored(EXTERNAL_AUTH_PART), NO),
    ing(nginx!("auth-keepalive-timeout"), Ignored(EXTERNAL_AUTH_PART), NO),
    ing(nginx!("auth-method"), Supported, YES),
    ing(nginx!("auth-proxy-set-headers"), Differs("values may use $scheme, $host, $http_host, $request_uri, $uri, $args and $is_args; another nginx variable, a missing ConfigMap or a bad header name fails the route closed (500; ingress-nginx denies it with 503)"), NO),
    ing(nginx!("auth-realm"), Differs("an empty realm becomes `traefik`, where nginx sends realm=\"\""), YES),
    ing(nginx!("auth-request-redirect"), Supported, NO),
    ing(nginx!("auth-response-headers"), Supported, YES),
    ing(nginx!("auth-secret"), Differs("`ns/name` of another namespace is refused (500), as ingress-nginx does unless allow-cross-namespace-resources is on"), YES),
    ing(nginx!("auth-secret-type"), Supported, YES),
    ing(nginx!("auth-signin"), Supported, Partial("redirects to the sign-in URL on 401")),
    ing(nginx!("auth-signin-redirect-param"), Supported, NO),
    ing(nginx!("auth-snippet"), Refused("runs inside nginx's auth subrequest, which sluice does not have: the route answers 500 rather than serve without it"), Partial("a few directives, with allowSnippetAnnotations")),
    ing(nginx!("auth-tls-error-page"), Differs("a path on the same host (`/page`) is answered with a 302 to it and a request for exactly that path skips the certificate check (nginx serves it by an internal redirect); an `@named` location fails the route closed (500)"), NO),
    ing(nginx!("auth-tls-match-cn"), Differs("a Rust regex on the RFC 2253 subject (as $ssl_client_s_dn prints it); PCRE-only syntax (look-around, backreferences) fails the route closed (500)"), NO),
    ing(nginx!("auth-tls-pass-certificate-to-upstream"), Differs("an ssl-client-cert header sent by the client is removed even when false (nginx passes it on)"), YES),
    ing(nginx!("auth-tls-secret"), Differs("an unusable Secret (missing, no ca.crt, not a CA, another namespace) fails every route of the host closed with 500 (ingress-nginx answers 403, and serves without mTLS when ca.crt is missing); a rule without a host is refused (500); every certificate of ca.crt is a trust anchor (OpenSSL needs a path to a self-signed root)"), Partial("a failed verification ends the TLS handshake instead of answering 400")),
    ing(nginx!("auth-tls-verify-client"), Differs("plain-HTTP requests to the host are checked too: with `on` they get 400 (nginx's port-80 server checks nothing; its ssl-redirect usually answers first)"), Partial("a failed verification ends the TLS handshake instead of answering 400")),
    ing(nginx!("auth-tls-verify-depth"), Supported, Partial("no depth limit")),
    ing(nginx!("auth-type"), Supported, YES),
    ing(nginx!("auth-url"), Differs("https auth URLs are not certificate-verified (nginx's proxy_ssl_verify off default); nginx variables in the URL are refused"), Partial("forwards the original request instead of an nginx subrequest")),
    ing(nginx!("backend-protocol"), Supported, Partial("no FCGI, no AUTO_HTTP")),
    ing(nginx!("canary"), Supported, YES),
    ing(nginx!("canary-by-cookie"), Supported, YES),
    ing(nginx!("canary-by-header"), Supported, YES),
    ing(nginx!("canary-by-header-pattern"), Supported, YES),
    ing(nginx!("canary-by-header-value"), Supported, YES),
    ing(nginx!("canary-weight"), Supported, YES),
    ing(nginx!("canary-weight-total"), Supported, YES),
    ing(nginx!("client-body-buffer-size"), Ignored("no effect: sluice streams request bodies"), YES),
    ing(nginx!("configuration-snippet"), Differs("never run as nginx configuration: more_set_headers, more_set_input_headers, add_header, proxy_set_header, return and rewrite (redirect, permanent or break) become middlewares; any other directive makes the route answer 500"), Partial("a few directives, with allowSnippetAnnotations")),
    ing(nginx!("connection-proxy-header"), Ignored("not read: sluice sets the backend's Connection header itself (hop-by-hop rules)"), NO),
    ing(nginx!("cors-allow-credentials"), Supported, YES),
    ing(nginx!("cors-allow-headers"), Supported, YES),
    ing(nginx!("cors-allow-methods"), Supported, YES),
    ing(nginx!("cors-allow-origin"), Differs("matched anchored at both ends (nginx anchors only the end)"), YES),
    ing(nginx!("cors-expose-headers"), Supported, YES),
    ing(nginx!("cors-max-age"), Supported, YES),
    ing(nginx!("custom-headers"), Differs("global-allowed-response-headers is enforced only with --nginx-configmap (without it every header may be set); a missing ConfigMap or a header that is not allowed answers 500 where ingress-nginx denies with 503"), Partial("no header allowlist")),
    ing(nginx!("custom-http-errors"), Differs("without a usable default-backend annotation the listed statuses get sluice's 404, as ingress-nginx's built-in default backend answers (there is no --default-backend-service); the request body is not sent to the error backend"), YES),
    ing(nginx!("default-backend"), Differs("while it stands in for a Service without endpoints, canary Ingresses and the Ingress's router.middlewares are skipped; X-Service-Port is the port number"), Partial("used only when the backend has no endpoint")),
    ing(nginx!("denylist-source-range"), Supported, NO),
    ing(nginx!("disable-proxy-intercept-errors"), Differs("only the proxy's own 502/503/504 still get the error page; answers of the Ingress's other annotations (401, 403, limits' 503) pass unchanged"), NO),
    ing(nginx!("enable-access-log"), Ignored("not read per route: --access-log applies to every route"), Partial("opts routes out of (or in to) the global access log")),
    ing(nginx!("enable-cors"), Differs("origins are matched anchored at both ends; with no usable origin CORS stays off instead of falling back to *"), Partial("preflight and plain requests get different headers")),
    ing(nginx!("enable-global-auth"), Ignored("not read: sluice has no global external authentication"), YES),
    ing(nginx!("enable-modsecurity"), Ignored(WAF), NO),
    ing(nginx!("enable-opentelemetry"), Ignored(TRACING), NO),
    ing(nginx!("enable-owasp-core-rules"), Ignored(WAF), NO),
    ing(nginx!("enable-rewrite-log"), Ignored("no effect: sluice has no nginx rewrite log"), NO),
    ing(nginx!("fastcgi-index"), Ignored(FASTCGI), NO),
    ing(nginx!("fastcgi-params-configmap"), Ignored(FASTCGI), NO),
    ing(nginx!("force-ssl-redirect"), Supported, Partial("cannot be turned off per route when enabled globally")),
    ing(nginx!("from-to-www-redirect"), Supported, Partial("no wildcard hosts")),
    ing(nginx!("http2-push-preload"), Ignored("no effect: sluice does no HTTP/2 server push"), NO),
    ing(nginx!("limit-allowlist"), Supported, NO),
    ing(nginx!("limit-burst-multiplier"), Supported, Partial("429 instead of 503")),
    ing(nginx!("limit-connections"), Supported, Partial("429 instead of 503")),
    ing(nginx!("limit-rate"), Ignored("not implemented: responses are sent WITHOUT a bandwidth limit"), NO),
    ing(nginx!("limit-rate-after"), Ignored("not implemented: responses are sent WITHOUT a bandwidth limit"), NO),
    ing(nginx!("limit-rpm"), Supported, Partial("429 instead of 503")),
    ing(nginx!("limit-rps"), Supported, Partial("429 instead of 503")),
    ing(nginx!("limit-whitelist"), Supported, NO),
    ing(nginx!("load-balance"), Differs("round_robin and ewma (other values are reported and balanced round-robin); ewma scores the time to the response head, not the whole response, and does not skip endpoints proxy-next-upstream already tried; per route, where nginx applies the first Ingress's value to the whole Service"), NO),
    ing(nginx!("mirror-host"), Ignored(MIRROR), NO),
    ing(nginx!("mirror-request-body"), Ignored(MIRROR), NO),
    ing(nginx!("mirror-target"), Ignored(MIRROR), NO),
    ing(nginx!("modsecurity-snippet"), Ignored(WAF), NO),
    ing(nginx!("modsecurity-transaction-id"), Ignored(WAF), NO),
    ing(nginx!("opentelemetry-operation-name"), Ignored(TRACING), NO),
    ing(nginx!("opentelemetry-trust-incoming-span"), Ignored(TRACING), NO),
    ing(nginx!("permanent-redirect"), Supported, Partial("301 by default")),
    ing(nginx!("permanent-redirect-code"), Supported, Partial("3xx codes only")),
    ing(nginx!("preserve-trailing-slash"), Supported, NO),
    ing(nginx!("proxy-body-size"), Differs("applied only where the annotation is set (ingress-nginx limits every Ingress to 1m by default); a chunked body may reach the backend before the 413"), YES),
    ing(nginx!("proxy-buffer-size"), Ignored(BUFFERS), YES),
    ing(nginx!("proxy-buffering"), Ignored("`on` has no effect: responses are always streamed (ingress-nginx's default, off)"), YES),
    ing(nginx!("proxy-buffers-number"), Ignored(BUFFERS), Partial("computes the size of one buffer")),
    ing(nginx!("proxy-busy-buffers-size"), Ignored(BUFFERS), NO),
    ing(nginx!("proxy-connect-timeout"), Supported, YES),
    ing(nginx!("proxy-cookie-domain"), Ignored("not implemented: Set-Cookie domains from the backend are passed unchanged"), NO),
    ing(nginx!("proxy-cookie-path"), Ignored("not implemented: Set-Cookie paths from the backend are passed unchanged"), NO),
    ing(nginx!("proxy-http-version"), Ignored("not read: plain-HTTP backends get HTTP/1.1 (backend-protocol selects HTTP/2)"), Partial("1.1 only")),
    ing(nginx!("proxy-max-temp-file-size"), Ignored(BUFFERS), YES),
    ing(nginx!("proxy-next-upstream"), Differs("error/timeout retry network failures before a response, http_<code> retries on those statuses (retry middleware); read only where annotated: unannotated Ingresses are not retried, while ingress-nginx retries `error timeout` everywhere"), Partial("a retry may reach the same server")),
    ing(nginx!("proxy-next-upstream-timeout"), Supported, YES),
    ing(nginx!("proxy-next-upstream-tries"), Differs("0 (unlimited) becomes 10"), Partial("0 (unlimited) is capped to the number of servers")),
    ing(nginx!("proxy-read-timeout"), Differs("bounds the wait for the response head only; a slow streaming body is not cut"), YES),
    ing(nginx!("proxy-redirect-from"), Ignored("not implemented: Location headers from the backend are passed unchanged"), NO),
    ing(nginx!("proxy-redirect-to"), Ignored("not implemented: Location headers from the backend are passed unchanged"), NO),
    ing(nginx!("proxy-request-buffering"), Ignored("`on` has no effect: request bodies are streamed (ingress-nginx buffers them by default)"), YES),
    ing(nginx!("proxy-send-timeout"), Ignored("no per-route send timeout: sluice streams request bodies (--body-read-timeout bounds the client side)"), YES),
    ing(nginx!("proxy-ssl-ciphers"), Ignored(BACKEND_TLS), NO),
    ing(nginx!("proxy-ssl-name"), Supported, YES),
    ing(nginx!("proxy-ssl-protocols"), Ignored(BACKEND_TLS), NO),
    ing(nginx!("proxy-ssl-secret"), Differs("only ca.crt is used: a tls.crt/tls.key in the Secret is NOT presented to the backend as a client certificate (ingress-nginx does mTLS with it)"), YES),
    ing(nginx!("proxy-ssl-server-name"), Ignored("not read: with proxy-ssl-verify on, the verified name is always sent as SNI; without verification no SNI is sent"), YES),
    ing(nginx!("proxy-ssl-verify"), Supported, YES),
    ing(nginx!("proxy-ssl-verify-depth"), Ignored(BACKEND_TLS), NO),
    ing(nginx!("relative-redirects"), Ignored("not read: sluice's own redirects are absolute"), NO),
    ing(nginx!("rewrite-target"), Supported, YES),
    ing(nginx!("satisfy"), Differs("with both auth-type and auth-url set, both must pass even under `any`"), NO),
    ing(nginx!("server-alias"), Differs("every rule of the Ingress is also served on each alias; other Ingresses' paths on the main host are not"), Partial("Ingress host rules win over aliases")),
    ing(nginx!("server-snippet"), Differs("never run as nginx configuration: more_set_headers, more_set_input_headers, add_header, proxy_set_header, return and rewrite (redirect, permanent or break) become middlewares; any other directive makes the route answer 500"), Partial("a few directives, with allowSnippetAnnotations")),
    ing(nginx!("service-upstream"), Supported, YES),
    ing(nginx!("session-cookie-change-on-failure"), Differs("always on: a client whose endpoint is gone is moved to another"), NO),
    ing(nginx!("session-cookie-conditional-samesite-none"), Ignored(AFFINITY), NO),
    ing(nginx!("session-cookie-domain"), Supported, YES),
    ing(nginx!("session-cookie-expires"), Supported, YES),
    ing(nginx!("session-cookie-max-age"), Supported, YES),
    ing(nginx!("session-cookie-name"), Supported, YES),
    ing(nginx!("session-cookie-path"), Supported, YES),
    ing(nginx!("session-cookie-samesite"), Supported, YES),
    ing(nginx!("session-cookie-secure"), Supported, YES),
    ing(nginx!("ssl-ciphers"), Ignored(CLIENT_TLS), NO),
    ing(nginx!("ssl-passthrough"), Ignored("not implemented: sluice terminates TLS with the Ingress's certificates; the backend never sees the client's TLS"), Partial("SNI and default backend handling differ")),
    ing(nginx!("ssl-prefer-server-ciphers"), Ignored(CLIENT_TLS), NO),
    ing(nginx!("ssl-redirect"), Supported, Partial("cannot be turned off per route when enabled globally")),
    ing(nginx!("stream-snippet"), Ignored("configures TCP servers, not HTTP routes: NOT run, reported and ignored (sluice serves no TCP routes)"), NO),
    ing(nginx!("temporal-redirect"), Supported, Partial("302 by default; wins over permanent-redirect")),
    ing(nginx!("temporal-redirect-code"), Supported, Partial("3xx codes only")),
    ing(nginx!("upstream-hash-by"), Differs("variables are read from the request as forwarded (after rewrite-target, upstream-vhost and header steps; nginx reads $request_uri, $host and $http_* as the client sent them); an unknown variable is reported and the annotation ignored (nginx hashes it as empty); per route, where nginx applies the first Ingress's value to the whole Service; with affinity: cookie, new clients are hashed then pinned"), Partial("a few nginx variables")),
    ing(nginx!("upstream-hash-by-subset"), Supported, NO),
    ing(nginx!("upstream-hash-by-subset-size"), Differs("a size above the endpoint count uses every endpoint once (nginx repeats endpoints to fill the subset)"), NO),
    ing(nginx!("upstream-vhost"), Supported, YES),
    ing(nginx!("use-port-in-redirects"), Ignored("not read: redirects name the port of --https-redirect-port"), NO),
    ing(nginx!("use-regex"), Supported, YES),
    ing(nginx!("whitelist-source-range"), Supported, YES),
    ing(nginx!("x-forwarded-prefix"), Supported, YES),
    // Traefik's Kubernetes Ingress provider.
    ing(traefik!("router.entrypoints"), Supported, Own),
    ing(traefik!("router.middlewares"), Supported, Own),
    ing(traefik!("router.observability.accesslogs"), Ignored(OWN_OBSERVABILITY), Own),
    ing(traefik!("router.observability.metrics"), Ignored(OWN_OBSERVABILITY), Own),
    ing(traefik!("router.observability.traceVerbosity"), Ignored(OWN_OBSERVABILITY), Own),
    ing(traefik!("router.observability.tracing"), Ignored(OWN_OBSERVABILITY), Own),
    ing(traefik!("router.pathmatcher"), Supported, Own),
    ing(traefik!("router.priority"), Supported, Own),
    ing(traefik!("router.rulesyntax"), Ignored("not read: rules are built from the Ingress, in one syntax"), Own),
    ing(traefik!("router.tls"), Supported, Own),
    ing(traefik!("router.tls.certresolver"), Ignored(OWN_TLS), Own),
    ing(traefik!("router.tls.domains.n.main"), Ignored(OWN_TLS), Own),
    ing(traefik!("router.tls.domains.n.sans"), Ignored(OWN_TLS), Own),
    ing(traefik!("router.tls.options"), Ignored("not read: TLS options are global (--tls-min-version)"), Own),
    svc(traefik!("service.middlewares"), Ignored("not implemented: use router.middlewares on the Ingress")),
    svc(traefik!("service.nativelb"), Supported),
    svc(traefik!("service.nodeportlb"), Ignored("not implemented: requests go to the pod endpoints (service.nativelb for the ClusterIP)")),
    svc(traefik!("service.passhostheader"), Supported),
    svc(traefik!("service.serversscheme"), Supported),
    svc(traefik!("service.serverstransport"), Ignored("not implemented: no ServersTransport; verify backends with the proxy-ssl-* annotations")),
    svc(traefik!("service.sticky.cookie"), Supported),
    svc(traefik!("service.sticky.cookie.domain"), Supported),
    svc(traefik!("service.sticky.cookie.httponly"), Supported),
    svc(traefik!("service.sticky.cookie.maxage"), Supported),
    svc(traefik!("service.sticky.cookie.name"), Supported),
    svc(traefik!("service.sticky.cookie.path"), Supported),
    svc(traefik!("service.sticky.cookie.samesite"), Supported),
    svc(traefik!("service.sticky.cookie.secure"), Supported),
];

/// The Markdown table of ingress-nginx's annotations that docs/annotations.md
/// carries between its `nginx-annotations` markers.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| annotation (`nginx.ingress.kubernetes.io/`) | sluice | difference from ingress-nginx | Traefik's provider |\n|---|---|---|---|\n",
    );
    for entry in nginx() {
        let mut difference = entry.status.reason().to_owned();
        for (key, value, status) in VALUE_NOTES {
            if *key == entry.key && *status != entry.status {
                if !difference.is_empty() {
                    difference.push_str("; ");
                }
                difference.push_str(&format!("`{value}` {}: {}", status.name(), status.reason()));
            }
        }
        if difference.is_empty() {
            difference.push('—');
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            entry.short_name(),
            entry.status,
            difference,
            entry.traefik
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_are_unique_sorted_and_reasons_fit_a_table_cell() {
        let mut seen = HashSet::new();
        for entry in all() {
            assert!(seen.insert(entry.key), "{} twice", entry.key);
            assert!(
                entry.key.starts_with(NGINX_PREFIX) || entry.key.starts_with(TRAEFIK_PREFIX),
                "{}",
                entry.key
            );
            assert!(!entry.status.reason().contains('|'), "{}", entry.key);
            assert!(!entry.status.reason().contains('\n'), "{}", entry.key);
            if let Traefik::Partial(note) = entry.traefik {
                assert!(!note.contains('|'), "{}", entry.key);
            }
            match entry.status {
                Status::Supported => {}
                other => assert!(!other.reason().is_empty(), "{}", entry.key),
            }
        }
        let names: Vec<&str> = nginx().map(Entry::short_name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "ingress-nginx entries stay alphabetical");
    }

    #[test]
    fn every_ingress_nginx_annotation_is_listed() {
        // ingress-nginx v1.15's documented annotations plus those its parsers
        // read under another name (aliases, FastCGI, redirects).
        assert!(nginx().count() >= 131, "{}", nginx().count());
        for name in [
            "whitelist-source-range",
            "allowlist-source-range",
            "limit-whitelist",
            "limit-allowlist",
            "configuration-snippet",
            "auth-type",
            "canary-weight-total",
            "proxy-ssl-server-name",
            "x-forwarded-prefix",
        ] {
            assert!(lookup(&format!("{NGINX_PREFIX}{name}")).is_some(), "{name}");
        }
    }

    #[test]
    fn lookup_finds_full_keys_and_indexed_traefik_domains() {
        let entry = lookup("nginx.ingress.kubernetes.io/ssl-redirect").expect("listed");
        assert_eq!(entry.short_name(), "ssl-redirect");
        assert!(entry.is_nginx());
        assert!(lookup("nginx.ingress.kubernetes.io/foo-bar").is_none());
        assert!(
            lookup("ssl-redirect").is_none(),
            "the prefix is part of the key"
        );
        let domain = lookup("traefik.ingress.kubernetes.io/router.tls.domains.3.sans")
            .expect("indexed domains");
        assert_eq!(domain.key, traefik!("router.tls.domains.n.sans"));
        assert!(lookup("traefik.ingress.kubernetes.io/router.tls.domains.x.sans").is_none());
        assert_eq!(
            lookup(traefik!("service.sticky.cookie")).map(|e| e.on),
            Some(On::Service)
        );
    }

    #[test]
    fn today_s_support_matches_the_router() {
        // What src/router/annotations.rs implements; flipping an entry is
        // checked by the tests of the code that implements it.
        for name in [
            "ssl-redirect",
            "force-ssl-redirect",
            "backend-protocol",
            "proxy-ssl-verify",
            "proxy-ssl-name",
        ] {
            let entry = lookup(&format!("{NGINX_PREFIX}{name}")).expect("listed");
            assert!(entry.status.is_supported(), "{name}");
        }
        let protocol = lookup(nginx!("backend-protocol")).expect("listed");
        assert!(protocol.status_for("HTTPS").is_supported());
        assert_eq!(protocol.status_for(" auto_http ").name(), "differs");
    }

    #[test]
    fn security_annotations_say_what_is_lost() {
        for entry in nginx() {
            let name = entry.short_name();
            let protective = name.starts_with("auth-")
                || name.ends_with("-source-range")
                || name.starts_with("limit-")
                || name == "satisfy"
                || name.ends_with("snippet");
            if protective {
                if let Status::Ignored(reason) = entry.status {
                    assert!(
                        reason.contains("WITHOUT") || reason.contains("NOT"),
                        "{name}: {reason}"
                    );
                }
            }
        }
    }
}
