//! What a soak found ([`SoakReport`]): requests sent, faults injected by kind, responses by
//! outcome, ledger rows, resident memory, and the named checks that decide pass or fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use router::ledger::LedgerRow;
use serde::Serialize;

use super::client::{Outcome, Reply};
use super::upstream::FaultCounts;

/// Responses the clients got, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Responses {
    /// Complete answers (JSON completions, and streams ending with `[DONE]`).
    pub answers: u64,
    /// HTTP error statuses with an OpenAI error body, by status.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// 200 streams that ended with an OpenAI error event.
    pub stream_errors: u64,
    /// No response, a cut body or a body of the wrong shape.
    pub broken: u64,
    /// Up to five broken responses, described.
    pub broken_examples: Vec<String>,
    /// Responses carrying `x-triage-request-id`.
    pub with_request_id: u64,
    /// Distinct request ids among them.
    pub distinct_request_ids: u64,
}

impl Responses {
    /// Tally the replies.
    pub(crate) fn tally(replies: &[Reply]) -> Self {
        let mut r = Self::default();
        let mut ids = BTreeSet::new();
        for reply in replies {
            match &reply.outcome {
                Outcome::Answer => r.answers += 1,
                Outcome::Error(status) => *r.errors_by_status.entry(*status).or_default() += 1,
                Outcome::StreamError => r.stream_errors += 1,
                Outcome::Broken(why) => {
                    r.broken += 1;
                    if r.broken_examples.len() < 5 {
                        let kind = if reply.streamed { "stream" } else { "json" };
                        r.broken_examples.push(format!("{kind}: {why}"));
                    }
                }
            }
            if let Some(id) = &reply.request_id {
                r.with_request_id += 1;
                ids.insert(id.clone());
            }
        }
        r.distinct_request_ids = ids.len() as u64;
        r
    }

    /// Well-formed errors: HTTP error bodies and SSE error events.
    pub fn errors(&self) -> u64 {
        self.errors_by_status.values().sum::<u64>() + self.stream_errors
    }
}

/// What the ledger holds after the gateway stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerCounts {
    /// Rows in all.
    pub rows: u64,
    /// Rows by the status recorded (a stream that failed after its first token is recorded with
    /// its error's status).
    pub by_status: BTreeMap<u16, u64>,
}

impl LedgerCounts {
    /// Count rows by status.
    pub(crate) fn of(rows: &[LedgerRow]) -> Self {
        let mut c = Self {
            rows: rows.len() as u64,
            ..Self::default()
        };
        for row in rows {
            *c.by_status.entry(row.status).or_default() += 1;
        }
        c
    }

    /// Rows recording a success (status below 400).
    pub fn ok(&self) -> u64 {
        self.by_status.range(..400).map(|(_, n)| n).sum()
    }

    /// Rows recording a failure (status 400 or above).
    pub fn errors(&self) -> u64 {
        self.by_status.range(400..).map(|(_, n)| n).sum()
    }
}

/// Resident memory of the gateway over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RssReport {
    /// Samples taken (one every `sample_ms`).
    pub samples: usize,
    /// Milliseconds between samples.
    pub sample_ms: u64,
    /// Seconds from the start of the load that are not compared (allocator and pool warm-up).
    pub warmup_secs: f64,
    /// Length of each compared window, seconds.
    pub window_secs: f64,
    /// Mean VmRSS of the first window after warm-up, KiB.
    pub start_kib: Option<f64>,
    /// Mean VmRSS of the last window, KiB.
    pub end_kib: Option<f64>,
    /// Largest sample, KiB.
    pub peak_kib: u64,
    /// `(end − start) / start`.
    pub drift: Option<f64>,
    /// Mean VmRSS of each consecutive window over the whole load (`[start_secs, KiB]`), to tell
    /// a plateau from steady growth.
    pub series_kib: Vec<(f64, f64)>,
}

impl RssReport {
    /// Compare the first window after warm-up with the last window of `samples` (seconds since
    /// the load started, KiB), over a load of `load_secs`.
    pub(crate) fn from_samples(
        samples: &[(f64, u64)],
        sample_ms: u64,
        load_secs: f64,
        warmup_secs: f64,
        window_secs: f64,
    ) -> Self {
        let mean = |lo: f64, hi: f64| {
            let w: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| *t >= lo && *t < hi)
                .map(|(_, kib)| *kib as f64)
                .collect();
            (!w.is_empty()).then(|| w.iter().sum::<f64>() / w.len() as f64)
        };
        let start = mean(warmup_secs, warmup_secs + window_secs);
        let end = mean(load_secs - window_secs, f64::INFINITY);
        Self {
            samples: samples.len(),
            sample_ms,
            warmup_secs,
            window_secs,
            start_kib: start,
            end_kib: end,
            peak_kib: samples.iter().map(|(_, k)| *k).max().unwrap_or(0),
            drift: match (start, end) {
                (Some(s), Some(e)) if s > 0.0 => Some((e - s) / s),
                _ => None,
            },
            series_kib: if window_secs > 0.0 {
                (0..)
                    .map(|i| f64::from(i) * window_secs)
                    .take_while(|lo| *lo < load_secs)
                    .filter_map(|lo| mean(lo, lo + window_secs).map(|m| (lo, m)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// One named pass/fail check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Short name (`one_response_per_request`, …).
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The numbers behind it.
    pub detail: String,
}

/// Everything a soak measured, and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoakReport {
    /// Requests per second asked for.
    pub rate: f64,
    /// Seconds of load.
    pub duration_secs: f64,
    /// Requests per second achieved (sent ÷ time from the first send to the last answer).
    pub achieved_rate: f64,
    /// Share of upstream requests given a fault.
    pub fault_rate: f64,
    /// Requests sent.
    pub requests: u64,
    /// Of which streamed.
    pub streamed: u64,
    /// What the fault upstream received and injected.
    pub upstream: FaultCounts,
    /// What the clients got.
    pub responses: Responses,
    /// What the ledger holds.
    pub ledger: LedgerCounts,
    /// The gateway's resident memory.
    pub rss: RssReport,
    /// How the gateway exited after SIGTERM.
    pub gateway_exit: String,
    /// The checks; the soak passes when all hold.
    pub checks: Vec<Check>,
}

impl SoakReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.upstream;
        let r = &self.responses;
        writeln!(
            f,
            "soak: {} requests at {:.1}/s for {:.0} s (achieved {:.1}/s), {} streamed",
            self.requests, self.rate, self.duration_secs, self.achieved_rate, self.streamed
        )?;
        writeln!(
            f,
            "upstream: {} requests, {} faults ({:.1}%): {} resets, {} HTTP 500, {} stalls, {} cut bodies",
            u.requests,
            u.total(),
            100.0 * u.total() as f64 / u.requests.max(1) as f64,
            u.reset,
            u.server_error,
            u.stall,
            u.cut
        )?;
        let statuses: Vec<String> = r
            .errors_by_status
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        writeln!(
            f,
            "responses: {} answers, {} errors ({}), {} stream error events, {} broken",
            r.answers,
            r.errors_by_status.values().sum::<u64>(),
            if statuses.is_empty() {
                "none".into()
            } else {
                statuses.join(" ")
            },
            r.stream_errors,
            r.broken
        )?;
        for example in &r.broken_examples {
            writeln!(f, "  broken: {example}")?;
        }
        let rows: Vec<String> = self
            .ledger
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        writeln!(f, "ledger: {} rows ({})", self.ledger.rows, rows.join(" "))?;
        let kib = |v: Option<f64>| {
            v.map(|k| format!("{:.1} MiB", k / 1024.0))
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            f,
            "gateway RSS: {} → {} (drift {}), peak {:.1} MiB; {} samples, warm-up {:.0} s, windows {:.0} s",
            kib(self.rss.start_kib),
            kib(self.rss.end_kib),
            self.rss
                .drift
                .map(|d| format!("{:+.2}%", 100.0 * d))
                .unwrap_or_else(|| "-".into()),
            self.rss.peak_kib as f64 / 1024.0,
            self.rss.samples,
            self.rss.warmup_secs,
            self.rss.window_secs
        )?;
        if self.rss.series_kib.len() > 2 {
            let series: Vec<String> = self
                .rss
                .series_kib
                .iter()
                .map(|(t, k)| format!("{t:.0}s {:.1}", k / 1024.0))
                .collect();
            writeln!(f, "  RSS by window (MiB): {}", series.join(", "))?;
        }
        writeln!(f, "gateway exit: {}", self.gateway_exit)?;
        for c in &self.checks {
            writeln!(
                f,
                "{} {}: {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_windows_compare_the_first_window_after_warm_up_with_the_last() {
        let samples: Vec<(f64, u64)> = (0..60)
            .map(|i| {
                (
                    f64::from(i) * 0.5,
                    if i < 10 {
                        50
                    } else {
                        100 + u64::from(i >= 50) * 4
                    },
                )
            })
            .collect();
        let r = RssReport::from_samples(&samples, 500, 30.0, 6.0, 5.0);
        assert_eq!(r.start_kib, Some(100.0));
        assert_eq!(r.end_kib, Some(104.0));
        assert_eq!(r.peak_kib, 104);
        assert!((r.drift.unwrap() - 0.04).abs() < 1e-9);
    }
}
