//! `rewrite-target` (with `x-forwarded-prefix`) and `use-regex`.
//!
//! ingress-nginx writes `rewrite "(?i)<rule path>" <rewrite-target> break;`
//! in every location of the Ingress (unless the path equals the target):
//! the rule's path is a regex and `$1`… in the target are its captures.
//! `x-forwarded-prefix` is sent upstream as `X-Forwarded-Prefix` with that
//! rewrite (captures allowed). The translation does not see the rules, so
//! the `nginxRewrite` step reads the path of the route each request matched.
//!
//! `use-regex` (and `rewrite-target`, which implies it in ingress-nginx) is
//! also a routing matter: paths matched as case-insensitive regexes anchored
//! at the start, for every Ingress of the host. That is the router's part;
//! here only its value is checked.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::json;

use super::{Annotations, Translation};

/// ingress-nginx's `RegexPathWithCapture`.
fn path_with_capture() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^/?[\-._~a-zA-Z0-9/:$]*$").expect("static regex"))
}

/// Whether `value` uses only `$1`..`$9` as variables.
fn only_captures(value: &str) -> bool {
    let b = value.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, c)| *c != b'$' || b.get(i + 1).is_some_and(u8::is_ascii_digit))
}

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    if let Some(Err(bad)) = a.flag("use-regex") {
        out.ignore("use-regex", format!("{bad:?} is not true or false"));
    }
    let check = |out: &mut Translation, name: &str| -> Option<String> {
        let value = a.get(name).filter(|v| !v.is_empty())?;
        if path_with_capture().is_match(value) && only_captures(value) {
            Some(value.to_owned())
        } else {
            out.ignore(
                name,
                format!("{value:?} is not a path of letters, digits, -._~/: and $1..$9 captures"),
            );
            None
        }
    };
    let target = check(out, "rewrite-target");
    let prefix = check(out, "x-forwarded-prefix");
    let Some(target) = target else {
        if prefix.is_some() {
            out.ignore(
                "x-forwarded-prefix",
                "has an effect only with rewrite-target (ingress-nginx sets it with the rewrite)",
            );
        }
        return;
    };
    let mut config = json!({ "target": target });
    if let Some(prefix) = prefix {
        config["prefix"] = json!(prefix);
    }
    out.step("nginx-rewrite", "nginxRewrite", config);
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;

    #[test]
    fn targets_and_prefixes_are_checked() {
        let t = all(&annotations(&[
            ("rewrite-target", "/$2"),
            ("x-forwarded-prefix", "/api"),
            ("use-regex", "true"),
        ]));
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.steps[0].kind, "nginxRewrite");
        assert_eq!(t.steps[0].config["target"], "/$2");
        assert_eq!(t.steps[0].config["prefix"], "/api");
        assert!(t.ignored.is_empty());

        let t = all(&annotations(&[("rewrite-target", "/a b")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
        let t = all(&annotations(&[("rewrite-target", "/$host")]));
        assert!(t.steps.is_empty());
        let t = all(&annotations(&[("x-forwarded-prefix", "/p")]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 1);
        let t = all(&annotations(&[("use-regex", "maybe")]));
        assert_eq!(t.ignored.len(), 1);
    }
}
