//! How long the dashboard takes to draw a frame of each view (into ratatui's `TestBackend`,
//! so terminal I/O is excluded) and to fold live events into its state — the work the event
//! loop does between two waits. Uses the test data in `tests/data/`.
//!
//! `cargo run -p dashboards --example frame_time [--release]`

use std::path::Path;
use std::time::{Duration, Instant};

use dashboards::data::hw::HwReport;
use dashboards::data::live::{LiveMsg, MetricsSnapshot, RequestSummary};
use dashboards::data::runs::RunData;
use dashboards::state::{Action, App, DataMsg, Tab};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let runs = vec![
        RunData::load(&data.join("basic"))?,
        RunData::load(&data.join("errors"))?,
    ];
    let hw = HwReport::load(&data.join("hw.json"))?;
    let mut app = App::new(runs, Some(hw), Some("http://127.0.0.1:8080".into()));

    // Live ingest: events and scrapes straight into the state.
    let n = 100_000u64;
    let started = Instant::now();
    let t0 = Instant::now();
    for i in 0..n {
        let backend = if i % 3 == 0 { "llm" } else { "slm" };
        let summary = RequestSummary {
            id: format!("chatcmpl-{i}"),
            unix_ms: 1_763_726_400_000 + i,
            model: "auto".into(),
            backend: Some(backend.into()),
            route: Some("default".into()),
            status: 200,
            e2e_ms: 10.0 + (i % 50) as f64,
            ttft_ms: Some(5.0),
            ..Default::default()
        };
        app.on_data(DataMsg::Live(LiveMsg::Event(Box::new(summary))));
        if i % 1000 == 0 {
            let text = format!(
                "triage_requests_total{{backend=\"slm\",route=\"default\",status=\"200\"}} {i}\n"
            );
            let m = MetricsSnapshot::parse(&text, t0 + Duration::from_millis(i))?;
            app.on_data(DataMsg::Live(LiveMsg::Metrics(m)));
        }
    }
    let per_event = started.elapsed() / n as u32;
    println!(
        "live ingest: {n} events in {:?} ({per_event:?} per event)",
        started.elapsed()
    );

    let mut terminal = Terminal::new(TestBackend::new(200, 60))?;
    for (i, tab) in Tab::ALL.iter().enumerate() {
        app.apply(Action::GoTab(i));
        let frames = 200u32;
        let started = Instant::now();
        for _ in 0..frames {
            terminal.draw(|f| dashboards::render::draw(f, &app))?;
        }
        println!(
            "{:<9} 200x60 frame: {:?}",
            tab.title(),
            started.elapsed() / frames
        );
    }
    Ok(())
}
