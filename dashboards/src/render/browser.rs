//! The request browser: items with every target's score, preset and text filters, and the
//! selected item's prompt, expected answer and each target's output side by side.

use bench::record::RequestRecord;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::{block, column_color, dim, fmt, message};
use crate::state::{App, Item, ItemFilter};

/// Draw the Requests tab into `area`: the item table and the selected item's detail.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let b = &app.browser;
    if b.items.is_empty() {
        message(
            frame,
            area,
            "Requests",
            vec![Line::from(if app.runs.is_empty() {
                "No run directories given (triage dash RUN_DIR...)."
            } else {
                "No requests recorded in these runs."
            })],
        );
        return;
    }
    let (list_area, detail_area) = if area.width >= 100 {
        let [a, b] = Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
            .areas(area);
        (a, b)
    } else {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
        (a, b)
    };
    draw_list(frame, app, list_area);
    match b.selected_item() {
        Some(item) => draw_detail(frame, app, item, detail_area),
        None => message(
            frame,
            detail_area,
            "Item",
            vec![Line::from("no item matches the filter")],
        ),
    }
}

/// Short mark of one target's result: `✓ 1.00`, `✗ 0.00`, `ERR`, or `·` when not run.
fn mark(r: Option<&RequestRecord>) -> (String, Style) {
    match r {
        None => ("·".into(), dim()),
        Some(r) if r.error.is_some() => ("ERR".into(), Style::default().fg(Color::Red)),
        Some(r) if r.passed => (
            format!("✓ {:.2}", r.quality),
            Style::default().fg(Color::Green),
        ),
        Some(r) => (
            format!("✗ {:.2}", r.quality),
            Style::default().fg(Color::LightRed),
        ),
    }
}

fn draw_list(frame: &mut Frame, app: &App, area: Rect) {
    let b = &app.browser;
    let visible = b.visible();
    let cols = &app.compare.columns;
    let header = Row::new(
        ["item", "task"]
            .into_iter()
            .map(|h| Cell::from(h).style(Style::default().add_modifier(Modifier::BOLD)))
            .chain(cols.iter().enumerate().map(|(i, c)| {
                Cell::from(c.label.clone()).style(
                    Style::default()
                        .fg(column_color(i))
                        .add_modifier(Modifier::BOLD),
                )
            }))
            .chain((b.preset == ItemFilter::Slowest).then(|| {
                Cell::from("slowest").style(Style::default().add_modifier(Modifier::BOLD))
            })),
    );
    let rows = visible.iter().map(|i| {
        let item = &b.items[*i];
        let mut cells = vec![
            Cell::from(item.item_id.clone()),
            Cell::from(item.task.clone()),
        ];
        for c in &item.cells {
            let (text, style) = mark(c.as_ref());
            cells.push(Cell::from(text).style(style));
        }
        if b.preset == ItemFilter::Slowest {
            cells.push(Cell::from(fmt::ms(item.slowest_ms())));
        }
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Fill(2), Constraint::Fill(1)];
    widths.extend(cols.iter().map(|_| Constraint::Length(7)));
    if b.preset == ItemFilter::Slowest {
        widths.push(Constraint::Length(8));
    }
    let pair_missing = matches!(
        b.preset,
        ItemFilter::SlmWrongLlmRight | ItemFilter::LlmWrongSlmRight
    ) && (b.slm_column.is_none() || b.llm_column.is_none());
    let mut title = format!(
        "Items {}/{} · f: {}",
        visible.len(),
        b.items.len(),
        b.preset.title()
    );
    if pair_missing {
        title.push_str(" (no SLM/LLM pair found)");
    }
    if !b.filter.is_empty() {
        title.push_str(&format!(" · /{}", b.filter));
    }
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(block(title));
    let mut state = TableState::default()
        .with_selected((!visible.is_empty()).then(|| b.selected.min(visible.len() - 1)));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, app: &App, item: &Item, area: Rect) {
    let scroll = app.browser.detail_scroll;
    let label = |s: &'static str| Span::styled(s, Style::default().fg(Color::Yellow));
    let mut head: Vec<Line> = vec![
        Line::from(vec![
            label("item "),
            Span::raw(item.item_id.clone()),
            Span::styled(format!("  {} · {}", item.scenario, item.task), dim()),
        ]),
        Line::from(label("prompt")),
    ];
    match &item.prompt {
        Some(p) => head.extend(p.lines().map(|l| Line::from(l.to_string()))),
        None => head.push(Line::from(Span::styled(
            "(not recorded: the run had record_prompts off)",
            dim(),
        ))),
    }
    head.push(Line::from(label("expected")));
    head.push(Line::from(
        item.expected.clone().unwrap_or_else(|| "(none)".into()),
    ));
    let present: Vec<(usize, &RequestRecord)> = item
        .cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_ref().map(|r| (i, r)))
        .collect();
    let inner_w = area.width.saturating_sub(2).max(1) as usize;
    let head_height = wrapped_height(&head, inner_w).min(area.height as usize / 2) as u16 + 2;
    let [head_area, targets_area] =
        Layout::vertical([Constraint::Length(head_height), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Paragraph::new(head)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(block("Item")),
        head_area,
    );
    if present.is_empty() {
        return;
    }
    let side_by_side = targets_area.width as usize >= present.len() * 24;
    if side_by_side {
        let areas =
            Layout::horizontal(present.iter().map(|_| Constraint::Fill(1))).split(targets_area);
        for ((ci, r), a) in present.iter().zip(areas.iter()) {
            let label = app.compare.columns[*ci].label.clone();
            frame.render_widget(
                Paragraph::new(Text::from(target_lines(r)))
                    .wrap(Wrap { trim: false })
                    .scroll((scroll, 0))
                    .block(block(label).border_style(Style::default().fg(column_color(*ci)))),
                *a,
            );
        }
    } else {
        let mut lines = Vec::new();
        for (ci, r) in &present {
            lines.push(Line::from(Span::styled(
                app.compare.columns[*ci].label.clone(),
                Style::default()
                    .fg(column_color(*ci))
                    .add_modifier(Modifier::BOLD),
            )));
            lines.extend(target_lines(r));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0))
                .block(block("Outputs")),
            targets_area,
        );
    }
}

/// What one target did with the item: verdict, scores, timings, routing, output.
fn target_lines(r: &RequestRecord) -> Vec<Line<'static>> {
    let (verdict, style) = mark(Some(r));
    let mut lines = vec![Line::from(vec![
        Span::styled(verdict, style.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!(
                "  ttft {} · e2e {}",
                fmt::opt_ms(r.ttft_ms),
                fmt::ms(r.e2e_ms)
            ),
            dim(),
        ),
    ])];
    let mut facts = Vec::new();
    if let (Some(i), Some(o)) = (r.tokens_in, r.tokens_out) {
        facts.push(format!("tok {i}→{o}"));
    }
    if let Some(c) = r.cost_usd {
        facts.push(fmt::usd(c));
    }
    if let Some(c) = r.confidence {
        facts.push(format!("conf {c:.2}"));
    }
    if !facts.is_empty() {
        lines.push(Line::from(Span::styled(facts.join(" · "), dim())));
    }
    if !r.routing.is_empty() {
        let mut parts = Vec::new();
        if let Some(b) = &r.routing.backend {
            parts.push(format!("→ {b}"));
        }
        if let Some(route) = &r.routing.route {
            parts.push(format!("route {route}"));
        }
        if r.routing.escalated == Some(true) {
            parts.push("escalated".into());
        }
        lines.push(Line::from(Span::styled(
            parts.join(" · "),
            Style::default().fg(Color::LightBlue),
        )));
    }
    for s in &r.scores {
        let raw = match &s.raw {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(t) => format!(" ({t})"),
            v => format!(" ({v})"),
        };
        lines.push(Line::from(Span::styled(
            format!("{} {:.2}{raw}", s.scorer, s.score),
            dim(),
        )));
    }
    if let Some(e) = &r.error {
        lines.push(Line::from(Span::styled(
            format!("error {}: {}", e.code, e.message),
            Style::default().fg(Color::Red),
        )));
    }
    lines.push(Line::from(""));
    if r.output.is_empty() {
        lines.push(Line::from(Span::styled("(empty output)", dim())));
    } else {
        lines.extend(r.output.lines().map(|l| Line::from(l.to_string())));
    }
    lines
}

/// Rows the lines take when wrapped at `width` (an estimate by characters).
fn wrapped_height(lines: &[Line], width: usize) -> usize {
    lines
        .iter()
        .map(|l| l.width().div_ceil(width.max(1)).max(1))
        .sum()
}
