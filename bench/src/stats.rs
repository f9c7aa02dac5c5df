//! Statistics: HDR latency histograms (nanoseconds, 3 significant digits) and their
//! percentiles, and 95% confidence intervals — Wilson for pass rates, Student's t for means.
//!
//! The t quantile is a table for 1–30 degrees of freedom and the Cornish–Fisher expansion
//! beyond (error below 1e-4 there); a statistics crate would bring a linear-algebra stack for
//! one function.

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A latency histogram in nanoseconds, 3 significant digits, auto-resizing.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // `new` fails only for more than 5 significant digits.
        let mut inner = Histogram::<u64>::new(3)
            .unwrap_or_else(|_| unreachable!("3 significant digits is a valid precision"));
        inner.auto(true);
        Self { inner }
    }

    /// Record one latency in nanoseconds (0 counts as 1 ns).
    pub fn record_ns(&mut self, ns: u64) {
        // With auto-resize `record` grows the histogram; `saturating_record` would clamp to the
        // current maximum instead.
        if self.inner.record(ns.max(1)).is_err() {
            self.inner.saturating_record(ns.max(1));
        }
    }

    /// Record one latency in milliseconds; negative and non-finite values are ignored.
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            self.record_ns((ms * 1e6).round() as u64);
        }
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Value at quantile `q` in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.inner.value_at_quantile(q) as f64 / 1e6
    }

    /// Count, mean, min, percentiles and max in ms; `None` when empty.
    pub fn summary(&self) -> Option<Percentiles> {
        if self.inner.is_empty() {
            return None;
        }
        Some(Percentiles {
            count: self.inner.len(),
            mean_ms: self.inner.mean() / 1e6,
            min_ms: self.inner.min() as f64 / 1e6,
            p50_ms: self.quantile_ms(0.50),
            p90_ms: self.quantile_ms(0.90),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.inner.max() as f64 / 1e6,
        })
    }

    /// hdrhistogram's V2 serialized form, base64-encoded (readable by every HdrHistogram
    /// implementation's decoder).
    pub fn to_base64(&self) -> String {
        let mut buf = Vec::new();
        match V2Serializer::new().serialize(&self.inner, &mut buf) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
            Err(_) => String::new(),
        }
    }

    /// Decode [`Self::to_base64`]'s form; `None` when the text is not a valid serialized histogram.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let mut d = hdrhistogram::serialization::Deserializer::new();
        let inner: Histogram<u64> = d.deserialize(&mut bytes.as_slice()).ok()?;
        Some(Self { inner })
    }
}

/// Percentiles of one latency metric, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percentiles {
    /// Number of recorded values.
    pub count: u64,
    /// Mean in ms.
    pub mean_ms: f64,
    /// Smallest value in ms.
    pub min_ms: f64,
    /// Median in ms.
    pub p50_ms: f64,
    /// 90th percentile in ms.
    pub p90_ms: f64,
    /// 99th percentile in ms.
    pub p99_ms: f64,
    /// 99.9th percentile in ms.
    pub p999_ms: f64,
    /// Largest value in ms.
    pub max_ms: f64,
}

/// A proportion or mean with its 95% confidence interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    /// The point estimate: the observed proportion or mean.
    pub value: f64,
    /// Lower bound of the 95% interval.
    pub ci95_low: f64,
    /// Upper bound of the 95% interval.
    pub ci95_high: f64,
    /// Number of observations.
    pub n: u64,
    /// `wilson` (proportions) or `t` (means).
    pub method: String,
}

const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for `successes` out of `n` (95%). `None` when `n` is 0.
pub fn wilson(successes: u64, n: u64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = Z95 * ((p * (1.0 - p) / nf) + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(Estimate {
        value: p,
        // The Wilson interval always contains p; the clamps to p only undo rounding (at p = 1,
        // centre + half comes out as 0.9999999999999999).
        ci95_low: (centre - half).max(0.0).min(p),
        ci95_high: (centre + half).min(1.0).max(p),
        n,
        method: "wilson".into(),
    })
}

/// Mean with a Student-t 95% interval. One value: the interval is the value itself.
pub fn mean_t(values: &[f64]) -> Option<Estimate> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Estimate {
            value: mean,
            ci95_low: mean,
            ci95_high: mean,
            n: 1,
            method: "t".into(),
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some(Estimate {
        value: mean,
        ci95_low: mean - half,
        ci95_high: mean + half,
        n: n as u64,
        method: "t".into(),
    })
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95% intervals).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    t_quantile(&TABLE, Z95, df)
}

/// The 95% quantile of Student's t with `df` degrees of freedom (one-sided 95% bounds).
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771,
        1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706,
        1.703, 1.701, 1.699, 1.697,
    ];
    t_quantile(&TABLE, 1.644_853_626_951_472_2, df)
}

/// A t quantile: from the table for df ≤ 30, else the Cornish–Fisher expansion of t around the
/// normal quantile `z` (accurate to the table's three decimals beyond 30).
fn t_quantile(table: &[f64; 30], z: f64, df: usize) -> f64 {
    if df == 0 {
        return f64::INFINITY;
    }
    if df <= 30 {
        return table[df - 1];
    }
    let v = df as f64;
    let g1 = (z.powi(3) + z) / 4.0;
    let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
    let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The exact quantile HDR approximates: the smallest value with at least q·n values ≤ it.
    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn hdr_percentiles_match_sorted_array_within_3_significant_digits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..5 {
            let mut h = LatencyHistogram::new();
            // Log-uniform latencies from 10 µs to 60 s, in ns.
            let mut values: Vec<u64> = (0..20_000)
                .map(|_| 10f64.powf(rng.random_range(4.0..10.8)) as u64)
                .collect();
            for v in &values {
                h.record_ns(*v);
            }
            values.sort_unstable();
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                let exact = exact_quantile(&values, q) as f64;
                let hdr = h.quantile_ms(q) * 1e6;
                let rel = (hdr - exact).abs() / exact;
                assert!(rel <= 1e-3, "q={q}: hdr {hdr} vs exact {exact} (rel {rel})");
            }
            let mean = values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64;
            let s = h.summary().unwrap();
            assert!((s.mean_ms * 1e6 - mean).abs() / mean < 1e-3);
            assert_eq!(s.count, 20_000);
        }
    }

    #[test]
    fn histogram_round_trips_through_base64() {
        let mut h = LatencyHistogram::new();
        for v in [1_000u64, 2_000_000, 3_000_000_000] {
            h.record_ns(v);
        }
        let back = LatencyHistogram::from_base64(&h.to_base64()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back.quantile_ms(1.0), h.quantile_ms(1.0));
    }

    #[test]
    fn wilson_hand_checked() {
        // 8/10: centre (0.8 + 1.9208/10)/1.38415 = 0.71671, half ≈ 0.22656 → [0.4902, 0.9433].
        let e = wilson(8, 10).unwrap();
        assert!((e.ci95_low - 0.4902).abs() < 1e-3, "{e:?}");
        assert!((e.ci95_high - 0.9433).abs() < 1e-3, "{e:?}");
        let all = wilson(5, 5).unwrap();
        assert_eq!(all.ci95_high, 1.0);
        assert!(all.ci95_low > 0.5 && all.ci95_low < 0.6);
        assert!(wilson(0, 0).is_none());
        for n in 1..200 {
            for k in [0, n / 3, n] {
                let e = wilson(k, n).unwrap();
                assert!(
                    e.ci95_low <= e.value && e.value <= e.ci95_high,
                    "{k}/{n}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn t_interval_hand_checked() {
        // 1,2,3,4,5: mean 3, s = 1.5811, se = 0.7071, t(4) = 2.776 → ±1.963.
        let e = mean_t(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((e.value - 3.0).abs() < 1e-12);
        assert!((e.ci95_high - 4.963).abs() < 1e-3, "{e:?}");
        assert!((t975(60) - 2.000).abs() < 1e-3);
        assert!((t975(120) - 1.980).abs() < 1e-3);
        // One-sided: t(0.95; 40) = 1.684, t(0.95; 60) = 1.671, t(0.95; 120) = 1.658.
        assert!((t95(24) - 1.711).abs() < 1e-9);
        assert!((t95(40) - 1.684).abs() < 1e-3);
        assert!((t95(60) - 1.671).abs() < 1e-3);
        assert!((t95(120) - 1.658).abs() < 1e-3);
        assert!(mean_t(&[]).is_none());
    }
}
