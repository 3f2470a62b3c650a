//! Percentiles of latency samples.

use serde::{Deserialize, Serialize};

/// Median and tail of a set of samples, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median_ns: f64,
    pub p99_ns: f64,
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// Summarises `samples` (any order).
pub fn summarize(samples: &[u64]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_unstable();
    Summary {
        n: s.len(),
        median_ns: quantile(&s, 0.5),
        p99_ns: quantile(&s, 0.99),
    }
}

/// The median of a few values (per-round figures); NaN when empty.
pub fn median_f64(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<u64> = (1..=100).collect();
        let sum = summarize(&s);
        assert_eq!(sum.n, 100);
        assert_eq!(sum.median_ns, 50.0);
        assert_eq!(sum.p99_ns, 99.0);
        assert_eq!(summarize(&[7]).p99_ns, 7.0);
        assert!(summarize(&[]).median_ns.is_nan());
        assert_eq!(median_f64(&[3.0, 1.0, 2.0, f64::NAN]), 2.0);
        assert_eq!(median_f64(&[1.0, 2.0]), 1.5);
    }
}
