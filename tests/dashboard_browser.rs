//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against a real sluice serving the demo manifests
//! in front of real whoami backends.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium`
//! and `chromium-driver`; `.ci/run` installs them). Override the paths with
//! `SLUICE_TEST_CHROMIUM` and `SLUICE_TEST_CHROMEDRIVER`. Screenshots of
//! every page land in `target/dashboard-screenshots/`.

mod support;

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::*;

/// The route the scenario sends traffic to.
const API_ROUTE: &str = "demo-demo-demo.localhost-/api";
/// How long a change may take to show: the file watcher's debounce, a
/// compile, the once-a-second sampler and the page's once-a-second poll
/// (nominally under 2 s), plus slack for a busy 2-core CI machine.
const LIVE_DEADLINE: Duration = Duration::from_secs(3);
/// Generous bound for page loads and first renders.
const PAGE_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_routes_health_and_diagnostics() {
    let (chromium, chromedriver) = browser_binaries();

    // Three whoami backends standing in for the demo's pods.
    let web1 = whoami("web-1").await;
    let web2 = whoami("web-2").await;
    let api = whoami("api").await;
    let manifests = Manifests::new();
    let demo = demo_manifests(&manifests, [web1.addr, web2.addr, api.addr]);
    let sluice = start(settings(&manifests.path())).await;

    let driver = ChromeDriver::start(&chromedriver);
    let browser = driver.session(&chromium).await;
    let shots = Screenshots::new();
    let dashboard = format!("http://{}/dashboard/", sluice.admin_addr);

    let scenario = async {
        // 1. The overview renders with no API banner; the routes page lists the demo routes.
        browser.goto(&dashboard).await.expect("open the dashboard");
        wait_js(
            &browser,
            "the overview's entrypoints",
            "return document.querySelector('#overview [data-entrypoint=\"web\"]') !== null",
            PAGE_DEADLINE,
        )
        .await;
        assert_banner_hidden(&browser).await;
        let routes = wait_js(
            &browser,
            "the overview's route count",
            "const e = document.querySelector('#config [data-field=\"routes\"]'); return e && e.textContent",
            PAGE_DEADLINE,
        )
        .await;
        assert!(
            routes.as_str().is_some_and(|t| t.starts_with('4')),
            "4 demo routes without the fallback: {routes}"
        );
        assert_no_js_errors(&browser, "overview").await;

        navigate(&browser, "#/routes").await;
        for name in [
            API_ROUTE,
            "demo-demo-demo.localhost-/",
            "demo-demo-*.apps.localhost-/",
            "demo-admin-demo.localhost-/admin",
        ] {
            wait_js(
                &browser,
                &format!("route row {name}"),
                &format!(
                    "return document.querySelector({}) !== null",
                    row_selector(name)
                ),
                PAGE_DEADLINE,
            )
            .await;
        }
        let fallback = js(
            &browser,
            "return document.querySelector('tr[data-route*=\"fallback\"]') !== null",
        )
        .await;
        assert_eq!(fallback, json!(false), "the fallback Ingress was removed");
        assert_banner_hidden(&browser).await;

        // 2. 200 real requests move the route's live figures.
        let before = row_number(&browser, API_ROUTE, "total")
            .await
            .unwrap_or(0.0);
        let http = client();
        let sent = Instant::now();
        for i in 0..200 {
            let answer = get(
                &http,
                sluice.http_addr,
                "demo.localhost",
                &format!("/api/users/{i}"),
                &[],
            )
            .await;
            assert_eq!(answer.status, 200, "request {i}: {}", answer.body);
        }
        let script = format!(
            "const r = document.querySelector({}); if (!r) return null; \
             const total = +r.querySelector('[data-field=\"total\"]').dataset.value; \
             const rate = +r.querySelector('[data-field=\"rate\"]').dataset.value; \
             return total >= {} && rate > 0 ? [total, rate] : null",
            row_selector(API_ROUTE),
            before + 200.0
        );
        let figures = wait_js(
            &browser,
            "the route's live total to rise by 200",
            &script,
            LIVE_DEADLINE + Duration::from_secs(1),
        )
        .await;
        eprintln!(
            "200 requests showed on the routes page after {:?}: {figures}",
            sent.elapsed()
        );

        // Search as you type: the table filters server-side and the box keeps its focus.
        let search = browser
            .find(Locator::Css("#search"))
            .await
            .expect("search box");
        search.click().await.expect("focus the search box");
        search.send_keys("admin").await.expect("type a search");
        wait_js(
            &browser,
            "the search to leave only the admin route",
            "const rows = [...document.querySelectorAll('tr[data-route]')].map(r => r.dataset.route); \
             return rows.length === 1 && rows[0] === 'demo-admin-demo.localhost-/admin'",
            PAGE_DEADLINE,
        )
        .await;
        wait_for_poll(&browser).await;
        let focused = js(
            &browser,
            "return document.activeElement && document.activeElement.id",
        )
        .await;
        assert_eq!(
            focused,
            json!("search"),
            "polling kept the search box focused"
        );
        let value = js(&browser, "return document.getElementById('search').value").await;
        assert_eq!(value, json!("admin"), "polling kept what was typed");
        assert_no_js_errors(&browser, "routes (search)").await;

        navigate(&browser, "#/routes").await;
        wait_js(
            &browser,
            "all routes again",
            "return document.querySelectorAll('tr[data-route]').length === 4",
            PAGE_DEADLINE,
        )
        .await;
        shots.take(&browser, "routes").await;

        // The route's detail page, reached by its link, and back.
        browser
            .find(Locator::Css(&format!(
                "{} a[data-field=\"host\"]",
                row_selector_css(API_ROUTE)
            )))
            .await
            .expect("the route's link")
            .click()
            .await
            .expect("open the route");
        let detail = wait_js(
            &browser,
            "the route's detail page",
            &format!(
                "const d = document.querySelector('#route-detail[data-route-detail=\"{API_ROUTE}\"]'); \
                 const t = d && d.querySelector('[data-field=\"total\"]'); \
                 return t && +t.dataset.value >= 200 ? d.innerText : null"
            ),
            PAGE_DEADLINE,
        )
        .await;
        let detail = detail.as_str().unwrap_or_default().to_owned();
        for expected in [
            "Ingress demo/demo",
            "demo/api:80",
            "/api",
            "Prefix",
            "Diagnostics",
        ] {
            assert!(
                detail.contains(expected),
                "detail page shows {expected:?}:\n{detail}"
            );
        }
        shots.take(&browser, "route-detail").await;
        assert_no_js_errors(&browser, "route detail").await;
        browser
            .find(Locator::Css("#route-detail a.back"))
            .await
            .expect("back link")
            .click()
            .await
            .expect("go back");
        wait_js(
            &browser,
            "the routes page again",
            &format!(
                "return document.querySelector({}) !== null",
                row_selector(API_ROUTE)
            ),
            PAGE_DEADLINE,
        )
        .await;

        // 3. The route tester: a match, then a host nothing serves.
        navigate(&browser, "#/tester").await;
        wait_js(
            &browser,
            "the tester form",
            "return document.getElementById('tester-host') !== null",
            PAGE_DEADLINE,
        )
        .await;
        fill(&browser, "#tester-host", "nope.invalid").await;
        fill(&browser, "#tester-path", "/").await;
        click(&browser, "#tester-submit").await;
        let no_match = wait_js(
            &browser,
            "the tester's 404",
            "const r = document.querySelector('#tester-result.no-match'); return r && r.innerText",
            PAGE_DEADLINE,
        )
        .await;
        let no_match = no_match.as_str().unwrap_or_default();
        assert!(no_match.contains("No route (404)"), "{no_match}");
        fill(&browser, "#tester-host", "demo.localhost").await;
        fill(&browser, "#tester-path", "/api/users").await;
        click(&browser, "#tester-submit").await;
        let matched = wait_js(
            &browser,
            "the tester's match",
            "const a = document.querySelector('#tester-result.match [data-field=\"route\"]'); return a && a.textContent",
            PAGE_DEADLINE,
        )
        .await;
        assert_eq!(matched, json!(API_ROUTE));
        let result = js(
            &browser,
            "return document.getElementById('tester-result').innerText",
        )
        .await;
        let result = result.as_str().unwrap_or_default();
        for expected in [
            "Ingress demo/demo",
            "exact",
            "demo/api:80",
            &api.addr.to_string(),
        ] {
            assert!(
                result.contains(expected),
                "tester shows {expected:?}:\n{result}"
            );
        }
        shots.take(&browser, "tester").await;
        assert_no_js_errors(&browser, "tester").await;

        // 4. A broken manifest shows on the diagnostics page, and goes once fixed.
        navigate(&browser, "#/diagnostics").await;
        wait_js(
            &browser,
            "the diagnostics page",
            "return document.querySelector('#diagnostics-page .empty') !== null",
            PAGE_DEADLINE,
        )
        .await;
        manifests.write(
            "broken.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: [oops\n  name: broken\n",
        );
        let broken = Instant::now();
        let item = wait_js(
            &browser,
            "the broken manifest's diagnostic",
            "const li = document.querySelector('#diagnostics li[data-source*=\"broken.yaml\"]'); \
             return li && li.classList.contains('failing') && li.innerText",
            LIVE_DEADLINE,
        )
        .await;
        eprintln!(
            "the broken manifest showed after {:?}: {item}",
            broken.elapsed()
        );
        assert!(
            item.as_str().unwrap_or_default().contains("parse_error"),
            "{item}"
        );
        shots.take(&browser, "diagnostics").await;
        manifests.write("broken.yaml", "# fixed: nothing here any more\n");
        let fixed = Instant::now();
        wait_js(
            &browser,
            "the diagnostic to go",
            "return document.querySelectorAll('#diagnostics li').length === 0 && document.querySelector('#diagnostics-page .empty') !== null",
            LIVE_DEADLINE,
        )
        .await;
        eprintln!("the fixed manifest cleared after {:?}", fixed.elapsed());
        assert_no_js_errors(&browser, "diagnostics").await;

        // Services, middlewares and TLS while everything is healthy.
        navigate(&browser, "#/services").await;
        let card = wait_js(
            &browser,
            "the api Service's card",
            "const c = document.querySelector('[data-service=\"demo/api:80\"]'); \
             return c && c.querySelector('[data-endpoint]') && c.innerText",
            PAGE_DEADLINE,
        )
        .await;
        let card = card.as_str().unwrap_or_default();
        assert!(
            card.contains(&api.addr.to_string()) && card.contains("ready"),
            "{card}"
        );
        shots.take(&browser, "services").await;
        assert_no_js_errors(&browser, "services").await;

        navigate(&browser, "#/middlewares").await;
        let auth = wait_js(
            &browser,
            "the basicAuth Middleware",
            "const r = document.querySelector('tr[data-middleware=\"demo/admin-auth\"]'); return r && r.innerText",
            PAGE_DEADLINE,
        )
        .await;
        let auth = auth.as_str().unwrap_or_default();
        assert!(
            auth.contains("basicAuth") && auth.contains("demo-admin-demo.localhost-/admin"),
            "{auth}"
        );
        shots.take(&browser, "middlewares").await;
        assert_no_js_errors(&browser, "middlewares").await;

        navigate(&browser, "#/tls").await;
        let cert = wait_js(
            &browser,
            "the default certificate",
            "const r = document.querySelector('tr[data-cert=\"default\"]'); return r && r.innerText",
            PAGE_DEADLINE,
        )
        .await;
        assert!(
            cert.as_str().unwrap_or_default().contains("default"),
            "{cert}"
        );
        shots.take(&browser, "tls").await;
        assert_no_js_errors(&browser, "tls").await;

        // 5. The api Service scaled to zero: its route turns red with the reason, on
        // the routes page and the services page; then it recovers.
        manifests.write("demo.yaml", &scale_api_to_zero(&demo));
        navigate(&browser, "#/routes").await;
        let scaled = Instant::now();
        let row = wait_js(
            &browser,
            "the api route to fail",
            &format!(
                "const r = document.querySelector({}); \
                 return r && r.classList.contains('failing') && r.innerText",
                row_selector(API_ROUTE)
            ),
            LIVE_DEADLINE,
        )
        .await;
        eprintln!(
            "the scaled-down Service showed after {:?}",
            scaled.elapsed()
        );
        assert!(
            row.as_str()
                .unwrap_or_default()
                .contains("no ready endpoint"),
            "{row}"
        );
        let healthy = js(
            &browser,
            "return document.querySelector('tr[data-route=\"demo-demo-demo.localhost-/\"]').classList.contains('failing')",
        )
        .await;
        assert_eq!(
            healthy,
            json!(false),
            "routes of other Services stay healthy"
        );
        shots.take(&browser, "routes-failing").await;
        click(&browser, "#failing-only").await;
        wait_js(
            &browser,
            "the failing-only toggle to leave the api route",
            &format!(
                "const rows = [...document.querySelectorAll('tr[data-route]')].map(r => r.dataset.route); \
                 return rows.length === 1 && rows[0] === {} && location.hash.includes('failing=1')",
                json!(API_ROUTE)
            ),
            PAGE_DEADLINE,
        )
        .await;
        assert_no_js_errors(&browser, "routes (failing only)").await;
        navigate(&browser, "#/services").await;
        let card = wait_js(
            &browser,
            "the api Service to fail",
            "const c = document.querySelector('[data-service=\"demo/api:80\"]'); \
             return c && c.classList.contains('failing') && c.innerText",
            LIVE_DEADLINE,
        )
        .await;
        assert!(
            card.as_str()
                .unwrap_or_default()
                .contains("no ready endpoint"),
            "{card}"
        );
        assert_no_js_errors(&browser, "services (failing)").await;
        // The overview while it fails, with some traffic for the sparkline.
        navigate(&browser, "#/overview").await;
        let traffic = tokio::spawn(background_traffic(sluice.http_addr, Duration::from_secs(4)));
        let failing = wait_js(
            &browser,
            "the overview's sparkline and failing list",
            &format!(
                "const p = document.querySelector('#overview svg.sparkline path.line'); \
                 const r = document.querySelector('#overview [data-field=\"overall-rate\"]'); \
                 const f = document.querySelector('#failing li[data-kind=\"route\"][data-name=\"{API_ROUTE}\"]'); \
                 return p !== null && r !== null && +r.dataset.value > 0 && f !== null && f.innerText"
            ),
            PAGE_DEADLINE,
        )
        .await;
        assert!(
            failing
                .as_str()
                .unwrap_or_default()
                .contains("no ready endpoint"),
            "the overview lists the failing route with its reason: {failing}"
        );
        traffic.await.expect("background traffic");
        wait_for_poll(&browser).await;
        assert_banner_hidden(&browser).await;
        shots.take(&browser, "overview").await;
        assert_no_js_errors(&browser, "overview").await;

        // Scaled back up: healthy again everywhere.
        manifests.write("demo.yaml", &demo);
        wait_js(
            &browser,
            "the overview's failing list to empty",
            "return document.querySelector('#failing li') === null && \
               document.querySelector('#failing.healthy') !== null",
            LIVE_DEADLINE,
        )
        .await;
        navigate(&browser, "#/services").await;
        wait_js(
            &browser,
            "the api Service to recover",
            "const c = document.querySelector('[data-service=\"demo/api:80\"]'); \
             return c !== null && !c.classList.contains('failing')",
            PAGE_DEADLINE,
        )
        .await;

        // 6. No JavaScript error anywhere along the way.
        assert_no_js_errors(&browser, "services (end)").await;

        // 7. Gateway API objects: the Gateways page lists the Gateway with its
        // listener's conditions and attached routes, and each HTTPRoute with
        // its parents' conditions; the tester explains a header match.
        manifests.write("gateway.yaml", GATEWAY_MANIFESTS);
        navigate(&browser, "#/gateways").await;
        let gateway = wait_js(
            &browser,
            "the Gateway's card with two attached routes",
            "const g = document.querySelector('[data-gateway=\"demo/gw\"]'); \
             const a = g && g.querySelector('[data-listener=\"http\"] [data-field=\"attached-routes\"]'); \
             return a && a.dataset.value === '2' && g.innerText",
            PAGE_DEADLINE,
        )
        .await;
        let gateway = gateway.as_str().unwrap_or_default();
        for expected in [
            "demo/gw",
            "Accepted",
            "Programmed",
            "ResolvedRefs",
            "not Conflicted",
        ] {
            assert!(
                gateway.contains(expected),
                "the Gateway card shows {expected:?}:\n{gateway}"
            );
        }
        let lost = wait_js(
            &browser,
            "the HTTPRoute with a missing backend",
            "const r = document.querySelector('tr[data-httproute=\"demo/lost\"]'); \
             const c = r && r.querySelector('[data-condition=\"ResolvedRefs\"][data-status=\"False\"]'); \
             return c && r.classList.contains('failing') && c.dataset.reason",
            PAGE_DEADLINE,
        )
        .await;
        assert_eq!(lost, json!("BackendNotFound"));
        let shop = js(
            &browser,
            "const r = document.querySelector('tr[data-httproute=\"demo/shop\"]'); \
             return r && !r.classList.contains('failing') && \
               r.querySelector('[data-condition=\"Accepted\"][data-status=\"True\"]') !== null",
        )
        .await;
        assert_eq!(shop, json!(true), "the healthy HTTPRoute is Accepted");
        shots.take(&browser, "gateways").await;
        assert_no_js_errors(&browser, "gateways").await;
        navigate(&browser, "#/tester").await;
        wait_js(
            &browser,
            "the tester form",
            "return document.getElementById('tester-headers') !== null",
            PAGE_DEADLINE,
        )
        .await;
        fill(&browser, "#tester-host", "gw.localhost").await;
        fill(&browser, "#tester-path", "/").await;
        fill(&browser, "#tester-headers", "X-Canary: 1").await;
        click(&browser, "#tester-submit").await;
        let matched = wait_js(
            &browser,
            "the tester's HTTPRoute match",
            "const a = document.querySelector('#tester-result.match [data-field=\"route\"]'); \
             return a && a.textContent === 'httproute-demo-shop-rule0-match0' && \
               document.getElementById('tester-result').innerText",
            PAGE_DEADLINE,
        )
        .await;
        let matched = matched.as_str().unwrap_or_default();
        assert!(
            matched.contains("HTTPRoute demo/shop") && matched.contains("x-canary"),
            "{matched}"
        );
        assert_no_js_errors(&browser, "tester (HTTPRoute)").await;
        // Back to a page that polls, for the API banner below.
        navigate(&browser, "#/gateways").await;
        wait_js(
            &browser,
            "the Gateways page again",
            "return document.querySelector('[data-gateway=\"demo/gw\"]') !== null",
            PAGE_DEADLINE,
        )
        .await;

        // Without the API, a banner says so, and goes once it answers again. (The
        // page's fetch is cut: an in-process sluice keeps open admin connections
        // alive after stop().)
        js(
            &browser,
            "window.__realFetch = window.fetch; \
             window.fetch = () => Promise.reject(new TypeError('Failed to fetch')); return true",
        )
        .await;
        let banner = wait_js(
            &browser,
            "the API banner",
            "const b = document.getElementById('api-banner'); \
             return !b.hidden && document.getElementById('live').classList.contains('offline') && b.textContent",
            PAGE_DEADLINE,
        )
        .await;
        assert!(
            banner
                .as_str()
                .unwrap_or_default()
                .contains("Cannot reach the sluice admin API"),
            "{banner}"
        );
        js(&browser, "window.fetch = window.__realFetch; return true").await;
        wait_js(
            &browser,
            "the API banner to go",
            "return document.getElementById('api-banner').hidden && \
               document.getElementById('live').classList.contains('on')",
            PAGE_DEADLINE,
        )
        .await;
        assert_no_js_errors(&browser, "services (API back)").await;
    };
    tokio::time::timeout(Duration::from_secs(120), scenario)
        .await
        .expect("the browser scenario took over 2 minutes");
    browser.close().await.expect("close the browser session");
    drop(driver);
    sluice.stop();
    sluice.wait().await;
}

// ---------------------------------------------------------------------------
// The sluice side.

/// A Gateway of sluice's class in `demo` with one HTTP listener, an
/// HTTPRoute whose first rule matches a header, and one whose backend does
/// not exist.
const GATEWAY_MANIFESTS: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sluice
spec:
  controllerName: sluice.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: demo
spec:
  gatewayClassName: sluice
  listeners:
  - name: http
    port: 80
    protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
  namespace: demo
spec:
  parentRefs:
  - name: gw
  hostnames: [gw.localhost]
  rules:
  - matches:
    - headers:
      - name: x-canary
        value: \"1\"
    backendRefs:
    - name: api
      port: 80
  - backendRefs:
    - name: web
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: lost
  namespace: demo
spec:
  parentRefs:
  - name: gw
  hostnames: [lost.localhost]
  rules:
  - backendRefs:
    - name: missing
      port: 80
";

/// Copies `examples/*.yaml` into `manifests`, pointing the EndpointSlices at
/// `backends` (web-1, web-2, api) and leaving out the catch-all `fallback`
/// Ingress so an unknown host gets 404. Returns the rewritten `demo.yaml`.
fn demo_manifests(manifests: &Manifests, backends: [SocketAddr; 3]) -> String {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut demo = None;
    let mut removed_fallback = false;
    let mut entries: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/")
        .map(|e| e.expect("examples entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let original = std::fs::read_to_string(&path).expect("read example");
        let mut text = original.clone();
        for (demo_port, backend) in [18081, 18082, 18083].into_iter().zip(backends) {
            text = text.replace(
                &format!("port: {demo_port}"),
                &format!("port: {}", backend.port()),
            );
        }
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let docs: Vec<&str> = text
            .split("\n---\n")
            .filter(|doc| !(doc.contains("kind: Ingress") && doc.contains("name: fallback")))
            .collect();
        let text = docs.join("\n---\n");
        removed_fallback |= original.contains("name: fallback");
        if name == "demo.yaml" {
            demo = Some(text.clone());
        }
        manifests.write(&name, &text);
    }
    assert!(
        removed_fallback,
        "the fallback Ingress was found and left out"
    );
    demo.expect("examples/demo.yaml")
}

/// `demo` with the api Service's EndpointSlice emptied.
fn scale_api_to_zero(demo: &str) -> String {
    demo.split("\n---\n")
        .map(|doc| {
            if doc.contains("kind: EndpointSlice")
                && doc.contains("kubernetes.io/service-name: api")
            {
                let cut = doc.find("\nendpoints:").expect("the slice's endpoints");
                format!("{}\nendpoints: []\n", &doc[..cut])
            } else {
                doc.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// About 25 requests per second to the healthy routes for `length`.
async fn background_traffic(addr: SocketAddr, length: Duration) {
    let http = client();
    let end = Instant::now() + length;
    let mut i = 0u32;
    while Instant::now() < end {
        let (host, path) = match i % 3 {
            0 => ("demo.localhost", "/"),
            1 => ("demo.localhost", "/admin/x"),
            _ => ("shop.apps.localhost", "/cart"),
        };
        let _ = get(&http, addr, host, path, &[]).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

// ---------------------------------------------------------------------------
// The browser side.

/// Chromium and chromedriver, or a failure saying how to install them.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |env: &str, default: &str, name: &str| -> PathBuf {
        if let Ok(path) = std::env::var(env) {
            return PathBuf::from(path);
        }
        let default = PathBuf::from(default);
        if default.exists() {
            return default;
        }
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.exists())
            })
            .unwrap_or(default)
    };
    let chromium = find("SLUICE_TEST_CHROMIUM", "/usr/bin/chromium", "chromium");
    let chromedriver = find(
        "SLUICE_TEST_CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "chromedriver",
    );
    for (what, path) in [("Chromium", &chromium), ("chromedriver", &chromedriver)] {
        assert!(
            path.exists(),
            "{what} not found at {}: this test drives a real headless browser. Install it with \
             `apt-get install -y chromium chromium-driver` (.ci/run does), or point \
             SLUICE_TEST_CHROMIUM / SLUICE_TEST_CHROMEDRIVER at the binaries.",
            path.display()
        );
    }
    (chromium, chromedriver)
}

/// A chromedriver process (in its own process group, with the browsers it
/// starts) and the browser profile directory; everything is killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start(binary: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let profile = tempfile::Builder::new()
            .prefix("sluice-dashboard-chromium-")
            .tempdir()
            .expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .expect("chromedriver log");
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut driver = Self {
            child,
            port,
            profile,
        };
        let deadline = Instant::now() + PAGE_DEADLINE;
        while StdStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status}: {}", driver.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen: {}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A WebDriver session on a fresh headless Chromium at 1400×900.
    async fn session(&self, chromium: &Path) -> Client {
        let user_data = self.profile.path().join("profile");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1400,900".to_owned(),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium.display().to_string(), "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{}", self.port)),
        )
        .await
        .unwrap_or_else(|_| panic!("no browser session within 30 s: {}", self.log()))
        .unwrap_or_else(|e| panic!("cannot start a browser session: {e}\n{}", self.log()));
        // The window includes the browser's frame: size it so the page gets 1400×900.
        client
            .set_window_size(1400, 900)
            .await
            .expect("window size");
        let inner = client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("viewport size");
        let (w, h) = (
            inner[0].as_u64().unwrap_or(1400),
            inner[1].as_u64().unwrap_or(900),
        );
        if (w, h) != (1400, 900) {
            let width = 1400 + 1400u32.saturating_sub(w as u32);
            let height = 900 + 900u32.saturating_sub(h as u32);
            client
                .set_window_size(width, height)
                .await
                .expect("window size");
        }
        client
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group first (chromedriver and the browsers it started; the
        // group cannot be reused while the child is not reaped), then anything
        // still running with this test's profile directory.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let marker = self.profile.path().to_string_lossy().into_owned();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&marker) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs `script` in the page.
async fn js(client: &Client, script: &str) -> Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Runs `script` every 100 ms until it returns something other than null or
/// false; returns that. Fails with the page's text after `deadline`.
async fn wait_js(client: &Client, what: &str, script: &str, deadline: Duration) -> Value {
    let start = Instant::now();
    loop {
        let value = js(client, script).await;
        if !value.is_null() && value != json!(false) {
            return value;
        }
        if start.elapsed() > deadline {
            let page = js(
                client,
                "return location.hash + '\\n' + document.body.innerText",
            )
            .await;
            let errors = js(client, "return window.__sluiceErrors").await;
            panic!(
                "timed out after {deadline:?} waiting for {what}\nJS errors: {errors}\npage:\n{}",
                page.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Goes to `hash` (e.g. `#/routes`) in the loaded page.
async fn navigate(client: &Client, hash: &str) {
    js(
        client,
        &format!("location.hash = {}; return true", json!(hash)),
    )
    .await;
}

/// Waits for the next poll to land (the live indicator's time changes).
async fn wait_for_poll(client: &Client) {
    let now = js(
        client,
        "return document.getElementById('live-text').textContent",
    )
    .await;
    wait_js(
        client,
        "the next poll",
        &format!("return document.getElementById('live-text').textContent !== {now}"),
        PAGE_DEADLINE,
    )
    .await;
}

/// Replaces the text of the input `selector` by typing.
async fn fill(client: &Client, selector: &str, text: &str) {
    let input = client.find(Locator::Css(selector)).await.expect(selector);
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

async fn click(client: &Client, selector: &str) {
    client
        .find(Locator::Css(selector))
        .await
        .expect(selector)
        .click()
        .await
        .expect("click");
}

/// The JS expression selecting the routes-table row of `name`.
fn row_selector(name: &str) -> String {
    json!(row_selector_css(name)).to_string()
}

fn row_selector_css(name: &str) -> String {
    format!("tr[data-route={}]", json!(name))
}

/// The `data-value` of `field` in the row of `name`, if the row is shown.
async fn row_number(client: &Client, name: &str, field: &str) -> Option<f64> {
    js(
        client,
        &format!(
            "const r = document.querySelector({}); const c = r && r.querySelector('[data-field=\"{field}\"]'); \
             return c ? +c.dataset.value : null",
            row_selector(name)
        ),
    )
    .await
    .as_f64()
}

async fn assert_banner_hidden(client: &Client) {
    let banner = js(
        client,
        "const b = document.getElementById('api-banner'); return b.hidden ? null : b.textContent",
    )
    .await;
    assert!(banner.is_null(), "the API banner shows: {banner}");
}

async fn assert_no_js_errors(client: &Client, page: &str) {
    let errors = js(client, "return window.__sluiceErrors").await;
    assert_eq!(errors, json!([]), "JavaScript errors on the {page} page");
}

/// Where the screenshots go.
struct Screenshots {
    dir: PathBuf,
}

impl Screenshots {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        Self { dir }
    }

    async fn take(&self, client: &Client, name: &str) {
        let png = client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}
