//! The compare view: one column per target, a per-task breakdown, latency distributions,
//! the calibrated cost–quality frontier and the routing split.

use bench::calibrate::{Calibration, CurvePoint};
use bench::results::{GroupSummary, ALL_TASKS};
use bench::stats::Percentiles;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Cell, Chart, Dataset, GraphType, LegendPosition, Paragraph, Row, Table, TableState,
};
use ratatui::Frame;

use super::{block, column_color, dim, fmt, message};
use crate::state::{App, Column};

/// Draw the Compare tab into `area`; a hint when no runs were given or they hold no requests.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    if app.runs.is_empty() {
        message(
            frame,
            area,
            "Compare",
            vec![
                Line::from("No run directories given."),
                Line::from(""),
                Line::from("  triage dash RUN_DIR [RUN_DIR...]   compare benchmark runs"),
                Line::from("  triage dash --live URL             watch a running gateway"),
                Line::from("  triage dash --hw FILE.json         show a `triage hw` report"),
            ],
        );
        return;
    }
    if app.compare.columns.is_empty() {
        let mut lines = vec![Line::from("These runs recorded no requests:")];
        for run in &app.runs {
            lines.push(Line::from(format!(
                "  {} (suite `{}`, started {})",
                run.dir.display(),
                run.summary.run.suite,
                run.summary.run.started_at
            )));
        }
        message(frame, area, "Compare", lines);
        return;
    }
    let overall_height = OVERALL_ROWS as u16 + 3;
    let constraints: Vec<Constraint> = if area.height >= overall_height + 6 + 12 {
        vec![
            Constraint::Length(overall_height),
            Constraint::Min(6),
            Constraint::Length(12),
        ]
    } else if area.height >= overall_height + 5 {
        vec![Constraint::Length(overall_height), Constraint::Min(5)]
    } else {
        vec![Constraint::Min(0)]
    };
    let areas = Layout::vertical(constraints).split(area);
    draw_overall(frame, app, areas[0]);
    if let Some(a) = areas.get(1) {
        draw_tasks(frame, app, *a);
    }
    if let Some(a) = areas.get(2) {
        draw_charts(frame, app, *a);
    }
}

const OVERALL_ROWS: usize = 12;

/// Rows of the overall table: (label, value of a column's all-tasks group).
pub(crate) fn overall_rows(g: Option<&GroupSummary>) -> [(&'static str, String); OVERALL_ROWS] {
    let Some(g) = g else {
        return std::array::from_fn(|i| (OVERALL_LABELS[i], "-".to_string()));
    };
    let routing = g
        .routing
        .as_ref()
        .map(|r| {
            r.backends
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into());
    let escalated = g
        .routing
        .as_ref()
        .and_then(|r| r.escalated_share)
        .map(fmt::pct)
        .unwrap_or_else(|| "-".into());
    let values = [
        format!("{} ({} err)", g.requests, g.errors),
        fmt::estimate(g.quality.as_ref()),
        fmt::estimate(g.pass_rate.as_ref()),
        fmt::p50_p99(g.latency.ttft.as_ref()),
        fmt::p50_p99(g.latency.e2e.as_ref()),
        g.latency
            .itl
            .as_ref()
            .map(|p| fmt::ms(p.p50_ms))
            .unwrap_or_else(|| "-".into()),
        format!("{:.1}", g.throughput.output_tokens_per_s),
        format!(
            "{} ({}/s)",
            fmt::estimate_value(g.goodput.as_ref()),
            fmt::rate(g.throughput.goodput_per_s)
        ),
        fmt::opt_usd(g.cost.total_usd),
        fmt::opt_usd(g.cost.per_correct_usd),
        routing,
        escalated,
    ];
    let mut i = 0;
    values.map(|v| {
        let row = (OVERALL_LABELS[i], v);
        i += 1;
        row
    })
}

pub(crate) const OVERALL_LABELS: [&str; OVERALL_ROWS] = [
    "requests",
    "quality [95% CI]",
    "pass rate",
    "TTFT p50 / p99",
    "E2E p50 / p99",
    "ITL p50",
    "output tok/s",
    "goodput",
    "cost",
    "cost / correct",
    "routed to",
    "escalated",
];

fn draw_overall(frame: &mut Frame, app: &App, area: Rect) {
    let cols = &app.compare.columns;
    let per_col: Vec<[(&str, String); OVERALL_ROWS]> = cols
        .iter()
        .map(|c| overall_rows(app.group(c, ALL_TASKS)))
        .collect();
    let header = Row::new(
        std::iter::once(Cell::from("")).chain(cols.iter().enumerate().map(|(i, c)| {
            Cell::from(c.label.clone()).style(
                Style::default()
                    .fg(column_color(i))
                    .add_modifier(Modifier::BOLD),
            )
        })),
    );
    let rows = (0..OVERALL_ROWS).map(|r| {
        Row::new(
            std::iter::once(Cell::from(OVERALL_LABELS[r]).style(dim()))
                .chain(per_col.iter().map(|vals| Cell::from(vals[r].1.clone()))),
        )
    });
    // On narrow terminals the labels give way to the numbers.
    let label_width = if area.width < 60 { 9 } else { 17 };
    let widths = std::iter::once(Constraint::Length(label_width))
        .chain(cols.iter().map(|_| Constraint::Fill(1)))
        .collect::<Vec<_>>();
    let run_names = app
        .runs
        .iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(block(format!("All tasks · {run_names}")));
    frame.render_widget(table, area);
}

fn draw_tasks(frame: &mut Frame, app: &App, area: Rect) {
    let rows_data = app.task_rows();
    let header = Row::new(
        [
            "task",
            "target",
            "n",
            "err",
            "quality",
            "pass",
            "TTFT p50",
            "E2E p50",
            "E2E p99",
            "$/correct",
            "goodput",
        ]
        .map(|h| Cell::from(h).style(Style::default().add_modifier(Modifier::BOLD))),
    );
    let rows = rows_data.iter().map(|(task, ci)| {
        let col: &Column = &app.compare.columns[*ci];
        let g = app.group(col, task);
        let p50 =
            |p: Option<&Percentiles>| p.map(|p| fmt::ms(p.p50_ms)).unwrap_or_else(|| "-".into());
        let cells: Vec<Cell> = match g {
            Some(g) => vec![
                Cell::from(task.clone()),
                Cell::from(col.label.clone()).style(Style::default().fg(column_color(*ci))),
                Cell::from(g.requests.to_string()),
                Cell::from(g.errors.to_string()),
                Cell::from(fmt::estimate_value(g.quality.as_ref())),
                Cell::from(fmt::estimate_value(g.pass_rate.as_ref())),
                Cell::from(p50(g.latency.ttft.as_ref())),
                Cell::from(p50(g.latency.e2e.as_ref())),
                Cell::from(
                    g.latency
                        .e2e
                        .as_ref()
                        .map(|p| fmt::ms(p.p99_ms))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(fmt::opt_usd(g.cost.per_correct_usd)),
                Cell::from(fmt::estimate_value(g.goodput.as_ref())),
            ],
            None => vec![Cell::from(task.clone())],
        };
        Row::new(cells)
    });
    let widths = [
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(7),
    ];
    let title = if app.compare.filter.is_empty() {
        format!("Per task ({} rows)", rows_data.len())
    } else {
        format!(
            "Per task ({} rows matching `{}`)",
            rows_data.len(),
            app.compare.filter
        )
    };
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(block(title));
    let mut state = TableState::default().with_selected(
        (!rows_data.is_empty()).then(|| app.compare.task_scroll.min(rows_data.len() - 1)),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_charts(frame: &mut Frame, app: &App, area: Rect) {
    let calibration = app.runs.iter().find_map(|r| r.calibration.as_ref());
    if area.width >= 100 {
        let [a, b, c] = Layout::horizontal([
            Constraint::Percentage(40),
            Constraint::Percentage(35),
            Constraint::Percentage(25),
        ])
        .areas(area);
        draw_latency_chart(frame, app, a);
        draw_frontier(frame, calibration, b);
        draw_routing(frame, app, c);
    } else {
        let [a, c] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(area);
        draw_latency_chart(frame, app, a);
        if calibration.is_some() {
            draw_frontier(frame, calibration, c);
        } else {
            draw_routing(frame, app, c);
        }
    }
}

fn draw_latency_chart(frame: &mut Frame, app: &App, area: Rect) {
    let metric = app.compare.metric;
    let series: Vec<(usize, Vec<(f64, f64)>)> = app
        .compare
        .columns
        .iter()
        .enumerate()
        .map(|(i, _)| (i, app.compare.cdf_of(i, metric).to_vec()))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let title = format!("{} latency CDF (m: metric)", metric.title());
    if series.is_empty() {
        message(
            frame,
            area,
            &title,
            vec![Line::from(format!(
                "no {} latencies recorded",
                metric.key()
            ))],
        );
        return;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, pts) in &series {
        for (x, _) in pts {
            lo = lo.min(*x);
            hi = hi.max(*x);
        }
    }
    if hi - lo < 0.1 {
        lo -= 0.05;
        hi += 0.05;
    }
    let datasets: Vec<Dataset> = series
        .iter()
        .map(|(i, pts)| {
            Dataset::default()
                .name(app.compare.columns[*i].label.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(column_color(*i)))
                .data(pts)
        })
        .collect();
    let mid = (lo + hi) / 2.0;
    let chart = Chart::new(datasets)
        .block(block(title))
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 1)))
        .x_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([lo, mid, hi].map(|x| Span::raw(fmt::ms(10f64.powf(x)))))
                .style(dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, 100.0])
                .labels(["0", "50", "100%"].map(Span::raw))
                .style(dim()),
        );
    frame.render_widget(chart, area);
}

fn draw_frontier(frame: &mut Frame, calibration: Option<&Calibration>, area: Rect) {
    let Some(cal) = calibration.filter(|c| !c.frontier.is_empty() || !c.curve.is_empty()) else {
        message(
            frame,
            area,
            "Cost–quality frontier",
            vec![
                Line::from("no calibration in these runs"),
                Line::from(Span::styled(
                    "triage bench calibrate RUN --json > RUN/calibration.json",
                    dim(),
                )),
            ],
        );
        return;
    };
    let point = |p: &CurvePoint| (p.cost_per_request, p.quality);
    let curve: Vec<(f64, f64)> = cal.curve.iter().map(point).collect();
    let frontier: Vec<(f64, f64)> = cal.frontier.iter().map(point).collect();
    let marked: Vec<(f64, f64)> = cal.chosen.iter().map(point).collect();
    let all = curve.iter().chain(frontier.iter());
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in all {
        xlo = xlo.min(*x);
        xhi = xhi.max(*x);
        ylo = ylo.min(*y);
        yhi = yhi.max(*y);
    }
    let pad = |lo: f64, hi: f64| {
        if hi - lo < 1e-12 {
            (lo - 0.5 * lo.abs().max(1e-6), hi + 0.5 * hi.abs().max(1e-6))
        } else {
            (lo, hi)
        }
    };
    let (xlo, xhi) = pad(xlo, xhi);
    let (ylo, yhi) = pad(ylo, yhi);
    let mut datasets = vec![
        Dataset::default()
            .name("sweep")
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(dim())
            .data(&curve),
        Dataset::default()
            .name("frontier")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Cyan))
            .data(&frontier),
    ];
    if !marked.is_empty() {
        datasets.push(
            Dataset::default()
                .name("chosen")
                .marker(Marker::Block)
                .graph_type(GraphType::Scatter)
                .style(Style::default().fg(Color::Yellow))
                .data(&marked),
        );
    }
    let apgr = cal
        .apgr
        .map(|a| format!(" · APGR {a:.2}"))
        .unwrap_or_default();
    let title = match &cal.chosen {
        Some(p) => format!(
            "Frontier · threshold {:.2}: q {:.2}, {} LLM, {}/req{apgr}",
            p.threshold,
            p.quality,
            fmt::pct(p.strong_share),
            fmt::usd(p.cost_per_request)
        ),
        None => format!("Cost–quality frontier{apgr}"),
    };
    let chart = Chart::new(datasets)
        .block(block(title))
        .legend_position(None)
        .x_axis(
            Axis::default()
                .title("$/req")
                .bounds([xlo, xhi])
                .labels([fmt::usd(xlo), fmt::usd(xhi)].map(Span::raw))
                .style(dim()),
        )
        .y_axis(
            Axis::default()
                .title("quality")
                .bounds([ylo, yhi])
                .labels([format!("{ylo:.2}"), format!("{yhi:.2}")].map(Span::raw))
                .style(dim()),
        );
    frame.render_widget(chart, area);
}

fn draw_routing(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines: Vec<Line> = Vec::new();
    let inner_width = area.width.saturating_sub(2) as usize;
    for (i, col) in app.compare.columns.iter().enumerate() {
        let Some(r) = app.group(col, ALL_TASKS).and_then(|g| g.routing.as_ref()) else {
            continue;
        };
        if r.backends.is_empty() {
            continue;
        }
        lines.push(Line::from(Span::styled(
            col.label.clone(),
            Style::default()
                .fg(column_color(i))
                .add_modifier(Modifier::BOLD),
        )));
        let total: u64 = r.backends.values().sum();
        let name_w = r
            .backends
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0);
        for (backend, n) in &r.backends {
            let share = *n as f64 / total.max(1) as f64;
            let text_w = name_w + 12;
            let bar_w = inner_width.saturating_sub(text_w).min(30);
            lines.push(Line::from(vec![
                Span::raw(format!("{backend:<name_w$} ")),
                Span::styled(
                    fmt::bar(share, 1.0, bar_w),
                    Style::default().fg(column_color(i)),
                ),
                Span::raw(format!(" {n} {:>4}", fmt::pct(share))),
            ]));
        }
        if let Some(e) = r.escalated_share {
            lines.push(Line::from(Span::styled(
                format!("escalated {}", fmt::pct(e)),
                dim(),
            )));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "no routed target in these runs",
            dim(),
        )));
    }
    frame.render_widget(Paragraph::new(lines).block(block("Routing split")), area);
}
