//! Drawing: one frame from `&App`. Nothing here does I/O or changes state, and every size of
//! terminal is drawn without panicking (tiny areas simply show less).

pub mod browser;
pub mod compare;
pub mod fmt;
pub mod hw;
pub mod live;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};
use ratatui::Frame;

use crate::input::HELP;
use crate::state::{App, Connection, InputMode, Tab};

/// Colors given to columns (targets) in order.
pub const PALETTE: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::LightBlue,
    Color::LightRed,
];

/// The colour of column `i` (a target), cycling through [`PALETTE`] so every view colours a target
/// alike.
pub fn column_color(i: usize) -> Color {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn title_style() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub(crate) fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

/// Draw the whole dashboard.
pub fn draw(frame: &mut Frame, app: &App) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_tabs(frame, app, top);
    match app.tab {
        Tab::Compare => compare::draw(frame, app, body),
        Tab::Requests => browser::draw(frame, app, body),
        Tab::Live => live::draw(frame, app, body),
        Tab::Hardware => hw::draw(frame, app, body),
    }
    draw_footer(frame, app, bottom);
    if app.show_help {
        draw_help(frame, frame.area());
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // Narrow terminals get the first letters only ("1 Com").
            let title = if area.width < 48 {
                t.title().chars().take(3).collect::<String>()
            } else {
                t.title().to_string()
            };
            let mut spans = vec![Span::raw(format!("{} {title}", i + 1))];
            if *t == Tab::Live {
                let (mark, color) = match &app.live.connection {
                    Connection::Off => ("", Color::Reset),
                    Connection::Connecting => (" …", Color::Yellow),
                    Connection::Connected => (" ●", Color::Green),
                    Connection::Disconnected { .. } => (" ○", Color::Red),
                };
                if !mark.is_empty() {
                    spans.push(Span::styled(mark, Style::default().fg(color)));
                }
            }
            Line::from(spans)
        })
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .highlight_style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED))
        .divider("│");
    frame.render_widget(tabs, area);
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let line = if app.mode == InputMode::Filter {
        Line::from(vec![
            Span::styled("/", Style::default().fg(Color::Yellow)),
            Span::raw(app.filter().to_string()),
            Span::styled("█", Style::default().fg(Color::Yellow)),
            Span::styled("  Enter keep · Esc clear", dim()),
        ])
    } else {
        let mut spans = vec![Span::styled(
            "q quit · Tab view · j/k move · / filter · ? help",
            dim(),
        )];
        match app.tab {
            Tab::Requests => spans.push(Span::styled(" · f preset · [ ] scroll", dim())),
            Tab::Compare => spans.push(Span::styled(" · m metric", dim())),
            _ => {}
        }
        if !app.filter().is_empty() {
            spans.push(Span::raw("  filter: "));
            spans.push(Span::styled(
                app.filter().to_string(),
                Style::default().fg(Color::Yellow),
            ));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 56.min(area.width);
    let height = (HELP.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:<26}"), Style::default().fg(Color::Yellow)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled("Esc or ? closes this help", dim())));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Keys ")),
        popup,
    );
}

/// A bordered block with a bold title.
pub(crate) fn block(title: impl Into<String>) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {} ", title.into()), title_style()))
}

/// A message centred in a block, for views without data.
pub(crate) fn message(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(title)),
        area,
    );
}
