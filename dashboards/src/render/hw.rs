//! The hardware view: tokens/s by threads (prompt processing and generation) and by
//! concurrency as bars, the roofline efficiency, and the system facts of a `triage hw` report.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};
use ratatui::Frame;

use super::{block, dim, fmt, message};
use crate::data::hw::HwReport;
use crate::state::App;

/// Draw the Hardware tab into `area`; a hint when no report was given.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let Some(report) = &app.hw.report else {
        message(
            frame,
            area,
            "Hardware",
            vec![
                Line::from("No hardware report given."),
                Line::from(""),
                Line::from("  triage hw --json hw.json ...   then   triage dash --hw hw.json"),
            ],
        );
        return;
    };
    let (left, right) = if area.width >= 100 {
        let [l, r] = Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)])
            .areas(area);
        (l, r)
    } else {
        let [l, r] = Layout::vertical([Constraint::Min(10), Constraint::Length(8)]).areas(area);
        (l, r)
    };
    let speed_h = speed_lines(report, 0).len() as u16 + 2;
    let [speed, conc, roof] = Layout::vertical([
        Constraint::Length(speed_h),
        Constraint::Min(4),
        Constraint::Length(3),
    ])
    .areas(left);
    let width = speed.width.saturating_sub(2) as usize;
    frame.render_widget(
        Paragraph::new(speed_lines(report, width)).block(block("Speed by threads (tokens/s)")),
        speed,
    );
    frame.render_widget(
        Paragraph::new(concurrency_lines(
            report,
            conc.width.saturating_sub(2) as usize,
        ))
        .block(block("Concurrency (tokens/s)")),
        conc,
    );
    draw_roofline(frame, report, roof);
    let facts: Vec<Line> = report
        .system_lines()
        .into_iter()
        .skip(app.hw.scroll)
        .map(|(k, v)| Line::from(vec![Span::styled(format!("{k}: "), dim()), Span::raw(v)]))
        .collect();
    frame.render_widget(
        Paragraph::new(facts)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(block("System")),
        right,
    );
}

/// One line per speed row, grouped by test: `pp512 t2 ████ 410.5 ±3.2`.
fn speed_lines(report: &HwReport, width: usize) -> Vec<Line<'static>> {
    if report.speed.is_empty() {
        return vec![Line::from(Span::styled(
            "no speed sweep in this report",
            dim(),
        ))];
    }
    let mut rows: Vec<_> = report.speed.iter().collect();
    rows.sort_by(|a, b| a.test.cmp(&b.test).then(a.threads.cmp(&b.threads)));
    let test_w = rows.iter().map(|r| r.test.len()).max().unwrap_or(4);
    let mut lines = Vec::new();
    for r in rows {
        let max = report
            .speed
            .iter()
            .filter(|o| o.kind() == r.kind())
            .map(|o| o.mean())
            .fold(0.0, f64::max);
        let color = if r.kind() == "pp" {
            Color::Cyan
        } else {
            Color::Magenta
        };
        let bar_w = width.saturating_sub(test_w + 24).min(40);
        lines.push(Line::from(vec![
            Span::raw(format!("{:<test_w$} t{:<3}", r.test, r.threads)),
            Span::styled(fmt::bar(r.mean(), max, bar_w), Style::default().fg(color)),
            Span::raw(format!(" {:>8.1}", r.mean())),
            Span::styled(format!(" ±{:.1}", r.std()), dim()),
        ]));
    }
    lines
}

fn concurrency_lines(report: &HwReport, width: usize) -> Vec<Line<'static>> {
    if report.concurrency.is_empty() {
        return vec![Line::from(Span::styled(
            "no concurrency sweep in this report",
            dim(),
        ))];
    }
    let max = report
        .concurrency
        .iter()
        .map(|r| r.aggregate_tps)
        .fold(0.0, f64::max);
    let bar_w = width.saturating_sub(52).clamp(4, 30);
    let mut rows: Vec<_> = report.concurrency.iter().collect();
    rows.sort_by_key(|r| r.streams);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "{:<8}{:<w$} {:>8} {:>10} {:>9} {:>9}",
            "streams",
            "aggregate",
            "agg",
            "per-stream",
            "TTFT p50",
            "TTFT p99",
            w = bar_w
        ),
        dim().add_modifier(Modifier::BOLD),
    ))];
    for r in rows {
        lines.push(Line::from(vec![
            Span::raw(format!("{:<8}", r.streams)),
            Span::styled(
                fmt::bar(r.aggregate_tps, max, bar_w),
                Style::default().fg(Color::Green),
            ),
            Span::raw(format!(
                " {:>8.1} {:>10.1} {:>9} {:>9}",
                r.aggregate_tps,
                r.per_stream_tps,
                fmt::opt_ms(r.ttft_p50_ms),
                fmt::opt_ms(r.ttft_p99_ms)
            )),
        ]));
    }
    lines
}

fn draw_roofline(frame: &mut Frame, report: &HwReport, area: Rect) {
    match &report.roofline {
        Some(r) => {
            let measured = r
                .measured_tg_tps
                .map(|m| format!("{m:.1} tok/s = "))
                .unwrap_or_default();
            let label = format!(
                "{measured}{:.1}% of the {:.1} tok/s ceiling ({:.1} GB/s memory bandwidth)",
                r.efficiency_pct,
                r.ceiling_tps,
                r.bandwidth_gbps()
            );
            frame.render_widget(
                Gauge::default()
                    .block(block("Roofline efficiency (generation)"))
                    .gauge_style(Style::default().fg(Color::Green))
                    .ratio((r.efficiency_pct / 100.0).clamp(0.0, 1.0))
                    .label(label),
                area,
            );
        }
        None => message(
            frame,
            area,
            "Roofline",
            vec![Line::from(Span::styled(
                "no roofline in this report",
                dim(),
            ))],
        ),
    }
}
