#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Smoke test of `triage dash` in a real terminal: tmux runs the binary on a recorded run
//! (`dashboards/tests/data/basic`), the test sends keys (Tab, `/` filter, quit) and reads the
//! screen with `capture-pane`. Uses a private tmux server (`-L`), so it never touches the
//! user's sessions. Needs `tmux` on PATH.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private tmux server with one session, killed on drop.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn start(command: &str, width: u16, height: u16) -> Tmux {
        let id = std::process::id();
        let t = Tmux {
            socket: format!("triage-dash-test-{id}"),
            session: "dash".into(),
        };
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            &t.session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Wait until the screen contains `text` (up to 30 s: the first start may be slow).
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {text:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn dash_in_tmux_tabs_filters_and_quits() {
    let tmux_ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        tmux_ok,
        "tmux is required for this test (apt-get install tmux)"
    );
    let bin = env!("CARGO_BIN_EXE_triage");
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/tests/data/basic");
    // After the dashboard exits, print its status so the test sees a clean exit.
    let command = format!(
        "'{bin}' dash '{}'; echo DASH-EXITED-$?; sleep 60",
        run.display()
    );
    let t = Tmux::start(&command, 120, 40);

    let screen = t.wait_for("All tasks");
    assert!(
        screen.contains("router") && screen.contains("quality [95% CI]"),
        "{screen}"
    );

    t.keys(&["Tab"]);
    t.wait_for("Items 7/7");

    t.keys(&["/", "s", "a", "t", "u", "r", "n", "Enter"]);
    let screen = t.wait_for("Items 1/7");
    assert!(screen.contains("q3"), "{screen}");

    t.keys(&["f"]);
    t.wait_for("SLM wrong, LLM right");

    t.keys(&["?"]);
    t.wait_for("Keys");
    t.keys(&["Escape"]);

    t.keys(&["Tab", "Tab"]);
    t.wait_for("No hardware report given");

    t.keys(&["q"]);
    let screen = t.wait_for("DASH-EXITED-");
    assert!(
        screen.contains("DASH-EXITED-0"),
        "dashboard did not exit cleanly:\n{screen}"
    );
    // The alternate screen is gone: the dashboard's frame is no longer on screen.
    assert!(!screen.contains("Items 1/7"), "{screen}");
}
