//! Parsing wrk's `--latency` output.

use crate::report::ServerRun;

/// A wrk duration ("123.45us", "1.20ms", "2.00s") in milliseconds.
pub fn duration_ms(s: &str) -> Option<f64> {
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60_000.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}

/// Requests/s and the 50% and 99% latencies of a `wrk --latency` run.
pub fn parse(text: &str) -> Option<ServerRun> {
    let (mut rps, mut p50, mut p99) = (None, None, None);
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = duration_ms(v),
            ["99%", v] => p99 = duration_ms(v),
            _ => {}
        }
    }
    Some(ServerRun {
        requests_per_s: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
    })
}

/// Non-2xx/3xx responses or socket errors that wrk reports, if any.
pub fn errors(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `wrk -t1 -c4 -d1s --latency` on this machine (against a
    /// python3 http.server, hence the slow figures).
    const OUTPUT: &str = "Running 1s test @ http://127.0.0.1:18089/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.08ms    3.67ms  23.24ms   70.05%
    Req/Sec   393.60     52.51   474.00     60.00%
  Latency Distribution
     50%   10.27ms
     75%   11.71ms
     90%   15.29ms
     99%   19.15ms
  392 requests in 1.00s, 2.57MB read
Requests/sec:    391.65
Transfer/sec:      2.57MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse(OUTPUT).unwrap();
        assert_eq!(r.requests_per_s, 391.65);
        assert!((r.p50_ms - 10.27).abs() < 1e-9);
        assert!((r.p99_ms - 19.15).abs() < 1e-9);
        assert_eq!(duration_ms("627.00us"), Some(0.627));
        assert_eq!(errors(OUTPUT), None);
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert!(parse("garbage").is_none());
    }
}
