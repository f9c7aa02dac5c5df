//! Number formatting shared by the views and the plain-text tables.

use bench::stats::{Estimate, Percentiles};

/// Milliseconds with a unit that keeps 3 significant digits: `850µs`, `12.3ms`, `1.25s`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v < 1.0 {
        format!("{:.0}µs", v * 1000.0)
    } else if v < 10.0 {
        format!("{v:.2}ms")
    } else if v < 100.0 {
        format!("{v:.1}ms")
    } else if v < 1000.0 {
        format!("{v:.0}ms")
    } else if v < 10_000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{:.1}s", v / 1000.0)
    }
}

/// [`ms`] of a value, or `-` when there is none.
pub fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "-".into())
}

/// `p50 / p99` of a latency summary.
pub fn p50_p99(p: Option<&Percentiles>) -> String {
    match p {
        Some(p) => format!("{} / {}", ms(p.p50_ms), ms(p.p99_ms)),
        None => "-".into(),
    }
}

/// US dollars with enough digits for fractions of a cent.
pub fn usd(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "$0".into()
    } else if a >= 100.0 {
        format!("${v:.0}")
    } else if a >= 1.0 {
        format!("${v:.2}")
    } else if a >= 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.6}")
    }
}

/// [`usd`] of a value, or `-` when there is none.
pub fn opt_usd(v: Option<f64>) -> String {
    v.map(usd).unwrap_or_else(|| "-".into())
}

/// An estimate in [0, 1] as `0.82 [0.75–0.88]`.
pub fn estimate(e: Option<&Estimate>) -> String {
    match e {
        Some(e) => format!("{:.2} [{:.2}–{:.2}]", e.value, e.ci95_low, e.ci95_high),
        None => "-".into(),
    }
}

/// Just the value of an estimate.
pub fn estimate_value(e: Option<&Estimate>) -> String {
    match e {
        Some(e) => format!("{:.2}", e.value),
        None => "-".into(),
    }
}

/// A share in [0, 1] as a whole percentage, e.g. `0.823` → `82%`.
pub fn pct(v: f64) -> String {
    let p = (v * 100.0).round();
    // No "-0%" for a tiny negative share.
    format!("{:.0}%", if p == 0.0 { 0.0 } else { p })
}

/// Rate per second with 1–3 significant digits.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A horizontal bar of `width` cells for `value` out of `max`, with eighth-cell resolution.
pub fn bar(value: f64, max: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if width == 0 {
        return String::new();
    }
    let ratio = if max > 0.0 && value.is_finite() {
        (value / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (ratio * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let rest = eighths % 8;
    let mut s = "█".repeat(full);
    if rest > 0 && full < width {
        s.push(PARTS[rest]);
    }
    let used = s.chars().count();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    s
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
pub fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(ms(0.85), "850µs");
        assert_eq!(ms(12.34), "12.3ms");
        assert_eq!(ms(1250.0), "1.25s");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(0.000042), "$0.000042");
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(pct(-0.0001), "0%");
        assert_eq!(pct(0.426), "43%");
    }

    #[test]
    fn bars_fill_proportionally() {
        assert_eq!(bar(1.0, 1.0, 4), "████");
        assert_eq!(bar(0.5, 1.0, 4), "██  ");
        assert_eq!(bar(0.0, 1.0, 3), "   ");
        assert_eq!(bar(1.0, 0.0, 2), "  ");
        assert_eq!(bar(7.0, 8.0, 1), "▉");
    }
}
