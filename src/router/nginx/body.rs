//! Request bodies: `proxy-body-size` (nginx's `client_max_body_size`), and
//! the buffering annotations, which have no effect in sluice (it streams
//! request and response bodies).
//!
//! ingress-nginx applies `client_max_body_size 1m` to every location it
//! serves unless the annotation (or its ConfigMap) says otherwise. sluice
//! also serves Ingresses that never were ingress-nginx's, so it applies a
//! limit only where `proxy-body-size` is set. `0` means no limit. A value
//! nginx cannot read is refused (fail closed: the limit protects the
//! backend).

use serde_json::json;

use super::{Annotations, Translation};

/// nginx's `ngx_parse_size`: bytes, or `k`/`m`/`g` (either case).
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&text[..text.len() - 1], 1 << 20),
        b'g' | b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Reads this group's annotations into `out`.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    if let Some(value) = a.get("proxy-body-size") {
        match parse_size(value) {
            Some(0) => {}
            Some(limit) => out.step("nginx-body-size", "nginxBodySize", json!({ "limit": limit })),
            None => out.refuse(
                "proxy-body-size",
                format!("{value:?} is not a size (bytes, or a number with k, m or g); the routes answer 500 rather than accept bodies of any size"),
            ),
        }
    }
    if let Some(value) = a.get("client-body-buffer-size") {
        let reason = match parse_size(value) {
            Some(_) => {
                "sluice streams request bodies to the backend and keeps no body buffer to size"
                    .to_owned()
            }
            None => format!("{value:?} is not a size"),
        };
        out.ignore("client-body-buffer-size", reason);
    }
    for (name, what) in [
        ("proxy-buffering", "responses to the client"),
        ("proxy-request-buffering", "request bodies to the backend"),
    ] {
        match a.get(name) {
            None | Some("off") => {}
            Some("on") => out.ignore(
                name,
                format!("sluice streams {what} and cannot buffer them whole; \"on\" has no effect"),
            ),
            Some(other) => out.ignore(name, format!("{other:?} is not on or off")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate as all;
    use super::*;

    #[test]
    fn sizes_parse_as_nginx_does() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("8k"), Some(8192));
        assert_eq!(parse_size("8m"), Some(8 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        for bad in ["", "m", "1.5m", "1mb", "-1", "1b", "10 m"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn body_size_steps_and_refusals() {
        let t = all(&annotations(&[("proxy-body-size", "8m")]));
        assert_eq!(t.steps[0].kind, "nginxBodySize");
        assert_eq!(t.steps[0].config["limit"], 8 << 20);
        assert!(all(&annotations(&[("proxy-body-size", "0")]))
            .steps
            .is_empty());
        let t = all(&annotations(&[("proxy-body-size", "lots")]));
        assert_eq!(t.refused.len(), 1);
        let t = all(&annotations(&[
            ("client-body-buffer-size", "16k"),
            ("proxy-buffering", "on"),
            ("proxy-request-buffering", "off"),
        ]));
        assert!(t.steps.is_empty());
        assert_eq!(t.ignored.len(), 2, "{:?}", t.ignored);
    }
}
