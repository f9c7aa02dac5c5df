//! Keys to [`Action`]s. Pure: no state is changed here, so the key map is tested directly.
//!
//! | key | action |
//! | --- | --- |
//! | `q`, `Ctrl-C` | quit (`Esc` closes help, or clears the filter being typed) |
//! | `Tab` / `Shift-Tab`, `←` / `→`, `h` / `l`, `1`–`4` | change tab |
//! | `↑` / `↓`, `k` / `j`, `PgUp` / `PgDn`, `g` / `G` | move the selection or scroll |
//! | `[` / `]` | scroll the item detail (request browser) |
//! | `/` | type a filter (`Enter` keeps it, `Esc` clears it) |
//! | `f` | request browser: next preset filter |
//! | `m` | compare: next latency metric for the chart |
//! | `?` | help |

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::state::{Action, InputMode};

/// The action for a key press, if any.
pub fn action_for(key: KeyEvent, mode: InputMode, help_shown: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if mode == InputMode::Filter {
        return match key.code {
            KeyCode::Enter | KeyCode::Tab => Some(Action::FilterDone),
            KeyCode::Esc => Some(Action::FilterClear),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) => Some(Action::FilterChar(c)),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            _ => None,
        };
    }
    if help_shown {
        return match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::ToggleHelp),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::FilterClear,
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Action::NextTab,
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Action::PrevTab,
        KeyCode::Char(c @ '1'..='4') => Action::GoTab(c as usize - '1' as usize),
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown | KeyCode::Char(' ') => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Char('[') => Action::DetailUp,
        KeyCode::Char(']') => Action::DetailDown,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('f') => Action::CycleItemFilter,
        KeyCode::Char('m') => Action::CycleMetric,
        _ => return None,
    })
}

/// Lines of the help overlay: (keys, what they do).
pub const HELP: &[(&str, &str)] = &[
    ("Tab / Shift-Tab, ← →, h l", "next / previous tab"),
    ("1 2 3 4", "Compare, Requests, Live, Hardware"),
    ("↑ ↓, k j", "move selection / scroll"),
    ("PgUp PgDn, g G", "page, top, bottom"),
    ("[ ]", "scroll the item detail"),
    ("/", "filter (Enter keeps, Esc clears)"),
    ("f", "Requests: next preset filter"),
    ("m", "Compare: next latency metric"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn normal_mode_keys() {
        let n = InputMode::Normal;
        assert_eq!(
            action_for(key(KeyCode::Char('q')), n, false),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(key(KeyCode::Char('j')), n, false),
            Some(Action::Down)
        );
        assert_eq!(
            action_for(key(KeyCode::Char('k')), n, false),
            Some(Action::Up)
        );
        assert_eq!(
            action_for(key(KeyCode::Tab), n, false),
            Some(Action::NextTab)
        );
        assert_eq!(
            action_for(key(KeyCode::BackTab), n, false),
            Some(Action::PrevTab)
        );
        assert_eq!(
            action_for(key(KeyCode::Char('3')), n, false),
            Some(Action::GoTab(2))
        );
        assert_eq!(
            action_for(key(KeyCode::Char('/')), n, false),
            Some(Action::StartFilter)
        );
        assert_eq!(action_for(key(KeyCode::Char('x')), n, false), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(ctrl_c, n, false), Some(Action::Quit));
    }

    #[test]
    fn filter_mode_types_letters_including_q() {
        let f = InputMode::Filter;
        assert_eq!(
            action_for(key(KeyCode::Char('q')), f, false),
            Some(Action::FilterChar('q'))
        );
        assert_eq!(
            action_for(key(KeyCode::Enter), f, false),
            Some(Action::FilterDone)
        );
        assert_eq!(
            action_for(key(KeyCode::Esc), f, false),
            Some(Action::FilterClear)
        );
    }

    #[test]
    fn help_overlay_swallows_other_keys() {
        let n = InputMode::Normal;
        assert_eq!(
            action_for(key(KeyCode::Esc), n, true),
            Some(Action::ToggleHelp)
        );
        assert_eq!(action_for(key(KeyCode::Char('j')), n, true), None);
        assert_eq!(
            action_for(key(KeyCode::Char('q')), n, true),
            Some(Action::Quit)
        );
    }
}
