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

    /// Captured from `wrk -t1 -c32 -d2s --latency` against nginx-light on this machine.
    const OUTPUT: &str = "Running 2s test @ http://127.0.0.1:18080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   673.11us  249.02us   6.45ms   91.23%
    Req/Sec    47.85k     2.32k   50.84k    75.00%
  Latency Distribution
     50%  627.00us
     75%  701.00us
     90%  808.00us
     99%    1.73ms
  95254 requests in 2.00s, 77.31MB read
Requests/sec:  47557.97
Transfer/sec:     38.60MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse(OUTPUT).unwrap();
        assert_eq!(r.requests_per_s, 47557.97);
        assert!((r.p50_ms - 0.627).abs() < 1e-9);
        assert!((r.p99_ms - 1.73).abs() < 1e-9);
        assert_eq!(errors(OUTPUT), None);
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert!(parse("garbage").is_none());
    }
}
