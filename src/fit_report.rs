//! The printed report of `bench calibrate --per-task`: per task, each single target, the router
//! and its paired gap to the best single target on the evaluation half, the budget's effect,
//! and each signal's AUROC. Kept apart from the clap structs and dispatch in `cli_bench.rs`:
//! it is presentation only, and `fit.json` holds the same numbers.

use bench::fit::{Fit, HalfReport};
use bench::stats::Estimate;

/// Print the fit's report to stdout. `budget_point`: the budget was held on point totals.
pub fn print(fit: &Fit, budget_point: bool) {
    let q = |e: &Estimate| format!("{:.3} [{:.3}–{:.3}]", e.value, e.ci95_low, e.ci95_high);
    // One quality column per single target, then the router.
    let singles: Vec<String> = fit
        .options
        .small
        .iter()
        .cloned()
        .chain(["LLM".into()])
        .collect();
    let single_quality = |h: &HalfReport, name: &str| {
        if name == "LLM" {
            q(&h.llm.quality)
        } else {
            h.small.get(name).map_or("—".into(), |o| q(&o.quality))
        }
    };
    let mut header = format!("{:<22} {:>4}", "task (evaluation half)", "n");
    for name in &singles {
        header.push_str(&format!("  {:<24}", format!("{name} quality")));
    }
    // The router minus the best single target on the same items, paired per item.
    let gap = |h: &HalfReport| {
        h.vs_best.as_ref().map_or("—".into(), |g| {
            let d = &g.difference;
            format!("{:+.3} [{:+.3},{:+.3}]", d.value, d.ci95_low, d.ci95_high)
        })
    };
    println!(
        "{header}  {:<24} {:<24} {:>10} {:>6}  policy (chosen on the calibration half)",
        "router quality", "router − best single", "$/req", "LLM %"
    );
    // One row: the half's single targets, the router, its gap, cost, LLM share and a last word.
    let row = |label: &str, h: &HalfReport, last: String| {
        let mut row = format!("{label:<22} {:>4}", h.n);
        for name in &singles {
            row.push_str(&format!("  {:<24}", single_quality(h, name)));
        }
        println!(
            "{row}  {:<24} {:<24} {:>10.6} {:>5.0}%  {last}",
            q(&h.chosen.quality),
            gap(h),
            h.chosen.cost_per_request,
            h.chosen.llm_share * 100.0,
        );
    };
    for t in &fit.tasks {
        row(&t.task, &t.evaluation, t.chosen.describe());
    }
    if let Some(o) = &fit.overall {
        let last = format!("(LLM only: ${:.6}/req)", o.llm.cost_per_request);
        row("all tasks", o, last);
    }
    if let Some(p) = &fit.privacy {
        let kept: Vec<String> = p
            .private_items
            .iter()
            .map(|(task, n)| format!("{task} {n}"))
            .collect();
        println!(
            "privacy rule `{}`: items whose prompt holds PII stay on {} under every policy ({}){}",
            p.rule,
            p.to,
            if kept.is_empty() {
                "none here".to_string()
            } else {
                kept.join(", ")
            },
            if p.unchecked_items > 0 {
                format!(
                    "; {} items had no recorded prompt to check",
                    p.unchecked_items
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(b) = &fit.budget {
        println!(
            "budget {}× the all-LLM cost (calibration half: ${:.6} of ${:.6}{}): the per-task choices cost ${:.6}, {}; quality {:.3} → {:.3}{}",
            b.share,
            b.budget_usd,
            b.all_llm_usd,
            if budget_point { "" } else { ", held by the 95% upper bound over new items" },
            b.before_usd,
            if !b.reachable {
                format!("not reachable: every task at its cheapest policy costs ${:.6} (bound ${:.6})", b.after_usd, b.after_upper_usd)
            } else if b.changed.is_empty() {
                format!("within it (bound ${:.6})", b.after_upper_usd)
            } else {
                format!("now ${:.6} (bound ${:.6})", b.after_usd, b.after_upper_usd)
            },
            b.quality_before,
            b.quality_after,
            if b.changed.is_empty() {
                String::new()
            } else {
                format!(" (changed: {})", b.changed.join(", "))
            }
        );
    }
    println!();
    println!(
        "signal AUROC for each small target's pass/fail (evaluation half, 95% bootstrap interval):"
    );
    for t in &fit.tasks {
        for ts in &t.signals {
            let s = &ts.quality;
            let verdict = if s.uninformative() {
                "  no evidence it carries information"
            } else {
                ""
            };
            println!(
                "  {:<22} {:<8} {:<14} n={:<4} {}{}",
                t.task,
                ts.target,
                s.signal,
                s.n,
                match (s.auroc, s.ci95) {
                    (Some(a), Some((lo, hi))) => format!("{a:.2} [{lo:.2}–{hi:.2}]"),
                    (Some(a), None) => format!("{a:.2}"),
                    (None, _) => "— (one class only)".into(),
                },
                verdict
            );
        }
    }
}
