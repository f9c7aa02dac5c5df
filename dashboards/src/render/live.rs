//! The live view: a running gateway's request rate by backend and route, latency sparklines
//! per backend, the local engine's queue and slots, cost burned and saved versus sending
//! everything to the LLM, and the last requests.

use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::{block, column_color, dim, fmt, message};
use crate::state::{App, Connection};

/// Draw the Live tab into `area`; a hint when no `--live` URL was given.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.live;
    let Some(url) = &live.url else {
        message(
            frame,
            area,
            "Live",
            vec![
                Line::from("Not watching a gateway."),
                Line::from(""),
                Line::from("  triage dash --live http://127.0.0.1:8080"),
                Line::from(Span::styled(
                    "  reads GET /v1/triage/events (SSE) and polls GET /metrics",
                    dim(),
                )),
            ],
        );
        return;
    };
    let [status, top, spark, table] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Length(sparkline_height(app)),
        Constraint::Min(3),
    ])
    .areas(area);
    draw_status(frame, app, url, status);
    let [rates, engine, cost] = Layout::horizontal([
        Constraint::Percentage(45),
        Constraint::Percentage(25),
        Constraint::Percentage(30),
    ])
    .areas(top);
    draw_rates(frame, app, rates);
    draw_engine(frame, app, engine);
    draw_cost(frame, app, cost);
    draw_sparklines(frame, app, spark);
    draw_recent(frame, app, table);
}

fn sparkline_height(app: &App) -> u16 {
    (app.live.latency.len().max(1) as u16) * 2 + 2
}

fn draw_status(frame: &mut Frame, app: &App, url: &str, area: Rect) {
    let live = &app.live;
    let (state, color) = match &live.connection {
        Connection::Off => ("off".to_string(), Color::DarkGray),
        Connection::Connecting => ("connecting…".to_string(), Color::Yellow),
        Connection::Connected => ("connected".to_string(), Color::Green),
        Connection::Disconnected { error, retry_in } => (
            format!(
                "disconnected ({error}); retrying in {:.1}s",
                retry_in.as_secs_f64()
            ),
            Color::Red,
        ),
    };
    let mut spans = vec![
        Span::raw(format!("{url} ")),
        Span::styled(state, Style::default().fg(color)),
        Span::styled(
            format!(
                " · events {} · connects {}",
                live.events_seen, live.connects
            ),
            dim(),
        ),
    ];
    if let Some(e) = &live.metrics_error {
        spans.push(Span::styled(
            format!(" · metrics: {e}"),
            Style::default().fg(Color::Red),
        ));
    }
    if live.bad_events > 0 {
        spans.push(Span::styled(
            format!(" · {} unreadable events", live.bad_events),
            Style::default().fg(Color::Red),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn rate_lines(title: &str, rates: &BTreeMap<String, f64>, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(Span::styled(title.to_string(), dim()))];
    let max = rates.values().copied().fold(0.0, f64::max);
    let name_w = rates
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(14);
    for (i, (name, r)) in rates.iter().enumerate() {
        let bar_w = width.saturating_sub(name_w + 10).min(24);
        lines.push(Line::from(vec![
            Span::raw(format!("{:<name_w$} ", truncate(name, name_w))),
            Span::styled(
                fmt::bar(*r, max, bar_w),
                Style::default().fg(column_color(i)),
            ),
            Span::raw(format!(" {:>6}", fmt::rate(*r))),
        ]));
    }
    lines
}

fn draw_rates(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.live;
    let inner = area.width.saturating_sub(2) as usize;
    let title = format!(
        "Requests/s ({}s average) · total {}",
        crate::state::RATE_WINDOW.as_secs(),
        fmt::rate(live.rates.total)
    );
    if live.metrics.is_none() {
        message(
            frame,
            area,
            &title,
            vec![Line::from(Span::styled("waiting for /metrics…", dim()))],
        );
        return;
    }
    let inner_area = block(&title).inner(area);
    let [split, history] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner_area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(split);
    frame.render_widget(block(title), area);
    // Total requests/s at each scrape, newest on the right (hundredths, as bars need integers).
    let width = history.width as usize;
    let points: Vec<u64> = live
        .rps_history
        .iter()
        .skip(live.rps_history.len().saturating_sub(width))
        .map(|r| (r * 100.0).round().max(0.0) as u64)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&points)
            .style(Style::default().fg(Color::Cyan)),
        history,
    );
    let half = inner / 2;
    frame.render_widget(
        Paragraph::new(rate_lines("by backend", &live.rates.by_backend, half)),
        left,
    );
    frame.render_widget(
        Paragraph::new(rate_lines("by route", &live.rates.by_route, half)),
        right,
    );
}

fn draw_engine(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines: Vec<Line> = Vec::new();
    if let Some(m) = &app.live.metrics {
        let inner = area.width.saturating_sub(2) as usize;
        for (backend, slots) in &m.slots {
            let busy = m.busy_slots.get(backend).copied().unwrap_or(0.0);
            let queue = m.queue_depth.get(backend).copied().unwrap_or(0.0);
            lines.push(Line::from(Span::styled(
                backend.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            )));
            let bar_w = inner.saturating_sub(12).min(16);
            lines.push(Line::from(vec![
                Span::raw("busy "),
                Span::styled(
                    fmt::bar(busy, *slots, bar_w),
                    Style::default().fg(Color::Green),
                ),
                Span::raw(format!(" {busy:.0}/{slots:.0}")),
            ]));
            lines.push(Line::from(format!("queue {queue:.0}")));
        }
        if lines.is_empty() {
            lines.push(Line::from(Span::styled("no local engine", dim())));
        }
        if let Some(f) = m.in_flight {
            lines.push(Line::from(Span::styled(format!("in flight {f:.0}"), dim())));
        }
    } else {
        lines.push(Line::from(Span::styled("waiting for /metrics…", dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block("Local engine")), area);
}

fn draw_cost(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.live;
    let mut lines = Vec::new();
    if let Some(m) = &live.metrics {
        let burned: f64 = m.cost_usd.values().sum();
        let saved: f64 = m.saved_usd.values().sum();
        let all_llm = burned + saved;
        lines.push(Line::from(vec![
            Span::styled("burned  ", dim()),
            Span::styled(fmt::usd(burned), Style::default().fg(Color::LightRed)),
        ]));
        lines.push(Line::from(vec![
            Span::styled("saved   ", dim()),
            Span::styled(fmt::usd(saved), Style::default().fg(Color::Green)),
            Span::raw(if all_llm > 0.0 {
                format!(" ({} of all-LLM)", fmt::pct(saved / all_llm))
            } else {
                String::new()
            }),
        ]));
        lines.push(Line::from(vec![
            Span::styled("all-LLM ", dim()),
            Span::raw(fmt::usd(all_llm)),
        ]));
        if let Some(e) = m.escalations {
            lines.push(Line::from(Span::styled(
                format!("escalations {e:.0}"),
                dim(),
            )));
        }
        if let Some(f) = m.fallbacks {
            lines.push(Line::from(Span::styled(format!("fallbacks {f:.0}"), dim())));
        }
    }
    lines.push(Line::from(Span::styled(
        format!(
            "seen here: {} · saved {}",
            fmt::usd(live.cost_seen_usd),
            fmt::usd(live.saved_seen_usd)
        ),
        dim(),
    )));
    frame.render_widget(
        Paragraph::new(lines).block(block("Cost since gateway start")),
        area,
    );
}

fn draw_sparklines(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.live;
    let outer = block("End-to-end latency per backend (last requests)");
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if live.latency.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled("no requests yet", dim()))),
            inner,
        );
        return;
    }
    let rows = Layout::vertical(live.latency.iter().map(|_| Constraint::Length(2))).split(inner);
    for ((i, (backend, points)), row) in live.latency.iter().enumerate().zip(rows.iter()) {
        let [label, spark] =
            Layout::horizontal([Constraint::Length(25), Constraint::Min(0)]).areas(*row);
        let last = points.back().copied().unwrap_or(0);
        let max = points.iter().copied().max().unwrap_or(0);
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled(
                    truncate(backend, 20),
                    Style::default()
                        .fg(column_color(i))
                        .add_modifier(Modifier::BOLD),
                )),
                Line::from(Span::styled(
                    format!(
                        "last {} max {}",
                        fmt::ms(last as f64 / 1000.0),
                        fmt::ms(max as f64 / 1000.0)
                    ),
                    dim(),
                )),
            ]),
            label,
        );
        // Show the newest points that fit.
        let width = spark.width as usize;
        let data: Vec<u64> = points
            .iter()
            .skip(points.len().saturating_sub(width))
            .copied()
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(column_color(i))),
            spark,
        );
    }
}

fn draw_recent(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.live;
    let visible = live.visible_recent();
    let header = Row::new(
        [
            "time", "backend", "route", "task", "status", "TTFT", "E2E", "tokens", "cost", "saved",
        ]
        .map(|h| Cell::from(h).style(Style::default().add_modifier(Modifier::BOLD))),
    );
    let rows = visible.iter().map(|s| {
        let status_style = if s.is_success() {
            Style::default().fg(Color::Green)
        } else {
            Style::default().fg(Color::Red)
        };
        let mut backend = s.backend.clone().unwrap_or_else(|| "-".into());
        if s.escalated {
            backend.push('↑');
        }
        Row::new(vec![
            Cell::from(fmt::clock(s.unix_ms)),
            Cell::from(backend),
            Cell::from(s.route.clone().unwrap_or_else(|| "-".into())),
            Cell::from(s.task.clone().unwrap_or_else(|| "-".into())),
            Cell::from(match &s.error {
                Some(e) => format!("{} {e}", s.status),
                None => s.status.to_string(),
            })
            .style(status_style),
            Cell::from(fmt::opt_ms(s.ttft_ms)),
            Cell::from(fmt::ms(s.e2e_ms)),
            Cell::from(format!("{}→{}", s.prompt_tokens, s.completion_tokens)),
            Cell::from(fmt::usd(s.cost_usd)),
            Cell::from(fmt::usd(s.saved_usd)),
        ])
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let mut title = format!("Last requests ({})", visible.len());
    if !live.filter.is_empty() {
        title.push_str(&format!(" · /{}", live.filter));
    }
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(block(title));
    let mut state = TableState::default()
        .with_selected((!visible.is_empty()).then(|| live.scroll.min(visible.len() - 1)));
    frame.render_stateful_widget(table, area, &mut state);
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
