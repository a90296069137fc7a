//! The HTTPRoute table's lookup: listener isolation, hostname and path
//! precedence, conditions and fall-through, as the specification orders them.

use super::matcher::{self, NoFacts, RequestFacts};
use super::table::{Candidate, GatewayTable, HostRank, PathRank};
use crate::gateway::types::HttpRouteMatch;
use crate::router::oracle::test_named as route_named;

/// A request with headers.
struct Req(
    &'static str,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
);

impl RequestFacts for Req {
    fn method(&self) -> &str {
        self.0
    }
    fn query(&self) -> Option<&str> {
        self.2
    }
    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.1
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| visit(v.as_bytes()))
    }
}

fn get() -> Req {
    Req("GET", Vec::new(), None)
}

/// Inserts `name` for listener `listener`, route host `host`, the match in YAML.
fn add(
    table: &mut GatewayTable,
    listener: Option<&str>,
    host: Option<&str>,
    name: &str,
    order: (&str, usize),
    yaml: &str,
) {
    let m: HttpRouteMatch = serde_yaml_ng::from_str(yaml).expect("match");
    let (path, conditions) = matcher::compile(&m).expect("compiles");
    let path_len = match m.path.type_ {
        crate::gateway::types::PathMatchType::PathPrefix => m
            .path
            .value
            .strip_suffix('/')
            .unwrap_or(&m.path.value)
            .len(),
        _ => m.path.value.len(),
    };
    table.listener(listener);
    table.insert(
        listener,
        Candidate {
            route: route_named(name),
            host: host.map(Into::into),
            path,
            path_len,
            conditions,
            order: (String::new(), order.0.to_owned(), order.1, 0),
        },
    );
}

fn hit(table: &GatewayTable, host: &str, path: &str, req: &dyn RequestFacts) -> Option<String> {
    table
        .lookup(host, path, req)
        .map(|h| h.route.name.to_string())
}

#[test]
fn exact_beats_prefix_and_longer_prefix_beats_shorter_element_wise() {
    let mut t = GatewayTable::default();
    add(&mut t, None, None, "root", ("a", 0), "{}");
    add(
        &mut t,
        None,
        None,
        "v1",
        ("a", 1),
        "path: {type: PathPrefix, value: /v1/}",
    );
    add(
        &mut t,
        None,
        None,
        "v1-exact",
        ("a", 2),
        "path: {type: Exact, value: /v1/x}",
    );
    t.finish();
    let h = |p| hit(&t, "a.com", p, &get());
    assert_eq!(h("/v1/x").as_deref(), Some("v1-exact"));
    assert_eq!(h("/v1/x/y").as_deref(), Some("v1"));
    assert_eq!(h("/v1").as_deref(), Some("v1"));
    assert_eq!(h("/v1x").as_deref(), Some("root"));
    assert_eq!(h("/").as_deref(), Some("root"));
}

#[test]
fn conditions_order_method_then_headers_then_query_and_fall_through() {
    let mut t = GatewayTable::default();
    add(&mut t, None, None, "plain", ("a", 0), "path: {value: /api}");
    add(
        &mut t,
        None,
        None,
        "two-headers",
        ("b", 0),
        "path: {value: /api}\nheaders: [{name: a, value: '1'}, {name: b, value: '2'}]",
    );
    add(
        &mut t,
        None,
        None,
        "one-header",
        ("a", 1),
        "path: {value: /api}\nheaders: [{name: a, value: '1'}]",
    );
    add(
        &mut t,
        None,
        None,
        "post",
        ("c", 0),
        "path: {value: /api}\nmethod: POST",
    );
    add(
        &mut t,
        None,
        None,
        "query",
        ("a", 2),
        "path: {value: /api}\nqueryParams: [{name: q, value: x}]",
    );
    t.finish();
    let h = |req: &Req| hit(&t, "h", "/api/z", req);
    assert_eq!(h(&get()).as_deref(), Some("plain"));
    assert_eq!(
        h(&Req("GET", vec![("a", "1")], None)).as_deref(),
        Some("one-header")
    );
    assert_eq!(
        h(&Req("GET", vec![("a", "1"), ("b", "2")], None)).as_deref(),
        Some("two-headers")
    );
    // The method outranks two header matches.
    assert_eq!(
        h(&Req("POST", vec![("a", "1"), ("b", "2")], None)).as_deref(),
        Some("post")
    );
    // Headers outrank query parameters.
    assert_eq!(
        h(&Req("GET", vec![("a", "1")], Some("q=x"))).as_deref(),
        Some("one-header")
    );
    assert_eq!(
        h(&Req("GET", vec![], Some("q=x"))).as_deref(),
        Some("query")
    );
}

#[test]
fn a_longer_path_outranks_conditions_and_misses_fall_through_to_shorter_paths() {
    let mut t = GatewayTable::default();
    add(
        &mut t,
        None,
        None,
        "long-with-header",
        ("a", 0),
        "path: {value: /a/b}\nheaders: [{name: x, value: '1'}]",
    );
    add(
        &mut t,
        None,
        None,
        "short",
        ("a", 1),
        "path: {value: /a}\nmethod: GET",
    );
    t.finish();
    assert_eq!(
        hit(&t, "h", "/a/b", &Req("GET", vec![("x", "1")], None)).as_deref(),
        Some("long-with-header")
    );
    assert_eq!(hit(&t, "h", "/a/b", &get()).as_deref(), Some("short"));
    assert_eq!(hit(&t, "h", "/a/b", &NoFacts { method: "PUT" }), None);
}

#[test]
fn ties_go_to_the_first_route_by_name_then_rule_order() {
    let mut t = GatewayTable::default();
    add(&mut t, None, None, "ns/b", ("ns/b", 0), "path: {value: /}");
    add(
        &mut t,
        None,
        None,
        "ns/a-rule1",
        ("ns/a", 1),
        "path: {value: /}",
    );
    add(
        &mut t,
        None,
        None,
        "ns/a-rule0",
        ("ns/a", 0),
        "path: {value: /}",
    );
    t.finish();
    assert_eq!(hit(&t, "h", "/", &get()).as_deref(), Some("ns/a-rule0"));
}

#[test]
fn listener_isolation_serves_only_the_most_specific_listener() {
    let mut t = GatewayTable::default();
    add(
        &mut t,
        None,
        None,
        "empty-hostname",
        ("a", 0),
        "path: {value: /empty}",
    );
    add(
        &mut t,
        Some("*.example.com"),
        None,
        "wildcard",
        ("b", 0),
        "path: {value: /wildcard}",
    );
    add(
        &mut t,
        Some("*.foo.example.com"),
        None,
        "foo-wildcard",
        ("c", 0),
        "path: {value: /foo}",
    );
    t.listener(Some("abc.foo.example.com"));
    t.finish();
    assert_eq!(
        hit(&t, "bar.com", "/empty", &get()).as_deref(),
        Some("empty-hostname")
    );
    assert_eq!(hit(&t, "bar.com", "/wildcard", &get()), None);
    assert_eq!(
        hit(&t, "bar.example.com", "/wildcard", &get()).as_deref(),
        Some("wildcard")
    );
    assert_eq!(hit(&t, "bar.example.com", "/empty", &get()), None);
    // Gateway API wildcards cover several labels; the longer suffix wins.
    assert_eq!(
        hit(&t, "x.y.foo.example.com", "/foo", &get()).as_deref(),
        Some("foo-wildcard")
    );
    assert_eq!(hit(&t, "x.y.foo.example.com", "/wildcard", &get()), None);
    // A listener with no route still isolates its hostname.
    assert_eq!(hit(&t, "abc.foo.example.com", "/foo", &get()), None);
    assert_eq!(
        hit(&t, "foo.example.com", "/wildcard", &get()).as_deref(),
        Some("wildcard")
    );
}

#[test]
fn route_hostnames_order_exact_then_longer_wildcard_then_any_with_fall_through() {
    let mut t = GatewayTable::default();
    add(
        &mut t,
        None,
        Some("a.example.com"),
        "exact",
        ("a", 0),
        "path: {value: /api}",
    );
    add(
        &mut t,
        None,
        Some("*.example.com"),
        "wild",
        ("b", 0),
        "path: {value: /}",
    );
    add(&mut t, None, None, "any", ("c", 0), "path: {value: /other}");
    t.finish();
    let got = t
        .lookup("A.Example.com:8080", "/api/x", &get())
        .expect("hit");
    assert_eq!(&*got.route.name, "exact");
    assert_eq!((got.host, got.path), (HostRank::Exact, PathRank::Prefix(4)));
    assert_eq!(
        hit(&t, "a.example.com", "/web", &get()).as_deref(),
        Some("wild")
    );
    assert_eq!(
        hit(&t, "a.example.com", "/other", &get()).as_deref(),
        Some("wild")
    );
    assert_eq!(hit(&t, "b.com", "/other", &get()).as_deref(), Some("any"));
    assert_eq!(hit(&t, "example.com", "/api", &get()), None);
}

#[test]
fn regex_paths_match_whole_and_rank_by_pattern_length_among_prefixes() {
    let mut t = GatewayTable::default();
    add(&mut t, None, None, "root", ("a", 0), "path: {value: /}");
    add(
        &mut t,
        None,
        None,
        "regex",
        ("b", 0),
        "path: {type: RegularExpression, value: '/v[0-9]+/.*'}",
    );
    add(
        &mut t,
        None,
        None,
        "v1-prefix",
        ("c", 0),
        "path: {value: /v1/long/prefix/here}",
    );
    t.finish();
    assert_eq!(hit(&t, "h", "/v2/users", &get()).as_deref(), Some("regex"));
    assert_eq!(hit(&t, "h", "/x/v2/users", &get()).as_deref(), Some("root"));
    assert_eq!(
        hit(&t, "h", "/v1/long/prefix/here/x", &get()).as_deref(),
        Some("v1-prefix")
    );
}
