//! `server-alias`: more host names for the Ingress's server, as nginx's
//! `server_name` gets them: every rule of the Ingress is also served on each
//! alias (an alias that is not a valid host is reported and left out).
//!
//! `from-to-www-redirect` likewise serves the rules on the other name
//! (`www.` added or removed) when no served Ingress has a rule for it, so
//! that its `nginxWwwRedirect` step can answer the redirect.

use std::collections::HashSet;

use super::super::host::HostPattern;
use super::super::ingress::{Rule, Served};
use super::{Annotations, PREFIX};

/// The annotation (without prefix) that serves rules on the `www.` twin too.
const WWW_REDIRECT_NAME: &str = "from-to-www-redirect";
/// [`WWW_REDIRECT_NAME`] with its prefix, as it appears on an Ingress.
const WWW_REDIRECT: &str = "nginx.ingress.kubernetes.io/from-to-www-redirect";

/// `rules` plus a copy of each rule for every alias of `ing`; the bad aliases' reasons beside.
pub(in crate::router) fn with_aliases<'a>(
    ing: &Served<'_>,
    rules: Vec<Rule<'a>>,
    taken: &HashSet<HostPattern>,
) -> (Vec<Rule<'a>>, Vec<String>) {
    let Some(all) = ing.ingress.metadata.annotations.as_ref() else {
        return (rules, Vec::new());
    };
    let a = Annotations::new(all);
    let mut problems = Vec::new();
    let mut aliases = Vec::new();
    if a.flag(WWW_REDIRECT_NAME) == Some(Ok(true)) {
        for rule in &rules {
            let HostPattern::Exact(name) = &rule.host else {
                continue;
            };
            let other = match name.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{name}"),
            };
            if let Ok(host) = HostPattern::parse(Some(&other)) {
                if !taken.contains(&host) && !aliases.contains(&host) {
                    aliases.push(host);
                }
            }
        }
    }
    let value = a.get("server-alias").unwrap_or("");
    for alias in value
        .split([',', ' '])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match HostPattern::parse(Some(alias)) {
            Ok(host) => aliases.push(host),
            Err(reason) => problems.push(format!("{PREFIX}server-alias: {alias:?}: {reason}")),
        }
    }
    if aliases.is_empty() {
        return (rules, problems);
    }
    let mut out = rules.clone();
    for alias in &aliases {
        for rule in &rules {
            if rule.host != *alias {
                let mut copy = rule.clone();
                copy.host = alias.clone();
                out.push(copy);
            }
        }
    }
    (out, problems)
}

/// Every exact host a rule of a served Ingress names, for
/// `from-to-www-redirect` to leave alone; empty (and not worked out) when no
/// served Ingress asks for that redirect, as in most clusters.
pub(in crate::router) fn taken_hosts(served: &[Served<'_>]) -> HashSet<HostPattern> {
    let wanted = served.iter().any(|ing| {
        ing.ingress
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(WWW_REDIRECT))
    });
    if !wanted {
        return HashSet::new();
    }
    served
        .iter()
        .flat_map(|ing| {
            ing.ingress
                .spec
                .as_ref()
                .and_then(|s| s.rules.as_deref())
                .unwrap_or_default()
        })
        .filter_map(|rule| HostPattern::parse(rule.host.as_deref()).ok())
        .collect()
}
