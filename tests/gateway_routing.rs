//! A translation of the Gateway API conformance scenarios
//! (sigs.k8s.io/gateway-api `conformance/tests/*.go` + `.yaml`, the
//! GATEWAY-HTTP core features) into tests with real sockets: a real sluice
//! reading the scenario's manifests from files, real whoami backends behind
//! real Services and EndpointSlices, and real hyper clients. Each test names
//! the conformance scenario it translates; the manifests are the scenario's
//! (Service ports are 80 here instead of 8080), and the expectations are the
//! scenario's request/response table.
//!
//! Differences from the conformance harness, all forced by running from
//! files in one process:
//! - every Gateway's HTTP listeners share sluice's one HTTP entrypoint
//!   (the suite gives each Gateway its own address), so scenarios that
//!   compare Gateways use hostnames or paths to tell routes apart;
//! - `creationTimestamp` cannot be set from files, so precedence ties are
//!   decided by `{namespace}/{name}` and then rule order (the spec's next
//!   tie-breaks);
//! - status conditions are not asserted here (see `kube_gateway_status.rs`);
//!   what a condition implies for traffic is (e.g. `RefNotPermitted` -> 500).
//!
//! Beyond the suite: Ingress and HTTPRoute side by side, hot reload of an
//! HTTPRoute file, Services without ready endpoints, and the HTTPS listener.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{json, Value};
use support::gateway::*;
use support::*;

const INFRA: &str = "gateway-conformance-infra";
const APP: &str = "gateway-conformance-app-backend";
const WEB: &str = "gateway-conformance-web-backend";

/// The conformance backends, as whoami reports them (`namespace/name`).
const V1: &str = "gateway-conformance-infra/infra-backend-v1";
const V2: &str = "gateway-conformance-infra/infra-backend-v2";
const V3: &str = "gateway-conformance-infra/infra-backend-v3";
const APP_V1: &str = "gateway-conformance-app-backend/app-backend-v1";
const APP_V2: &str = "gateway-conformance-app-backend/app-backend-v2";
const WEB_BACKEND: &str = "gateway-conformance-web-backend/web-backend";

const SERVICES: [&str; 6] = [V1, V2, V3, APP_V1, APP_V2, WEB_BACKEND];

/// The Host the suite sends when a case names none (the Gateway's address).
const ANY: &str = "gateway.conformance.test";

/// `conformance/base/manifests.yaml`: the GatewayClass, the three
/// namespaces with their labels, and the Gateways `same-namespace`,
/// `all-namespaces` and `backend-namespaces` (HTTP, port 80).
fn infra() -> String {
    infra_with_web_label("backend")
}

/// [`infra`] with `gateway-conformance: web_label` on the web-backend namespace.
fn infra_with_web_label(web_label: &str) -> String {
    [
        gateway_class(),
        namespace(INFRA, &[("gateway-conformance", "infra")]),
        namespace(APP, &[("gateway-conformance", "backend")]),
        namespace(WEB, &[("gateway-conformance", web_label)]),
        gateway(
            "same-namespace",
            INFRA,
            &[Listener::http("http").allow(Namespaces::Same)],
        ),
        gateway(
            "all-namespaces",
            INFRA,
            &[Listener::http("http").allow(Namespaces::All)],
        ),
        gateway(
            "backend-namespaces",
            INFRA,
            &[Listener::http("http").allow(Namespaces::Selector(vec![(
                "gateway-conformance".into(),
                "backend".into(),
            )]))],
        ),
    ]
    .concat()
}

/// sluice on the conformance base plus `scenario`, with the six conformance
/// backends (and `extra` Services, `"ns/name"`).
async fn conformance_with(extra: &[&str], scenario: &str) -> GatewayFixture {
    let mut services: Vec<&str> = SERVICES.to_vec();
    services.extend_from_slice(extra);
    start_gateway_fixture(&services, &format!("{}{scenario}", infra())).await
}

async fn conformance(scenario: &str) -> GatewayFixture {
    conformance_with(&[], scenario).await
}

/// What a request must get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A 200 from this whoami.
    By(&'static str),
    /// This status (and, for errors, no backend).
    Code(u16),
}
use Want::{By, Code};

/// Sends requests and collects every mismatch, so one run reports all of a
/// scenario's failing cases at once.
struct Checker {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    addr: SocketAddr,
    failures: Vec<String>,
    checked: usize,
}

impl Checker {
    fn new(addr: SocketAddr) -> Self {
        Self {
            client: client(),
            addr,
            failures: Vec::new(),
            checked: 0,
        }
    }

    /// `method` `host``path` with `headers` must get `want`.
    async fn req(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        want: Want,
    ) {
        self.checked += 1;
        let mut all = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        let answer = send(&self.client, self.addr, method, host, path, &all).await;
        let name = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["name"].as_str().map(str::to_owned));
        let ok = match want {
            By(backend) => answer.status == 200 && name.as_deref() == Some(backend),
            Code(status) => answer.status == status && (status == 200 || name.is_none()),
        };
        if !ok {
            let body: String = answer.body.chars().take(160).collect();
            self.failures.push(format!(
                "{method} {host}{path} {headers:?}: want {want:?}, got {} from {name:?} ({body:?})",
                answer.status
            ));
        }
    }

    /// GET `host``path` must get `want`.
    async fn get(&mut self, host: &str, path: &str, want: Want) {
        self.req("GET", host, path, &[], want).await;
    }

    /// GET `host``path` with `headers` must get `want`.
    async fn get_with(&mut self, host: &str, path: &str, headers: &[(&str, &str)], want: Want) {
        self.req("GET", host, path, headers, want).await;
    }

    /// Records a failure unless `ok`.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.failures.push(what());
        }
    }

    /// GET `host``path` must redirect with `status` to a `Location` with
    /// `scheme`, `to_host`, `port` (`None`: the scheme's default, written or
    /// not) and `to_path`.
    #[allow(clippy::too_many_arguments)]
    async fn redirect(
        &mut self,
        host: &str,
        path: &str,
        status: u16,
        scheme: &str,
        to_host: &str,
        port: Option<u16>,
        to_path: &str,
    ) {
        self.checked += 1;
        let answer = send(&self.client, self.addr, "GET", host, path, &[]).await;
        let location = answer
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let got = split_location(&location);
        let ok = answer.status == status
            && got.as_ref().is_some_and(|(s, h, p, pq)| {
                let default = match s.as_str() {
                    "http" => 80,
                    "https" => 443,
                    _ => 0,
                };
                let port_ok = match port {
                    Some(want) => *p == Some(want),
                    None => p.is_none() || *p == Some(default),
                };
                s == scheme && h == to_host && port_ok && pq == to_path
            });
        if !ok {
            self.failures.push(format!(
                "GET {host}{path}: want {status} to {scheme}://{to_host}{}{to_path}, got {} Location {location:?}",
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                answer.status
            ));
        }
    }

    /// Panics with every mismatch.
    fn done(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} checks failed:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
    }
}

/// A route in `INFRA` on `same-namespace`.
fn infra_route(name: &str) -> HttpRoute {
    HttpRoute::new(name, INFRA).parent("same-namespace")
}

/// The values of header `name` in a whoami report or a response, each
/// comma-separated list flattened, joined with `,` (how the suite compares
/// repeated fields).
fn joined<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = values.flat_map(|v| v.split(',')).map(str::trim).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn request_header(report: &Value, name: &str) -> Option<String> {
    let values = seen_header(report, &name.to_ascii_lowercase());
    joined(values.iter().map(String::as_str))
}

fn response_header(answer: &Answer, name: &str) -> Option<String> {
    joined(
        answer
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

// ---------------------------------------------------------------------------
// Basic attachment and matching
// ---------------------------------------------------------------------------

/// httproute-simple-same-namespace.
#[tokio::test]
async fn httproute_simple_same_namespace() {
    let f = conformance(
        &infra_route("gateway-conformance-infra-test")
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(V1)).await;
    c.get(ANY, "/any/path", By(V1)).await;
    c.done();
    f.stop().await;
}

/// httproute-matching: PathPrefix is element-wise; a match with only a
/// header is `PathPrefix /`; more header matches win at one path.
#[tokio::test]
async fn httproute_matching() {
    let f = conformance(
        &infra_route("matching")
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/"))
                    .matching(Match::any().header("version", "one")),
            )
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::prefix("/v2"))
                    .matching(Match::any().header("version", "two")),
            )
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(V1)).await;
    c.get(ANY, "/example", By(V1)).await;
    c.get_with(ANY, "/", &[("Version", "one")], By(V1)).await;
    c.get(ANY, "/v2", By(V2)).await;
    c.get(ANY, "/v2/example", By(V2)).await;
    c.get_with(ANY, "/", &[("Version", "two")], By(V2)).await;
    c.get(ANY, "/v2/", By(V2)).await;
    c.get(ANY, "/v2example", By(V1)).await;
    c.get(ANY, "/foo/v2/example", By(V1)).await;
    c.done();
    f.stop().await;
}

/// httproute-matching-across-routes: matches of several routes for the
/// same hostnames are merged and ranked together.
#[tokio::test]
async fn httproute_matching_across_routes() {
    let yaml = [
        infra_route("matching-part1")
            .hostnames(&["example.com", "example.net"])
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/"))
                    .matching(Match::any().header("version", "one")),
            )
            .doc(),
        infra_route("matching-part2")
            .hostnames(&["example.com"])
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::prefix("/v2"))
                    .matching(Match::any().header("version", "two")),
            )
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("example.com", "/", By(V1)).await;
    c.get("example.com", "/example", By(V1)).await;
    c.get("example.net", "/example", By(V1)).await;
    c.get_with("example.com", "/example", &[("Version", "one")], By(V1))
        .await;
    c.get("example.com", "/v2", By(V2)).await;
    c.get("example.net", "/v2", By(V1)).await;
    c.get("example.com", "/v2/example", By(V2)).await;
    c.get_with("example.com", "/", &[("Version", "two")], By(V2))
        .await;
    c.get("other.example", "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// httproute-exact-path-matching.
#[tokio::test]
async fn httproute_exact_path_matching() {
    let f = conformance(
        &infra_route("exact-matching")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::exact("/one")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::exact("/two")))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/one", By(V1)).await;
    c.get(ANY, "/two", By(V2)).await;
    c.get(ANY, "/", Code(404)).await;
    c.get(ANY, "/one/example", Code(404)).await;
    c.get(ANY, "/two/", Code(404)).await;
    c.get(ANY, "/Two", Code(404)).await;
    c.done();
    f.stop().await;
}

/// httproute-header-matching: names case-insensitive, values exact, every
/// header of a match must hold, matches of a rule are ORed.
#[tokio::test]
async fn httproute_header_matching() {
    let f = conformance(
        &infra_route("header-matching")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::any().header("version", "one")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::any().header("version", "two")))
            .rule(
                Rule::to("infra-backend-v1", 80).matching(
                    Match::any()
                        .header("version", "two")
                        .header("color", "orange"),
                ),
            )
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::any().header("color", "blue"))
                    .matching(Match::any().header("color", "green")),
            )
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::any().header("color", "red"))
                    .matching(Match::any().header("color", "yellow")),
            )
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get_with(ANY, "/", &[("Version", "one")], By(V1)).await;
    c.get_with(ANY, "/", &[("Version", "two")], By(V2)).await;
    c.get_with(ANY, "/", &[("Version", "two"), ("Color", "orange")], By(V1))
        .await;
    c.get_with(ANY, "/", &[("Version", "two"), ("Color", "blue")], By(V2))
        .await;
    c.get_with(ANY, "/", &[("Color", "orange")], Code(404))
        .await;
    c.get_with(ANY, "/", &[("Some-Other-Header", "one")], Code(404))
        .await;
    c.get_with(ANY, "/", &[("Color", "blue")], By(V1)).await;
    c.get_with(ANY, "/", &[("Color", "green")], By(V1)).await;
    c.get_with(ANY, "/", &[("Color", "red")], By(V2)).await;
    c.get_with(ANY, "/", &[("Color", "yellow")], By(V2)).await;
    c.get_with(ANY, "/", &[("Color", "purple")], Code(404))
        .await;
    c.get(ANY, "/", Code(404)).await;
    // Values are case-sensitive (HTTPHeaderMatch: Exact), names are not.
    c.get_with(ANY, "/", &[("VERSION", "one")], By(V1)).await;
    c.get_with(ANY, "/", &[("Version", "One")], Code(404)).await;
    c.done();
    f.stop().await;
}

/// httproute-query-param-matching: names and values case-sensitive, extra
/// parameters ignored, combined with paths and headers.
#[tokio::test]
async fn httproute_query_param_matching() {
    let f = conformance(
        &infra_route("query-param-matching")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::any().query("animal", "whale")))
            .rule(
                Rule::to("infra-backend-v2", 80).matching(Match::any().query("animal", "dolphin")),
            )
            .rule(
                Rule::to("infra-backend-v3", 80)
                    .matching(
                        Match::any()
                            .query("animal", "dolphin")
                            .query("color", "blue"),
                    )
                    .matching(Match::any().query("ANIMAL", "Whale")),
            )
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/path1").query("animal", "whale")),
            )
            .rule(
                Rule::to("infra-backend-v2", 80).matching(
                    Match::any()
                        .header("version", "one")
                        .query("animal", "whale"),
                ),
            )
            .rule(
                Rule::to("infra-backend-v3", 80).matching(
                    Match::prefix("/path2")
                        .header("version", "two")
                        .query("animal", "whale"),
                ),
            )
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/path3").query("animal", "shark"))
                    .matching(
                        Match::prefix("/path4")
                            .header("version", "three")
                            .query("animal", "kraken"),
                    ),
            )
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/path5")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::any().query("animal", "hydra")))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::any().header("version", "four")))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/?animal=whale", By(V1)).await;
    c.get(ANY, "/?animal=dolphin", By(V2)).await;
    c.get(ANY, "/?animal=dolphin&color=blue", By(V3)).await;
    c.get(ANY, "/?ANIMAL=Whale", By(V3)).await;
    c.get(ANY, "/?animal=whale&otherparam=irrelevant", By(V1))
        .await;
    c.get(ANY, "/?animal=dolphin&color=yellow", By(V2)).await;
    c.get(ANY, "/?color=blue", Code(404)).await;
    c.get(ANY, "/?animal=dog", Code(404)).await;
    c.get(ANY, "/?animal=whaledolphin", Code(404)).await;
    c.get(ANY, "/", Code(404)).await;
    c.get(ANY, "/path1?animal=whale", By(V1)).await;
    c.get_with(ANY, "/?animal=whale", &[("version", "one")], By(V2))
        .await;
    c.get_with(ANY, "/path2?animal=whale", &[("version", "two")], By(V3))
        .await;
    c.get(ANY, "/path3?animal=shark", By(V1)).await;
    c.get_with(ANY, "/path4?animal=kraken", &[("version", "three")], By(V1))
        .await;
    c.get(ANY, "/?animal=shark", Code(404)).await;
    c.get(ANY, "/path4?animal=kraken", Code(404)).await;
    c.get(ANY, "/path5?animal=hydra", By(V1)).await;
    c.get_with(ANY, "/?animal=hydra", &[("version", "four")], By(V3))
        .await;
    c.done();
    f.stop().await;
}

/// httproute-method-matching.
#[tokio::test]
async fn httproute_method_matching() {
    let f = conformance(
        &infra_route("method-matching")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::any().method("POST")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::any().method("GET")))
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/path1").method("GET")))
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::any().header("version", "one").method("PUT")),
            )
            .rule(
                Rule::to("infra-backend-v3", 80).matching(
                    Match::prefix("/path2")
                        .header("version", "two")
                        .method("POST"),
                ),
            )
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/path3").method("PATCH"))
                    .matching(
                        Match::prefix("/path4")
                            .header("version", "three")
                            .method("DELETE"),
                    ),
            )
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/path5")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::any().method("PATCH")))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::any().header("version", "four")))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.req("POST", ANY, "/", &[], By(V1)).await;
    c.req("GET", ANY, "/", &[], By(V2)).await;
    c.req("HEAD", ANY, "/", &[], Code(404)).await;
    c.req("GET", ANY, "/path1", &[], By(V1)).await;
    c.req("PUT", ANY, "/", &[("version", "one")], By(V2)).await;
    c.req("POST", ANY, "/path2", &[("version", "two")], By(V3))
        .await;
    c.req("PATCH", ANY, "/path3", &[], By(V1)).await;
    c.req("DELETE", ANY, "/path4", &[("version", "three")], By(V1))
        .await;
    c.req("PUT", ANY, "/", &[], Code(404)).await;
    c.req("DELETE", ANY, "/path4", &[], Code(404)).await;
    c.req("PATCH", ANY, "/path5", &[], By(V1)).await;
    c.req("PATCH", ANY, "/", &[("version", "four")], By(V2))
        .await;
    c.done();
    f.stop().await;
}

/// httproute-path-match-order: Exact first, then the longest prefix.
#[tokio::test]
async fn httproute_path_match_order() {
    let f = conformance(
        &infra_route("path-matching-order")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::exact("/match")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::exact("/match/exact")))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::exact("/match/exact/one")))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/match/")))
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/match/prefix/")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/match/prefix/one")))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/match/exact/one", By(V3)).await;
    c.get(ANY, "/match/exact", By(V2)).await;
    c.get(ANY, "/match", By(V1)).await;
    c.get(ANY, "/match/prefix/one/any", By(V2)).await;
    c.get(ANY, "/match/prefix/any", By(V1)).await;
    c.get(ANY, "/match/any", By(V3)).await;
    // `/match/prefix/` (trailing `/` ignored) covers `/match/prefix`.
    c.get(ANY, "/match/prefix", By(V1)).await;
    c.get(ANY, "/match/prefixes", By(V3)).await;
    c.done();
    f.stop().await;
}

/// Precedence ties (HTTPRouteRule docs): at one host and path with the same
/// conditions, the route first by `{namespace}/{name}` wins (creation times
/// are equal from files), then the first rule of a route; more header
/// matches beat rule order; the method beats headers.
#[tokio::test]
async fn httproute_precedence_ties_by_namespace_name_then_rule_order() {
    let all = |name: &str, ns: &str| {
        HttpRoute::new(name, ns)
            .parent_in(INFRA, "all-namespaces", None)
            .hostnames(&["ties.example"])
    };
    let yaml = [
        // Same namespace, names decide: `a-route` before `b-route`,
        // whatever the order in the file.
        all("b-route", INFRA)
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/by-name")))
            .doc(),
        all("a-route", INFRA)
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/by-name")))
            .doc(),
        // The namespace comes first: APP/z-route before WEB/a-route.
        all("a-route", WEB)
            .rule(Rule::to("web-backend", 80).matching(Match::exact("/by-namespace")))
            .doc(),
        all("z-route", APP)
            .rule(Rule::to("app-backend-v1", 80).matching(Match::exact("/by-namespace")))
            .doc(),
        // Within a route, the first rule; a match with more headers beats an
        // earlier rule; a method beats more headers.
        all("c-route", INFRA)
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/by-rule")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/by-rule")))
            .rule(
                Rule::to("infra-backend-v3", 80)
                    .matching(Match::prefix("/by-rule").header("x-a", "1")),
            )
            .rule(
                Rule::to("infra-backend-v2", 80).matching(
                    Match::prefix("/by-rule")
                        .header("x-a", "1")
                        .header("x-b", "1"),
                ),
            )
            .rule(
                Rule::to("infra-backend-v1", 80).matching(Match::prefix("/by-rule").method("POST")),
            )
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("ties.example", "/by-name", By(V1)).await;
    c.get("ties.example", "/by-namespace", By(APP_V1)).await;
    c.get("ties.example", "/by-rule", By(V1)).await;
    c.get_with("ties.example", "/by-rule", &[("x-a", "1")], By(V3))
        .await;
    c.get_with(
        "ties.example",
        "/by-rule",
        &[("x-a", "1"), ("x-b", "1")],
        By(V2),
    )
    .await;
    c.req(
        "POST",
        "ties.example",
        "/by-rule",
        &[("x-a", "1"), ("x-b", "1")],
        By(V1),
    )
    .await;
    c.done();
    f.stop().await;
}

/// HTTPRouteRule precedence: the hostname is ranked before the path (an
/// exact hostname beats a wildcard with a longer path; a longer wildcard
/// beats a shorter one).
#[tokio::test]
async fn httproute_hostname_ranks_before_path() {
    let yaml = [
        infra_route("wild")
            .hostnames(&["*.example.com"])
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::exact("/api/v1")))
            .doc(),
        infra_route("wilder")
            .hostnames(&["*.foo.example.com"])
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/")))
            .doc(),
        infra_route("exact")
            .hostnames(&["foo.example.com"])
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/")))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("foo.example.com", "/api/v1", By(V2)).await;
    c.get("bar.example.com", "/api/v1", By(V1)).await;
    c.get("bar.example.com", "/other", Code(404)).await;
    c.get("a.foo.example.com", "/api/v1", By(V3)).await;
    // A route's `*.` covers any number of labels; hostnames are
    // case-insensitive.
    c.get("x.y.example.com", "/api/v1", By(V1)).await;
    c.get("FOO.Example.COM", "/api/v1", By(V2)).await;
    // A hostname does not match its own wildcard's parent.
    c.get("example.com", "/api/v1", Code(404)).await;
    c.done();
    f.stop().await;
}

/// A rule without `matches` is `PathPrefix /`, below every longer match.
#[tokio::test]
async fn httproute_rule_without_matches_is_prefix_slash() {
    let f = conformance(
        &infra_route("no-matches")
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/api")))
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(V1)).await;
    c.get(ANY, "/anything/at/all", By(V1)).await;
    c.get(ANY, "/apix", By(V1)).await;
    c.get(ANY, "/api", By(V2)).await;
    c.get(ANY, "/api/x", By(V2)).await;
    c.req("DELETE", ANY, "/x", &[], By(V1)).await;
    // A query string does not get in the way of the path.
    c.get(ANY, "/api?x=1", By(V2)).await;
    c.done();
    f.stop().await;
}

// ---------------------------------------------------------------------------
// Hostnames and listeners
// ---------------------------------------------------------------------------

/// httproute-hostname-intersection.
#[tokio::test]
async fn httproute_hostname_intersection() {
    let gw = "httproute-hostname-intersection";
    let all = "httproute-hostname-intersection-all";
    let route = |name: &str| HttpRoute::new(name, INFRA).parent_in(INFRA, gw, None);
    let yaml = [
        gateway(
            gw,
            INFRA,
            &[
                Listener::http("listener-1").hostname("very.specific.com"),
                Listener::http("listener-2").hostname("*.wildcard.io"),
                Listener::http("listener-3").hostname("*.anotherwildcard.io"),
            ],
        ),
        gateway(all, INFRA, &[Listener::http("listener-1")]),
        route("specific-host-matches-listener-specific-host")
            .hostnames(&[
                "non.matching.com",
                "*.nonmatchingwildcard.io",
                "very.specific.com",
            ])
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/s1")))
            .doc(),
        route("specific-host-matches-listener-wildcard-host")
            .hostnames(&[
                "non.matching.com",
                "wildcard.io",
                "foo.wildcard.io",
                "bar.wildcard.io",
                "foo.bar.wildcard.io",
            ])
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/s2")))
            .doc(),
        route("wildcard-host-matches-listener-specific-host")
            .hostnames(&["non.matching.com", "*.specific.com"])
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/s3")))
            .doc(),
        route("wildcard-host-matches-listener-wildcard-host")
            .hostnames(&["*.anotherwildcard.io"])
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/s4")))
            .doc(),
        route("no-intersecting-hosts")
            .hostnames(&["specific.but.wrong.com", "wildcard.io"])
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/s5")))
            .doc(),
        HttpRoute::new(all, INFRA)
            .parent_in(INFRA, all, None)
            .hostnames(&["first.com", "sub.first.com", "second.com", "sub.second.com"])
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("very.specific.com", "/s1", By(V1)).await;
    c.get("very.specific.com:1234", "/s1", By(V1)).await;
    c.get("Very.Specific.COM", "/s1", By(V1)).await;
    c.get("non.matching.com", "/s1", Code(404)).await;
    c.get("foo.nonmatchingwildcard.io", "/s1", Code(404)).await;
    c.get("foo.wildcard.io", "/s1", Code(404)).await;
    c.get("very.specific.com", "/non-matching-prefix", Code(404))
        .await;
    c.get("foo.wildcard.io", "/s2", By(V2)).await;
    c.get("bar.wildcard.io", "/s2", By(V2)).await;
    c.get("foo.bar.wildcard.io", "/s2", By(V2)).await;
    c.get("non.matching.com", "/s2", Code(404)).await;
    c.get("wildcard.io", "/s2", Code(404)).await;
    c.get("very.specific.com", "/s2", Code(404)).await;
    c.get("foo.wildcard.io", "/non-matching-prefix", Code(404))
        .await;
    c.get("very.specific.com", "/s3", By(V3)).await;
    c.get("non.matching.com", "/s3", Code(404)).await;
    c.get("foo.specific.com", "/s3", Code(404)).await;
    c.get("foo.wildcard.io", "/s3", Code(404)).await;
    c.get("very.specific.com", "/non-matching-prefix", Code(404))
        .await;
    c.get("foo.anotherwildcard.io", "/s4", By(V1)).await;
    c.get("bar.anotherwildcard.io", "/s4", By(V1)).await;
    c.get("foo.bar.anotherwildcard.io", "/s4", By(V1)).await;
    c.get("anotherwildcard.io", "/s4", Code(404)).await;
    c.get("foo.wildcard.io", "/s4", Code(404)).await;
    c.get("very.specific.com", "/s4", Code(404)).await;
    c.get("foo.anotherwildcard.io", "/non-matching-prefix", Code(404))
        .await;
    // The route that intersects no listener is not served.
    c.get("specific.but.wrong.com", "/s5", Code(404)).await;
    c.get("wildcard.io", "/s5", Code(404)).await;
    // The listener without hostname takes the route's hostnames as they are.
    c.get("first.com", "/", By(V2)).await;
    c.get("sub.first.com", "/", By(V2)).await;
    c.get("second.com", "/", By(V2)).await;
    c.get("sub.second.com", "/", By(V2)).await;
    c.get("third.com", "/", Code(404)).await;
    c.get("sub.third.com", "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// httproute-listener-hostname-matching: routes attached by sectionName
/// serve only their listener's hostnames; a `*.` listener covers any number
/// of labels but not the bare domain.
#[tokio::test]
async fn httproute_listener_hostname_matching() {
    let gw = "httproute-listener-hostname-matching";
    let yaml = [
        gateway(
            gw,
            INFRA,
            &[
                Listener::http("listener-1").hostname("bar.com"),
                Listener::http("listener-2").hostname("foo.bar.com"),
                Listener::http("listener-3").hostname("*.bar.com"),
                Listener::http("listener-4").hostname("*.foo.com"),
            ],
        ),
        HttpRoute::new("backend-v1", INFRA)
            .parent_in(INFRA, gw, Some("listener-1"))
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        HttpRoute::new("backend-v2", INFRA)
            .parent_in(INFRA, gw, Some("listener-2"))
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
        HttpRoute::new("backend-v3", INFRA)
            .parent_in(INFRA, gw, Some("listener-3"))
            .parent_in(INFRA, gw, Some("listener-4"))
            .rule(Rule::to("infra-backend-v3", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("bar.com", "/", By(V1)).await;
    c.get("foo.bar.com", "/", By(V2)).await;
    c.get("baz.bar.com", "/", By(V3)).await;
    c.get("boo.bar.com", "/", By(V3)).await;
    c.get("multiple.prefixes.bar.com", "/", By(V3)).await;
    c.get("multiple.prefixes.foo.com", "/", By(V3)).await;
    c.get("foo.com", "/", Code(404)).await;
    c.get("no.matching.host", "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// The four listeners of gateway-http-listener-isolation and the route
/// attached to each (`hostnames`: the `-with-hostname-intersection` variant).
fn listener_isolation(hostnames: Option<&[&str]>) -> String {
    let gw = "http-listener-isolation";
    let listeners = [
        ("empty-hostname", None),
        ("wildcard-example-com", Some("*.example.com")),
        ("wildcard-foo-example-com", Some("*.foo.example.com")),
        ("abc-foo-example-com", Some("abc.foo.example.com")),
    ];
    let mut out = gateway(
        gw,
        INFRA,
        &listeners
            .iter()
            .map(|(name, host)| {
                let l = Listener::http(name).allow(Namespaces::All);
                match host {
                    Some(h) => l.hostname(h),
                    None => l,
                }
            })
            .collect::<Vec<_>>(),
    );
    for (name, _) in listeners {
        let mut route = HttpRoute::new(&format!("attaches-to-{name}"), INFRA)
            .parent_in(INFRA, gw, Some(name))
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix(&format!("/{name}"))));
        if let Some(hostnames) = hostnames {
            route = route.hostnames(hostnames);
        }
        out.push_str(&route.doc());
    }
    out
}

async fn check_listener_isolation(f: &GatewayFixture) {
    let mut c = Checker::new(f.http_addr());
    let paths = [
        "/empty-hostname",
        "/wildcard-example-com",
        "/wildcard-foo-example-com",
        "/abc-foo-example-com",
    ];
    // Each host is isolated to the most specific listener it matches.
    let hosts = [
        ("bar.com", 0),
        ("bar.example.com", 1),
        ("bar.foo.example.com", 2),
        ("abc.foo.example.com", 3),
    ];
    for (host, served) in hosts {
        for (i, path) in paths.iter().enumerate() {
            let want = if i == served { By(V1) } else { Code(404) };
            c.get(host, path, want).await;
        }
    }
    c.done();
}

/// gateway-http-listener-isolation: hostnames only on listeners.
#[tokio::test]
async fn gateway_http_listener_isolation() {
    let f = conformance(&listener_isolation(None)).await;
    check_listener_isolation(&f).await;
    f.stop().await;
}

/// gateway-http-listener-isolation, second part: routes carry intersecting
/// hostnames too.
#[tokio::test]
async fn gateway_http_listener_isolation_with_hostname_intersection() {
    let hostnames = ["bar.com", "*.example.com", "*.foo.example.com"];
    let f = conformance(&listener_isolation(Some(&hostnames))).await;
    check_listener_isolation(&f).await;
    f.stop().await;
}

// ---------------------------------------------------------------------------
// Namespaces, allowedRoutes, references
// ---------------------------------------------------------------------------

/// httproute-cross-namespace: a route in a `backend`-labelled namespace
/// attaches to `backend-namespaces` and reaches its own Service.
#[tokio::test]
async fn httproute_cross_namespace() {
    let f = conformance(
        &HttpRoute::new("cross-namespace", WEB)
            .parent_in(INFRA, "backend-namespaces", None)
            .rule(Rule::to("web-backend", 80))
            // A backendRef naming its own namespace needs no grant.
            .rule(
                Rule::new()
                    .matching(Match::prefix("/explicit"))
                    .backend(backend_in(WEB, "web-backend", 80)),
            )
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(WEB_BACKEND)).await;
    c.get(ANY, "/explicit", By(WEB_BACKEND)).await;
    c.done();
    f.stop().await;
}

/// httproute-invalid-cross-namespace-parent-ref: a route in another
/// namespace cannot attach to a `Same` listener.
#[tokio::test]
async fn httproute_invalid_cross_namespace_parent_ref() {
    let f = conformance(
        &HttpRoute::new("invalid-cross-namespace-parent-ref", WEB)
            .parent_in(INFRA, "same-namespace", None)
            .rule(Rule::to("web-backend", 80))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// httproute-invalid-parentref-not-matching-section-name and
/// -not-matching-listener-port: a parentRef naming no listener attaches
/// nowhere.
#[tokio::test]
async fn httproute_invalid_parentref_section_name_or_port() {
    let yaml = [
        HttpRoute::new("httproute-listener-not-matching-section-name", INFRA)
            .parent_ref(json!({"name": "same-namespace", "namespace": INFRA, "port": 80, "sectionName": "http1"}))
            .hostnames(&["section.example"])
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        HttpRoute::new("httproute-listener-not-matching-route-port", INFRA)
            .parent_ref(json!({"name": "same-namespace", "namespace": INFRA, "port": 81}))
            .hostnames(&["port.example"])
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        // httproute-invalid-parentref-section-name-not-matching-port.
        gateway(
            "gateway-with-one-not-matching-port-and-section-name-route",
            INFRA,
            &[Listener::http("http")
                .hostname("section-port.example")
                .allow_kinds(&[(GROUP, "HTTPRoute")])
                .allow(Namespaces::All)],
        ),
        HttpRoute::new("httproute-listener-section-name-not-matching-port", INFRA)
            .parent_ref(json!({
                "name": "gateway-with-one-not-matching-port-and-section-name-route",
                "namespace": INFRA, "sectionName": "http", "port": 81,
            }))
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        // Control: the same route with matching references is served.
        HttpRoute::new("matching-section-and-port", INFRA)
            .parent_ref(json!({"name": "same-namespace", "namespace": INFRA, "port": 80, "sectionName": "http"}))
            .hostnames(&["ok.example"])
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("section.example", "/", Code(404)).await;
    c.get("port.example", "/", Code(404)).await;
    c.get("section-port.example", "/", Code(404)).await;
    c.get("ok.example", "/", By(V2)).await;
    c.done();
    f.stop().await;
}

/// allowedRoutes.namespaces `Same`, `All` and `Selector` (base Gateways),
/// including the `kubernetes.io/metadata.name` label the API server puts
/// on every Namespace; relabelling a Namespace detaches its routes.
#[tokio::test]
async fn gateway_allowed_routes_namespaces_same_all_selector() {
    let other = "plain-namespace";
    let by_name = "by-name";
    let route = |name: &str, ns: &str, gw: &str, path: &str, svc: &str| {
        HttpRoute::new(name, ns)
            .parent_in(INFRA, gw, None)
            .hostnames(&["ns.example"])
            .rule(Rule::to(svc, 80).matching(Match::prefix(path)))
            .doc()
    };
    let scenario = [
        namespace(other, &[]),
        gateway(
            by_name,
            INFRA,
            &[Listener::http("http")
                .hostname("by-name.example")
                .allow(Namespaces::Selector(vec![(
                    "kubernetes.io/metadata.name".into(),
                    APP.into(),
                )]))],
        ),
        route(
            "same-infra",
            INFRA,
            "same-namespace",
            "/same-infra",
            "infra-backend-v1",
        ),
        route(
            "same-app",
            APP,
            "same-namespace",
            "/same-app",
            "app-backend-v1",
        ),
        route(
            "all-app",
            APP,
            "all-namespaces",
            "/all-app",
            "app-backend-v1",
        ),
        route(
            "all-other",
            other,
            "all-namespaces",
            "/all-other",
            "other-backend",
        ),
        route(
            "selector-web",
            WEB,
            "backend-namespaces",
            "/selector-web",
            "web-backend",
        ),
        route(
            "selector-app",
            APP,
            "backend-namespaces",
            "/selector-app",
            "app-backend-v2",
        ),
        route(
            "selector-infra",
            INFRA,
            "backend-namespaces",
            "/selector-infra",
            "infra-backend-v1",
        ),
        route(
            "selector-other",
            other,
            "backend-namespaces",
            "/selector-other",
            "other-backend",
        ),
        route(
            "selector-ghost",
            "no-such-namespace",
            "backend-namespaces",
            "/selector-ghost",
            "infra-backend-v1",
        ),
        // A selector with matchExpressions.
        gateway(
            "by-expression",
            INFRA,
            &[Listener(json!({
                "name": "http", "protocol": "HTTP", "port": 80,
                "hostname": "expr.example",
                "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {
                    "matchExpressions": [{
                        "key": "gateway-conformance", "operator": "In", "values": ["backend"],
                    }],
                }}},
            }))],
        ),
        HttpRoute::new("expr-app", APP)
            .parent_in(INFRA, "by-expression", None)
            .rule(Rule::to("app-backend-v1", 80).matching(Match::prefix("/app")))
            .doc(),
        HttpRoute::new("expr-infra", INFRA)
            .parent_in(INFRA, "by-expression", None)
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/infra")))
            .doc(),
        HttpRoute::new("by-name-app", APP)
            .parent_in(INFRA, by_name, None)
            .rule(Rule::to("app-backend-v2", 80).matching(Match::prefix("/by-name")))
            .doc(),
        HttpRoute::new("by-name-web", WEB)
            .parent_in(INFRA, by_name, None)
            .rule(Rule::to("web-backend", 80).matching(Match::prefix("/by-name/web")))
            .doc(),
    ]
    .concat();
    let other_backend = "plain-namespace/other-backend";
    let f = conformance_with(&[other_backend], &scenario).await;
    let mut c = Checker::new(f.http_addr());
    c.get("ns.example", "/same-infra", By(V1)).await;
    c.get("ns.example", "/same-app", Code(404)).await;
    c.get("ns.example", "/all-app", By(APP_V1)).await;
    c.get("ns.example", "/all-other", By(other_backend)).await;
    c.get("ns.example", "/selector-web", By(WEB_BACKEND)).await;
    c.get("ns.example", "/selector-app", By(APP_V2)).await;
    c.get("ns.example", "/selector-infra", Code(404)).await;
    c.get("ns.example", "/selector-other", Code(404)).await;
    c.get("ns.example", "/selector-ghost", Code(404)).await;
    c.get("by-name.example", "/by-name", By(APP_V2)).await;
    // by-name-web is not attached: its longer prefix does not take the path.
    c.get("by-name.example", "/by-name/web", By(APP_V2)).await;
    c.get("expr.example", "/app", By(APP_V1)).await;
    c.get("expr.example", "/infra", Code(404)).await;
    c.done();

    // Relabel WEB: its route leaves `backend-namespaces`.
    f.rewrite(&format!("{}{scenario}", infra_with_web_label("web")));
    let addr = f.http_addr();
    let cl = client();
    wait_for("WEB relabelled detaches selector-web", || async {
        backend_for(&cl, addr, "ns.example", "/selector-web", &[]).await == Err(404)
    })
    .await;
    let mut c = Checker::new(addr);
    c.get("ns.example", "/selector-app", By(APP_V2)).await;
    c.get("ns.example", "/selector-web", Code(404)).await;
    c.done();
    f.stop().await;
}

/// gateway-with-attached-routes: routes attach to listeners whose selector
/// names their namespace; a route whose hostnames miss the listener's is
/// not attached. (The suite checks `attachedRoutes`; here the routes have
/// distinct backends and paths so traffic shows which are served.)
#[tokio::test]
async fn gateway_with_attached_routes() {
    let selector = || {
        Listener::http("http")
            .allow_kinds(&[(GROUP, "HTTPRoute")])
            .allow(Namespaces::Selector(vec![(
                "kubernetes.io/metadata.name".into(),
                INFRA.into(),
            )]))
    };
    let one = "gateway-with-one-attached-route";
    let two = "gateway-with-two-attached-routes";
    let parent = |gw: &str| json!({"kind": "Gateway", "name": gw, "namespace": INFRA});
    let yaml = [
        gateway(one, INFRA, &[selector()]),
        HttpRoute::new("http-route-1", INFRA)
            .parent_ref(parent(one))
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        gateway(two, INFRA, &[selector().hostname("foo.example.com")]),
        HttpRoute::new("http-route-2", INFRA)
            .parent_ref(parent(two))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/two")))
            .doc(),
        HttpRoute::new("http-route-3", INFRA)
            .parent_ref(parent(two))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/three")))
            .doc(),
        HttpRoute::new("http-route-not-accepted", INFRA)
            .hostnames(&["not-accepted.test.com"])
            .parent_ref(parent(two))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/not-accepted")))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(V1)).await;
    c.get("foo.example.com", "/two", By(V2)).await;
    c.get("foo.example.com", "/three", By(V3)).await;
    // foo.example.com is isolated to its listener: route 1 does not serve it.
    c.get("foo.example.com", "/", Code(404)).await;
    // http-route-not-accepted is not served: the host falls to the
    // hostname-less listener of the other Gateway, whose route 1 answers.
    c.get("not-accepted.test.com", "/not-accepted", By(V1))
        .await;
    c.done();
    f.stop().await;
}

/// httproute-disallowed-kind: a route cannot attach to a listener whose
/// allowedRoutes.kinds leave HTTPRoute out (the suite's TLS listener, and an
/// HTTP listener allowing only GRPCRoute).
#[tokio::test]
async fn httproute_disallowed_kind() {
    let tls_only = json!({
        "name": "tls", "port": 443, "protocol": "TLS",
        "tls": {"mode": "Passthrough"},
        "allowedRoutes": {"namespaces": {"from": "Same"}, "kinds": [{"kind": "TLSRoute"}]},
    });
    let yaml = [
        gateway("tlsroutes-only", INFRA, &[Listener(tls_only)]),
        HttpRoute::new("disallowed-kind", INFRA)
            .parent_in(INFRA, "tlsroutes-only", None)
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        gateway(
            "grpcroutes-only",
            INFRA,
            &[Listener::http("http")
                .hostname("grpc-only.example")
                .allow_kinds(&[(GROUP, "GRPCRoute")])],
        ),
        HttpRoute::new("disallowed-on-http", INFRA)
            .parent_in(INFRA, "grpcroutes-only", None)
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
        gateway(
            "httproutes-only",
            INFRA,
            &[Listener::http("http")
                .hostname("http-only.example")
                .allow_kinds(&[(GROUP, "HTTPRoute")])],
        ),
        HttpRoute::new("allowed-on-http", INFRA)
            .parent_in(INFRA, "httproutes-only", None)
            .rule(Rule::to("infra-backend-v3", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(404)).await;
    c.get("grpc-only.example", "/", Code(404)).await;
    c.get("http-only.example", "/", By(V3)).await;
    c.done();
    f.stop().await;
}

/// httproute-reference-grant: a grant lets the route reach a Service in
/// another namespace; deleting it turns the requests into 500.
#[tokio::test]
async fn httproute_reference_grant() {
    let route = infra_route("reference-grant")
        .rule(Rule::new().backend(backend_in(WEB, "web-backend", 80)))
        .doc();
    let grant = reference_grant(
        "reference-grant",
        WEB,
        &[(GROUP, "HTTPRoute", INFRA)],
        &[("", "Service", Some("web-backend"))],
    );
    // Beyond the suite: a grant without `name` covers every Service of
    // its namespace.
    let whole_namespace = [
        grant_services_to_routes("all-services", APP, INFRA, None),
        infra_route("to-app")
            .hostnames(&["app.example"])
            .rule(Rule::new().backend(backend_in(APP, "app-backend-v2", 80)))
            .doc(),
    ]
    .concat();
    let f = conformance(&format!("{grant}{route}{whole_namespace}")).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", By(WEB_BACKEND)).await;
    c.get("app.example", "/", By(APP_V2)).await;
    c.done();

    f.rewrite(&format!("{}{route}", infra()));
    let (cl, addr) = (client(), f.http_addr());
    wait_for("500 once the grant is gone", || async {
        backend_for(&cl, addr, ANY, "/", &[]).await == Err(500)
    })
    .await;
    f.stop().await;
}

/// httproute-invalid-reference-grant: grants in the wrong namespace, for
/// the wrong group, kind, namespace or name permit nothing: 500.
#[tokio::test]
async fn httproute_invalid_reference_grant() {
    let grant = |name: &str, ns: &str, from: (&str, &str, &str), to: (&str, &str, &str)| {
        reference_grant(name, ns, &[from], &[(to.0, to.1, Some(to.2))])
    };
    let route_from = (GROUP, "HTTPRoute", INFRA);
    let service = ("", "Service", "web-backend");
    let yaml = [
        grant(
            "reference-grant-wrong-namespace",
            INFRA,
            route_from,
            service,
        ),
        grant(
            "reference-grant-wrong-from-group",
            WEB,
            ("not-the-group-youre-looking-for", "HTTPRoute", INFRA),
            service,
        ),
        grant(
            "reference-grant-wrong-from-kind",
            WEB,
            (GROUP, "Gateway", INFRA),
            service,
        ),
        grant(
            "reference-grant-wrong-from-namespace",
            WEB,
            (GROUP, "HTTPRoute", "not-the-namespace-youre-looking-for"),
            service,
        ),
        grant(
            "reference-grant-wrong-to-group",
            WEB,
            route_from,
            ("not-the-group-youre-looking-for", "Service", "web-backend"),
        ),
        grant(
            "reference-grant-wrong-to-kind",
            WEB,
            route_from,
            ("", "Secret", "web-backend"),
        ),
        grant(
            "reference-grant-wrong-to-name",
            WEB,
            route_from,
            ("", "Service", "not-the-service-youre-looking-for"),
        ),
        infra_route("reference-grant")
            .rule(Rule::new().backend(backend_in(WEB, "web-backend", 80)))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(500)).await;
    c.done();
    f.stop().await;
}

/// httproute-partially-invalid-via-invalid-reference-grant: the rule whose
/// backend is not granted answers 500, its sibling is served.
#[tokio::test]
async fn httproute_partially_invalid_via_invalid_reference_grant() {
    let yaml = [
        grant_services_to_routes(
            "invalid-reference-grant",
            APP,
            INFRA,
            Some("app-backend-v1"),
        ),
        infra_route("invalid-reference-grant")
            .rule(
                Rule::new()
                    .matching(Match::prefix("/v2"))
                    .backend(backend_in(APP, "app-backend-v2", 80)),
            )
            .rule(Rule::new().backend(backend_in(APP, "app-backend-v1", 80)))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/v2", Code(500)).await;
    c.get(ANY, "/", By(APP_V1)).await;
    c.done();
    f.stop().await;
}

/// httproute-invalid-nonexistent-backendref: 500.
#[tokio::test]
async fn httproute_invalid_nonexistent_backendref() {
    let f = conformance(
        &infra_route("invalid-nonexistent-backend-ref")
            .rule(Rule::new().backend(backend_in(INFRA, "nonexistent", 80)))
            // Beyond the suite: a port the Service does not have, and a
            // Service reference without the (required) port, do not resolve
            // either.
            .rule(
                Rule::new()
                    .matching(Match::prefix("/wrong-port"))
                    .backend(backend("infra-backend-v1", 81)),
            )
            .rule(
                Rule::new()
                    .matching(Match::prefix("/no-port"))
                    .backend(json!({"name": "infra-backend-v1"})),
            )
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(500)).await;
    c.get(ANY, "/wrong-port", Code(500)).await;
    c.get(ANY, "/no-port", Code(500)).await;
    c.done();
    f.stop().await;
}

/// httproute-invalid-backendref-unknown-kind: 500.
#[tokio::test]
async fn httproute_invalid_backendref_unknown_kind() {
    let f = conformance(
        &infra_route("invalid-backend-ref-unknown-kind")
            .rule(Rule::new().backend(backend_of_kind(
                "unknownkind.example.com",
                "NonExistent",
                "infra-backend-v1",
                80,
            )))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/v2", Code(500)).await;
    c.get(ANY, "/", Code(500)).await;
    c.done();
    f.stop().await;
}

/// httproute-invalid-cross-namespace-backend-ref: no grant, 500.
#[tokio::test]
async fn httproute_invalid_cross_namespace_backend_ref() {
    let f = conformance(
        &infra_route("invalid-cross-namespace-backend-ref")
            .rule(Rule::new().backend(backend_in(WEB, "web-backend", 80)))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(500)).await;
    c.done();
    f.stop().await;
}

/// httproute-omitted-backendrefs: a rule with no (or empty) backendRefs
/// answers 500; its siblings are served.
#[tokio::test]
async fn httproute_omitted_backendrefs() {
    let f = conformance(
        &infra_route("omitted-backendrefs")
            .rule(Rule::new().matching(Match::exact("/omitted-no-forward")))
            .rule(Rule(json!({
                "matches": [{"path": {"type": "Exact", "value": "/empty-no-forward"}}],
                "backendRefs": [],
            })))
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/")))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/forward", By(V1)).await;
    c.get(ANY, "/omitted-no-forward", Code(500)).await;
    c.get(ANY, "/empty-no-forward", Code(500)).await;
    c.done();
    f.stop().await;
}

/// A Service whose endpoints are all not ready, and one without any
/// EndpointSlice, answer 503 (not 500: the reference is valid).
#[tokio::test]
async fn httproute_service_without_ready_endpoints_is_503() {
    let f0 = whoami("must-not-be-reached").await;
    let yaml = [
        doc(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "not-ready", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        })),
        namespaced_endpoint_slice(INFRA, "not-ready", "not-ready-1", f0.addr, false),
        doc(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "no-slices", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        })),
        infra_route("no-endpoints")
            .rule(Rule::to("not-ready", 80).matching(Match::prefix("/not-ready")))
            .rule(Rule::to("no-slices", 80).matching(Match::prefix("/no-slices")))
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/ready")))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/not-ready", Code(503)).await;
    c.get(ANY, "/no-slices", Code(503)).await;
    c.get(ANY, "/ready", By(V1)).await;
    c.done();
    f.stop().await;
}

// ---------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------

/// Sends `n` GETs and counts who answered (`status N` for non-whoami answers).
async fn distribution(
    addr: SocketAddr,
    host: &str,
    path: &str,
    n: usize,
) -> HashMap<String, usize> {
    let cl = client();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let who = match backend_for(&cl, addr, host, path, &[]).await {
            Ok(name) => name,
            Err(status) => format!("status {status}"),
        };
        *counts.entry(who).or_insert(0) += 1;
    }
    counts
}

/// httproute-weight: 70/30/0 over 400 requests, within 8 points (about
/// three standard deviations of a random split), and nothing for weight 0.
#[tokio::test]
async fn httproute_weight() {
    let f = conformance(
        &infra_route("weighted-backends")
            .rule(
                Rule::new()
                    .backend(weighted("infra-backend-v1", 80, 70))
                    .backend(weighted("infra-backend-v2", 80, 30))
                    .backend(weighted("infra-backend-v3", 80, 0)),
            )
            .doc(),
    )
    .await;
    let n = 400;
    let counts = distribution(f.http_addr(), ANY, "/", n).await;
    let share = |name: &str| counts.get(name).copied().unwrap_or(0) as f64 / n as f64;
    assert!((share(V1) - 0.7).abs() <= 0.08, "v1 share off: {counts:?}");
    assert!((share(V2) - 0.3).abs() <= 0.08, "v2 share off: {counts:?}");
    assert_eq!(share(V3), 0.0, "weight 0 got traffic: {counts:?}");
    assert_eq!(
        counts.values().sum::<usize>(),
        counts.get(V1).copied().unwrap_or(0) + counts.get(V2).copied().unwrap_or(0),
        "answers from elsewhere: {counts:?}"
    );
    f.stop().await;
}

/// HTTPBackendRef docs: with several backends of which some are invalid,
/// the share that would have gone to the invalid ones gets 500.
#[tokio::test]
async fn httproute_weight_share_of_invalid_backend_is_500() {
    let f = conformance(
        &infra_route("half-invalid")
            .rule(
                Rule::new()
                    .backend(weighted("infra-backend-v1", 80, 1))
                    .backend(weighted("nonexistent", 80, 1)),
            )
            .doc(),
    )
    .await;
    let n = 300;
    let counts = distribution(f.http_addr(), ANY, "/", n).await;
    let ok = counts.get(V1).copied().unwrap_or(0);
    let errors = counts.get("status 500").copied().unwrap_or(0);
    assert_eq!(ok + errors, n, "only v1 and 500: {counts:?}");
    let share = ok as f64 / n as f64;
    assert!((share - 0.5).abs() <= 0.1, "v1 share off: {counts:?}");
    f.stop().await;
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// httproute-request-header-modifier.
#[tokio::test]
async fn httproute_request_header_modifier() {
    let rule = |path: &str, filter: Value| {
        Rule::to("infra-backend-v1", 80)
            .matching(Match::prefix(path))
            .filter(filter)
    };
    let f = conformance(
        &infra_route("request-header-modifier")
            .rule(rule(
                "/set",
                request_header_modifier(&[("X-Header-Set", "set-overwrites-values")], &[], &[]),
            ))
            .rule(rule(
                "/add",
                request_header_modifier(&[], &[("X-Header-Add", "add-appends-values")], &[]),
            ))
            .rule(rule(
                "/remove",
                request_header_modifier(&[], &[], &["X-Header-Remove"]),
            ))
            .rule(rule(
                "/multiple",
                request_header_modifier(
                    &[
                        ("X-Header-Set-1", "header-set-1"),
                        ("X-Header-Set-2", "header-set-2"),
                    ],
                    &[
                        ("X-Header-Add-1", "header-add-1"),
                        ("X-Header-Add-2", "header-add-2"),
                        ("X-Header-Add-3", "header-add-3"),
                    ],
                    &["X-Header-Remove-1", "X-Header-Remove-2"],
                ),
            ))
            .rule(rule(
                "/case-insensitivity",
                request_header_modifier(
                    &[("X-Header-Set", "header-set")],
                    &[("X-Header-Add", "header-add")],
                    &["X-Header-Remove"],
                ),
            ))
            .doc(),
    )
    .await;
    let cl = client();
    let addr = f.http_addr();
    let mut c = Checker::new(addr);
    // (path, request headers, expected headers at the backend, absent there)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
    );
    let cases: [Case; 6] = [
        (
            "/set",
            vec![("Some-Other-Header", "val")],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            vec![],
        ),
        (
            "/set",
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "some-other-value"),
            ],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            vec![],
        ),
        (
            "/add",
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value"),
            ],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value,add-appends-values"),
            ],
            vec![],
        ),
        (
            "/remove",
            vec![("X-Header-Remove", "val")],
            vec![],
            vec!["X-Header-Remove"],
        ),
        (
            "/multiple",
            vec![
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
            ],
            vec![
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ],
            vec!["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
        (
            "/case-insensitivity",
            vec![
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
                ("Another-Header", "another-header-val"),
            ],
            vec![
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("Another-Header", "another-header-val"),
            ],
            vec!["X-Header-Remove"],
        ),
    ];
    for (path, sent, want, absent) in cases {
        let r = report(&cl, addr, "GET", ANY, path, &sent).await;
        c.check(r["name"] == V1, || {
            format!("{path}: answered by {}", r["name"])
        });
        for (name, value) in want {
            let got = request_header(&r, name);
            c.check(got.as_deref() == Some(value), || {
                format!("{path} {sent:?}: backend saw {name}: {got:?}, want {value:?}")
            });
        }
        for name in absent {
            let got = request_header(&r, name);
            c.check(got.is_none(), || {
                format!("{path} {sent:?}: backend saw {name}: {got:?}, want none")
            });
        }
    }
    // `set` replaces every field line of the name, not just the first.
    let r = report(
        &cl,
        addr,
        "GET",
        ANY,
        "/set",
        &[("X-Header-Set", "one"), ("X-Header-Set", "two")],
    )
    .await;
    let got = request_header(&r, "X-Header-Set");
    c.check(got.as_deref() == Some("set-overwrites-values"), || {
        format!("/set with two X-Header-Set lines: backend saw {got:?}")
    });
    c.done();
    f.stop().await;
}

/// httproute-response-header-modifier (the backend sets response headers
/// as the suite's echo server does, on request).
#[tokio::test]
async fn httproute_response_header_modifier() {
    let echo = header_echo_backend("echo").await;
    let rule = |path: &str, filters: Vec<Value>| {
        let mut r = Rule::to("echo-backend", 80).matching(Match::prefix(path));
        for filter in filters {
            r = r.filter(filter);
        }
        r
    };
    let yaml = [
        namespaced_service(INFRA, "echo-backend", &[echo.addr]),
        infra_route("response-header-modifier")
            .rule(rule(
                "/set",
                vec![response_header_modifier(
                    &[("X-Header-Set", "set-overwrites-values")],
                    &[],
                    &[],
                )],
            ))
            .rule(rule(
                "/add",
                vec![response_header_modifier(
                    &[],
                    &[("X-Header-Add", "add-appends-values")],
                    &[],
                )],
            ))
            .rule(rule(
                "/remove",
                vec![response_header_modifier(&[], &[], &["X-Header-Remove"])],
            ))
            .rule(rule(
                "/multiple",
                vec![response_header_modifier(
                    &[
                        ("X-Header-Set-1", "header-set-1"),
                        ("X-Header-Set-2", "header-set-2"),
                    ],
                    &[
                        ("X-Header-Add-1", "header-add-1"),
                        ("X-Header-Add-2", "header-add-2"),
                        ("X-Header-Add-3", "header-add-3"),
                    ],
                    &["X-Header-Remove-1", "X-Header-Remove-2"],
                )],
            ))
            .rule(rule(
                "/case-insensitivity",
                vec![response_header_modifier(
                    &[("X-Header-Set", "header-set")],
                    &[
                        ("X-Header-Add", "header-add"),
                        ("x-lowercase-add", "lowercase-add"),
                        ("x-Mixedcase-ADD-1", "mixedcase-add-1"),
                        ("X-mixeDcase-add-2", "mixedcase-add-2"),
                        ("X-UPPERCASE-ADD", "uppercase-add"),
                    ],
                    &["X-Header-Remove"],
                )],
            ))
            .rule(rule(
                "/response-and-request-header-modifiers",
                vec![
                    response_header_modifier(
                        &[
                            ("X-Header-Set-1", "header-set-1"),
                            ("X-Header-Set-2", "header-set-2"),
                        ],
                        &[
                            ("X-Header-Add-1", "header-add-1"),
                            ("X-Header-Add-2", "header-add-2"),
                        ],
                        &["X-Header-Remove-1", "X-Header-Remove-2"],
                    ),
                    request_header_modifier(
                        &[("X-Header-Set", "set-overwrites-values")],
                        &[
                            ("X-Header-Add", "header-val-1"),
                            ("X-Header-Add-Append", "header-val-2"),
                        ],
                        &["X-Header-Remove"],
                    ),
                ],
            ))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let cl = client();
    let addr = f.http_addr();
    let mut c = Checker::new(addr);
    // (path, request headers, headers the backend sends, expected response
    // headers, absent response headers)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "/set",
            vec![],
            vec!["Some-Other-Header: val"],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            vec![],
        ),
        (
            "/set",
            vec![],
            vec!["Some-Other-Header: val", "X-Header-Set: some-other-value"],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            vec![],
        ),
        (
            "/add",
            vec![],
            vec!["Some-Other-Header: val"],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "add-appends-values"),
            ],
            vec![],
        ),
        (
            "/add",
            vec![],
            vec!["Some-Other-Header: val", "X-Header-Add: some-other-value"],
            vec![
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value,add-appends-values"),
            ],
            vec![],
        ),
        (
            "/remove",
            vec![],
            vec!["X-Header-Remove: val"],
            vec![],
            vec!["X-Header-Remove"],
        ),
        (
            "/multiple",
            vec![],
            vec![
                "X-Header-Set-2: set-val-2",
                "X-Header-Add-2: add-val-2",
                "X-Header-Remove-2: remove-val-2",
                "Another-Header: another-header-val",
                "X-Header-Remove-1: val",
            ],
            vec![
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ],
            vec!["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
        (
            "/case-insensitivity",
            vec![],
            vec![
                "x-header-set: original-val-set",
                "x-header-add: original-val-add",
                "x-header-remove: original-val-remove",
                "Another-Header: another-header-val",
            ],
            vec![
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("X-Lowercase-Add", "lowercase-add"),
                ("X-Mixedcase-Add-1", "mixedcase-add-1"),
                ("X-Mixedcase-Add-2", "mixedcase-add-2"),
                ("X-Uppercase-Add", "uppercase-add"),
                ("Another-Header", "another-header-val"),
            ],
            vec!["X-Header-Remove"],
        ),
        (
            "/response-and-request-header-modifiers",
            vec![
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
                ("X-Header-Echo", "echo"),
            ],
            vec![
                "X-Header-Set-2: set-val-2",
                "X-Header-Add-2: add-val-2",
                "X-Header-Remove-2: remove-val-2",
                "Another-Header: another-header-val",
                "X-Header-Remove-1: remove-val-1",
                "X-Header-Echo: echo",
            ],
            vec![
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("Another-Header", "another-header-val"),
                ("X-Header-Echo", "echo"),
            ],
            vec!["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
    ];
    for (path, sent, backend_sets, want, absent) in cases {
        let mut headers = sent.clone();
        headers.extend(backend_sets.iter().map(|h| (ECHO_SET_HEADER, *h)));
        echo.clear_requests();
        let answer = send(&cl, addr, "GET", ANY, path, &headers).await;
        c.check(
            answer.status == 200 && answer.body.contains("\"echo\""),
            || format!("{path}: {} {}", answer.status, answer.body),
        );
        for (name, value) in want {
            let got = response_header(&answer, name);
            c.check(got.as_deref() == Some(value), || {
                format!("{path}: response {name}: {got:?}, want {value:?}")
            });
        }
        for name in absent {
            let got = response_header(&answer, name);
            c.check(got.is_none(), || {
                format!("{path}: response {name}: {got:?}, want none")
            });
        }
    }
    // The request side of the last case, as the backend received it.
    let last = echo
        .requests()
        .pop()
        .expect("the backend got the last request");
    let seen = |name: &str| joined(last.header_all(name).iter().map(String::as_str));
    for (name, value) in [
        ("X-Header-Add", "header-val-1"),
        ("X-Header-Set", "set-overwrites-values"),
        ("X-Header-Add-Append", "append-val-1,header-val-2"),
        ("X-Header-Echo", "echo"),
    ] {
        let got = seen(name);
        c.check(got.as_deref() == Some(value), || {
            format!("request {name} at the backend: {got:?}, want {value:?}")
        });
    }
    let got = seen("X-Header-Remove");
    c.check(got.is_none(), || {
        format!("request X-Header-Remove at the backend: {got:?}")
    });
    c.done();
    f.stop().await;
}

/// A redirect-only rule for `prefix`.
fn redirect_rule(prefix: &str, spec: Value) -> Rule {
    Rule::new()
        .matching(Match::prefix(prefix))
        .filter(request_redirect(spec))
}

/// httproute-redirect-host-and-status (and the 303/307/308 variants).
#[tokio::test]
async fn httproute_redirect_host_and_status() {
    let f = conformance(
        &infra_route("redirect-host-and-status")
            .rule(redirect_rule(
                "/hostname-redirect",
                json!({"hostname": "example.org"}),
            ))
            .rule(redirect_rule(
                "/host-and-status",
                json!({"statusCode": 301, "hostname": "example.org"}),
            ))
            .rule(redirect_rule(
                "/s303",
                json!({"statusCode": 303, "hostname": "example.org"}),
            ))
            .rule(redirect_rule(
                "/s307",
                json!({"statusCode": 307, "hostname": "example.org"}),
            ))
            .rule(redirect_rule(
                "/s308",
                json!({"statusCode": 308, "hostname": "example.org"}),
            ))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.redirect(
        ANY,
        "/hostname-redirect",
        302,
        "http",
        "example.org",
        None,
        "/hostname-redirect",
    )
    .await;
    c.redirect(
        ANY,
        "/host-and-status",
        301,
        "http",
        "example.org",
        None,
        "/host-and-status",
    )
    .await;
    c.redirect(ANY, "/s303", 303, "http", "example.org", None, "/s303")
        .await;
    c.redirect(ANY, "/s307", 307, "http", "example.org", None, "/s307")
        .await;
    c.redirect(ANY, "/s308", 308, "http", "example.org", None, "/s308")
        .await;
    c.done();
    f.stop().await;
}

/// httproute-redirect-path.
#[tokio::test]
async fn httproute_redirect_path() {
    let prefix = |p: &str| json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": p});
    let full = |p: &str| json!({"type": "ReplaceFullPath", "replaceFullPath": p});
    let f = conformance(
        &infra_route("redirect-path")
            .rule(redirect_rule(
                "/original-prefix",
                json!({"path": prefix("/replacement-prefix")}),
            ))
            .rule(redirect_rule(
                "/full",
                json!({"path": full("/full-path-replacement")}),
            ))
            .rule(redirect_rule(
                "/path-and-host",
                json!({"hostname": "example.org", "path": prefix("/replacement-prefix")}),
            ))
            .rule(redirect_rule(
                "/path-and-status",
                json!({"path": prefix("/replacement-prefix"), "statusCode": 301}),
            ))
            .rule(redirect_rule(
                "/full-path-and-host",
                json!({"hostname": "example.org", "path": full("/replacement-full")}),
            ))
            .rule(redirect_rule(
                "/full-path-and-status",
                json!({"path": full("/replacement-full"), "statusCode": 301}),
            ))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.redirect(
        ANY,
        "/original-prefix/lemon",
        302,
        "http",
        ANY,
        None,
        "/replacement-prefix/lemon",
    )
    .await;
    c.redirect(
        ANY,
        "/full/path/original",
        302,
        "http",
        ANY,
        None,
        "/full-path-replacement",
    )
    .await;
    c.redirect(
        ANY,
        "/path-and-host",
        302,
        "http",
        "example.org",
        None,
        "/replacement-prefix",
    )
    .await;
    c.redirect(
        ANY,
        "/path-and-status",
        301,
        "http",
        ANY,
        None,
        "/replacement-prefix",
    )
    .await;
    c.redirect(
        ANY,
        "/full-path-and-host",
        302,
        "http",
        "example.org",
        None,
        "/replacement-full",
    )
    .await;
    c.redirect(
        ANY,
        "/full-path-and-status",
        301,
        "http",
        ANY,
        None,
        "/replacement-full",
    )
    .await;
    c.done();
    f.stop().await;
}

/// httproute-redirect-port.
#[tokio::test]
async fn httproute_redirect_port() {
    let f = conformance(
        &infra_route("redirect-port")
            .rule(redirect_rule("/port", json!({"port": 8083})))
            .rule(redirect_rule(
                "/port-and-host",
                json!({"hostname": "example.org", "port": 8083}),
            ))
            .rule(redirect_rule(
                "/port-and-status",
                json!({"port": 8083, "statusCode": 301}),
            ))
            .rule(redirect_rule(
                "/port-and-host-and-status",
                json!({"port": 8083, "hostname": "example.org", "statusCode": 302}),
            ))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.redirect(ANY, "/port", 302, "http", ANY, Some(8083), "/port")
        .await;
    c.redirect(
        ANY,
        "/port-and-host",
        302,
        "http",
        "example.org",
        Some(8083),
        "/port-and-host",
    )
    .await;
    c.redirect(
        ANY,
        "/port-and-status",
        301,
        "http",
        ANY,
        Some(8083),
        "/port-and-status",
    )
    .await;
    c.redirect(
        ANY,
        "/port-and-host-and-status",
        302,
        "http",
        "example.org",
        Some(8083),
        "/port-and-host-and-status",
    )
    .await;
    c.done();
    f.stop().await;
}

/// httproute-redirect-scheme.
#[tokio::test]
async fn httproute_redirect_scheme() {
    let f = conformance(
        &infra_route("redirect-scheme")
            .rule(redirect_rule("/scheme", json!({"scheme": "https"})))
            .rule(redirect_rule(
                "/scheme-and-host",
                json!({"hostname": "example.org", "scheme": "https"}),
            ))
            .rule(redirect_rule(
                "/scheme-and-status",
                json!({"scheme": "https", "statusCode": 301}),
            ))
            .rule(redirect_rule(
                "/scheme-and-host-and-status",
                json!({"scheme": "https", "statusCode": 302, "hostname": "example.org"}),
            ))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    c.redirect(ANY, "/scheme", 302, "https", ANY, None, "/scheme")
        .await;
    c.redirect(
        ANY,
        "/scheme-and-host",
        302,
        "https",
        "example.org",
        None,
        "/scheme-and-host",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-and-status",
        301,
        "https",
        ANY,
        None,
        "/scheme-and-status",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-and-host-and-status",
        302,
        "https",
        "example.org",
        None,
        "/scheme-and-host-and-status",
    )
    .await;
    c.done();
    f.stop().await;
}

/// httproute-redirect-port-and-scheme, the listener on port 80: the
/// scheme's well-known port is left out, any other port written.
#[tokio::test]
async fn httproute_redirect_port_and_scheme_on_port_80() {
    let host = |extra: Value| {
        let mut spec = json!({"hostname": "example.org"});
        if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra) {
            spec.extend(extra);
        }
        spec
    };
    let f = conformance(
        &infra_route("http-route-for-listener-on-port-80")
            .rule(redirect_rule("/scheme-nil-and-port-nil", host(json!({}))))
            .rule(redirect_rule(
                "/scheme-nil-and-port-80",
                host(json!({"port": 80})),
            ))
            .rule(redirect_rule(
                "/scheme-nil-and-port-8080",
                host(json!({"port": 8080})),
            ))
            .rule(redirect_rule(
                "/scheme-https-and-port-nil",
                host(json!({"scheme": "https"})),
            ))
            .rule(redirect_rule(
                "/scheme-https-and-port-443",
                host(json!({"scheme": "https", "port": 443})),
            ))
            .rule(redirect_rule(
                "/scheme-https-and-port-8443",
                host(json!({"scheme": "https", "port": 8443})),
            ))
            .doc(),
    )
    .await;
    let mut c = Checker::new(f.http_addr());
    let org = "example.org";
    c.redirect(
        ANY,
        "/scheme-nil-and-port-nil",
        302,
        "http",
        org,
        None,
        "/scheme-nil-and-port-nil",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-nil-and-port-80",
        302,
        "http",
        org,
        None,
        "/scheme-nil-and-port-80",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-nil-and-port-8080",
        302,
        "http",
        org,
        Some(8080),
        "/scheme-nil-and-port-8080",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-https-and-port-nil",
        302,
        "https",
        org,
        None,
        "/scheme-https-and-port-nil",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-https-and-port-443",
        302,
        "https",
        org,
        None,
        "/scheme-https-and-port-443",
    )
    .await;
    c.redirect(
        ANY,
        "/scheme-https-and-port-8443",
        302,
        "https",
        org,
        Some(8443),
        "/scheme-https-and-port-8443",
    )
    .await;
    c.done();
    f.stop().await;
}

/// httproute-rewrite-host.
#[tokio::test]
async fn httproute_rewrite_host() {
    let f = conformance(
        &infra_route("rewrite-host")
            .hostnames(&["rewrite.example"])
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/one"))
                    .filter(url_rewrite(json!({"hostname": "one.example.org"}))),
            )
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .filter(url_rewrite(json!({"hostname": "example.org"}))),
            )
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::prefix("/rewrite-host-and-modify-headers"))
                    .filter(url_rewrite(json!({"hostname": "test.example.org"})))
                    .filter(request_header_modifier(
                        &[("X-Header-Set", "set-overwrites-values")],
                        &[
                            ("X-Header-Add", "header-val-1"),
                            ("X-Header-Add-Append", "header-val-2"),
                        ],
                        &["X-Header-Remove"],
                    )),
            )
            .doc(),
    )
    .await;
    let cl = client();
    let addr = f.http_addr();
    let mut c = Checker::new(addr);
    let r = report(&cl, addr, "GET", "rewrite.example", "/one", &[]).await;
    c.check(
        r["name"] == V1 && r["host"] == "one.example.org" && r["uri"] == "/one",
        || format!("/one: {r}"),
    );
    let r = report(&cl, addr, "GET", "rewrite.example", "/two", &[]).await;
    c.check(
        r["name"] == V2 && r["host"] == "example.org" && r["uri"] == "/two",
        || format!("/two: {r}"),
    );
    let r = report(
        &cl,
        addr,
        "GET",
        "rewrite.example",
        "/rewrite-host-and-modify-headers",
        &[
            ("X-Header-Remove", "remove-val"),
            ("X-Header-Add-Append", "append-val-1"),
        ],
    )
    .await;
    c.check(
        r["name"] == V2
            && r["host"] == "test.example.org"
            && r["uri"] == "/rewrite-host-and-modify-headers"
            && request_header(&r, "X-Header-Add").as_deref() == Some("header-val-1")
            && request_header(&r, "X-Header-Add-Append").as_deref()
                == Some("append-val-1,header-val-2")
            && request_header(&r, "X-Header-Set").as_deref() == Some("set-overwrites-values")
            && request_header(&r, "X-Header-Remove").is_none(),
        || format!("/rewrite-host-and-modify-headers: {r}"),
    );
    c.done();
    f.stop().await;
}

/// httproute-rewrite-path.
#[tokio::test]
async fn httproute_rewrite_path() {
    let prefix = |p: &str| {
        url_rewrite(json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": p}}))
    };
    let full =
        |p: &str| url_rewrite(json!({"path": {"type": "ReplaceFullPath", "replaceFullPath": p}}));
    let headers = || {
        request_header_modifier(
            &[("X-Header-Set", "set-overwrites-values")],
            &[
                ("X-Header-Add", "header-val-1"),
                ("X-Header-Add-Append", "header-val-2"),
            ],
            &["X-Header-Remove"],
        )
    };
    let rule = |path: &str| Rule::to("infra-backend-v1", 80).matching(Match::prefix(path));
    let f = conformance(
        &infra_route("rewrite-path")
            .rule(rule("/prefix/one").filter(prefix("/one")))
            .rule(rule("/strip-prefix").filter(prefix("/")))
            .rule(rule("/full/one").filter(full("/one")))
            .rule(
                rule("/full/rewrite-path-and-modify-headers")
                    .filter(full("/test"))
                    .filter(headers()),
            )
            .rule(
                rule("/prefix/rewrite-path-and-modify-headers")
                    .filter(prefix("/prefix"))
                    .filter(headers()),
            )
            .doc(),
    )
    .await;
    let cl = client();
    let addr = f.http_addr();
    let mut c = Checker::new(addr);
    for (path, want) in [
        ("/prefix/one/two", "/one/two"),
        ("/strip-prefix/three", "/three"),
        ("/strip-prefix", "/"),
        ("/full/one/two", "/one"),
    ] {
        let r = report(&cl, addr, "GET", ANY, path, &[]).await;
        c.check(r["name"] == V1 && r["uri"] == want, || {
            format!("{path}: backend saw {} (want {want})", r["uri"])
        });
    }
    let sent = [
        ("X-Header-Remove", "remove-val"),
        ("X-Header-Add-Append", "append-val-1"),
        ("X-Header-Set", "set-val"),
    ];
    for (path, want) in [
        ("/full/rewrite-path-and-modify-headers/test", "/test"),
        ("/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"),
    ] {
        let r = report(&cl, addr, "GET", ANY, path, &sent).await;
        c.check(
            r["uri"] == want
                && request_header(&r, "X-Header-Add").as_deref() == Some("header-val-1")
                && request_header(&r, "X-Header-Add-Append").as_deref()
                    == Some("append-val-1,header-val-2")
                && request_header(&r, "X-Header-Set").as_deref() == Some("set-overwrites-values")
                && request_header(&r, "X-Header-Remove").is_none(),
            || format!("{path}: {r}"),
        );
    }
    c.done();
    f.stop().await;
}

/// The `ReplacePrefixMatch` table of the HTTPPathModifier docs:
/// (request path, prefix match, replacement, modified path).
const REPLACE_PREFIX_TABLE: [(&str, &str, &str, &str); 11] = [
    ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
    ("/foo", "/foo", "/xyz", "/xyz"),
    ("/foo/", "/foo", "/xyz", "/xyz/"),
    ("/foo/bar", "/foo", "", "/bar"),
    ("/foo/", "/foo", "", "/"),
    ("/foo", "/foo", "", "/"),
    ("/foo/", "/foo", "/", "/"),
    ("/foo", "/foo", "/", "/"),
];

/// One route per row of [`REPLACE_PREFIX_TABLE`] on host `{kind}-{row}.example`,
/// its rule built by `rule(prefix, replacement)`.
fn replace_prefix_routes(kind: &str, rule: impl Fn(&str, &str) -> Rule) -> String {
    REPLACE_PREFIX_TABLE
        .iter()
        .enumerate()
        .map(|(i, (_, prefix, replacement, _))| {
            infra_route(&format!("{kind}-{i}"))
                .hostnames(&[&format!("{kind}-{i}.example")])
                .rule(rule(prefix, replacement))
                .doc()
        })
        .collect()
}

/// URLRewrite `ReplacePrefixMatch`: every row of the spec's table, the
/// query string kept.
#[tokio::test]
async fn httproute_rewrite_replace_prefix_match_table() {
    let yaml = replace_prefix_routes("rw", |prefix, replacement| {
        Rule::to("infra-backend-v1", 80)
            .matching(Match::prefix(prefix))
            .filter(url_rewrite(json!({
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement},
            })))
    });
    let f = conformance(&yaml).await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    for (i, (path, prefix, replacement, want)) in REPLACE_PREFIX_TABLE.iter().enumerate() {
        let host = format!("rw-{i}.example");
        let answer = send(
            &cl,
            addr,
            "GET",
            &host,
            path,
            &[("accept", "application/json")],
        )
        .await;
        let uri = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["uri"].as_str().map(str::to_owned));
        c.check(answer.status == 200 && uri.as_deref() == Some(*want), || {
            format!(
                "rewrite {path} (prefix {prefix:?} -> {replacement:?}): want {want}, got {} {uri:?} {:?}",
                answer.status, answer.body
            )
        });
    }
    let r = report(&cl, addr, "GET", "rw-0.example", "/foo/bar?x=1&y=%2F", &[]).await;
    c.check(r["uri"] == "/xyz/bar?x=1&y=%2F", || {
        format!("rewrite keeps the query: backend saw {}", r["uri"])
    });
    c.done();
    f.stop().await;
}

/// RequestRedirect `ReplacePrefixMatch`: every row of the spec's table.
#[tokio::test]
async fn httproute_redirect_replace_prefix_match_table() {
    let yaml = replace_prefix_routes("rd", |prefix, replacement| {
        redirect_rule(
            prefix,
            json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}}),
        )
    });
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    for (i, (path, _, _, want)) in REPLACE_PREFIX_TABLE.iter().enumerate() {
        let host = format!("rd-{i}.example");
        c.redirect(&host, path, 302, "http", &host, None, want)
            .await;
    }
    c.done();
    f.stop().await;
}

/// httproute-listener-port-matching, the part one entrypoint can show: a
/// parentRef `port: 80` attaches to the port-80 listener only, and a route
/// attached to a listener on a port sluice does not serve (8090) is served
/// nowhere.
#[tokio::test]
async fn httproute_listener_port_matching() {
    let gw = "httproute-listener-port-matching";
    let yaml = [
        gateway(
            gw,
            INFRA,
            &[
                Listener::http("listener-1").hostname("foo.com"),
                Listener::http("listener-4").port(8090).hostname("foo.com"),
                Listener::http("listener-5").port(8090).hostname("bar.com"),
            ],
        ),
        HttpRoute::new("backend-v1", INFRA)
            .parent_ref(json!({"name": gw, "namespace": INFRA, "port": 80}))
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        HttpRoute::new("backend-v3", INFRA)
            .parent_ref(
                json!({"name": gw, "namespace": INFRA, "port": 8090, "sectionName": "listener-4"}),
            )
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/v3")))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("foo.com", "/", By(V1)).await;
    c.get("foo.com", "/v3", By(V1)).await;
    c.get("bar.com", "/", Code(404)).await;
    c.get("bar.com", "/v3", Code(404)).await;
    c.done();
    f.stop().await;
}

// ---------------------------------------------------------------------------
// Classes, Ingress side by side, hot reload, HTTPS
// ---------------------------------------------------------------------------

/// A Gateway of another controller's class (or of a class that does not
/// exist) serves nothing; sluice's own class keeps serving.
#[tokio::test]
async fn httproute_on_gateway_of_another_class_serves_nothing() {
    let yaml = [
        gateway_class_named("other", "example.com/other-controller"),
        gateway_of_class(
            "foreign",
            INFRA,
            "other",
            &[Listener::http("http").hostname("foreign.example")],
        ),
        HttpRoute::new("on-foreign", INFRA)
            .parent("foreign")
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        gateway_of_class(
            "classless",
            INFRA,
            "no-such-class",
            &[Listener::http("http")],
        ),
        HttpRoute::new("on-classless", INFRA)
            .parent("classless")
            .hostnames(&["classless.example"])
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
        infra_route("ours")
            .hostnames(&["ours.example"])
            .rule(Rule::to("infra-backend-v3", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("foreign.example", "/", Code(404)).await;
    c.get("classless.example", "/", Code(404)).await;
    c.get("ours.example", "/", By(V3)).await;
    c.done();
    f.stop().await;
}

/// Only a Gateway of another class: no Gateway listener at all, 404.
#[tokio::test]
async fn httproute_with_only_a_foreign_gateway_serves_nothing() {
    let yaml = [
        gateway_class_named("other", "example.com/other-controller"),
        gateway_of_class("foreign", "default", "other", &[Listener::http("http")]),
        HttpRoute::new("on-foreign", "default")
            .parent("foreign")
            .rule(Rule::to("web", 80))
            .doc(),
    ]
    .concat();
    let f = start_gateway_fixture(&["web"], &yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// The Gateway + HTTPRoute part of the Ingress side-by-side tests.
fn side_by_side(route: HttpRoute) -> String {
    [
        gateway_class(),
        gateway("gw", "default", &[Listener::http("http")]),
        route.doc(),
    ]
    .concat()
}

/// An Ingress and an HTTPRoute for different hosts both serve.
#[tokio::test]
async fn ingress_and_httproute_for_different_hosts_both_serve() {
    let yaml = side_by_side(
        HttpRoute::new("r", "default")
            .parent("gw")
            .hostnames(&["gw.example"])
            .rule(Rule::to("gw-svc", 80)),
    ) + &ingress("ing", &[("ing.example", "/", "Prefix", "ing-svc")]);
    let f = start_gateway_fixture(&["ing-svc", "gw-svc"], &yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("ing.example", "/", By("ing-svc")).await;
    c.get("ing.example", "/x", By("ing-svc")).await;
    c.get("gw.example", "/", By("gw-svc")).await;
    c.get("gw.example", "/x", By("gw-svc")).await;
    c.get("neither.example", "/", Code(404)).await;
    c.done();
    f.stop().await;
}

/// An Ingress default backend catches what no rule matches, but any
/// HTTPRoute match beats it.
#[tokio::test]
async fn httproute_beats_ingress_default_backend() {
    let default_backend = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch-all\nspec:\n  defaultBackend:\n    service:\n      name: ing-svc\n      port:\n        number: 80\n";
    let yaml = side_by_side(
        HttpRoute::new("r", "default")
            .parent("gw")
            .hostnames(&["gw.example"])
            .rule(Rule::to("gw-svc", 80).matching(Match::prefix("/app"))),
    ) + default_backend;
    let f = start_gateway_fixture(&["ing-svc", "gw-svc"], &yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("gw.example", "/app", By("gw-svc")).await;
    c.get("gw.example", "/other", By("ing-svc")).await;
    c.get("elsewhere.example", "/app", By("ing-svc")).await;
    c.done();
    f.stop().await;
}

/// Same host and path: the Ingress wins the tie; a more specific HTTPRoute
/// match (a longer path, an Exact path, an exact host against a wildcard
/// Ingress) wins over the Ingress; a less specific one loses.
#[tokio::test]
async fn ingress_wins_ties_more_specific_httproute_wins() {
    let yaml = side_by_side(
        HttpRoute::new("r", "default")
            .parent("gw")
            .hostnames(&["same.example", "exact.wild.example"])
            .rule(Rule::to("gw-svc", 80).matching(Match::prefix("/")))
            .rule(Rule::to("gw-svc", 80).matching(Match::prefix("/api/v2")))
            .rule(Rule::to("gw-svc", 80).matching(Match::exact("/api/exact"))),
    ) + &ingress(
        "ing",
        &[
            ("same.example", "/", "Prefix", "ing-svc"),
            ("same.example", "/api", "Prefix", "ing-svc"),
            ("*.wild.example", "/", "Prefix", "ing-svc"),
        ],
    );
    let f = start_gateway_fixture(&["ing-svc", "gw-svc"], &yaml).await;
    let mut c = Checker::new(f.http_addr());
    // Tie at host and `/`: the Ingress.
    c.get("same.example", "/", By("ing-svc")).await;
    c.get("same.example", "/other", By("ing-svc")).await;
    // Ingress /api is longer than the route's `/`.
    c.get("same.example", "/api/v1", By("ing-svc")).await;
    // The route's /api/v2 is longer than the Ingress's /api.
    c.get("same.example", "/api/v2/x", By("gw-svc")).await;
    // Exact beats any prefix.
    c.get("same.example", "/api/exact", By("gw-svc")).await;
    // Exact host (route) beats a wildcard host (Ingress).
    c.get("exact.wild.example", "/", By("gw-svc")).await;
    c.get("other.wild.example", "/", By("ing-svc")).await;
    c.done();
    f.stop().await;
}

/// Editing the HTTPRoute file changes routing within a few seconds.
#[tokio::test]
async fn httproute_file_edits_reload() {
    let route = |svc: &str, path: &str| {
        infra_route("reloaded")
            .hostnames(&["reload.example"])
            .rule(Rule::to(svc, 80).matching(Match::prefix(path)))
            .doc()
    };
    let f = conformance(&route("infra-backend-v1", "/")).await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    c.get("reload.example", "/a", By(V1)).await;
    c.done();

    // Change the backend.
    f.rewrite(&format!("{}{}", infra(), route("infra-backend-v2", "/")));
    wait_for("the edit to v2", || async {
        backend_for(&cl, addr, "reload.example", "/a", &[])
            .await
            .as_deref()
            == Ok(V2)
    })
    .await;
    // Narrow the path: /a is no longer served.
    f.rewrite(&format!("{}{}", infra(), route("infra-backend-v3", "/b")));
    wait_for("the edit to /b on v3", || async {
        backend_for(&cl, addr, "reload.example", "/b", &[])
            .await
            .as_deref()
            == Ok(V3)
    })
    .await;
    let mut c = Checker::new(addr);
    c.get("reload.example", "/a", Code(404)).await;
    c.done();
    // Remove the route.
    f.rewrite(&infra());
    wait_for("the route removed", || async {
        backend_for(&cl, addr, "reload.example", "/b", &[]).await == Err(404)
    })
    .await;
    f.stop().await;
}

/// httproute-https-listener and the HTTPS part of
/// httproute-redirect-port-and-scheme: routes attached to an HTTPS listener
/// are served over TLS only; a redirect there defaults to https and 443.
#[tokio::test]
async fn httproute_https_listener_and_redirect_defaults() {
    let cert = tls_support::cert("example.org", &["example.org", "*.example.org"]);
    let gw = "same-namespace-with-https-listener";
    let yaml = [
        tls_support::tls_secret(INFRA, "tls-validity-checks-certificate", &cert),
        gateway(
            gw,
            INFRA,
            &[Listener::https("https", "tls-validity-checks-certificate")],
        ),
        HttpRoute::new("https-route", INFRA)
            .parent_in(INFRA, gw, Some("https"))
            .hostnames(&["example.org"])
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/served")))
            .rule(redirect_rule(
                "/scheme-nil-and-port-nil",
                json!({"hostname": "example.org"}),
            ))
            .rule(redirect_rule(
                "/scheme-nil-and-port-8443",
                json!({"hostname": "example.org", "port": 8443}),
            ))
            .rule(redirect_rule(
                "/scheme-http-and-port-nil",
                json!({"hostname": "example.org", "scheme": "http"}),
            ))
            .rule(redirect_rule(
                "/scheme-http-and-port-8080",
                json!({"hostname": "example.org", "scheme": "http", "port": 8080}),
            ))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut failures = Vec::new();
    let mut conn =
        tls_support::HttpConn::https(f.https_addr(), Some("example.org"), &["http/1.1"]).await;
    let served = conn.whoami("example.org", "/served").await;
    if served["name"] != V1 {
        failures.push(format!("https /served: {served}"));
    }
    for (path, scheme, port) in [
        ("/scheme-nil-and-port-nil", "https", None),
        ("/scheme-nil-and-port-8443", "https", Some(8443)),
        ("/scheme-http-and-port-nil", "http", None),
        ("/scheme-http-and-port-8080", "http", Some(8080)),
    ] {
        let reply = conn.get("example.org", path, &[]).await;
        let location = reply.header("location").unwrap_or("").to_owned();
        let got = split_location(&location);
        let default = if scheme == "https" { 443 } else { 80 };
        let ok = reply.status == 302
            && got.as_ref().is_some_and(|(s, h, p, pq)| {
                s == scheme
                    && h == "example.org"
                    && pq == path
                    && match port {
                        Some(want) => *p == Some(want),
                        None => p.is_none() || *p == Some(default),
                    }
            });
        if !ok {
            failures.push(format!(
                "https {path}: want 302 {scheme} port {port:?}, got {} {location:?}",
                reply.status
            ));
        }
    }
    // Not served on the HTTP entrypoint.
    let cl = client();
    let plain = backend_for(&cl, f.http_addr(), "example.org", "/served", &[]).await;
    if plain != Err(404) {
        failures.push(format!("http /served: want 404, got {plain:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    f.stop().await;
}

/// The HTTPS Gateway of `conformance/base`: `https` (any host),
/// `https-with-hostname` (second-example.org), `https-with-wildcard-hostname`
/// (*.wildcard.org), `https-with-hostname-matching-wildcard`
/// (fourth-example.wildcard.org), one certificate for all.
fn https_gateway() -> String {
    let cert = tls_support::cert(
        "example.org",
        &[
            "example.org",
            "*.example.org",
            "second-example.org",
            "unknown-example.org",
            "*.wildcard.org",
        ],
    );
    let secret = "tls-validity-checks-certificate";
    [
        tls_support::tls_secret(INFRA, secret, &cert),
        gateway(
            "same-namespace-with-https-listener",
            INFRA,
            &[
                Listener::https("https", secret),
                Listener::https("https-with-hostname", secret).hostname("second-example.org"),
                Listener::https("https-with-wildcard-hostname", secret).hostname("*.wildcard.org"),
                Listener::https("https-with-hostname-matching-wildcard", secret)
                    .hostname("fourth-example.wildcard.org"),
            ],
        ),
    ]
    .concat()
}

/// GET `path` over TLS with SNI and Host `host`: the whoami that answered,
/// or the status.
async fn https_backend(addr: SocketAddr, host: &str, path: &str) -> Result<String, u16> {
    let mut conn = tls_support::HttpConn::https(addr, Some(host), &["http/1.1"]).await;
    let reply = conn
        .get(host, path, &[("accept", "application/json")])
        .await;
    if reply.status != 200 {
        return Err(reply.status);
    }
    let v: Value = serde_json::from_str(&reply.body).map_err(|_| reply.status)?;
    v["name"].as_str().map(str::to_owned).ok_or(reply.status)
}

/// httproute-https-listener: over TLS, a route with hostname example.org
/// (attached to every listener) and a route attached to the
/// second-example.org listener.
#[tokio::test]
async fn httproute_https_listener() {
    let gw = "same-namespace-with-https-listener";
    let yaml = [
        https_gateway(),
        HttpRoute::new("httproute-https-test", INFRA)
            .parent(gw)
            .hostnames(&["example.org"])
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        HttpRoute::new("httproute-https-test-no-hostname", INFRA)
            .parent_in(INFRA, gw, Some("https-with-hostname"))
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut failures = Vec::new();
    for (host, want) in [
        ("example.org", Ok(V1.to_owned())),
        ("unknown-example.org", Err(404)),
        ("second-example.org", Ok(V2.to_owned())),
    ] {
        let got = https_backend(f.https_addr(), host, "/").await;
        if got != want {
            failures.push(format!("https {host}/: want {want:?}, got {got:?}"));
        }
    }
    // HTTPS listeners' routes are not served on the HTTP entrypoint.
    let plain = backend_for(&client(), f.http_addr(), "example.org", "/", &[]).await;
    if plain != Err(404) {
        failures.push(format!("http example.org/: want 404, got {plain:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    f.stop().await;
}

/// httproute-multiple-gateways: one route attached to two Gateways is
/// served on both, beside each Gateway's own route. (The suite gives each
/// Gateway an address; here their listeners have hostnames.)
#[tokio::test]
async fn httproute_multiple_gateways() {
    let yaml = [
        gateway(
            "gw-a",
            INFRA,
            &[Listener::http("http").hostname("a.example")],
        ),
        gateway(
            "gw-b",
            INFRA,
            &[Listener::http("http").hostname("b.example")],
        ),
        HttpRoute::new("multiple-gateways-shared-route", INFRA)
            .parent("gw-a")
            .parent("gw-b")
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/shared")))
            .doc(),
        HttpRoute::new("gw-a-dedicated-route", INFRA)
            .parent("gw-a")
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::prefix("/")))
            .doc(),
        HttpRoute::new("gw-b-dedicated-route", INFRA)
            .parent("gw-b")
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::prefix("/")))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("a.example", "/shared", By(V1)).await;
    c.get("a.example", "/", By(V2)).await;
    c.get("b.example", "/shared", By(V1)).await;
    c.get("b.example", "/", By(V3)).await;
    c.done();
    f.stop().await;
}

/// httproute-service-types: a ClusterIP Service and a headless Service
/// (`clusterIP: None`), both with hand-written EndpointSlices (an IPv4 one
/// with the endpoint, an empty IPv6 one) and a named port.
#[tokio::test]
async fn httproute_service_types() {
    let backend = whoami("typed").await;
    let service = |name: &str, headless: bool| {
        let mut spec = json!({"ports": [{"name": "first-port", "protocol": "TCP", "port": 8080, "targetPort": 3000}]});
        if headless {
            spec["clusterIP"] = json!("None");
        }
        let slice = |family: &str, endpoints: Value| {
            doc(&json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{name}-{}", family.to_ascii_lowercase()),
                    "namespace": INFRA,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": family,
                "ports": [{"name": "first-port", "port": backend.addr.port(), "protocol": "TCP"}],
                "endpoints": endpoints,
            }))
        };
        [
            doc(&json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": INFRA},
                "spec": spec,
            })),
            slice(
                "IPv4",
                json!([{"addresses": [backend.addr.ip().to_string()], "conditions": {"ready": true}}]),
            ),
            slice("IPv6", json!([])),
        ]
        .concat()
    };
    let yaml = [
        service("manual-endpointslices", false),
        service("headless-manual-endpointslices", true),
        infra_route("service-types")
            .rule(
                Rule::to("manual-endpointslices", 8080)
                    .matching(Match::exact("/manual-endpointslices")),
            )
            .rule(
                Rule::to("headless-manual-endpointslices", 8080)
                    .matching(Match::exact("/headless-manual-endpointslices")),
            )
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get(ANY, "/manual-endpointslices", By("typed")).await;
    c.get(ANY, "/headless-manual-endpointslices", By("typed"))
        .await;
    c.done();
    f.stop().await;
}

/// gateway-modify-listeners, with traffic: a listener added to a running
/// Gateway starts serving the route that names it; removing it stops it.
#[tokio::test]
async fn gateway_modify_listeners_hot_reload() {
    let gw = "gateway-add-listener";
    let route = HttpRoute::new("on-added-listener", INFRA)
        .parent_in(INFRA, gw, Some("added"))
        .rule(Rule::to("infra-backend-v2", 80))
        .doc();
    let before = [
        gateway(
            gw,
            INFRA,
            &[Listener::http("http").hostname("first.example")],
        ),
        route.clone(),
    ]
    .concat();
    let after = [
        gateway(
            gw,
            INFRA,
            &[
                Listener::http("http").hostname("first.example"),
                Listener::http("added").hostname("added.example"),
            ],
        ),
        route,
    ]
    .concat();
    let f = conformance(&before).await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    c.get("added.example", "/", Code(404)).await;
    c.done();
    f.rewrite(&format!("{}{after}", infra()));
    wait_for("the added listener serves its route", || async {
        backend_for(&cl, addr, "added.example", "/", &[])
            .await
            .as_deref()
            == Ok(V2)
    })
    .await;
    f.rewrite(&format!("{}{before}", infra()));
    wait_for("the removed listener stops serving", || async {
        backend_for(&cl, addr, "added.example", "/", &[]).await == Err(404)
    })
    .await;
    f.stop().await;
}

/// HTTP/2 (h2c prior knowledge) goes through the same HTTPRoute lookup:
/// `:authority` is the host, and header, method and query matches hold.
#[tokio::test]
async fn httproute_matching_over_h2c() {
    let f = conformance(
        &infra_route("h2")
            .hostnames(&["h2.example"])
            .rule(Rule::to("infra-backend-v1", 80).matching(Match::prefix("/")))
            .rule(Rule::to("infra-backend-v2", 80).matching(Match::any().header("version", "two")))
            .rule(Rule::to("infra-backend-v3", 80).matching(Match::any().method("POST")))
            .rule(
                Rule::to("infra-backend-v2", 80)
                    .matching(Match::prefix("/q").query("animal", "whale")),
            )
            .rule(
                Rule::new()
                    .matching(Match::exact("/redirect"))
                    .filter(request_redirect(
                        json!({"hostname": "example.org", "statusCode": 301}),
                    )),
            )
            .doc(),
    )
    .await;
    let mut conn = tls_support::HttpConn::h2c(f.http_addr()).await;
    let mut failures = Vec::new();
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Result<&'a str, u16>,
    );
    let cases: [Case; 7] = [
        ("GET", "h2.example", "/", &[], Ok(V1)),
        ("GET", "h2.example", "/", &[("version", "two")], Ok(V2)),
        ("POST", "h2.example", "/", &[], Ok(V3)),
        ("GET", "h2.example", "/q?animal=whale", &[], Ok(V2)),
        ("GET", "h2.example", "/q?animal=dolphin", &[], Ok(V1)),
        ("GET", "H2.Example:8080", "/x", &[], Ok(V1)),
        ("GET", "other.example", "/", &[], Err(404)),
    ];
    for (method, host, path, headers, want) in cases {
        let mut builder = conn
            .request(method, host, path)
            .header("accept", "application/json");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let reply = conn
            .send(builder.body(tls_support::empty()).expect("request"))
            .await;
        let got = if reply.status == 200 {
            serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_owned))
                .ok_or(reply.status)
        } else {
            Err(reply.status)
        };
        if got.as_deref().map_err(|s| *s) != want {
            failures.push(format!(
                "h2c {method} {host}{path} {headers:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    let reply = conn.get("h2.example", "/redirect", &[]).await;
    if reply.status != 301 || reply.header("location") != Some("http://example.org/redirect") {
        failures.push(format!(
            "h2c redirect: want 301 http://example.org/redirect, got {} {:?}",
            reply.status,
            reply.header("location")
        ));
    }
    assert!(conn.is_h2(), "the connection speaks HTTP/2");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    f.stop().await;
}

/// gateway-invalid-route-kind and gateway-invalid-listeners-unsupported-
/// protocol, as traffic: a listener allowing only an unknown route kind
/// serves no HTTPRoute; a listener with an unsupported protocol does not
/// keep its valid HTTP sibling from serving.
#[tokio::test]
async fn gateway_invalid_route_kind_and_unsupported_protocol() {
    let yaml = [
        gateway(
            "gateway-only-invalid-route-kind",
            INFRA,
            &[Listener::http("http")
                .hostname("only-invalid.example")
                .allow(Namespaces::All)
                .allow_kinds(&[(GROUP, "InvalidRoute")])],
        ),
        HttpRoute::new("on-only-invalid", INFRA)
            .parent("gateway-only-invalid-route-kind")
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
        gateway(
            "gateway-supported-and-unsupported-protocols",
            INFRA,
            &[
                Listener::http("http").hostname("mixed.example"),
                Listener(json!({"name": "invalid", "port": 1111, "protocol": "INVALID"})),
            ],
        ),
        HttpRoute::new("on-mixed", INFRA)
            .parent("gateway-supported-and-unsupported-protocols")
            .rule(Rule::to("infra-backend-v2", 80))
            .doc(),
    ]
    .concat();
    let f = conformance(&yaml).await;
    let mut c = Checker::new(f.http_addr());
    c.get("only-invalid.example", "/", Code(404)).await;
    c.get("mixed.example", "/", By(V2)).await;
    c.done();
    f.stop().await;
}

/// A GatewayClass handed to another controller at runtime stops being
/// served; handed back, it serves again.
#[tokio::test]
async fn gateway_class_controller_change_hot_reload() {
    let rest = [
        gateway("gw", "default", &[Listener::http("http")]),
        HttpRoute::new("r", "default")
            .parent("gw")
            .rule(Rule::to("web", 80))
            .doc(),
    ]
    .concat();
    let ours = format!("{}{rest}", gateway_class());
    let theirs = format!(
        "{}{rest}",
        gateway_class_named(CLASS, "example.com/other-controller")
    );
    let f = start_gateway_fixture(&["web"], &ours).await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    c.get(ANY, "/", By("web")).await;
    c.done();
    f.rewrite(&theirs);
    wait_for("the class leaves sluice", || async {
        backend_for(&cl, addr, ANY, "/", &[]).await == Err(404)
    })
    .await;
    f.rewrite(&ours);
    wait_for("the class comes back", || async {
        backend_for(&cl, addr, ANY, "/", &[]).await.as_deref() == Ok("web")
    })
    .await;
    f.stop().await;
}

/// A backendRef whose Service is deleted at runtime answers 500 (the
/// reference no longer resolves); the Service's return restores it.
#[tokio::test]
async fn httproute_backend_service_deleted_and_restored() {
    let f = conformance(
        &infra_route("to-v1")
            .rule(Rule::to("infra-backend-v1", 80))
            .doc(),
    )
    .await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    c.get(ANY, "/", By(V1)).await;
    c.done();
    let services = |with_v1: bool| -> String {
        f.backends
            .iter()
            .filter(|(spec, _)| with_v1 || spec != V1)
            .map(|(spec, b)| {
                let (ns, name) = split_service(spec);
                namespaced_service(ns, name, &[b.addr])
            })
            .collect()
    };
    f.manifests.write("services.yaml", &services(false));
    wait_for("500 once the Service is gone", || async {
        backend_for(&cl, addr, ANY, "/", &[]).await == Err(500)
    })
    .await;
    f.manifests.write("services.yaml", &services(true));
    wait_for("served again", || async {
        backend_for(&cl, addr, ANY, "/", &[]).await.as_deref() == Ok(V1)
    })
    .await;
    f.stop().await;
}

/// `ReplacePrefixMatch` replaces the prefix of the match that matched, in a
/// rule with several PathPrefix matches.
#[tokio::test]
async fn httproute_rewrite_replace_prefix_per_match() {
    let f = conformance(
        &infra_route("several-prefixes")
            .rule(
                Rule::to("infra-backend-v1", 80)
                    .matching(Match::prefix("/first"))
                    .matching(Match::prefix("/second/deeper"))
                    .filter(url_rewrite(json!({
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/x"},
                    }))),
            )
            .doc(),
    )
    .await;
    let (cl, addr) = (client(), f.http_addr());
    let mut c = Checker::new(addr);
    for (path, want) in [
        ("/first/y", "/x/y"),
        ("/second/deeper/y", "/x/y"),
        ("/second/deeper", "/x"),
    ] {
        let r = report(&cl, addr, "GET", ANY, path, &[]).await;
        c.check(r["uri"] == want, || {
            format!("{path}: backend saw {} (want {want})", r["uri"])
        });
    }
    c.done();
    f.stop().await;
}
