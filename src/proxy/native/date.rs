//! The `Date` field of responses that lack one (RFC 9110 §6.6.1), formatted at
//! most once a second per thread.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Cached {
    second: u64,
    line: [u8; 37],
}

thread_local! {
    static DATE: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, line: [0; 37] }) };
}

/// Appends `Date: <IMF-fixdate>\r\n` for the current second.
pub(super) fn append(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.second != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            let line = format!("Date: {text}\r\n");
            if line.len() == cached.line.len() {
                cached.line.copy_from_slice(line.as_bytes());
                cached.second = second;
            }
        }
        out.extend_from_slice(&cached.line);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_lines_are_imf_fixdate() {
        let mut out = Vec::new();
        super::append(&mut out);
        let line = String::from_utf8(out).expect("ascii");
        assert!(
            line.starts_with("Date: ") && line.ends_with(" GMT\r\n"),
            "{line}"
        );
        assert_eq!(line.len(), 37);
    }
}
