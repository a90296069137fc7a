//! Kubernetes label selectors (`metav1.LabelSelector`), as
//! `allowedRoutes.namespaces.selector` uses them on Namespace labels.
//!
//! The semantics are apimachinery's `LabelSelectorAsSelector`: every
//! `matchLabels` pair and every `matchExpressions` requirement must hold; an
//! empty selector matches everything. Operators: `In` and `NotIn` (a missing
//! key is "not in"), `Exists`, `DoesNotExist`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Why a selector cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// An operator other than In, NotIn, Exists and DoesNotExist.
    #[error("unknown label selector operator {0:?}")]
    UnknownOperator(String),
    /// `In` / `NotIn` without values, or `Exists` / `DoesNotExist` with some.
    #[error("label selector operator {operator} on {key:?} {why}")]
    BadValues {
        /// The requirement's key.
        key: String,
        /// The requirement's operator.
        operator: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Checks that every requirement of `selector` is well-formed.
///
/// # Errors
///
/// The first malformed requirement.
pub fn validate(selector: &LabelSelector) -> Result<(), SelectorError> {
    for requirement in selector.match_expressions.iter().flatten() {
        check(requirement)?;
    }
    Ok(())
}

fn check(requirement: &LabelSelectorRequirement) -> Result<(), SelectorError> {
    let has_values = requirement.values.as_ref().is_some_and(|v| !v.is_empty());
    let bad = |why| SelectorError::BadValues {
        key: requirement.key.clone(),
        operator: requirement.operator.clone(),
        why,
    };
    match requirement.operator.as_str() {
        "In" | "NotIn" if !has_values => Err(bad("needs values")),
        "Exists" | "DoesNotExist" if has_values => Err(bad("takes no values")),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => Ok(()),
        other => Err(SelectorError::UnknownOperator(other.to_owned())),
    }
}

/// Whether `labels` satisfy `selector`. A malformed selector matches nothing
/// (check it with [`validate`] to report why).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if validate(selector).is_err() {
        return false;
    }
    let pairs_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    pairs_hold
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|requirement| holds(requirement, labels))
}

fn holds(requirement: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&requirement.key);
    let listed = |v: &String| requirement.values.iter().flatten().any(|x| x == v);
    match requirement.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).expect("selector")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_all_hold() {
        let s = selector(
            "
matchLabels: {team: a}
matchExpressions:
- {key: env, operator: In, values: [prod, staging]}
- {key: tier, operator: NotIn, values: [db]}
- {key: owner, operator: Exists}
- {key: legacy, operator: DoesNotExist}
",
        );
        let base = [("team", "a"), ("env", "prod"), ("owner", "x")];
        assert!(matches(&s, &labels(&base)));
        assert!(matches(
            &s,
            &labels(&[
                ("team", "a"),
                ("env", "staging"),
                ("owner", "x"),
                ("tier", "web")
            ])
        ));
        assert!(!matches(
            &s,
            &labels(&[("team", "b"), ("env", "prod"), ("owner", "x")])
        ));
        assert!(!matches(
            &s,
            &labels(&[("team", "a"), ("env", "dev"), ("owner", "x")])
        ));
        assert!(
            !matches(&s, &labels(&[("team", "a"), ("owner", "x")])),
            "In needs the key"
        );
        assert!(!matches(
            &s,
            &labels(&[
                ("team", "a"),
                ("env", "prod"),
                ("owner", "x"),
                ("tier", "db")
            ])
        ));
        assert!(!matches(&s, &labels(&[("team", "a"), ("env", "prod")])));
        assert!(!matches(
            &s,
            &labels(&[
                ("team", "a"),
                ("env", "prod"),
                ("owner", "x"),
                ("legacy", "")
            ])
        ));
    }

    #[test]
    fn empty_selector_matches_everything_and_bad_ones_nothing() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        let unknown = selector("matchExpressions: [{key: a, operator: Like, values: [x]}]");
        assert_eq!(
            validate(&unknown),
            Err(SelectorError::UnknownOperator("Like".into()))
        );
        assert!(!matches(&unknown, &labels(&[("a", "x")])));
        let no_values = selector("matchExpressions: [{key: a, operator: In}]");
        assert!(validate(&no_values).is_err());
        let extra_values = selector("matchExpressions: [{key: a, operator: Exists, values: [x]}]");
        assert!(validate(&extra_values).is_err());
    }
}
