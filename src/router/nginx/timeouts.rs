//! `proxy-connect-timeout` and `proxy-read-timeout` (unitless seconds, as
//! ingress-nginx writes them; `5s` is accepted too) become the route's
//! backend connect and response-head timeouts. nginx's read timeout bounds
//! every read of the response, sluice's only the wait for its head (a
//! streaming body is never cut for being slow). `proxy-send-timeout` has no
//! counterpart (sluice streams request bodies; `--body-read-timeout` bounds
//! the client side) and is reported as ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Annotations, PREFIX};
use crate::upstream::Timeouts;

/// The timeouts an Ingress asks for, and the problems with its values.
pub(crate) fn read(annotations: Option<&BTreeMap<String, String>>) -> (Timeouts, Vec<String>) {
    let mut out = Timeouts::default();
    let mut problems = Vec::new();
    let Some(all) = annotations else {
        return (out, problems);
    };
    if !all.keys().any(|k| k.starts_with(PREFIX)) {
        return (out, problems);
    }
    let a = Annotations::new(all);
    let mut seconds = |name: &str| -> Option<Duration> {
        let value = a.get(name)?;
        match parse(value) {
            Some(d) => Some(d),
            None => {
                problems.push(format!(
                    "{PREFIX}{name}: {value:?} is not a number of seconds; the default is kept"
                ));
                None
            }
        }
    };
    out.connect = seconds("proxy-connect-timeout");
    out.response_header = seconds("proxy-read-timeout");
    if a.get("proxy-send-timeout").is_some() {
        problems.push(format!(
            "{PREFIX}proxy-send-timeout: sluice streams request bodies and has no send timeout per route"
        ));
    }
    (out, problems)
}

fn parse(value: &str) -> Option<Duration> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    let secs: u64 = digits.parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::*;

    #[test]
    fn seconds_become_client_timeouts() {
        let a = annotations(&[
            ("proxy-connect-timeout", "3"),
            ("proxy-read-timeout", "120s"),
        ]);
        let (t, problems) = read(Some(&a));
        assert_eq!(t.connect, Some(Duration::from_secs(3)));
        assert_eq!(t.response_header, Some(Duration::from_secs(120)));
        assert!(problems.is_empty());
        let a = annotations(&[("proxy-read-timeout", "soon"), ("proxy-send-timeout", "5")]);
        let (t, problems) = read(Some(&a));
        assert_eq!(t, Timeouts::default());
        assert_eq!(problems.len(), 2);
    }
}
