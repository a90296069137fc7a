//! `upstream-hash-by` (with `upstream-hash-by-subset`, `-subset-size`) and
//! `load-balance`: how a route picks among its backend's endpoints, read by
//! the compiler as a route setting (like `affinity`), not a middleware.
//!
//! ingress-nginx's precedence: cookie affinity, then `upstream-hash-by`,
//! then `load-balance` (`round_robin` by default, or `ewma`; the
//! controller ConfigMap's `load-balance` is the default when it is read).
//! Bad values are reported and ignored (ingress-nginx rejects the whole
//! Ingress over them): a bad key falls back to `load-balance`, a bad
//! `load-balance` to round-robin.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Annotations, PREFIX};
use crate::router::Target;
use crate::upstream::hash_key::HashKey;
use crate::upstream::{Balance, Grouping};

/// ingress-nginx's default `upstream-hash-by-subset-size`.
const DEFAULT_SUBSET_SIZE: usize = 3;

/// What the annotations ask for, before it is tied to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Round-robin (ingress-nginx's `round_robin`, the default).
    RoundRobin,
    /// Consistent hashing of `key`.
    Hash(HashKey, Grouping),
    /// EWMA with two random choices.
    Ewma,
}

/// Reads the balancing annotations; the second value lists the problems,
/// each a full diagnostic message.
pub(crate) fn wanted(annotations: Option<&BTreeMap<String, String>>) -> (Wanted, Vec<String>) {
    let mut problems = Vec::new();
    let Some(all) = annotations else {
        return (Wanted::RoundRobin, problems);
    };
    let a = Annotations::new(all);
    let mut report = |annotation: &str, reason: String| {
        problems.push(format!("{PREFIX}{annotation}: {reason}"));
    };
    let hashed = a.get("upstream-hash-by").and_then(|text| {
        HashKey::parse(text)
            .map_err(|e| {
                report(
                    "upstream-hash-by",
                    format!(
                        "{e}; the annotation is ignored (requests are balanced by load-balance)"
                    ),
                );
            })
            .ok()
    });
    let subset = match a.get("upstream-hash-by-subset") {
        None => false,
        Some(v) => go_bool(v).unwrap_or_else(|| {
            report(
                "upstream-hash-by-subset",
                format!("{v:?} is not a boolean; the annotation is ignored"),
            );
            false
        }),
    };
    let size = match a.get("upstream-hash-by-subset-size") {
        None => DEFAULT_SUBSET_SIZE,
        Some(v) => match v.parse::<i64>() {
            // ingress-nginx reads 0 as unset.
            Ok(0) => DEFAULT_SUBSET_SIZE,
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(DEFAULT_SUBSET_SIZE),
            _ => {
                report(
                    "upstream-hash-by-subset-size",
                    format!("{v:?} is not a positive whole number; subsets of 3 are used"),
                );
                DEFAULT_SUBSET_SIZE
            }
        },
    };
    let balance = match a.get("load-balance") {
        None | Some("round_robin") => Wanted::RoundRobin,
        Some("ewma") => Wanted::Ewma,
        // Valid in ingress-nginx, but only meaningful with hashing or
        // affinity, which their own annotations configure.
        Some(other @ ("chash" | "chashsubset")) => {
            if hashed.is_none() {
                report(
                    "load-balance",
                    format!("{other:?} needs upstream-hash-by; requests are balanced round-robin"),
                );
            }
            Wanted::RoundRobin
        }
        Some(other @ ("sticky_balanced" | "sticky_persistent")) => {
            report(
                "load-balance",
                format!("{other:?} is configured with affinity: cookie; requests are balanced round-robin"),
            );
            Wanted::RoundRobin
        }
        Some(other) => {
            report(
                "load-balance",
                format!("{other:?} is not round_robin or ewma; requests are balanced round-robin"),
            );
            Wanted::RoundRobin
        }
    };
    let wanted = match hashed {
        Some(key) if subset => Wanted::Hash(key, Grouping::Subsets(size)),
        Some(key) => Wanted::Hash(key, Grouping::Single),
        None => balance,
    };
    (wanted, problems)
}

/// The route setting for `wanted` on a route to `target`: the backend's
/// shared ring or scores; `None` for round-robin or a route without backend.
pub(crate) fn policy(wanted: Wanted, target: &Target) -> Option<Arc<Balance>> {
    let Target::Backend(backend) = target else {
        return None;
    };
    match wanted {
        Wanted::RoundRobin => None,
        Wanted::Hash(key, grouping) => Some(Arc::new(Balance::Hash {
            key,
            ring: backend.ring(grouping),
        })),
        Wanted::Ewma => Some(Arc::new(Balance::Ewma(backend.ewma()))),
    }
}

/// Go's `strconv.ParseBool`, which ingress-nginx's boolean annotations use.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> (Wanted, Vec<String>) {
        wanted(Some(&annotations(pairs)))
    }

    fn key(text: &str) -> HashKey {
        HashKey::parse(text).expect("valid key")
    }

    #[test]
    fn nothing_set_is_round_robin() {
        assert_eq!(wanted(None), (Wanted::RoundRobin, vec![]));
        assert_eq!(read(&[]), (Wanted::RoundRobin, vec![]));
        assert_eq!(
            read(&[("load-balance", "round_robin")]).0,
            Wanted::RoundRobin
        );
    }

    #[test]
    fn hashing_wins_over_load_balance() {
        let (w, problems) = read(&[
            ("upstream-hash-by", "$request_uri"),
            ("load-balance", "ewma"),
        ]);
        assert_eq!(w, Wanted::Hash(key("$request_uri"), Grouping::Single));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(read(&[("load-balance", "ewma")]).0, Wanted::Ewma);
        // load-balance: chash with a key is what ingress-nginx would do anyway.
        let (w, problems) = read(&[("upstream-hash-by", "$host"), ("load-balance", "chash")]);
        assert_eq!(w, Wanted::Hash(key("$host"), Grouping::Single));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn subsets_default_to_three() {
        let on = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("upstream-hash-by", "$remote_addr"),
                ("upstream-hash-by-subset", "true"),
            ];
            pairs.extend_from_slice(extra);
            read(&pairs)
        };
        assert_eq!(
            on(&[]).0,
            Wanted::Hash(key("$remote_addr"), Grouping::Subsets(3))
        );
        assert_eq!(
            on(&[("upstream-hash-by-subset-size", "5")]).0,
            Wanted::Hash(key("$remote_addr"), Grouping::Subsets(5))
        );
        assert_eq!(
            on(&[("upstream-hash-by-subset-size", "0")]).0,
            Wanted::Hash(key("$remote_addr"), Grouping::Subsets(3))
        );
        // The size alone changes nothing.
        assert_eq!(
            read(&[
                ("upstream-hash-by", "$remote_addr"),
                ("upstream-hash-by-subset-size", "5")
            ])
            .0,
            Wanted::Hash(key("$remote_addr"), Grouping::Single)
        );
    }

    #[test]
    fn bad_values_are_reported_and_fall_back() {
        let (w, problems) = read(&[
            ("upstream-hash-by", "$upstream_addr"),
            ("load-balance", "ewma"),
        ]);
        assert_eq!(w, Wanted::Ewma, "a bad key falls back to load-balance");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("nginx.ingress.kubernetes.io/upstream-hash-by: ")
                && problems[0].contains("$upstream_addr"),
            "{problems:?}"
        );
        for value in ["EWMA", "least_conn", "", "chash", "sticky_balanced"] {
            let (w, problems) = read(&[("load-balance", value)]);
            assert_eq!(w, Wanted::RoundRobin, "{value}");
            assert_eq!(problems.len(), 1, "{value}: {problems:?}");
            assert!(problems[0].contains("load-balance"), "{problems:?}");
        }
        let (w, problems) = read(&[
            ("upstream-hash-by", "$host"),
            ("upstream-hash-by-subset", "yes"),
            ("upstream-hash-by-subset-size", "-2"),
        ]);
        assert_eq!(w, Wanted::Hash(key("$host"), Grouping::Single));
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (w, problems) = read(&[("upstream-hash-by", "$request_uri/")]);
        assert_eq!(w, Wanted::RoundRobin);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
