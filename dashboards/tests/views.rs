#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Snapshot tests of every view, drawn with ratatui's `TestBackend` from the fixed run data in
//! `tests/data/` (written by the harness's own code, see `test_runs.rs`) and fixed live
//! messages. Snapshots live in `tests/snapshots/` (insta); review changes with
//! `cargo insta review` or `INSTA_UPDATE=always` and `git diff`.

use std::path::Path;
use std::time::{Duration, Instant};

use dashboards::data::hw::HwReport;
use dashboards::data::live::{LiveMsg, MetricsSnapshot, RequestSummary};
use dashboards::data::runs::RunData;
use dashboards::render;
use dashboards::state::{Action, App, DataMsg, ItemFilter, Tab};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn run(name: &str) -> RunData {
    RunData::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn hw() -> HwReport {
    HwReport::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hw.json")).unwrap()
}

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render::draw(f, app)).unwrap();
    terminal.backend().to_string()
}

fn basic_app() -> App {
    App::new(vec![run("basic")], Some(hw()), None)
}

#[test]
fn compare_basic() {
    let app = basic_app();
    let screen = draw(&app, 140, 44);
    for label in [
        "slm",
        "llm",
        "router",
        "quality [95% CI]",
        "Per task",
        "Routing split",
        "threshold 0.64",
    ] {
        assert!(screen.contains(label), "missing {label}:\n{screen}");
    }
    insta::assert_snapshot!("compare_basic_140x44", screen);
}

#[test]
fn compare_basic_medium_terminal_other_metric() {
    let mut app = basic_app();
    app.apply(Action::CycleMetric);
    let screen = draw(&app, 90, 36);
    assert!(screen.contains("time to first token"), "{screen}");
    insta::assert_snapshot!("compare_basic_ttft_90x36", screen);
}

#[test]
fn compare_two_runs_side_by_side() {
    let app = App::new(vec![run("basic"), run("errors")], None, None);
    let screen = draw(&app, 160, 44);
    assert!(
        screen.contains("basic:slm") && screen.contains("errors:llm"),
        "{screen}"
    );
    insta::assert_snapshot!("compare_two_runs_160x44", screen);
}

#[test]
fn compare_filter_narrows_task_rows() {
    let mut app = basic_app();
    app.apply(Action::StartFilter);
    for c in "qa".chars() {
        app.apply(Action::FilterChar(c));
    }
    app.apply(Action::FilterDone);
    assert!(app.task_rows().iter().all(|(task, _)| task == "qa"));
    let mut nothing = basic_app();
    nothing.apply(Action::StartFilter);
    nothing.apply(Action::FilterChar('#'));
    assert!(nothing.task_rows().is_empty());
    assert!(draw(&nothing, 120, 40).contains("Per task (0 rows"));
    assert_eq!(app.task_rows().len(), 3);
    insta::assert_snapshot!("compare_filtered_qa_120x40", draw(&app, 120, 40));
}

#[test]
fn compare_empty_run() {
    // The view shows the run's directory; keep the snapshot independent of the checkout path.
    let mut empty = run("empty");
    empty.dir = Path::new("dashboards/tests/data/empty").to_path_buf();
    let app = App::new(vec![empty], None, None);
    let screen = draw(&app, 80, 20);
    assert!(screen.contains("recorded no requests"), "{screen}");
    insta::assert_snapshot!("compare_empty_80x20", screen);
}

#[test]
fn compare_run_with_errors() {
    let app = App::new(vec![run("errors")], None, None);
    let screen = draw(&app, 120, 40);
    assert!(screen.contains("(2 err)"), "{screen}");
    insta::assert_snapshot!("compare_errors_120x40", screen);
}

#[test]
fn compare_nothing_given() {
    let app = App::new(Vec::new(), None, None);
    insta::assert_snapshot!("compare_no_runs_80x12", draw(&app, 80, 12));
}

#[test]
fn every_view_survives_a_very_narrow_terminal() {
    let mut app = App::new(
        vec![run("basic")],
        Some(hw()),
        Some("http://127.0.0.1:9".into()),
    );
    feed_live(&mut app);
    let mut screens = String::new();
    for (i, tab) in Tab::ALL.iter().enumerate() {
        app.apply(Action::GoTab(i));
        assert_eq!(app.tab, *tab);
        for (w, h) in [(12, 4), (1, 1), (0, 0)] {
            // Drawing must not panic at any size (TestBackend cannot print 0×0).
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            terminal.draw(|f| render::draw(f, &app)).unwrap();
        }
        screens.push_str(&format!("== {}\n{}\n", tab.title(), draw(&app, 20, 8)));
    }
    app.apply(Action::ToggleHelp);
    screens.push_str(&format!("== help\n{}\n", draw(&app, 20, 8)));
    insta::assert_snapshot!("all_views_narrow_20x8", screens);
}

#[test]
fn requests_browser_all_items() {
    let mut app = basic_app();
    app.apply(Action::GoTab(1));
    let screen = draw(&app, 140, 40);
    assert!(screen.contains("Items 7/7"), "{screen}");
    insta::assert_snapshot!("requests_all_140x40", screen);
}

#[test]
fn requests_browser_slm_wrong_llm_right() {
    let mut app = basic_app();
    app.apply(Action::GoTab(1));
    app.apply(Action::CycleItemFilter);
    assert_eq!(app.browser.preset, ItemFilter::SlmWrongLlmRight);
    let ids: Vec<&str> = app
        .browser
        .visible()
        .iter()
        .map(|i| app.browser.items[*i].item_id.as_str())
        .collect();
    // s3: SLM said positive, LLM negative (right); q2: SLM 1972, LLM 1969. q3 both wrong.
    assert_eq!(ids, ["s3", "q2"]);
    app.apply(Action::Down);
    let screen = draw(&app, 140, 40);
    assert!(
        screen.contains("It was 1972") && screen.contains("In 1969"),
        "{screen}"
    );
    insta::assert_snapshot!("requests_slm_wrong_llm_right_140x40", screen);
}

#[test]
fn requests_browser_escalated_and_slowest() {
    let mut app = basic_app();
    app.apply(Action::GoTab(1));
    while app.browser.preset != ItemFilter::Escalated {
        app.apply(Action::CycleItemFilter);
    }
    let ids: Vec<String> = app
        .browser
        .visible()
        .iter()
        .map(|i| app.browser.items[*i].item_id.clone())
        .collect();
    assert_eq!(ids, ["q2", "q3"]);
    app.apply(Action::CycleItemFilter); // errors: none in this run
    assert!(app.browser.visible().is_empty());
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("no item matches the filter"), "{screen}");
    app.apply(Action::Down);
    app.apply(Action::CycleItemFilter);
    assert_eq!(app.browser.preset, ItemFilter::Slowest);
    let order: Vec<f64> = app
        .browser
        .visible()
        .iter()
        .map(|i| app.browser.items[*i].slowest_ms())
        .collect();
    assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
    insta::assert_snapshot!("requests_slowest_100x30", draw(&app, 100, 30));
}

#[test]
fn requests_browser_text_filter_and_narrow_layout() {
    let mut app = basic_app();
    app.apply(Action::GoTab(1));
    app.apply(Action::StartFilter);
    for c in "saturn".chars() {
        app.apply(Action::FilterChar(c));
    }
    // Still typing: the footer shows the filter being edited.
    let screen = draw(&app, 70, 30);
    assert!(screen.contains("/saturn"), "{screen}");
    assert_eq!(app.browser.visible().len(), 1);
    insta::assert_snapshot!("requests_filter_saturn_70x30", screen);
    app.apply(Action::FilterClear);
    assert_eq!(app.browser.visible().len(), 7);
}

#[test]
fn requests_browser_with_errors() {
    let mut app = App::new(vec![run("errors")], None, None);
    app.apply(Action::GoTab(1));
    while app.browser.preset != ItemFilter::Errors {
        app.apply(Action::CycleItemFilter);
    }
    assert_eq!(app.browser.visible().len(), 3);
    let screen = draw(&app, 120, 30);
    assert!(screen.contains("timeout"), "{screen}");
    insta::assert_snapshot!("requests_errors_120x30", screen);
}

fn metrics_text(slm: u64, llm: u64, cost: f64, saved: f64, busy: u64) -> String {
    format!(
        "# TYPE triage_requests counter\n\
         triage_requests_total{{backend=\"slm\",route=\"small-tasks\",status=\"200\"}} {slm}\n\
         triage_requests_total{{backend=\"llm\",route=\"default\",status=\"200\"}} {llm}\n\
         # TYPE triage_cost_usd counter\n\
         triage_cost_usd_total{{backend=\"llm\"}} {cost}\n\
         # TYPE triage_saved_usd counter\n\
         triage_saved_usd_total{{backend=\"slm\"}} {saved}\n\
         # TYPE triage_local_queue_depth gauge\n\
         triage_local_queue_depth{{backend=\"slm\"}} 3\n\
         # TYPE triage_local_busy_slots gauge\n\
         triage_local_busy_slots{{backend=\"slm\"}} {busy}\n\
         # TYPE triage_local_slots gauge\n\
         triage_local_slots{{backend=\"slm\"}} 4\n\
         # TYPE triage_requests_in_flight gauge\n\
         triage_requests_in_flight 5\n\
         # EOF\n"
    )
}

fn event(i: u64, backend: &str, e2e: f64, status: u16) -> RequestSummary {
    RequestSummary {
        id: format!("chatcmpl-{i}"),
        unix_ms: 1_763_726_400_000 + i * 1000,
        model: "auto".into(),
        task: Some(if backend == "slm" { "sentiment" } else { "qa" }.into()),
        route: Some(
            if backend == "slm" {
                "small-tasks"
            } else {
                "default"
            }
            .into(),
        ),
        backend: Some(backend.into()),
        tried: vec![backend.into()],
        escalated: i == 2,
        status,
        error: (status >= 400).then(|| "upstream_error".to_string()),
        prompt_tokens: 30,
        completion_tokens: 5,
        cost_usd: if backend == "llm" { 0.0004 } else { 0.00001 },
        saved_usd: if backend == "slm" { 0.0003 } else { 0.0 },
        ttft_ms: Some(e2e / 3.0),
        e2e_ms: e2e,
        ..Default::default()
    }
}

/// A fixed sequence of live messages: connected, two scrapes 2 s apart, eight requests.
fn feed_live(app: &mut App) {
    let t0 = Instant::now();
    app.on_data(DataMsg::Live(LiveMsg::Connected));
    let m0 = MetricsSnapshot::parse(&metrics_text(10, 4, 0.0016, 0.003, 1), t0).unwrap();
    app.on_data(DataMsg::Live(LiveMsg::Metrics(m0)));
    for i in 0..8 {
        let (backend, e2e) = if i % 3 == 2 {
            ("llm", 600.0 + 40.0 * i as f64)
        } else {
            ("slm", 80.0 + 10.0 * i as f64)
        };
        let status = if i == 5 { 502 } else { 200 };
        app.on_data(DataMsg::Live(LiveMsg::Event(Box::new(event(
            i, backend, e2e, status,
        )))));
    }
    let m1 = MetricsSnapshot::parse(
        &metrics_text(16, 6, 0.0024, 0.0048, 3),
        t0 + Duration::from_secs(2),
    )
    .unwrap();
    app.on_data(DataMsg::Live(LiveMsg::Metrics(m1)));
}

#[test]
fn live_view_with_traffic() {
    let mut app = App::new(Vec::new(), None, Some("http://127.0.0.1:8080".into()));
    assert_eq!(app.tab, Tab::Live);
    feed_live(&mut app);
    assert_eq!(app.live.rates.by_backend.get("slm"), Some(&3.0));
    assert_eq!(app.live.rates.by_backend.get("llm"), Some(&1.0));
    assert_eq!(app.live.rates.total, 4.0);
    let screen = draw(&app, 130, 36);
    for s in [
        "connected",
        "burned",
        "$0.0024",
        "saved",
        "small-tasks",
        "502",
    ] {
        assert!(screen.contains(s), "missing {s}:\n{screen}");
    }
    insta::assert_snapshot!("live_traffic_130x36", screen);
}

#[test]
fn live_view_disconnected_and_filtered() {
    let mut app = App::new(Vec::new(), None, Some("http://127.0.0.1:8080".into()));
    feed_live(&mut app);
    app.on_data(DataMsg::Live(LiveMsg::Disconnected {
        error: "connection refused".into(),
        retry_in: Duration::from_millis(500),
    }));
    app.apply(Action::StartFilter);
    for c in "llm".chars() {
        app.apply(Action::FilterChar(c));
    }
    app.apply(Action::FilterDone);
    assert_eq!(app.live.visible_recent().len(), 2);
    let mut nothing = app.clone();
    nothing.apply(Action::FilterChar('#'));
    assert!(nothing.live.visible_recent().is_empty());
    assert!(draw(&nothing, 100, 30).contains("Last requests (0)"));
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("disconnected (connection refused)"),
        "{screen}"
    );
    insta::assert_snapshot!("live_disconnected_filtered_100x30", screen);
}

#[test]
fn live_view_without_url() {
    let mut app = basic_app();
    app.apply(Action::GoTab(2));
    insta::assert_snapshot!("live_no_url_80x12", draw(&app, 80, 12));
}

#[test]
fn live_counter_reset_after_gateway_restart_is_not_negative() {
    let mut app = App::new(Vec::new(), None, Some("http://x".into()));
    let t0 = Instant::now();
    let before = MetricsSnapshot::parse(&metrics_text(100, 50, 0.1, 0.1, 0), t0).unwrap();
    let after = MetricsSnapshot::parse(
        &metrics_text(2, 0, 0.0, 0.0, 0),
        t0 + Duration::from_secs(1),
    )
    .unwrap();
    app.on_data(DataMsg::Live(LiveMsg::Metrics(before)));
    app.on_data(DataMsg::Live(LiveMsg::Metrics(after)));
    assert_eq!(app.live.rates.by_backend.get("slm"), Some(&2.0));
    assert_eq!(app.live.rates.by_backend.get("llm"), Some(&0.0));
}

#[test]
fn hardware_view() {
    let mut app = basic_app();
    app.apply(Action::GoTab(3));
    let screen = draw(&app, 120, 32);
    for s in ["pp512", "tg128", "58.0%", "AVX2", "Q4_1"] {
        assert!(screen.contains(s), "missing {s}:\n{screen}");
    }
    insta::assert_snapshot!("hardware_120x32", screen);
}

#[test]
fn hardware_view_without_report_and_narrow() {
    let mut app = App::new(Vec::new(), None, None);
    app.apply(Action::GoTab(3));
    insta::assert_snapshot!("hardware_none_80x10", draw(&app, 80, 10));
    let mut app = App::new(Vec::new(), Some(hw()), None);
    app.apply(Action::GoTab(3));
    insta::assert_snapshot!("hardware_60x30", draw(&app, 60, 30));
}

#[test]
fn help_overlay() {
    let mut app = basic_app();
    app.apply(Action::ToggleHelp);
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("Keys") && screen.contains("quit"),
        "{screen}"
    );
    insta::assert_snapshot!("help_100x30", screen);
    app.apply(Action::ToggleHelp);
    assert!(!app.show_help);
}

#[test]
fn print_tables() {
    let app = App::new(vec![run("basic"), run("errors")], Some(hw()), None);
    let mut text = dashboards::print::compare_tables(&app);
    text.push_str(&dashboards::print::hw_tables(
        app.hw.report.as_ref().unwrap(),
    ));
    // Paths differ between machines: keep only the run directory's name.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let text = text.replace(&format!("{}/", root.display()), "");
    assert!(text.contains("All tasks") && text.contains("Per task") && text.contains("← chosen"));
    insta::assert_snapshot!("print_basic_errors", text);
    let empty = App::new(vec![run("empty")], None, None);
    let text =
        dashboards::print::compare_tables(&empty).replace(&format!("{}/", root.display()), "");
    insta::assert_snapshot!("print_empty", text);
}

#[test]
fn random_action_sequences_never_panic() {
    // Deterministic pseudo-random walk over every action at assorted sizes.
    let actions = [
        Action::NextTab,
        Action::PrevTab,
        Action::GoTab(0),
        Action::GoTab(1),
        Action::GoTab(2),
        Action::GoTab(3),
        Action::GoTab(9),
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::DetailUp,
        Action::DetailDown,
        Action::StartFilter,
        Action::FilterChar('q'),
        Action::FilterChar('s'),
        Action::FilterChar('#'),
        Action::FilterBackspace,
        Action::FilterDone,
        Action::FilterClear,
        Action::ToggleHelp,
        Action::CycleItemFilter,
        Action::CycleMetric,
    ];
    let sizes = [(200, 60), (80, 24), (40, 12), (20, 6), (3, 2)];
    for runs in [
        vec![run("basic"), run("errors")],
        vec![run("empty")],
        Vec::new(),
    ] {
        let mut app = App::new(runs, Some(hw()), Some("http://127.0.0.1:9".into()));
        feed_live(&mut app);
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..300 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let action = actions[(state >> 33) as usize % actions.len()].clone();
            app.apply(action);
            if step % 3 == 0 {
                let (w, h) = sizes[(state >> 20) as usize % sizes.len()];
                let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
                terminal.draw(|f| render::draw(f, &app)).unwrap();
            }
        }
    }
}

#[test]
fn live_rates_average_over_the_window() {
    let mut app = App::new(Vec::new(), None, Some("http://x".into()));
    let t0 = Instant::now();
    // slm grows 1 request/s for 5 s, then 3/s.
    for t in 0..=10u64 {
        let v = if t <= 5 { t } else { 5 + 3 * (t - 5) };
        let m = MetricsSnapshot::parse(
            &metrics_text(v, 0, 0.0, 0.0, 0),
            t0 + Duration::from_secs(t),
        )
        .unwrap();
        app.on_data(DataMsg::Live(LiveMsg::Metrics(m)));
        if t == 5 {
            assert_eq!(app.live.rates.by_backend.get("slm"), Some(&1.0));
        }
    }
    assert_eq!(app.live.rates.by_backend.get("slm"), Some(&3.0));
    assert_eq!(app.live.rps_history.len(), 10);
}
