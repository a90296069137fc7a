//! A fake Kubernetes API server for tests: an HTTP/1.1 server (hyper) on
//! 127.0.0.1 that speaks the real list/watch protocol with real API JSON, so a
//! `kube::Client` talks to it exactly as it would to a cluster.
//!
//! No real cluster runs here: sluice's Kubernetes provider is tested against
//! this server. What it implements:
//!
//! - `GET` lists of the resources sluice reads, cluster-wide
//!   (`/apis/networking.k8s.io/v1/ingresses`) and per namespace
//!   (`/api/v1/namespaces/{ns}/services`), with `metadata.resourceVersion`,
//!   `limit`/`continue` paging, `labelSelector` (`k=v`, `k!=v`, `k`, `!k`) and
//!   `fieldSelector` (`path=v`, `path!=v`, e.g. `type=kubernetes.io/tls`,
//!   `metadata.name=x`).
//! - `?watch=true&resourceVersion=N`: a chunked stream of
//!   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}` lines,
//!   replaying every change after `N` from the history, then live changes; an
//!   object that enters or leaves a selector is ADDED or DELETED as on a real
//!   server; BOOKMARKs every `bookmark_interval` when
//!   `allowWatchBookmarks=true`; a version older than the compacted history
//!   gets an `ERROR` event with a `410 Gone` Status (as the API server does);
//!   `timeoutSeconds` ends the stream.
//! - Controls: create/update/delete objects ([`FakeApi::apply`],
//!   [`FakeApi::delete`]), [`FakeApi::expire`] (410 to open watches and
//!   compaction), [`FakeApi::compact`], [`FakeApi::drop_connections`],
//!   [`FakeApi::stop`]/[`FakeApi::start`] (an outage on the same port),
//!   [`FakeApi::fail`] (500) and [`FakeApi::forbid`] (403, as RBAC answers),
//!   [`FakeApi::set_crd`] (the Middleware CRD absent: 404, as for an
//!   uninstalled CRD), [`FakeApi::set_gateway_crds`] and
//!   [`FakeApi::set_served`] (the same for the Gateway API kinds, or for one
//!   version of one kind, such as a cluster whose ReferenceGrant CRD serves
//!   only `v1beta1`), and [`FakeApi::writes`] (recorded `PATCH`/`PUT` to
//!   `.../status`, applied to the object like a real server).
//!
//! CRDs are modelled by their effect on the resource paths only: an
//! uninstalled (or unserved) resource answers 404 to lists and watches, and
//! its open watches end, which is how sluice finds out. There are no
//! discovery documents (`/apis`, `/apis/{group}/{version}`): sluice does not
//! read them. The Gateway API CRDs and the Middleware CRD start installed.
//!
//! The two versions of ReferenceGrant (`v1`, `v1beta1`) are one resource with
//! one set of objects, each served with the apiVersion of the path it is read
//! through, as the API server converts them.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{AbortHandle, JoinHandle};

type Body = BoxBody<Bytes, Infallible>;

/// A resource the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `v1` or `group/version`.
    pub api_version: &'static str,
    /// The kind, as in the objects.
    pub kind: &'static str,
    /// The plural used in paths.
    pub plural: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

/// Every resource the fake serves.
pub const RESOURCES: [Resource; 16] = [
    Resource {
        api_version: "networking.k8s.io/v1",
        kind: "Ingress",
        plural: "ingresses",
        namespaced: true,
    },
    Resource {
        api_version: "networking.k8s.io/v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        namespaced: false,
    },
    Resource {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
    },
    Resource {
        api_version: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        namespaced: true,
    },
    Resource {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
    },
    Resource {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
    },
    Resource {
        api_version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        namespaced: true,
    },
    Resource {
        api_version: "traefik.io/v1alpha1",
        kind: "Middleware",
        plural: "middlewares",
        namespaced: true,
    },
    // Leader election: created and replaced (with resourceVersion checks).
    Resource {
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
    },
    Resource {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    // The Gateway API (standard channel CRDs).
    Resource {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "GatewayClass",
        plural: "gatewayclasses",
        namespaced: false,
    },
    Resource {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        plural: "gateways",
        namespaced: true,
    },
    Resource {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "HTTPRoute",
        plural: "httproutes",
        namespaced: true,
    },
    // Objects are applied through the first entry of a kind (v1); both
    // versions serve the same objects.
    Resource {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "ReferenceGrant",
        plural: "referencegrants",
        namespaced: true,
    },
    Resource {
        api_version: "gateway.networking.k8s.io/v1beta1",
        kind: "ReferenceGrant",
        plural: "referencegrants",
        namespaced: true,
    },
    Resource {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "BackendTLSPolicy",
        plural: "backendtlspolicies",
        namespaced: true,
    },
];

/// The API group of the Gateway API resources.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io/";

fn resource_by_kind(kind: &str) -> &'static Resource {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("the fake API serves no kind {kind}"))
}

/// A recorded `PATCH`/`PUT` to a `/status` subresource.
#[derive(Debug, Clone)]
pub struct Write {
    /// `PATCH` or `PUT`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `Content-Type` (merge, strategic-merge, apply, json patch).
    pub content_type: String,
    /// The request body.
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One change in the history.
#[derive(Debug)]
struct Change {
    rv: u64,
    plural: &'static str,
    kind: ChangeType,
    old: Option<Value>,
    new: Value,
}

#[derive(Debug, Clone)]
enum Broadcast {
    Change(Arc<Change>),
    /// Every open watch gets `410 Gone` and ends.
    Expire,
    /// Watches of this resource version (api_version, plural) end (its CRD
    /// went away, or stopped serving that version).
    Close(&'static str, &'static str),
}

type Key = (String, String);

#[derive(Default)]
struct State {
    rv: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Value>>,
    history: Vec<Arc<Change>>,
    /// Watches starting before this version get 410.
    oldest_rv: u64,
    /// Resource versions (api_version, plural) that answer 404.
    unserved: Vec<(&'static str, &'static str)>,
    writes: Vec<Write>,
    continues: HashMap<String, (u64, Vec<Value>)>,
    next_continue: u64,
    lists: HashMap<&'static str, u64>,
    watches: HashMap<&'static str, u64>,
    requests: HashMap<&'static str, u64>,
    failing: Vec<&'static str>,
    forbidden: Vec<&'static str>,
    next_uid: u64,
    calls: Vec<Call>,
}

/// One request the fake answered, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource, with `/subresource` when there is one.
    pub resource: String,
    /// The RBAC verb: get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Broadcast>,
    bookmark_interval: Duration,
    conns: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake API server. Dropping it stops it.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl FakeApi {
    /// Starts on a free port of 127.0.0.1, with the Middleware CRD present.
    pub async fn start_new() -> FakeApi {
        Self::with_bookmarks(Duration::from_secs(1)).await
    }

    /// Starts with BOOKMARKs every `interval` on watches that allow them.
    pub async fn with_bookmarks(interval: Duration) -> FakeApi {
        let (events, _) = broadcast::channel(200_000);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                ..State::default()
            }),
            events,
            bookmark_interval: interval,
            conns: Mutex::new(Vec::new()),
        });
        let (accept, addr) = listen(shared.clone(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind the fake API server");
        FakeApi {
            shared,
            addr,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at this server to `dir/kubeconfig` and
    /// returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, config).expect("write kubeconfig");
        path
    }

    /// A kube client for this server, built without a kubeconfig.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("url"));
        kube::Client::try_from(config).expect("kube client")
    }

    /// Creates or replaces an object (ADDED or MODIFIED); returns its new resourceVersion.
    pub fn apply(&self, object: Value) -> u64 {
        let kind = object["kind"]
            .as_str()
            .expect("object has a kind")
            .to_owned();
        let resource = resource_by_kind(&kind);
        let mut state = self.shared.lock();
        let rv = state.rv + 1;
        state.rv = rv;
        let mut object = object;
        let key = normalize(&mut object, resource, rv, &mut state.next_uid);
        let objects = state.objects.entry(resource.plural).or_default();
        let old = objects.get(&key).cloned();
        if let Some(old) = &old {
            // Keep identity fields as the API server does.
            for field in ["uid", "creationTimestamp"] {
                object["metadata"][field] = old["metadata"][field].clone();
            }
        }
        objects.insert(key, object.clone());
        let kind = if old.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        record(&self.shared, &mut state, resource.plural, kind, old, object);
        rv
    }

    /// Deletes an object (DELETED); false if it did not exist.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let resource = resource_by_kind(kind);
        let mut state = self.shared.lock();
        let key = key_for(resource, namespace, name);
        let Some(mut old) = state
            .objects
            .get_mut(resource.plural)
            .and_then(|o| o.remove(&key))
        else {
            return false;
        };
        let rv = state.rv + 1;
        state.rv = rv;
        let previous = old.clone();
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        record(
            &self.shared,
            &mut state,
            resource.plural,
            ChangeType::Deleted,
            Some(previous),
            old,
        );
        true
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = resource_by_kind(kind);
        let state = self.shared.lock();
        state
            .objects
            .get(resource.plural)
            .and_then(|o| o.get(&key_for(resource, namespace, name)))
            .cloned()
    }

    /// Compacts the history: watches resuming from an older version get `410 Gone`.
    pub fn compact(&self) {
        let mut state = self.shared.lock();
        state.oldest_rv = state.rv + 1;
        state.history.clear();
    }

    /// Compacts and sends `410 Gone` to every open watch, which then ends.
    pub fn expire(&self) {
        self.compact();
        let _ = self.shared.events.send(Broadcast::Expire);
    }

    /// Closes every open connection (watches included); keeps listening.
    pub fn drop_connections(&self) {
        let conns = std::mem::take(
            &mut *self
                .shared
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for conn in conns {
            conn.abort();
        }
    }

    /// Stops listening and closes every connection: an outage.
    pub fn stop(&self) {
        self.stop_now();
    }

    fn stop_now(&self) {
        if let Some(accept) = self
            .accept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            accept.abort();
        }
        self.drop_connections();
    }

    /// Listens again on the same port after [`FakeApi::stop`].
    pub async fn start(&self) {
        let mut tries = 0;
        let accept = loop {
            match listen(self.shared.clone(), self.addr).await {
                Ok((accept, _)) => break accept,
                Err(err) if tries < 50 => {
                    tries += 1;
                    eprintln!("fake API: rebinding {}: {err}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("cannot listen on {} again: {err}", self.addr),
            }
        };
        *self.accept.lock().unwrap_or_else(PoisonError::into_inner) = Some(accept);
    }

    /// Installs (`true`) or removes the Middleware CRD: without it, Middleware
    /// paths answer 404 and open Middleware watches end.
    pub fn set_crd(&self, present: bool) {
        self.set_served("traefik.io/v1alpha1", "middlewares", present);
    }

    /// Installs (`true`) or removes every Gateway API CRD (all versions).
    pub fn set_gateway_crds(&self, present: bool) {
        for resource in RESOURCES
            .iter()
            .filter(|r| r.api_version.starts_with(GATEWAY_GROUP))
        {
            self.set_served(resource.api_version, resource.plural, present);
        }
    }

    /// Serves (`true`) or stops serving one version of one resource
    /// (`gateway.networking.k8s.io/v1`, `referencegrants`): unserved, its
    /// paths answer 404 and its open watches end. Objects are kept.
    pub fn set_served(&self, api_version: &str, plural: &str, served: bool) {
        let resource = RESOURCES
            .iter()
            .find(|r| r.api_version == api_version && r.plural == plural)
            .unwrap_or_else(|| panic!("the fake API serves no {api_version} {plural}"));
        let key = (resource.api_version, resource.plural);
        let mut state = self.shared.lock();
        state.unserved.retain(|k| *k != key);
        if !served {
            state.unserved.push(key);
            drop(state);
            let _ = self.shared.events.send(Broadcast::Close(key.0, key.1));
        }
    }

    /// Every request answered so far, as (group, resource, verb, namespace).
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The recorded status writes.
    pub fn writes(&self) -> Vec<Write> {
        self.shared.lock().writes.clone()
    }

    /// How many list requests (first pages) a resource got.
    pub fn lists(&self, plural: &str) -> u64 {
        self.shared.lock().lists.get(plural).copied().unwrap_or(0)
    }

    /// How many watch requests a resource got.
    pub fn watches(&self, plural: &str) -> u64 {
        self.shared.lock().watches.get(plural).copied().unwrap_or(0)
    }

    /// How many requests of any sort a resource got (failed ones included).
    pub fn requests(&self, plural: &str) -> u64 {
        self.shared
            .lock()
            .requests
            .get(plural)
            .copied()
            .unwrap_or(0)
    }

    /// Makes every request for a resource fail with `500` (`true`) or work again.
    pub fn fail(&self, plural: &str, failing: bool) {
        let resource = RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("a served resource");
        let mut state = self.shared.lock();
        state.failing.retain(|p| *p != resource.plural);
        if failing {
            state.failing.push(resource.plural);
        }
    }

    /// Makes every request for a resource fail with `403 Forbidden` (`true`),
    /// as RBAC does for a verb the ClusterRole does not grant, or work again.
    pub fn forbid(&self, plural: &str, forbidden: bool) {
        let resource = RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("a served resource");
        let mut state = self.shared.lock();
        state.forbidden.retain(|p| *p != resource.plural);
        if forbidden {
            state.forbidden.push(resource.plural);
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }
}

fn key_for(resource: &Resource, namespace: &str, name: &str) -> Key {
    let ns = if resource.namespaced { namespace } else { "" };
    (ns.to_owned(), name.to_owned())
}

/// Fills in what the API server sets: namespace, uid, creationTimestamp, resourceVersion.
fn normalize(object: &mut Value, resource: &Resource, rv: u64, next_uid: &mut u64) -> Key {
    object["apiVersion"] = json!(resource.api_version);
    let meta = &mut object["metadata"];
    let name = meta["name"].as_str().expect("object has a name").to_owned();
    let namespace = if resource.namespaced {
        let ns = meta["namespace"].as_str().unwrap_or("default").to_owned();
        meta["namespace"] = json!(ns);
        ns
    } else {
        String::new()
    };
    if meta.get("uid").is_none() {
        *next_uid += 1;
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", *next_uid));
    }
    if meta.get("creationTimestamp").is_none() {
        meta["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    }
    meta["resourceVersion"] = json!(rv.to_string());
    (namespace, name)
}

fn record(
    shared: &Shared,
    state: &mut State,
    plural: &'static str,
    kind: ChangeType,
    old: Option<Value>,
    new: Value,
) {
    let change = Arc::new(Change {
        rv: state.rv,
        plural,
        kind,
        old,
        new,
    });
    state.history.push(change.clone());
    let _ = shared.events.send(Broadcast::Change(change));
}

async fn listen(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> std::io::Result<(JoinHandle<()>, SocketAddr)> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    let bound = listener.local_addr()?;
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn_shared = shared.clone();
            let service = hyper::service::service_fn(move |req| {
                let shared = conn_shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let conn = tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            let mut conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
            conns.retain(|c| !c.is_finished());
            conns.push(conn.abort_handle());
        }
    });
    Ok((accept, bound))
}

fn full(status: StatusCode, body: Value) -> Response<Body> {
    let bytes = serde_json::to_vec(&body).expect("json");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed())
        .expect("response")
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code,
    })
}

fn not_found(message: &str) -> Response<Body> {
    full(StatusCode::NOT_FOUND, status(404, "NotFound", message))
}

/// What a request path names.
struct Target {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return None,
    };
    let resource = RESOURCES
        .iter()
        .find(|r| r.api_version == api_version && r.plural == plural)?;
    if namespace.is_some() && !resource.namespaced {
        return None;
    }
    Some(Target {
        resource,
        namespace,
        name,
        subresource,
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// A list or watch filter: namespace, label and field selectors.
#[derive(Debug, Clone, Default)]
struct Filter {
    namespace: Option<String>,
    labels: Vec<(String, Op, String)>,
    fields: Vec<(String, Op, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Exists,
    Absent,
}

fn parse_selector(s: &str, allow_exists: bool) -> Vec<(String, Op, String)> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                (k.trim().to_owned(), Op::Ne, v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==") {
                (k.trim().to_owned(), Op::Eq, v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once('=') {
                (k.trim().to_owned(), Op::Eq, v.trim().to_owned())
            } else if let Some(k) = term.strip_prefix('!').filter(|_| allow_exists) {
                (k.trim().to_owned(), Op::Absent, String::new())
            } else if allow_exists {
                (term.to_owned(), Op::Exists, String::new())
            } else {
                panic!("unsupported field selector term {term:?}")
            }
        })
        .collect()
}

impl Filter {
    fn from(target: &Target, q: &HashMap<String, String>) -> Filter {
        Filter {
            namespace: target.namespace.clone(),
            labels: q
                .get("labelSelector")
                .map(|s| parse_selector(s, true))
                .unwrap_or_default(),
            fields: q
                .get("fieldSelector")
                .map(|s| parse_selector(s, false))
                .unwrap_or_default(),
        }
    }

    fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        if let Some(ns) = &self.namespace {
            if meta["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        let labels = &meta["labels"];
        let label_ok = self.labels.iter().all(|(k, op, v)| {
            let actual = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq => actual == Some(v.as_str()),
                Op::Ne => actual != Some(v.as_str()),
                Op::Exists => actual.is_some(),
                Op::Absent => actual.is_none(),
            }
        });
        label_ok
            && self.fields.iter().all(|(path, op, v)| {
                let mut value = object;
                for part in path.split('.') {
                    value = &value[part];
                }
                let actual = value.as_str().unwrap_or("");
                match op {
                    Op::Eq => actual == v,
                    Op::Ne => actual != v,
                    Op::Exists | Op::Absent => false,
                }
            })
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some(target) = parse_path(&path) else {
        return not_found("the server could not find the requested resource");
    };
    {
        let mut state = shared.lock();
        *state.requests.entry(target.resource.plural).or_default() += 1;
        if state
            .unserved
            .contains(&(target.resource.api_version, target.resource.plural))
        {
            return not_found("the server could not find the requested resource");
        }
        if state.forbidden.contains(&target.resource.plural) {
            let message = format!("cannot list resource {:?}", target.resource.plural);
            return full(StatusCode::FORBIDDEN, status(403, "Forbidden", &message));
        }
        if state.failing.contains(&target.resource.plural) {
            return full(
                StatusCode::INTERNAL_SERVER_ERROR,
                status(500, "InternalError", "injected failure"),
            );
        }
    }
    let q = query(&req);
    {
        let verb = match (req.method().clone(), &target.name) {
            (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                "watch"
            }
            (Method::GET, None) => "list",
            (Method::GET, Some(_)) => "get",
            (Method::POST, _) => "create",
            (Method::PUT, _) => "update",
            (Method::PATCH, _) => "patch",
            (Method::DELETE, _) => "delete",
            _ => "other",
        };
        let group = target
            .resource
            .api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_owned();
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.resource.plural),
            None => target.resource.plural.to_owned(),
        };
        shared.lock().calls.push(Call {
            group,
            resource,
            verb: verb.to_owned(),
            namespace: target.namespace.clone(),
        });
    }
    match (req.method().clone(), &target.name, &target.subresource) {
        (Method::GET, None, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, &target, &q)
        }
        (Method::GET, None, None) => list(&shared, &target, &q),
        (Method::GET, Some(name), None) => {
            let state = shared.lock();
            let key = key_for(
                target.resource,
                target.namespace.as_deref().unwrap_or(""),
                name,
            );
            match state
                .objects
                .get(target.resource.plural)
                .and_then(|o| o.get(&key))
            {
                Some(object) => {
                    let mut object = object.clone();
                    object["apiVersion"] = json!(target.resource.api_version);
                    full(StatusCode::OK, object)
                }
                None => not_found(&format!("{} {name:?} not found", target.resource.plural)),
            }
        }
        (Method::PATCH | Method::PUT, Some(name), Some(sub)) if sub == "status" => {
            let name = name.clone();
            write_status(shared, &target, &name, req).await
        }
        (Method::POST, None, None) => create_or_replace(shared, &target, None, req).await,
        (Method::PUT, Some(name), None) => {
            let name = name.clone();
            create_or_replace(shared, &target, Some(&name), req).await
        }
        _ => full(
            StatusCode::METHOD_NOT_ALLOWED,
            status(405, "MethodNotAllowed", "not supported by the fake API"),
        ),
    }
}

fn strip_types(mut object: Value) -> Value {
    if let Value::Object(map) = &mut object {
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

fn list(shared: &Shared, target: &Target, q: &HashMap<String, String>) -> Response<Body> {
    let mut state = shared.lock();
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (rv, mut items) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match state.continues.remove(token) {
            Some(rest) => rest,
            None => {
                return full(
                    StatusCode::GONE,
                    status(410, "Expired", "the provided continue parameter is too old"),
                )
            }
        },
        None => {
            *state.lists.entry(target.resource.plural).or_default() += 1;
            let filter = Filter::from(target, q);
            let items: Vec<Value> = state
                .objects
                .get(target.resource.plural)
                .map(|objects| {
                    objects
                        .values()
                        .filter(|o| filter.matches(o))
                        .cloned()
                        .map(strip_types)
                        .collect()
                })
                .unwrap_or_default();
            (state.rv, items)
        }
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit.filter(|l| items.len() > *l) {
        let rest = items.split_off(limit);
        state.next_continue += 1;
        let token = format!("c{}", state.next_continue);
        metadata["remainingItemCount"] = json!(rest.len());
        metadata["continue"] = json!(token.clone());
        state.continues.insert(token, (rv, rest));
    }
    let kind = format!("{}List", target.resource.kind);
    full(
        StatusCode::OK,
        json!({
            "kind": kind,
            "apiVersion": target.resource.api_version,
            "metadata": metadata,
            "items": items,
        }),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

/// An event for `object` as read through `resource`'s path: with that
/// apiVersion (the versions of one resource share their objects).
fn served_line(kind: &str, object: &Value, resource: &Resource) -> Bytes {
    if object["apiVersion"].as_str() == Some(resource.api_version) {
        return event_line(kind, object);
    }
    let mut object = object.clone();
    object["apiVersion"] = json!(resource.api_version);
    event_line(kind, &object)
}

fn gone_line(message: &str) -> Bytes {
    event_line("ERROR", &status(410, "Expired", message))
}

/// The watch event a change makes for a filtered watch, if any.
fn view(change: &Change, filter: &Filter, resource: &Resource) -> Option<Bytes> {
    let was = change.old.as_ref().is_some_and(|o| filter.matches(o));
    let is = filter.matches(&change.new);
    let kind = match (change.kind, was, is) {
        (ChangeType::Deleted, true, _) => "DELETED",
        (ChangeType::Deleted, false, _) => return None,
        (_, false, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        (_, false, false) => return None,
    };
    Some(served_line(kind, &change.new, resource))
}

fn watch(shared: Arc<Shared>, target: &Target, q: &HashMap<String, String>) -> Response<Body> {
    let filter = Filter::from(target, q);
    let resource = target.resource;
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let since = q
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let mut backlog = Vec::new();
    let events;
    {
        let mut state = shared.lock();
        *state.watches.entry(resource.plural).or_default() += 1;
        if since != 0 && since < state.oldest_rv {
            let message = format!("too old resource version: {since} ({})", state.oldest_rv);
            backlog.push(gone_line(&message));
            drop(state);
            let _ = tx.try_send(backlog.remove(0));
            return stream_response(rx);
        }
        if since == 0 {
            // No version: synthetic ADDED for every object, then changes.
            if let Some(objects) = state.objects.get(resource.plural) {
                for object in objects.values().filter(|o| filter.matches(o)) {
                    backlog.push(served_line("ADDED", object, resource));
                }
            }
        } else {
            for change in state
                .history
                .iter()
                .filter(|c| c.plural == resource.plural && c.rv > since)
            {
                if let Some(line) = view(change, &filter, resource) {
                    backlog.push(line);
                }
            }
        }
        // Subscribed under the lock: no change falls between backlog and live.
        events = shared.events.subscribe();
    }
    tokio::spawn(watch_task(
        shared, resource, filter, backlog, events, tx, bookmarks, timeout,
    ));
    stream_response(rx)
}

#[allow(clippy::too_many_arguments)]
async fn watch_task(
    shared: Arc<Shared>,
    resource: &'static Resource,
    filter: Filter,
    backlog: Vec<Bytes>,
    mut events: broadcast::Receiver<Broadcast>,
    tx: mpsc::Sender<Bytes>,
    bookmarks: bool,
    timeout: Option<Duration>,
) {
    for line in backlog {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(3600));
    let mut ticks = tokio::time::interval(shared.bookmark_interval);
    ticks.tick().await;
    loop {
        let line = tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => return,
            _ = ticks.tick(), if bookmarks => {
                let rv = shared.lock().rv;
                event_line("BOOKMARK", &json!({
                    "kind": resource.kind,
                    "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": rv.to_string()},
                }))
            }
            event = events.recv() => match event {
                Ok(Broadcast::Change(change)) if change.plural == resource.plural => {
                    match view(&change, &filter, resource) {
                        Some(line) => line,
                        None => continue,
                    }
                }
                Ok(Broadcast::Change(_)) => continue,
                Ok(Broadcast::Expire) => {
                    let _ = tx.send(gone_line("too old resource version")).await;
                    return;
                }
                Ok(Broadcast::Close(api_version, plural))
                    if api_version == resource.api_version && plural == resource.plural =>
                {
                    return
                }
                Ok(Broadcast::Close(..)) => continue,
                // A watcher that falls this far behind is dropped, as by the API server.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(gone_line("watcher fell behind")).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .expect("response")
}

/// `POST` (create: 409 AlreadyExists when the name is taken) or `PUT` of a
/// whole object (replace: 409 Conflict when its `resourceVersion` is stale),
/// as the API server does for optimistic concurrency.
async fn create_or_replace(
    shared: Arc<Shared>,
    target: &Target,
    name: Option<&str>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Ok(collected) = req.into_body().collect().await else {
        return full(
            StatusCode::BAD_REQUEST,
            status(400, "BadRequest", "unreadable body"),
        );
    };
    let Ok(mut object) = serde_json::from_slice::<Value>(&collected.to_bytes()) else {
        return full(
            StatusCode::BAD_REQUEST,
            status(400, "BadRequest", "not JSON"),
        );
    };
    let resource = target.resource;
    if let Some(ns) = &target.namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    object["kind"] = json!(resource.kind);
    let sent_rv = object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    let mut state = shared.lock();
    let rv = state.rv + 1;
    let mut next_uid = state.next_uid;
    let key = normalize(&mut object, resource, rv, &mut next_uid);
    state.next_uid = next_uid;
    let old = state
        .objects
        .get(resource.plural)
        .and_then(|o| o.get(&key))
        .cloned();
    match (name, &old) {
        (None, Some(_)) => {
            return full(
                StatusCode::CONFLICT,
                status(
                    409,
                    "AlreadyExists",
                    &format!("{} {:?} already exists", resource.plural, key.1),
                ),
            )
        }
        (Some(_), None) => return not_found(&format!("{} {:?} not found", resource.plural, key.1)),
        (Some(_), Some(old)) => {
            if sent_rv.as_deref() != old["metadata"]["resourceVersion"].as_str() {
                return full(
                    StatusCode::CONFLICT,
                    status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again"),
                );
            }
            for field in ["uid", "creationTimestamp"] {
                object["metadata"][field] = old["metadata"][field].clone();
            }
        }
        (None, None) => {}
    }
    state.rv = rv;
    state
        .objects
        .entry(resource.plural)
        .or_default()
        .insert(key, object.clone());
    let kind = if old.is_some() {
        ChangeType::Modified
    } else {
        ChangeType::Added
    };
    record(
        &shared,
        &mut state,
        resource.plural,
        kind,
        old,
        object.clone(),
    );
    let code = if name.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    full(code, object)
}

async fn write_status(
    shared: Arc<Shared>,
    target: &Target,
    name: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Ok(collected) = req.into_body().collect().await else {
        return full(
            StatusCode::BAD_REQUEST,
            status(400, "BadRequest", "unreadable body"),
        );
    };
    let body: Value = match serde_json::from_slice(&collected.to_bytes()) {
        Ok(body) => body,
        Err(err) => {
            return full(
                StatusCode::BAD_REQUEST,
                status(400, "BadRequest", &err.to_string()),
            )
        }
    };
    let resource = target.resource;
    let mut state = shared.lock();
    state.writes.push(Write {
        method,
        path,
        content_type,
        body: body.clone(),
    });
    let key = key_for(resource, target.namespace.as_deref().unwrap_or(""), name);
    let Some(old) = state
        .objects
        .get(resource.plural)
        .and_then(|o| o.get(&key))
        .cloned()
    else {
        return not_found(&format!("{} {name:?} not found", resource.plural));
    };
    let mut new = old.clone();
    new["status"] = body.get("status").cloned().unwrap_or(Value::Null);
    let rv = state.rv + 1;
    state.rv = rv;
    new["metadata"]["resourceVersion"] = json!(rv.to_string());
    state
        .objects
        .entry(resource.plural)
        .or_default()
        .insert(key, new.clone());
    record(
        &shared,
        &mut state,
        resource.plural,
        ChangeType::Modified,
        Some(old),
        new.clone(),
    );
    full(StatusCode::OK, new)
}
