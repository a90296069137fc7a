//! `proxy-next-upstream` (+ `-tries`, `-timeout`): which failures send the
//! request to the next endpoint, on the retry middleware. nginx's `error` and
//! `timeout` are network failures before a response; `http_<code>` retries on
//! those statuses; `non_idempotent` allows POST/PATCH/LOCK to be retried;
//! `off` disables it. Read only when one of these annotations is present:
//! ingress-nginx retries `error timeout` 3 times on every Ingress, sluice
//! does not retry unannotated Ingresses.

use serde_json::json;

use super::{Annotations, Translation};

/// The most tries `proxy-next-upstream-tries: 0` (nginx: unlimited) becomes.
const UNLIMITED_TRIES: u64 = 10;

/// Reads the next-upstream annotations into a retry step.
pub(super) fn translate(a: &Annotations<'_>, out: &mut Translation) {
    let when = a.get("proxy-next-upstream");
    let tries = a.get("proxy-next-upstream-tries");
    let timeout = a.get("proxy-next-upstream-timeout");
    if when.is_none() && tries.is_none() && timeout.is_none() {
        return;
    }
    let when = when.unwrap_or("error timeout");
    let mut network = false;
    let mut statuses: Vec<String> = Vec::new();
    let mut non_idempotent = false;
    for token in when.split_whitespace() {
        match token {
            "off" => return,
            "error" | "timeout" | "invalid_header" => network = true,
            "non_idempotent" => non_idempotent = true,
            code if code.starts_with("http_") => match code[5..].parse::<u16>() {
                Ok(status) if (100..600).contains(&status) => statuses.push(status.to_string()),
                _ => {
                    out.ignore(
                        "proxy-next-upstream",
                        format!("{code:?} is not a condition nginx knows"),
                    );
                    return;
                }
            },
            other => {
                out.ignore(
                    "proxy-next-upstream",
                    format!("{other:?} is not a condition nginx knows"),
                );
                return;
            }
        }
    }
    let attempts = match tries.map(str::parse::<u64>) {
        None => 3,
        Some(Ok(0)) => UNLIMITED_TRIES,
        Some(Ok(n)) => n.min(UNLIMITED_TRIES),
        Some(Err(_)) => {
            out.ignore(
                "proxy-next-upstream-tries",
                "not a whole number; 3 tries are made",
            );
            3
        }
    };
    let mut config = json!({
        "attempts": attempts,
        "status": statuses,
        "disableRetryOnNetworkError": !network,
        "retryNonIdempotentMethod": non_idempotent,
    });
    if let Some(timeout) = timeout {
        match timeout.parse::<u64>() {
            Ok(0) => {}
            Ok(secs) => config["timeout"] = json!(format!("{secs}s")),
            Err(_) => out.ignore(
                "proxy-next-upstream-timeout",
                "not a number of seconds; no limit",
            ),
        }
    }
    if !network && statuses.is_empty() {
        return;
    }
    if attempts > 1 {
        out.step("nginx-next-upstream", "retry", config);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annotations;
    use super::super::translate;

    #[test]
    fn conditions_become_a_retry_step() {
        let t = translate(&annotations(&[
            (
                "proxy-next-upstream",
                "error timeout http_502 non_idempotent",
            ),
            ("proxy-next-upstream-tries", "2"),
            ("proxy-next-upstream-timeout", "5"),
        ]));
        let step = t
            .steps
            .iter()
            .find(|s| s.kind == "retry")
            .expect("a retry step");
        assert_eq!(step.config["attempts"], 2);
        assert_eq!(step.config["status"], serde_json::json!(["502"]));
        assert_eq!(step.config["disableRetryOnNetworkError"], false);
        assert_eq!(step.config["retryNonIdempotentMethod"], true);
        assert_eq!(step.config["timeout"], "5s");
        let off = translate(&annotations(&[("proxy-next-upstream", "off")]));
        assert!(off.steps.iter().all(|s| s.kind != "retry"));
        let bad = translate(&annotations(&[("proxy-next-upstream", "sometimes")]));
        assert_eq!(bad.ignored.len(), 1);
    }
}
