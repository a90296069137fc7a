//! What `--access-log*` flags configure, and their parsing.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderName;

use super::Format;

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    /// No access log (the default).
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to, reopened on SIGUSR1.
    Path(PathBuf),
}

impl FromStr for Target {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "off" => Self::Off,
            "stdout" | "-" => Self::Stdout,
            path => Self::Path(PathBuf::from(path)),
        })
    }
}

/// Status codes to log (`--access-log-status 400-599,302`); empty = all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusRanges(Vec<RangeInclusive<u16>>);

impl StatusRanges {
    /// Whether `status` is logged.
    pub fn contains(&self, status: u16) -> bool {
        self.0.is_empty() || self.0.iter().any(|r| r.contains(&status))
    }
}

impl FromStr for StatusRanges {
    type Err = AccessLogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AccessLogError::Status(s.to_owned());
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let low: u16 = low.trim().parse().map_err(|_| bad())?;
            let high: u16 = high.trim().parse().map_err(|_| bad())?;
            if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
                return Err(bad());
            }
            ranges.push(low..=high);
        }
        Ok(Self(ranges))
    }
}

/// The access log's configuration.
#[derive(Debug, Clone, Default)]
pub struct AccessLogSettings {
    /// Where lines go.
    pub target: Target,
    /// The line format.
    pub format: Format,
    /// Request headers written (JSON `request_<Name>` fields); others are dropped.
    pub headers: Vec<HeaderName>,
    /// Only these statuses are logged.
    pub statuses: StatusRanges,
    /// Only requests that took at least this long are logged.
    pub min_duration: Duration,
}

/// Why the access log cannot start or a flag is invalid.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// PATH cannot be opened for appending.
    #[error("cannot open the access log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the access-log writer: {0}")]
    Thread(#[source] std::io::Error),
    /// `--access-log-status` is not a list of codes and ranges.
    #[error("invalid --access-log-status {0:?}: expected codes or ranges such as 400-599,302")]
    Status(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse_and_filter() {
        let r: StatusRanges = "400-499, 502,503-503".parse().expect("valid");
        assert!(r.contains(404) && r.contains(502) && r.contains(503));
        assert!(!r.contains(200) && !r.contains(500) && !r.contains(504));
        assert!(StatusRanges::default().contains(200), "empty means all");
        for bad in ["abc", "500-400", "99", "400-700", "4xx"] {
            assert!(bad.parse::<StatusRanges>().is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!("off".parse::<Target>(), Ok(Target::Off));
        assert_eq!("stdout".parse::<Target>(), Ok(Target::Stdout));
        assert_eq!(
            "/var/log/a.log".parse::<Target>(),
            Ok(Target::Path("/var/log/a.log".into()))
        );
    }
}
