//! Plain-text compare tables, for `--print` and whenever stdout is not a terminal (pipes,
//! CI logs): the compare view's all-tasks table (targets as columns), the per-task table as
//! `triage bench compare` renders it (`bench::compare`), the calibration frontier and the
//! hardware report. No colours, no terminal control.

use std::fmt::Write as _;

use bench::results::ALL_TASKS;

use crate::data::hw::HwReport;
use crate::render::compare::{overall_rows, OVERALL_LABELS};
use crate::render::fmt;
use crate::state::App;

/// Left-aligned columns separated by two spaces.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let ncols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncols) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate().take(ncols) {
            let pad = widths[i].saturating_sub(c.chars().count());
            l.push_str(c);
            if i + 1 < ncols {
                l.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule);
    for r in rows {
        line(r);
    }
    out
}

/// The compare view's tables as text.
pub fn compare_tables(app: &App) -> String {
    let mut out = String::new();
    if app.runs.is_empty() {
        out.push_str("no run directories given\n");
        return out;
    }
    for run in &app.runs {
        let m = &run.summary.run;
        let _ = writeln!(
            out,
            "run {} · suite `{}` · {} → {} · {} ({} cores){}",
            run.dir.display(),
            m.suite,
            m.started_at,
            m.finished_at,
            m.host.cpu_model,
            m.host.cores,
            m.git_revision
                .as_ref()
                .map(|g| format!(" · git {g}"))
                .unwrap_or_default()
        );
    }
    out.push('\n');
    let cols = &app.compare.columns;
    if cols.is_empty() {
        out.push_str("no requests recorded\n");
        return out;
    }
    out.push_str("All tasks\n");
    let header: Vec<String> = std::iter::once(String::new())
        .chain(cols.iter().map(|c| c.label.clone()))
        .collect();
    let per_col: Vec<_> = cols
        .iter()
        .map(|c| overall_rows(app.group(c, ALL_TASKS)))
        .collect();
    let rows: Vec<Vec<String>> = OVERALL_LABELS
        .iter()
        .enumerate()
        .map(|(r, label)| {
            std::iter::once(label.to_string())
                .chain(per_col.iter().map(|vals| vals[r].1.clone()))
                .collect()
        })
        .collect();
    out.push_str(&table(&header, &rows));
    // The per-task table is the harness's own (`triage bench compare`), so both agree.
    out.push_str("\nPer task\n");
    let rows: Vec<bench::compare::Row> = app
        .runs
        .iter()
        .flat_map(|r| bench::compare::rows_of(&r.summary, &r.label, false))
        .filter(|r| r.task != ALL_TASKS)
        .collect();
    out.push_str(&bench::compare::render(
        &rows,
        bench::compare::Format::Table,
    ));
    for run in &app.runs {
        let Some(cal) = &run.calibration else {
            continue;
        };
        let _ =
            writeln!(
            out,
            "\nCalibration of {} (SLM `{}` → LLM `{}`, {} items): quality {:.3} → {:.3}, APGR {}",
            run.label,
            cal.slm,
            cal.llm,
            cal.items,
            cal.slm_quality,
            cal.llm_quality,
            cal.apgr.map(|a| format!("{a:.3}")).unwrap_or_else(|| "-".into())
        );
        let header: Vec<String> = ["threshold", "LLM share", "quality", "$/req", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows: Vec<Vec<String>> = cal
            .frontier
            .iter()
            .map(|p| {
                vec![
                    format!("{:.3}", p.threshold),
                    fmt::pct(p.strong_share),
                    format!("{:.3}", p.quality),
                    fmt::usd(p.cost_per_request),
                    if cal.chosen.as_ref() == Some(p) {
                        format!(
                            "← chosen ({}% of LLM quality)",
                            (cal.target_share * 100.0).round()
                        )
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    out
}

/// A `triage hw` report as text.
pub fn hw_tables(report: &HwReport) -> String {
    let mut out = String::from("\nHardware: speed by threads (tokens/s)\n");
    let rows: Vec<Vec<String>> = report
        .speed
        .iter()
        .map(|r| {
            vec![
                r.test.clone(),
                r.threads.to_string(),
                format!("{:.2}", r.mean()),
                format!("{:.2}", r.std()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["test", "threads", "t/s", "±"].map(String::from),
        &rows,
    ));
    out.push_str("\nHardware: concurrency\n");
    let rows: Vec<Vec<String>> = report
        .concurrency
        .iter()
        .map(|r| {
            vec![
                r.streams.to_string(),
                format!("{:.1}", r.aggregate_tps),
                format!("{:.1}", r.per_stream_tps),
                fmt::opt_ms(r.ttft_p50_ms),
                fmt::opt_ms(r.ttft_p99_ms),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "streams",
            "aggregate t/s",
            "per-stream t/s",
            "TTFT p50",
            "TTFT p99",
        ]
        .map(String::from),
        &rows,
    ));
    if let Some(r) = &report.roofline {
        let _ = writeln!(
            out,
            "\nRoofline: {:.1} GB/s → ceiling {:.1} tok/s, efficiency {:.1}%",
            r.bandwidth_gbps(),
            r.ceiling_tps,
            r.efficiency_pct
        );
    }
    out
}
