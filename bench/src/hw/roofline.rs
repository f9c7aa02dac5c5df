//! Memory bandwidth (STREAM-style copy and triad on arrays far larger than the caches) and the
//! generation roofline it implies: one stream of generation reads every weight once per token, so
//! tokens/s can not exceed bandwidth ÷ model bytes.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// STREAM-style memory bandwidth of this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// GB/s (10⁹ bytes per second) of `a[i] = b[i]` (read + write counted), best of the
    /// repetitions.
    pub copy_gbps: f64,
    /// GB/s (10⁹ bytes per second) of `a[i] = b[i] + s * c[i]`, best of the repetitions.
    pub triad_gbps: f64,
    /// Size of each array in MiB.
    pub array_mib: usize,
    /// Threads the copy and triad loops ran on.
    pub threads: usize,
}

/// The generation roofline: the single-stream tokens/s that memory bandwidth allows, and how close
/// the engine came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    /// The measured bandwidth the ceiling is computed from.
    pub bandwidth: Bandwidth,
    /// Bytes read per generated token (the weights, for one stream).
    pub bytes_per_token: u64,
    /// The ceiling for one stream: triad bandwidth ÷ bytes per token.
    pub ceiling_tps: f64,
    /// Best measured single-stream generation rate.
    pub measured_tg_tps: f64,
    /// Measured rate as a percentage of the ceiling.
    pub efficiency_pct: f64,
}

impl Roofline {
    /// The roofline for a model reading `bytes_per_token` per token, with the best measured
    /// single-stream rate (`measured_tg_tps`, tokens/s).
    pub fn new(bandwidth: Bandwidth, bytes_per_token: u64, measured_tg_tps: f64) -> Self {
        let ceiling_tps = if bytes_per_token > 0 {
            bandwidth.triad_gbps * 1e9 / bytes_per_token as f64
        } else {
            0.0
        };
        let efficiency_pct = if ceiling_tps > 0.0 {
            100.0 * measured_tg_tps / ceiling_tps
        } else {
            0.0
        };
        Self {
            bandwidth,
            bytes_per_token,
            ceiling_tps,
            measured_tg_tps,
            efficiency_pct,
        }
    }
}

/// Measure copy and triad bandwidth with `threads` threads on arrays of `array_mib` MiB each.
pub fn measure_bandwidth(array_mib: usize, threads: usize) -> Bandwidth {
    let n = (array_mib.max(1) << 20) / std::mem::size_of::<f64>();
    let threads = threads.max(1);
    let mut a = vec![0.0f64; n];
    let b = vec![1.0f64; n];
    let c = vec![2.0f64; n];
    let chunk = n.div_ceil(threads);
    let reps = 5;
    let mut best_copy = f64::MAX;
    let mut best_triad = f64::MAX;
    for _ in 0..reps {
        let started = Instant::now();
        std::thread::scope(|s| {
            for (dst, src) in a.chunks_mut(chunk).zip(b.chunks(chunk)) {
                s.spawn(move || dst.copy_from_slice(src));
            }
        });
        best_copy = best_copy.min(started.elapsed().as_secs_f64());
        let scalar = 3.0f64;
        let started = Instant::now();
        std::thread::scope(|s| {
            for ((dst, x), y) in a
                .chunks_mut(chunk)
                .zip(b.chunks(chunk))
                .zip(c.chunks(chunk))
            {
                s.spawn(move || {
                    for ((d, x), y) in dst.iter_mut().zip(x).zip(y) {
                        *d = x + scalar * y;
                    }
                });
            }
        });
        best_triad = best_triad.min(started.elapsed().as_secs_f64());
    }
    // Keep the result observable so the loops are not optimised away.
    std::hint::black_box(&a);
    let bytes = (n * std::mem::size_of::<f64>()) as f64;
    Bandwidth {
        copy_gbps: 2.0 * bytes / best_copy / 1e9,
        triad_gbps: 3.0 * bytes / best_triad / 1e9,
        array_mib,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_is_bandwidth_over_bytes() {
        let bw = Bandwidth {
            copy_gbps: 10.0,
            triad_gbps: 12.0,
            array_mib: 1,
            threads: 1,
        };
        let r = Roofline::new(bw, 120_000_000, 50.0);
        assert!((r.ceiling_tps - 100.0).abs() < 1e-9);
        assert!((r.efficiency_pct - 50.0).abs() < 1e-9);
    }

    #[test]
    fn bandwidth_is_positive_on_a_small_array() {
        let bw = measure_bandwidth(4, 2);
        assert!(bw.copy_gbps > 0.0 && bw.triad_gbps > 0.0);
    }
}
