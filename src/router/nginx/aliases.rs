//! `server-alias`: more host names for the Ingress's server, as nginx's
//! `server_name` gets them: every rule of the Ingress is also served on each
//! alias (an alias that is not a valid host is reported and left out).

use super::super::host::HostPattern;
use super::super::ingress::{Rule, Served};
use super::{Annotations, PREFIX};

/// `rules` plus a copy of each rule for every alias of `ing`; the bad aliases' reasons beside.
pub(in crate::router) fn with_aliases<'a>(
    ing: &Served<'_>,
    rules: Vec<Rule<'a>>,
) -> (Vec<Rule<'a>>, Vec<String>) {
    let Some(all) = ing.ingress.metadata.annotations.as_ref() else {
        return (rules, Vec::new());
    };
    let Some(value) = Annotations::new(all).get("server-alias") else {
        return (rules, Vec::new());
    };
    let mut problems = Vec::new();
    let mut aliases = Vec::new();
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
