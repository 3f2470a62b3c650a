//! What the load binary prints, and its parser.
//!
//! One line per operation, every sample in nanoseconds, so the driver can pool
//! samples across rounds before taking percentiles:
//!
//! ```text
//! sample getppid 61 58 60 ...
//! ```
//!
//! Any other line (the workload's own output, warnings) is ignored.

use std::collections::BTreeMap;

/// Formats one operation's samples as a line of the protocol.
pub fn format_samples(op: &str, samples: &[u64]) -> String {
    let mut line = String::with_capacity(8 + op.len() + samples.len() * 6);
    line.push_str("sample ");
    line.push_str(op);
    for s in samples {
        line.push(' ');
        line.push_str(&s.to_string());
    }
    line
}

/// Why a load binary's output could not be read.
#[derive(Debug)]
pub enum WireError {
    BadSample { op: String, token: String },
    MissingOp(String),
}

impl std::error::Error for WireError {}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::BadSample { op, token } => {
                write!(f, "load output: bad sample {token:?} for {op}")
            }
            WireError::MissingOp(op) => write!(f, "load output: no samples for {op}"),
        }
    }
}

/// Parses the samples of every operation in `text`; repeated operations append.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vec<u64>>, WireError> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("sample") {
            continue;
        }
        let Some(op) = words.next() else { continue };
        let entry = out.entry(op.to_string()).or_default();
        for w in words {
            entry.push(w.parse().map_err(|_| WireError::BadSample {
                op: op.to_string(),
                token: w.to_string(),
            })?);
        }
    }
    Ok(out)
}

/// Like `parse`, and checks that every op in `want` has samples.
pub fn parse_expecting(text: &str, want: &[&str]) -> Result<BTreeMap<String, Vec<u64>>, WireError> {
    let map = parse(text)?;
    for op in want {
        if map.get(*op).is_none_or(|v| v.is_empty()) {
            return Err(WireError::MissingOp(op.to_string()));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_other_lines() {
        let text = format!(
            "nfguard: something\n{}\n{}\nhello\n",
            format_samples("getppid", &[1, 2, 3]),
            format_samples("getppid", &[4])
        );
        let m = parse_expecting(&text, &["getppid"]).unwrap();
        assert_eq!(m["getppid"], vec![1, 2, 3, 4]);
        assert!(parse("sample x 1 zz").is_err());
        assert!(parse_expecting("", &["connect"]).is_err());
    }
}
