//! The compiler: Snapshot in, RouteTable plus Diagnostics out. Pure; never fails as a whole.

use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use super::backend::{
    service_hash, touched, ChangedServices, Resolver, ServiceIndex, SvcRef, Unresolved,
};
use super::delta::address;
use super::host::HostPattern;
use super::ingress::{self, Served};
use super::middlewares;
use super::nginx;
use super::path::match_path;
use super::rank::{self, Rank, RuleRoute};
use super::route_table::HostTables;
use super::{Diagnostic, DiagnosticKind, ObjectRef, PathKind, Route, RouteTable, Snapshot, Target};
use crate::identity::WeakRegistry;
use crate::metrics::RouteStats;
use crate::middleware::Chain;
use crate::upstream::sticky::StickyCookie;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::annotations::{self, IngressOptions};
use super::certs::{self, CompiledCerts, Secrets};
use crate::tls::LoadedCert;
use crate::upstream::{
    Backend, BackendKey, BackendProtocol, ClientKey, Clients, EndpointSet, PoolSettings, Timeouts,
    UpstreamClient, Upstreams, Verify,
};

/// The `spec.controller` value of IngressClasses that sluice serves.
pub const CONTROLLER_NAME: &str = "sluice.dev/ingress-controller";

/// Settings that change what the compiler serves.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `--ingress-class`: the class name this instance serves.
    pub ingress_class: String,
    /// `--default-cert-secret`: (namespace, name) of the certificate for unknown SNI.
    pub default_cert_secret: Option<(String, String)>,
    /// `--allow-cross-namespace`: Ingresses may name Middlewares of other namespaces.
    pub allow_cross_namespace: bool,
    /// `--nginx-configmap`: (namespace, name) of the ingress-nginx controller
    /// ConfigMap whose settings apply to every Ingress.
    pub nginx_configmap: Option<(String, String)>,
    /// Gateway API: the entrypoint ports listeners map to, the published
    /// addresses, the supported features.
    pub gateway: crate::gateway::resolve::ResolveSettings,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "sluice".to_owned(),
            default_cert_secret: None,
            allow_cross_namespace: false,
            nginx_configmap: None,
            gateway: crate::gateway::resolve::ResolveSettings::default(),
        }
    }
}

/// State with identity that the compiled table references but does not own.
#[derive(Debug, Default)]
pub struct Registries {
    /// Backends (endpoint sets, balancer counters) by Service port.
    pub upstreams: Upstreams,
    /// Request counters by route name.
    pub route_stats: WeakRegistry<Arc<str>, RouteStats>,
    /// Upstream clients (protocol, TLS settings, pools).
    pub clients: Clients,
    /// Built middlewares, reused while their definition is unchanged.
    pub middlewares: crate::middleware::Builder,
    /// The self-signed fallback certificate, generated on first use.
    default_cert: OnceLock<Option<LoadedCert>>,
    /// What the last compile built, for the next one to reuse.
    memo: Mutex<Memo>,
}

/// What one compile leaves for the next, reused only where the inputs are the
/// same objects (by `Arc`) or equal values, so a compile's output never
/// depends on what came before it, only its cost does.
#[derive(Debug, Default)]
struct Memo {
    /// Each backend's resolution (valid while its Service's objects are unchanged).
    backends: HashMap<BackendKey, BackendMemo>,
    /// Routes that may be reused by name: those `route` built in the last
    /// compile, and those of memos given up in this one.
    routes: HashMap<Arc<str>, Arc<Route>>,
    /// The host tables built last.
    tables: Option<HostTables>,
    /// The Ingresses given the controller ConfigMap's defaults last time.
    nginx: NginxMemo,
    /// Each served Ingress's rule routes, by the address of its object.
    ingresses: HashMap<usize, IngressMemo>,
    /// Every claim of a memoised Ingress, with the address of its owner.
    owners: HashMap<Claim, usize>,
    /// Counts compiles: a memo reused in this one carries its number.
    stamp: u64,
    /// Services, slices and Endpoints by Service, as of `lists`.
    services: Option<ServiceIndex>,
    /// The lists the service index was built from, to find what changed.
    lists: Lists,
    /// Services whose endpoints an endpoint-only refresh changed since the
    /// last compile: that compile's memos of them are stale.
    refreshed: ChangedServices,
    /// The cross-Ingress inputs of every Ingress's rule routes, as they were.
    rule_globals: Option<RuleGlobals>,
    /// The served Ingresses, oldest first.
    served: ingress::ServedList,
}

/// The snapshot lists a compile's memo was built from.
#[derive(Debug, Default)]
pub(super) struct Lists {
    pub services: Vec<Arc<k8s_openapi::api::core::v1::Service>>,
    pub slices: Vec<Arc<k8s_openapi::api::discovery::v1::EndpointSlice>>,
    pub endpoints: Vec<Arc<k8s_openapi::api::core::v1::Endpoints>>,
}

impl Lists {
    fn of(snapshot: &Snapshot) -> Self {
        Self {
            services: snapshot.services.clone(),
            slices: snapshot.endpoint_slices.clone(),
            endpoints: snapshot.endpoints.clone(),
        }
    }
}

/// One Ingress's rule routes and what they were built from: reused as they
/// are while the Ingress is the same object, its TLS hosts and middleware
/// chain are the same, the Services it names are unchanged (the same
/// Service, slices and Endpoints objects) and the cross-Ingress inputs
/// ([`RuleGlobals`]) are equal. A change to one Ingress then costs its own
/// rules, not every Ingress's: a reused memo is not read again beyond
/// these checks (its claims stay in [`Memo::owners`]).
#[derive(Debug)]
struct IngressMemo {
    /// The object (kept alive, so its address names it alone).
    ingress: Arc<Ingress>,
    covered: Vec<HostPattern>,
    chain: Chain,
    /// The [`service_hash`] of every backend key the rules named.
    services: Vec<u64>,
    /// Every rule's claim and route, in order (each rule won its claim).
    routes: Vec<(Claim, RuleRoute)>,
    /// What building them reported.
    diagnostics: Vec<Diagnostic>,
    /// The number of the last compile that used it.
    stamp: u64,
}

/// What every Ingress's rule routes read of the other objects: the hosts
/// that turn paths into regexes (`use-regex`), the hosts aliases may not
/// take, and the Secrets (by address, for `proxy-ssl-secret`).
#[derive(Debug, PartialEq)]
struct RuleGlobals {
    regex_hosts: Vec<HostPattern>,
    taken_hosts: Vec<HostPattern>,
    secrets: Vec<usize>,
}

/// The Ingresses `nginx_defaults` rewrote, by the address of the original
/// `Arc`, with the defaults they were given: an unchanged Ingress keeps its
/// rewritten `Arc`, so the memos downstream still recognise it.
#[derive(Debug, Default)]
struct NginxMemo {
    defaults: std::collections::BTreeMap<String, String>,
    merged: HashMap<usize, (Arc<Ingress>, Arc<Ingress>)>,
}

#[derive(Debug)]
struct BackendMemo {
    result: Result<(Arc<Backend>, Arc<EndpointSet>), Unresolved>,
}

impl Registries {
    /// Registries whose upstream clients use `pool`.
    pub fn new(pool: PoolSettings) -> Self {
        Self {
            clients: Clients::new(pool),
            ..Self::default()
        }
    }

    /// The generated self-signed default certificate (`None` only if generation failed).
    pub fn generated_default_cert(&self) -> Option<&LoadedCert> {
        self.default_cert
            .get_or_init(|| match crate::tls::self_signed_default() {
                Ok(cert) => Some(cert),
                Err(e) => {
                    tracing::error!(error = %e, "generating the default certificate failed");
                    None
                }
            })
            .as_ref()
    }
}

/// The compiler's output.
#[derive(Debug)]
pub struct Compiled {
    /// The table to publish.
    pub table: RouteTable,
    /// Everything that was skipped, conflicting or unresolved, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The endpoint sets this compile resolved, once per backend, in no
    /// particular order: every backend that is new, or whose Service's
    /// objects changed since the last compile with these registries (all of
    /// them on the first). The publisher installs these just before it swaps
    /// the table in; every other backend keeps the set it has.
    pub endpoints: Vec<(Arc<Backend>, Arc<EndpointSet>)>,
}

/// `snapshot` with the controller ConfigMap's annotation defaults written
/// into every Ingress (an Ingress's own annotation wins), so that every
/// reader of annotations sees them.
fn nginx_defaults(
    snapshot: &Snapshot,
    global: &nginx::Global,
    previous: &NginxMemo,
) -> (Snapshot, NginxMemo) {
    let mut out = snapshot.clone();
    let mut memo = NginxMemo {
        defaults: global.defaults.clone(),
        merged: HashMap::default(),
    };
    let reusable = previous.defaults == global.defaults;
    for ingress in &mut out.ingresses {
        let id = Arc::as_ptr(ingress) as usize;
        if let Some((original, merged)) = previous.merged.get(&id).filter(|_| reusable) {
            if Arc::ptr_eq(original, ingress) {
                memo.merged.insert(id, (original.clone(), merged.clone()));
                *ingress = merged.clone();
                continue;
            }
        }
        if let Some(annotations) = global.with_defaults(ingress.metadata.annotations.as_ref()) {
            let mut copy = (**ingress).clone();
            copy.metadata.annotations = Some(annotations);
            let merged = Arc::new(copy);
            memo.merged.insert(id, (ingress.clone(), merged.clone()));
            *ingress = merged;
        }
    }
    (out, memo)
}

/// Compiles a snapshot into a routing table.
///
/// Pure and total: every problem becomes a [`Diagnostic`] and only the faulty
/// part is left out. Endpoint sets are returned, not installed.
pub fn compile(snapshot: &Snapshot, options: &CompileOptions, registries: &Registries) -> Compiled {
    // Taken out for the whole compile: a compile that panics leaves an empty memo.
    let mut previous = std::mem::take(
        &mut *registries
            .memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let mut diagnostics = Vec::new();
    let global = nginx::Global::read(snapshot, options.nginx_configmap.as_ref(), &mut diagnostics);
    let with_defaults;
    let mut nginx_memo = NginxMemo::default();
    let snapshot = if global.enabled {
        let (merged, memo) = nginx_defaults(snapshot, &global, &previous.nginx);
        with_defaults = merged;
        nginx_memo = memo;
        &with_defaults
    } else {
        snapshot
    };
    let started = std::time::Instant::now();
    let served_list = std::mem::take(&mut previous.served).update(snapshot, options);
    let served = served_list.served(&mut diagnostics);
    let secrets = certs::index_secrets(snapshot);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let resolution = super::gateway::resolution(snapshot, &options.gateway);
    let CompiledCerts { index, covered } = certs::compile_certs(
        &served,
        &super::gateway::listener_certs(&resolution),
        &secrets,
        options.default_cert_secret.as_ref(),
        registries,
        now,
        &mut diagnostics,
    );
    // The service index follows the snapshot: patched with what came and
    // went since the last compile, or built afresh (then every memo of a
    // backend is stale: `changed` is `None`).
    let (services, changed) = match previous.services.take() {
        Some(mut index) => {
            let mut changed = index.patch_to(&previous.lists, snapshot);
            changed.extend(std::mem::take(&mut previous.refreshed));
            (index, Some(changed))
        }
        None => (ServiceIndex::build(snapshot), None),
    };
    let stamp = previous.stamp.wrapping_add(1);
    let mut cx = Context {
        resolver: services.resolver(),
        changed,
        registries,
        secrets,
        covered,
        previous,
        next: Memo {
            nginx: nginx_memo,
            stamp,
            ..Memo::default()
        },
        plain_clients: HashMap::default(),
        endpoints: Vec::new(),
        diagnostics,
        chains: Vec::new(),
    };
    let gateway;
    let (setup, chains);
    {
        let (resolver, changed, previous, next, endpoints) = (
            &cx.resolver,
            cx.changed.as_ref(),
            &mut cx.previous,
            &mut cx.next,
            &mut cx.endpoints,
        );
        let mut resolve = |key: &BackendKey| {
            let memos = Memos {
                previous,
                next,
                changed,
            };
            memo_backend(resolver, registries, memos, endpoints, key)
                .as_ref()
                .map(|(backend, _)| backend.clone())
                .map_err(|u| u.reason.clone())
        };
        let mut env = middlewares::Env::new(
            snapshot,
            &cx.resolver,
            &cx.secrets,
            registries,
            &mut resolve,
        );
        let chains_started = std::time::Instant::now();
        setup = chains_started - started;
        cx.chains = middlewares::chains(
            &served,
            &mut env,
            &nginx::Env {
                namespace: "",
                snapshot,
                global: &global,
                allow_cross_namespace: options.allow_cross_namespace,
            },
            &mut cx.diagnostics,
        );
        chains = chains_started.elapsed();
        gateway = super::gateway::compile(resolution, &mut env, &mut cx.diagnostics);
    }
    let rules_started = std::time::Instant::now();
    let routes = cx.rule_routes(&served, snapshot);
    let default = cx.default_route(&served);
    let rules = rules_started.elapsed();
    let table_started = std::time::Instant::now();
    let (table, table_diagnostics) =
        RouteTable::build(routes, default, index, cx.previous.tables.as_ref(), gateway);
    let mut diagnostics = cx.diagnostics;
    diagnostics.extend(table_diagnostics);
    let table_time = table_started.elapsed();
    tracing::debug!(
        ?setup,
        ?chains,
        ?rules,
        table = ?table_time,
        total = ?started.elapsed(),
        "compile phases"
    );
    diagnostics.sort();
    diagnostics.dedup();
    let endpoints = cx.endpoints;
    let mut next = cx.next;
    next.tables = Some(table.host_tables());
    next.services = Some(services);
    next.served = served_list;
    next.lists = Lists::of(snapshot);
    *registries
        .memo
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = next;
    Compiled {
        table,
        diagnostics,
        endpoints,
    }
}

/// A set of host patterns in a stable order, to compare across compiles.
fn sorted(hosts: &std::collections::HashSet<HostPattern>) -> Vec<HostPattern> {
    let mut out: Vec<HostPattern> = hosts.iter().cloned().collect();
    out.sort();
    out
}

/// Which rule claims a host + path + type.
type Claim = (HostPattern, String, PathKind);

/// One compile's working state.
struct Context<'a> {
    resolver: Resolver<'a>,
    /// The Services whose objects changed since the last compile (`None`: all).
    changed: Option<ChangedServices>,
    registries: &'a Registries,
    secrets: Secrets<'a>,
    /// The hosts each served Ingress's TLS section covers, by position in `served`.
    covered: Vec<Vec<HostPattern>>,
    /// What the previous compile built (entries move to `next` when reused).
    previous: Memo,
    /// What this compile builds; its backends are each resolved once per compile.
    next: Memo,
    /// Clients without TLS verification, by protocol, looked up once per compile.
    plain_clients: HashMap<BackendProtocol, Arc<UpstreamClient>>,
    /// The endpoint sets resolved in this compile (each backend once).
    endpoints: Vec<(Arc<Backend>, Arc<EndpointSet>)>,
    diagnostics: Vec<Diagnostic>,
    /// Each served Ingress's middleware chain, by position in `served`.
    chains: Vec<Chain>,
}

impl Context<'_> {
    /// Routes for every rule path; `served` is oldest first, so the first claim wins.
    ///
    /// The memos of the last compile are kept in place: a reused one costs a
    /// lookup by address and its checks, nothing per rule. Claims are only
    /// checked for the Ingresses rebuilt: memos still valid hold disjoint
    /// claims (each won all of its claims when it was built, and the order of
    /// the same objects does not change), so a rebuilt Ingress's claim is
    /// taken if an Ingress rebuilt before it took it (`claims`) or a memo
    /// reused before it owns it (`owners`, the memo's stamp); a claim it
    /// takes from a memo further on makes that memo lost, to be rebuilt.
    fn rule_routes(&mut self, served: &[Served<'_>], snapshot: &Snapshot) -> Vec<RuleRoute> {
        let stamp = self.next.stamp;
        let mut memos = std::mem::take(&mut self.previous.ingresses);
        let mut owners = std::mem::take(&mut self.previous.owners);
        let mut claims: HashMap<Claim, &ObjectRef> = HashMap::default();
        let mut lost: FxHashSet<usize> = FxHashSet::default();
        let mut routes = Vec::with_capacity(served.len());
        let regex_hosts = nginx::regex_hosts(served);
        let taken_hosts = nginx::taken_hosts(served);
        let globals = RuleGlobals {
            regex_hosts: sorted(&regex_hosts),
            taken_hosts: sorted(&taken_hosts),
            secrets: snapshot
                .secrets
                .iter()
                .map(|s| Arc::as_ptr(s) as usize)
                .collect(),
        };
        if self.previous.rule_globals.as_ref() != Some(&globals) {
            for (_, memo) in memos.drain() {
                self.retire(memo, None);
            }
            owners.clear();
        }
        for (index, ing) in served.iter().enumerate() {
            if nginx::canary::is_canary(ing) {
                // Served through the main Ingress of its host and path.
                continue;
            }
            let id = address(ing.arc);
            if let Some(memo) = memos.get_mut(&id) {
                if !lost.contains(&id) && self.still_valid(memo, index, ing) {
                    memo.stamp = stamp;
                    routes.extend(memo.routes.iter().map(|(_, rule)| rule.clone()));
                    self.diagnostics.extend(memo.diagnostics.iter().cloned());
                    continue;
                }
                if let Some(memo) = memos.remove(&id) {
                    self.retire(memo, Some((&mut owners, id)));
                }
            }
            let diagnostics_before = self.diagnostics.len();
            let mut built: Vec<(Claim, RuleRoute)> = Vec::new();
            let mut keys: Vec<BackendKey> = Vec::new();
            let mut complete = true;
            let opts = self.options_of(ing);
            let rules = ingress::rules(ing, opts.path_matcher, &mut self.diagnostics);
            let (rules, bad_aliases) = nginx::with_aliases(ing, rules, &taken_hosts);
            for reason in bad_aliases {
                self.diagnostics.push(Diagnostic::warning(
                    ing.object.clone(),
                    DiagnosticKind::InvalidAnnotation,
                    format!("{reason}; the alias is left out"),
                ));
            }
            for rule in nginx::regex_rules(rules, &regex_hosts) {
                let regex = match rule.kind {
                    PathKind::Regex => match rank::compile_regex(&rule.path) {
                        Ok(regex) => Some(regex),
                        Err(err) => {
                            // Never serve a regex route that could match what it should not.
                            self.diagnostics.push(Diagnostic::error(
                                ing.object.clone(),
                                DiagnosticKind::InvalidAnnotation,
                                format!(
                                    "host {} path {:?}: not a valid regular expression for \
                                     router.pathmatcher PathRegexp ({err}); the path is left out",
                                    rule.host.display().as_deref().unwrap_or("*"),
                                    rule.path
                                ),
                            ));
                            continue;
                        }
                    },
                    _ => None,
                };
                let Some(key) = self.backend_key(ing, rule.backend) else {
                    continue;
                };
                let claim = (
                    rule.host.clone(),
                    match_path(&rule.path, rule.kind).to_owned(),
                    rule.kind,
                );
                let owner = owners.get(&claim).copied();
                let reused_winner = owner
                    .and_then(|owner| memos.get(&owner))
                    .filter(|memo| memo.stamp == stamp)
                    .map(|memo| ingress::object_of(&memo.ingress));
                let winner = claims.get(&claim).map(|w| (*w).clone()).or(reused_winner);
                if let Some(winner) = winner {
                    let what = format!(
                        "host {} path {} ({:?})",
                        rule.host.display().as_deref().unwrap_or("*"),
                        rule.path,
                        rule.kind
                    );
                    self.conflict(ing, &winner, &what);
                    complete = false;
                    continue;
                }
                if let Some(owner) = owner {
                    // A memo further on held this claim: it loses it now.
                    lost.insert(owner);
                }
                claims.insert(claim.clone(), ing.object);
                let has_tls = self
                    .covered
                    .get(index)
                    .is_some_and(|hosts| certs::covers(hosts, &rule.host));
                let redirect = opts.redirects(has_tls);
                let host = rule.host.display();
                let rank = Rank {
                    explicit: opts.priority,
                    rule_len: rank::rule_len(
                        host.as_deref(),
                        rule.written.then_some(rule.path.as_str()),
                        Some(rule.kind),
                    ),
                };
                keys.push(key.clone());
                let route = self.route(
                    index,
                    ing,
                    &opts,
                    redirect,
                    host,
                    Some((rule.path, rule.kind)),
                    key,
                );
                let rule = RuleRoute { route, rank, regex };
                built.push((claim, rule.clone()));
                routes.push(rule);
            }
            if complete {
                for (claim, _) in &built {
                    owners.insert(claim.clone(), id);
                }
                let memo = IngressMemo {
                    ingress: ing.arc.clone(),
                    covered: self.covered.get(index).cloned().unwrap_or_default(),
                    chain: self.chains.get(index).cloned().unwrap_or_default(),
                    services: keys
                        .iter()
                        .map(|key| service_hash(SvcRef::of(key)))
                        .collect(),
                    routes: built,
                    diagnostics: self.diagnostics[diagnostics_before..].to_vec(),
                    stamp,
                };
                memos.insert(id, memo);
            }
        }
        // Memos of Ingresses no longer served (removed, edited into a new
        // object, or of another class now) go, and their claims with them.
        let gone: Vec<usize> = memos
            .iter()
            .filter(|(_, memo)| memo.stamp != stamp)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(memo) = memos.remove(&id) {
                self.retire(memo, Some((&mut owners, id)));
            }
        }
        self.next.ingresses = memos;
        self.next.owners = owners;
        self.next.rule_globals = Some(globals);
        routes
    }

    /// Gives up a memo: its claims leave `owners` (those it still owns), and
    /// its routes may still be reused by name.
    fn retire(&mut self, memo: IngressMemo, owners: Option<(&mut HashMap<Claim, usize>, usize)>) {
        if let Some((owners, id)) = owners {
            for (claim, _) in &memo.routes {
                if owners.get(claim) == Some(&id) {
                    owners.remove(claim);
                }
            }
        }
        for (_, rule) in memo.routes {
            self.previous
                .routes
                .entry(rule.route.name.clone())
                .or_insert(rule.route);
        }
    }

    /// Whether `memo` still describes the rule routes of `ing` (at `index`
    /// of this compile's served Ingresses).
    fn still_valid(&self, memo: &IngressMemo, index: usize, ing: &Served<'_>) -> bool {
        Arc::ptr_eq(&memo.ingress, ing.arc)
            && self.covered.get(index).is_some_and(|c| *c == memo.covered)
            && self
                .chains
                .get(index)
                .is_some_and(|c| c.same_as(&memo.chain))
            && self
                .changed
                .as_ref()
                .is_some_and(|changed| !memo.services.iter().any(|h| changed.contains(h)))
    }

    /// The oldest served Ingress's `spec.defaultBackend`; the others are conflicts.
    fn default_route(&mut self, served: &[Served<'_>]) -> Option<Arc<Route>> {
        let mut winner: Option<(&ObjectRef, Arc<Route>)> = None;
        for (index, ing) in served.iter().enumerate() {
            let spec = ing.ingress.spec.as_ref();
            let Some(backend) = spec.and_then(|s| s.default_backend.as_ref()) else {
                continue;
            };
            if nginx::canary::is_canary(ing) {
                continue;
            }
            let Some(key) = self.backend_key(ing, backend) else {
                continue;
            };
            match &winner {
                Some((object, _)) => self.conflict(ing, object, "the default backend"),
                None => {
                    let opts = self.options_of(ing);
                    let redirect = opts.redirects(false);
                    winner = Some((
                        ing.object,
                        self.route(index, ing, &opts, redirect, None, None, key),
                    ));
                }
            }
        }
        winner.map(|(_, route)| route)
    }

    /// The backend's key, keyed by the resolved Service port when it resolves;
    /// an invalid backend becomes a diagnostic.
    fn backend_key(&mut self, ing: &Served<'_>, backend: &IngressBackend) -> Option<BackendKey> {
        ingress::backend_key(ing, backend)
            .map(|key| self.resolver.canonical(key))
            .map_err(|d| self.diagnostics.push(*d))
            .ok()
    }

    fn conflict(&mut self, loser: &Served<'_>, winner: &ObjectRef, what: &str) {
        let message = if winner == loser.object {
            format!("{what} is listed twice in this Ingress; the first one is used")
        } else {
            format!("{what} is also claimed by {winner}, which is older and wins")
        };
        let object = loser.object.clone();
        self.diagnostics
            .push(Diagnostic::error(object, DiagnosticKind::Conflict, message));
    }

    fn options_of(&mut self, ing: &Served<'_>) -> IngressOptions {
        annotations::ingress_options(
            ing.ingress.metadata.annotations.as_ref(),
            ing.object,
            ing.namespace,
            &mut self.diagnostics,
        )
    }

    /// Reports each annotation problem of `object` once (a problem read per
    /// rule of an Ingress would otherwise repeat).
    fn warn_once(&mut self, object: &ObjectRef, problems: Vec<String>) {
        for problem in problems {
            let diagnostic =
                Diagnostic::warning(object.clone(), DiagnosticKind::InvalidAnnotation, problem);
            if !self.diagnostics.contains(&diagnostic) {
                self.diagnostics.push(diagnostic);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        index: usize,
        ing: &Served<'_>,
        opts: &IngressOptions,
        redirect_https: bool,
        host: Option<String>,
        path: Option<(String, PathKind)>,
        key: BackendKey,
    ) -> Arc<Route> {
        let name = route_name(ing, host.as_deref(), path.as_ref());
        let mut target = self.target(ing, &key);
        let client = match self.client(ing, opts, &key) {
            Ok(client) => client,
            Err(reason) => {
                self.diagnostics.push(Diagnostic::error(
                    ing.object.clone(),
                    DiagnosticKind::InvalidSecret,
                    reason.clone(),
                ));
                target = Target::Unavailable {
                    status: 503,
                    reason: reason.into(),
                };
                self.plain_client()
            }
        };
        let (path, kind) = path.unzip();
        let (sticky, pass_host_header) = self.service_options(&key);
        // ingress-nginx's cookie affinity on the Ingress wins over the Service's.
        let sticky = match nginx::affinity::cookie(
            ing.ingress.metadata.annotations.as_ref(),
            path.as_deref(),
        ) {
            Ok(Some(cookie)) => Some(Arc::new(cookie)),
            Ok(None) => sticky,
            Err(reason) => {
                self.diagnostics.push(Diagnostic::warning(
                    ing.object.clone(),
                    DiagnosticKind::InvalidAnnotation,
                    format!("nginx.ingress.kubernetes.io/{reason}; the annotation is ignored"),
                ));
                sticky
            }
        };
        // ingress-nginx's upstream-hash-by / load-balance (a sticky cookie wins over both).
        let (wanted, problems) = nginx::balance::wanted(ing.ingress.metadata.annotations.as_ref());
        self.warn_once(ing.object, problems);
        let balance = nginx::balance::policy(wanted, &target);
        let middlewares = self.chains.get(index).cloned().unwrap_or_default();
        let old = self.previous.routes.remove(&*name);
        let route = match old {
            Some(old)
                if old.host == host
                    && old.path == path
                    && old.kind == kind
                    && old.ingress == *ing.object
                    && old.service.as_ref() == Some(&key)
                    && same_target(&old.target, &target)
                    && Arc::ptr_eq(&old.client, &client)
                    && old.entrypoints == opts.entrypoints
                    && old.redirect_https == redirect_https
                    && old.redirect_keeps_trailing_slash == opts.preserve_trailing_slash
                    && old.middlewares.same_as(&middlewares)
                    && old.sticky == sticky
                    && old.balance == balance
                    && old.pass_host_header == pass_host_header =>
            {
                old
            }
            _ => {
                let stats = self
                    .registries
                    .route_stats
                    .get_or_insert_with(&name, RouteStats::default);
                Arc::new(Route {
                    name: name.clone(),
                    host,
                    path,
                    kind,
                    ingress: ing.object.clone(),
                    service: Some(key),
                    target,
                    client,
                    entrypoints: opts.entrypoints,
                    redirect_https,
                    redirect_keeps_trailing_slash: opts.preserve_trailing_slash,
                    middlewares,
                    sticky,
                    balance,
                    pass_host_header,
                    stats,
                })
            }
        };
        self.next.routes.insert(name, route.clone());
        route
    }

    /// The upstream client for a backend: protocol from the Ingress's
    /// `backend-protocol`, else the Service's `serversscheme`, else HTTP/1.1; TLS
    /// verification when `proxy-ssl-verify` asks for it.
    fn client(
        &mut self,
        ing: &Served<'_>,
        opts: &IngressOptions,
        key: &BackendKey,
    ) -> Result<Arc<UpstreamClient>, String> {
        let from_service = || {
            let value = self
                .resolver
                .service_annotation(key, annotations::SERVERS_SCHEME)?;
            annotations::servers_scheme(value)
        };
        let protocol = opts
            .backend_protocol
            .clone()
            .or_else(from_service)
            .unwrap_or(BackendProtocol::Http);
        let verify = match (&opts.proxy_ssl, &protocol) {
            (Some(ssl), BackendProtocol::Https | BackendProtocol::H2) => {
                let ca_pem = certs::ca_bytes(&self.secrets, &ssl.secret)
                    .map_err(|e| format!("backend verification for {}: {e}", ing.object))?;
                let server_name = ssl
                    .server_name
                    .clone()
                    .unwrap_or_else(|| format!("{}.{}.svc", key.service, key.namespace));
                Some(Verify::new(ca_pem, server_name))
            }
            _ => None,
        };
        let (timeouts, problems) = nginx::timeouts::read(ing.ingress.metadata.annotations.as_ref());
        self.warn_once(ing.object, problems);
        let shared = verify.is_none() && timeouts == Timeouts::default();
        if shared {
            if let Some(client) = self.plain_clients.get(&protocol) {
                return Ok(client.clone());
            }
        }
        let client = self
            .registries
            .clients
            .get(&ClientKey {
                protocol: protocol.clone(),
                verify: verify.clone(),
                timeouts,
            })
            .map_err(|e| format!("backend verification for {}: {e}", ing.object))?;
        if shared {
            self.plain_clients.insert(protocol, client.clone());
        }
        Ok(client)
    }

    /// The Service's Traefik annotations that shape forwarding: sticky cookie and
    /// passhostheader. A bad value is reported and that option left off.
    fn service_options(&mut self, key: &BackendKey) -> (Option<Arc<StickyCookie>>, bool) {
        let object = || ObjectRef::namespaced("Service", &key.namespace, &key.service);
        let service_name = || format!("{}-{}-{}@kubernetes", key.namespace, key.service, key.port);
        let resolver = &self.resolver;
        let sticky = StickyCookie::from_annotations(
            |name| resolver.service_annotation(key, name),
            service_name,
        )
        .unwrap_or_else(|reason| {
            self.diagnostics.push(Diagnostic::error(
                object(),
                DiagnosticKind::InvalidAnnotation,
                format!("{reason}; sticky sessions are off"),
            ));
            None
        })
        .map(Arc::new);
        let pass_host_header = match self
            .resolver
            .service_annotation(key, annotations::PASS_HOST_HEADER)
            .map(str::trim)
        {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.diagnostics.push(Diagnostic::error(
                    object(),
                    DiagnosticKind::InvalidAnnotation,
                    format!(
                        "{}: {v:?} is not a boolean; the client's Host is passed",
                        annotations::PASS_HOST_HEADER
                    ),
                ));
                true
            }
        };
        if let Err(value) = annotations::native_lb(
            self.resolver
                .service_annotation(key, annotations::NATIVE_LB),
        ) {
            self.diagnostics.push(Diagnostic::error(
                ObjectRef::namespaced("Service", &key.namespace, &key.service),
                DiagnosticKind::InvalidAnnotation,
                format!(
                    "{}: {value:?} is not a boolean; requests go to the endpoints",
                    annotations::NATIVE_LB
                ),
            ));
        }
        (sticky, pass_host_header)
    }

    fn plain_client(&self) -> Arc<UpstreamClient> {
        // Plain HTTP needs no TLS material, so this cannot fail.
        self.registries
            .clients
            .get(&ClientKey::http())
            .unwrap_or_else(|_| Arc::new(UpstreamClient::new(&PoolSettings::default())))
    }

    /// `key`'s backend resolution through the memo ([`memo_backend`]).
    fn backend(
        &mut self,
        key: &BackendKey,
    ) -> &Result<(Arc<Backend>, Arc<EndpointSet>), Unresolved> {
        let memos = Memos {
            previous: &mut self.previous,
            next: &mut self.next,
            changed: self.changed.as_ref(),
        };
        memo_backend(
            &self.resolver,
            self.registries,
            memos,
            &mut self.endpoints,
            key,
        )
    }

    /// Where a route to `key` sends requests; the backend is resolved once per
    /// compile, and not at all when its Service and slices are the same objects
    /// as in the previous compile.
    fn target(&mut self, ing: &Served<'_>, key: &BackendKey) -> Target {
        let resolved = match self.backend(key) {
            Ok((backend, _)) => Ok(backend.clone()),
            Err(unresolved) => Err((unresolved.kind, unresolved.reason.clone())),
        };
        match resolved {
            Ok(backend) => Target::Backend(backend),
            Err((kind, message)) => {
                self.diagnostics
                    .push(Diagnostic::error(ing.object.clone(), kind, message.clone()));
                Target::Unavailable {
                    status: 503,
                    reason: message.into(),
                }
            }
        }
    }
}

/// The backend memos of one compile: what the last one left, what this one
/// keeps, and which Services changed in between.
struct Memos<'m> {
    previous: &'m mut Memo,
    next: &'m mut Memo,
    changed: Option<&'m ChangedServices>,
}

/// A backend's resolution, once per compile, and not at all when its
/// Service's objects are unchanged since the previous compile; a resolved
/// backend's endpoint set is queued for the publisher.
fn memo_backend<'m>(
    resolver: &Resolver<'_>,
    registries: &Registries,
    memos: Memos<'m>,
    endpoints: &mut Vec<(Arc<Backend>, Arc<EndpointSet>)>,
    key: &BackendKey,
) -> &'m Result<(Arc<Backend>, Arc<EndpointSet>), Unresolved> {
    let Memos {
        previous,
        next,
        changed,
    } = memos;
    // The key moves over from the previous memo when there is one: no clone.
    if !next.backends.contains_key(key) {
        let (owned, reused) = match previous.backends.remove_entry(key) {
            Some((owned, memo)) => (owned, Some(memo)),
            None => (key.clone(), None),
        };
        let memo = match reused {
            // Resolved before and installed by the publisher since.
            Some(memo) if !touched(changed, key) => memo,
            _ => {
                let memo = BackendMemo {
                    result: resolver.resolve(key).map(|set| {
                        let backend = registries.upstreams.backend(key);
                        (backend, Arc::new(set))
                    }),
                };
                // Once per key and compile (`next.backends` has it now), so
                // once per backend.
                if let Ok((backend, set)) = &memo.result {
                    endpoints.push((backend.clone(), set.clone()));
                }
                memo
            }
        };
        next.backends.insert(owned, memo);
    }
    &next.backends[key].result
}

/// Pod churn without a compile: the new endpoint sets of the live backends
/// whose Services' EndpointSlices or Endpoints changed from `before` (the
/// snapshot of the last compile or refresh) to `after`. It patches the last
/// compile's service index forward, so it costs what changed, and notes the
/// Services it refreshed, so the next compile resolves them again.
pub fn refresh_endpoints(
    before: &Snapshot,
    after: &Snapshot,
    registries: &Registries,
) -> Vec<(Arc<Backend>, Arc<EndpointSet>)> {
    let mut memo = registries
        .memo
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Taken out while patched: a refresh that panics leaves no index, and the
    // next compile builds one afresh rather than trust a half-patched one.
    let (index, changed, kept) = match memo.services.take() {
        Some(mut index) => {
            let changed = index.patch_to(&memo.lists, after);
            memo.lists = Lists::of(after);
            memo.refreshed.extend(changed.iter().copied());
            (index, changed, true)
        }
        None => {
            // No compile has left an index (or one panicked): index `before`
            // here and leave the memo alone.
            let mut index = ServiceIndex::build(before);
            let changed = index.patch_to(&Lists::of(before), after);
            (index, changed, false)
        }
    };
    let resolver = index.resolver();
    let sets = if changed.is_empty() {
        Vec::new()
    } else {
        registries
            .upstreams
            .live_for(|namespace, service| {
                changed.contains(&service_hash(SvcRef::new(namespace, service)))
            })
            .into_iter()
            // A `service.nativelb` backend goes to the ClusterIP: endpoints do not matter.
            .filter(|backend| !resolver.native_lb(backend.key()))
            .filter_map(|backend| {
                let set = resolver.resolve(backend.key()).ok()?;
                Some((backend, Arc::new(set)))
            })
            .collect()
    };
    if kept {
        memo.services = Some(index);
    }
    sets
}

/// Whether two targets send requests to the same place.
fn same_target(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Backend(a), Target::Backend(b)) => Arc::ptr_eq(a, b),
        (
            Target::Unavailable {
                status: a,
                reason: ra,
            },
            Target::Unavailable {
                status: b,
                reason: rb,
            },
        ) => a == b && ra == rb,
        _ => false,
    }
}

/// A route's name, unique per Ingress, host, path and type:
/// `<namespace>-<ingress>-<host or "any">-<path or "default">`, plus `-exact` for
/// an Exact rule and `-regex` for a regex rule (so rules of one path keep
/// separate stats).
fn route_name(ing: &Served<'_>, host: Option<&str>, path: Option<&(String, PathKind)>) -> Arc<str> {
    let shown_host = host.unwrap_or("any");
    let shown_path = path.map_or("default", |(p, _)| p.as_str());
    let suffix = match path {
        Some((_, PathKind::Exact)) => "-exact",
        Some((_, PathKind::Regex)) => "-regex",
        _ => "",
    };
    format!(
        "{}-{}-{shown_host}-{shown_path}{suffix}",
        ing.namespace, ing.name
    )
    .into()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressRule, IngressServiceBackend,
        IngressSpec, ServiceBackendPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::upstream::PortRef;

    /// A rule path to Service `web`, port by number or (`Err`) by name.
    fn rule_path(path: &str, path_type: &str, port: Result<i32, &str>) -> HTTPIngressPath {
        let (number, name) = match port {
            Ok(number) => (Some(number), None),
            Err(name) => (None, Some(name.to_owned())),
        };
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                name: "web".into(),
                port: Some(ServiceBackendPort { number, name }),
            }),
            resource: None,
        };
        HTTPIngressPath {
            backend,
            path: Some(path.into()),
            path_type: path_type.into(),
        }
    }

    fn snapshot() -> Snapshot {
        snapshot_with(vec![rule_path("/", "Prefix", Ok(80))])
    }

    /// Ingress `web` (host example.com, the given paths) and Service `web`
    /// (port `http` = 80).
    fn snapshot_with(paths: Vec<HTTPIngressPath>) -> Snapshot {
        let http = HTTPIngressRuleValue { paths };
        let rule = IngressRule {
            host: Some("example.com".into()),
            http: Some(http),
        };
        let ingress = Ingress {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..ObjectMeta::default()
            },
            spec: Some(IngressSpec {
                rules: Some(vec![rule]),
                ..IngressSpec::default()
            }),
            status: None,
        };
        let port = ServicePort {
            name: Some("http".into()),
            port: 80,
            ..ServicePort::default()
        };
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![port]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        Snapshot {
            ingresses: vec![Arc::new(ingress)],
            services: vec![Arc::new(service)],
            ..Snapshot::default()
        }
    }

    #[test]
    fn empty_and_nameless_inputs_compile_without_panic() {
        let registries = Registries::default();
        let options = CompileOptions::default();
        let empty = compile(&Snapshot::default(), &options, &registries);
        assert!(empty.table.is_empty() && empty.diagnostics.is_empty());
        let nameless = Snapshot {
            ingresses: vec![Arc::new(Ingress::default())],
            services: vec![Arc::new(Service::default())],
            ..Snapshot::default()
        };
        let compiled = compile(&nameless, &options, &registries);
        assert_eq!(compiled.diagnostics.len(), 1);
        assert_eq!(compiled.diagnostics[0].kind, DiagnosticKind::InvalidObject);
    }

    #[test]
    fn recompiling_keeps_backends_and_stats() {
        let registries = Registries::default();
        let options = CompileOptions::default();
        let first = compile(&snapshot(), &options, &registries);
        // The same objects again, as new ones: nothing to resolve again.
        let second = compile(&snapshot(), &options, &registries);
        assert_eq!(first.endpoints.len(), 1);
        assert!(second.endpoints.is_empty(), "the Service is unchanged");
        let route = |c: &Compiled| {
            c.table
                .lookup(crate::router::EntryPoint::Web, "example.com", "/")
                .cloned()
                .expect("route")
        };
        let backend = |c: &Compiled| match &route(c).target {
            Target::Backend(backend) => backend.clone(),
            Target::Unavailable { reason, .. } => panic!("unavailable: {reason}"),
        };
        assert!(Arc::ptr_eq(&backend(&first), &backend(&second)));
        assert!(Arc::ptr_eq(&first.endpoints[0].0, &backend(&second)));
        assert!(Arc::ptr_eq(&route(&first).stats, &route(&second).stats));
        assert_eq!(&*route(&first).name, "default-web-example.com-/");
    }

    #[test]
    fn controller_configmap_defaults_keep_unchanged_ingresses_reused() {
        let options = CompileOptions {
            nginx_configmap: Some(("ingress-nginx".into(), "controller".into())),
            ..CompileOptions::default()
        };
        let same = snapshot();
        let global = nginx::Global::read(&same, options.nginx_configmap.as_ref(), &mut Vec::new());
        // The first pass rewrites the Ingress (ingress-nginx's 1m default)...
        let (first, memo) = nginx_defaults(&same, &global, &NginxMemo::default());
        assert!(!Arc::ptr_eq(&first.ingresses[0], &same.ingresses[0]));
        let annotations = first.ingresses[0]
            .metadata
            .annotations
            .as_ref()
            .expect("merged");
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/proxy-body-size"],
            "1m"
        );
        // ...the next keeps the rewritten Arc while the Ingress is the same one...
        let (second, memo) = nginx_defaults(&same, &global, &memo);
        assert!(Arc::ptr_eq(&first.ingresses[0], &second.ingresses[0]));
        // ...and rewrites it again when the defaults change.
        let mut changed = global.clone();
        changed
            .defaults
            .insert("proxy-body-size".into(), "8m".into());
        let (third, _) = nginx_defaults(&same, &changed, &memo);
        assert!(!Arc::ptr_eq(&second.ingresses[0], &third.ingresses[0]));
        // Compiled, the route carries the default's middleware.
        let compiled = compile(&same, &options, &Registries::default());
        let route = compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/")
            .cloned()
            .expect("route");
        assert_eq!(
            route.middlewares.names(),
            ["default/web/nginx-body-size", "default/web/nginx-hsts"]
        );
    }

    #[test]
    fn each_backend_comes_with_its_endpoint_set() {
        let compiled = compile(
            &snapshot(),
            &CompileOptions::default(),
            &Registries::default(),
        );
        let (backend, set) = compiled.endpoints.first().expect("one backend");
        assert!(set.addrs.is_empty() && set.external.is_none());
        assert_eq!(backend.key().service, "web");
    }

    #[test]
    fn exact_and_prefix_of_one_path_are_two_names_and_two_stats() {
        let snapshot = snapshot_with(vec![
            rule_path("/foo", "Exact", Ok(80)),
            rule_path("/foo", "Prefix", Ok(80)),
        ]);
        let compiled = compile(
            &snapshot,
            &CompileOptions::default(),
            &Registries::default(),
        );
        assert!(
            compiled.diagnostics.is_empty(),
            "{:?}",
            compiled.diagnostics
        );
        let exact = compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/foo")
            .expect("exact");
        let prefix = compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/foo/x")
            .expect("prefix");
        assert_eq!(&*exact.name, "default-web-example.com-/foo-exact");
        assert_eq!(&*prefix.name, "default-web-example.com-/foo");
        assert!(!Arc::ptr_eq(&exact.stats, &prefix.stats));
    }

    #[test]
    fn a_port_by_name_and_by_number_is_one_backend() {
        let snapshot = snapshot_with(vec![
            rule_path("/by-name", "Prefix", Err("http")),
            rule_path("/by-number", "Prefix", Ok(80)),
        ]);
        let compiled = compile(
            &snapshot,
            &CompileOptions::default(),
            &Registries::default(),
        );
        assert!(
            compiled.diagnostics.is_empty(),
            "{:?}",
            compiled.diagnostics
        );
        assert_eq!(compiled.endpoints.len(), 1);
        let backend = |path| match &compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", path)
            .expect(path)
            .target
        {
            Target::Backend(backend) => backend.clone(),
            Target::Unavailable { reason, .. } => panic!("{path}: {reason}"),
        };
        let (by_name, by_number) = (backend("/by-name"), backend("/by-number"));
        assert!(Arc::ptr_eq(&by_name, &by_number));
        assert_eq!(by_name.key().port, PortRef::Number(80));
    }

    #[test]
    fn an_unresolvable_port_name_keeps_its_name() {
        let snapshot = snapshot_with(vec![rule_path("/", "Prefix", Err("nope"))]);
        let compiled = compile(
            &snapshot,
            &CompileOptions::default(),
            &Registries::default(),
        );
        let route = compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/")
            .expect("route");
        let key = route.service.as_ref().expect("service");
        assert_eq!(key.port, PortRef::Name("nope".into()));
        assert!(matches!(
            route.target,
            Target::Unavailable { status: 503, .. }
        ));
        assert_eq!(compiled.diagnostics[0].kind, DiagnosticKind::MissingPort);
    }

    #[test]
    fn a_missing_path_type_is_invalid_not_prefix() {
        let snapshot = snapshot_with(vec![
            rule_path("/typeless", "", Ok(80)),
            rule_path("/impl", "ImplementationSpecific", Ok(80)),
        ]);
        let compiled = compile(
            &snapshot,
            &CompileOptions::default(),
            &Registries::default(),
        );
        assert!(compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/typeless")
            .is_none());
        let implementation = compiled
            .table
            .lookup(crate::router::EntryPoint::Web, "example.com", "/impl/x")
            .expect("impl");
        assert_eq!(implementation.kind, Some(PathKind::Prefix));
        let [diagnostic] = compiled.diagnostics.as_slice() else {
            panic!("one diagnostic: {:?}", compiled.diagnostics)
        };
        assert_eq!(diagnostic.kind, DiagnosticKind::InvalidObject);
        let shown = diagnostic.to_string();
        for part in [
            "Ingress default/web",
            "example.com",
            "/typeless",
            "pathType",
        ] {
            assert!(shown.contains(part), "{shown:?} names {part}");
        }
    }

    #[test]
    fn a_set_class_field_decides_alone() {
        let mut snapshot = snapshot();
        let mut ingress = (*snapshot.ingresses[0]).clone();
        let annotations = [(ingress::CLASS_ANNOTATION.to_owned(), "sluice".to_owned())];
        ingress.metadata.annotations = Some(annotations.into_iter().collect());
        if let Some(spec) = ingress.spec.as_mut() {
            spec.ingress_class_name = Some("other".into());
        }
        snapshot.ingresses = vec![Arc::new(ingress)];
        let compiled = compile(
            &snapshot,
            &CompileOptions::default(),
            &Registries::default(),
        );
        assert!(compiled.table.is_empty());
    }

    /// An EndpointSlice of Service `web` with one ready endpoint at `ip`.
    fn web_slice(ip: &str) -> Arc<k8s_openapi::api::discovery::v1::EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-1", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]}))
            .expect("slice"),
        )
    }

    /// An endpoint-only refresh patches the compile's service index forward;
    /// the next compile must then resolve the refreshed Service again rather
    /// than hand back the endpoint set its memo holds from before.
    #[test]
    fn a_compile_after_a_refresh_hands_over_the_refreshed_endpoints() {
        let registries = Registries::default();
        let options = CompileOptions::default();
        let mut first = snapshot();
        first.endpoint_slices = vec![web_slice("10.0.0.1")];
        let compiled = compile(&first, &options, &registries);
        assert_eq!(compiled.endpoints.len(), 1);
        let mut moved = first.clone();
        moved.endpoint_slices = vec![web_slice("10.0.0.2")];
        let sets = refresh_endpoints(&first, &moved, &registries);
        assert_eq!(sets.len(), 1, "the one backend is refreshed");
        let want: std::net::SocketAddr = "10.0.0.2:8080".parse().expect("addr");
        assert_eq!(sets[0].1.addrs, vec![want]);
        for (backend, set) in sets {
            backend.set_endpoints(set);
        }
        // A config change elsewhere (a new Ingress object, same rules) compiles.
        let mut next = moved.clone();
        next.ingresses = vec![Arc::new((*moved.ingresses[0]).clone())];
        let again = compile(&next, &options, &registries);
        let sets: Vec<_> = again
            .endpoints
            .iter()
            .map(|(_, set)| set.addrs.clone())
            .collect();
        assert_eq!(sets, vec![vec![want]], "not the memo's 10.0.0.1");
        for (backend, set) in &again.endpoints {
            backend.set_endpoints(set.clone());
        }
        // Unchanged since: nothing to hand over, and the backend keeps its set.
        let third = compile(&next, &options, &registries);
        assert!(third.endpoints.is_empty());
        let backend = registries.upstreams.backend(again.endpoints[0].0.key());
        assert_eq!(backend.endpoints().addrs, vec![want]);
    }
}
