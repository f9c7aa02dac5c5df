//! The interactive terminal: raw mode and the alternate screen, always restored (a drop
//! guard for normal exits and errors, a panic hook for panics), and the event loop.
//!
//! Keys are read on a dedicated thread (crossterm's blocking reader) and sent over a channel;
//! the live tasks send over another. The loop waits on whichever channel speaks first, folds
//! the message (and any burst queued behind it) into the state, and redraws when something
//! changed — at most about 30 times a second, so a flood of live events costs state updates,
//! not frames. Drawing never waits on I/O.

use std::io::Stdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{self, Event, KeyEvent};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::data::live::{self, LiveOptions};
use crate::error::DashError;
use crate::state::{App, DataMsg};
use crate::{input, render};

/// Shortest time between two frames (about 30 per second).
const FRAME: Duration = Duration::from_millis(33);

/// Owns the terminal while the dashboard runs; dropping it restores the terminal.
pub struct TerminalGuard {
    /// The ratatui terminal drawing to stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Take over the terminal: install the restoring panic hook, enter raw mode and the alternate
    /// screen, hide the cursor; on failure the terminal is restored before the error returns.
    pub fn enter() -> std::io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        let mut stdout = std::io::stdout();
        if let Err(e) = execute!(stdout, EnterAlternateScreen, Hide) {
            restore_terminal();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leave raw mode and the alternate screen; harmless when not in them.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, Show);
}

/// Restore the terminal before the default panic message is printed, so it is readable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

enum Input {
    Key(KeyEvent),
    Resize,
    Error(std::io::Error),
}

/// Read terminal events on a thread until `stop` is set or the receiver is gone.
fn spawn_input_thread(
    tx: mpsc::Sender<Input>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let input = match event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) => Input::Key(k),
                    Ok(Event::Resize(..)) => Input::Resize,
                    Ok(_) => continue,
                    Err(e) => Input::Error(e),
                },
                Err(e) => Input::Error(e),
            };
            let fatal = matches!(input, Input::Error(_));
            if tx.blocking_send(input).is_err() || fatal {
                return;
            }
        }
    })
}

/// Run the dashboard until the user quits.
pub async fn run_interactive(mut app: App, live: Option<LiveOptions>) -> Result<(), DashError> {
    let mut guard = TerminalGuard::enter().map_err(DashError::Terminal)?;
    let (data_tx, mut data_rx) = mpsc::channel::<DataMsg>(1024);
    let live_tasks = live.map(|o| live::spawn(o, data_tx.clone(), DataMsg::Live));
    drop(data_tx);
    let (input_tx, mut input_rx) = mpsc::channel::<Input>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let input_thread = spawn_input_thread(input_tx, stop.clone());
    // Redraw when something changed, at most once per FRAME; and once a second anyway.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let result = loop {
        let due = last_draw.is_none_or(|t| t.elapsed() >= FRAME);
        if dirty && due {
            if let Err(e) = guard.terminal.draw(|f| render::draw(f, &app)) {
                break Err(DashError::Terminal(e));
            }
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let next_frame =
            tokio::time::Instant::from_std(last_draw.map_or_else(Instant::now, |t| t + FRAME));
        tokio::select! {
            Some(input) = input_rx.recv() => {
                dirty = true;
                match input {
                    Input::Key(k) => {
                        if let Some(a) = input::action_for(k, app.mode, app.show_help) {
                            app.apply(a);
                        }
                    }
                    // The next draw uses the new size (ratatui's autoresize).
                    Input::Resize => {}
                    Input::Error(e) => break Err(DashError::Terminal(e)),
                }
            }
            Some(msg) = data_rx.recv() => {
                dirty = true;
                app.on_data(msg);
                while let Ok(more) = data_rx.try_recv() {
                    app.on_data(more);
                }
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
            _ = tick.tick() => dirty = true,
        }
        if app.should_quit {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = &live_tasks {
        t.abort();
    }
    drop(guard);
    drop(input_rx);
    let _ = input_thread.join();
    result
}
