//! Middleware references as Traefik's Kubernetes providers write them:
//! `<namespace>-<name>@kubernetescrd`, or `<name>@kubernetescrd`.

use thiserror::Error;

/// The provider suffix of references to `Middleware` custom resources.
pub const CRD_PROVIDER: &str = "kubernetescrd";

/// A reference that cannot name a Middleware object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    /// Empty, or only a provider suffix.
    #[error("empty middleware reference")]
    Empty,
    /// `@file`, `@docker`...: sluice only has Kubernetes CRD middlewares.
    #[error("middleware reference {0:?} names provider {1:?}; only @kubernetescrd is supported")]
    Provider(String, String),
}

/// A parsed reference: the text before `@`, which is `<ns>-<name>` or `<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The reference as written (for messages).
    pub text: &'a str,
    /// The part before `@provider`.
    pub qualified: &'a str,
}

impl<'a> Reference<'a> {
    /// Parses one reference; a missing `@provider` means `@kubernetescrd`.
    pub fn parse(text: &'a str) -> Result<Self, ReferenceError> {
        let text = text.trim();
        let (qualified, provider) = match text.rsplit_once('@') {
            Some((q, p)) => (q, Some(p)),
            None => (text, None),
        };
        if let Some(provider) = provider.filter(|p| *p != CRD_PROVIDER) {
            return Err(ReferenceError::Provider(
                text.to_owned(),
                provider.to_owned(),
            ));
        }
        if qualified.is_empty() {
            return Err(ReferenceError::Empty);
        }
        Ok(Self { text, qualified })
    }

    /// The (namespace, name) pairs this reference may mean, most likely first:
    /// `<namespace>-<name>` in `namespace`, then the whole text as a name in
    /// `namespace`, then every other split at a `-` (another namespace).
    pub fn candidates(&self, namespace: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let q = self.qualified;
        let own = q
            .strip_prefix(namespace)
            .and_then(|rest| rest.strip_prefix('-'))
            .filter(|name| !name.is_empty())
            .map(|name| (namespace, name));
        let plain = std::iter::once((namespace, q));
        let others = q
            .match_indices('-')
            .map(move |(i, _)| (&q[..i], &q[i + 1..]))
            .filter(move |(ns, name)| *ns != namespace && !ns.is_empty() && !name.is_empty());
        own.into_iter().chain(plain).chain(others)
    }
}

/// Splits an annotation value (`a@kubernetescrd, b@kubernetescrd`) into references.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixed_references_resolve_in_their_namespace_first() {
        let r = Reference::parse("team-a-auth@kubernetescrd").unwrap();
        let c: Vec<_> = r.candidates("team-a").collect();
        assert_eq!(c[0], ("team-a", "auth"));
        assert_eq!(c[1], ("team-a", "team-a-auth"));
        assert!(c.contains(&("team", "a-auth")));
    }

    #[test]
    fn bare_names_and_missing_provider_are_accepted() {
        let r = Reference::parse(" auth ").unwrap();
        assert_eq!(r.qualified, "auth");
        let c: Vec<_> = r.candidates("default").collect();
        assert_eq!(c, vec![("default", "auth")]);
    }

    #[test]
    fn other_providers_and_empty_references_are_refused() {
        assert!(matches!(
            Reference::parse("auth@file"),
            Err(ReferenceError::Provider(..))
        ));
        assert_eq!(
            Reference::parse("@kubernetescrd"),
            Err(ReferenceError::Empty)
        );
        let list: Vec<_> = split_list("a@kubernetescrd, ,b@kubernetescrd").collect();
        assert_eq!(list, vec!["a@kubernetescrd", "b@kubernetescrd"]);
    }
}
