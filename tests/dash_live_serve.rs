//! The dashboard's live view against a real `triage serve` process (local SmolLM2) while requests
//! flow: it connects, scrapes `/metrics`, receives `/v1/triage/events`, and sees the counters move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use dashboards::data::live::{self, LiveOptions};
use dashboards::state::{App, Connection, DataMsg, LiveState};
use tokio::sync::mpsc;

async fn pump_until(
    live: &mut LiveState,
    rx: &mut mpsc::Receiver<DataMsg>,
    what: &str,
    done: impl Fn(&LiveState) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    if let Err(e) = live.pump_until(rx, deadline, done).await {
        panic!("{e} waiting for: {what}; state: {live:?}");
    }
}

fn slm_requests(live: &LiveState) -> f64 {
    live.metrics
        .as_ref()
        .and_then(|m| m.requests_by_backend().get("slm").copied())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_sees_a_real_triage_serve_move() {
    let root = support::root();
    let dir = std::env::temp_dir().join(format!("triage-dash-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n  slm: {{ kind: llama, model: {}, slots: 2, threads: 1, context: 512 }}\n\
             routes:\n  - {{ name: default, to: slm }}\n",
            dir.join("ledger.sqlite").display(),
            root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
                .display()
        ),
    )
    .unwrap();
    // Not ready yet: the live view connects while the model loads.
    let gateway = support::ServeCommand::new(&config).spawn();
    let url = gateway.url.clone();

    let (tx, mut rx) = mpsc::channel(256);
    let mut options = LiveOptions::new(url.clone());
    options.metrics_interval = Duration::from_millis(100);
    let _tasks = live::spawn(options, tx, DataMsg::Live);
    let mut app = App::new(Vec::new(), None, Some(url.clone()));
    let live = &mut app.live;
    pump_until(live, &mut rx, "connected and scraped", |l| {
        l.connection == Connection::Connected && l.metrics.is_some()
    })
    .await;
    let before = slm_requests(live);

    // The live view connects while the model loads; requests wait for /readyz.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let ready = client.get(format!("{url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the model never loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for text in ["Say hi.", "Name a colour."] {
        let body = serde_json::json!({
            "model": "auto", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": text}],
        });
        let response = client
            .post(format!("{url}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    pump_until(live, &mut rx, "two requests counted for slm", |l| {
        slm_requests(l) >= before + 2.0
    })
    .await;
    pump_until(live, &mut rx, "two request events", |l| {
        l.visible_recent().len() >= 2
    })
    .await;

    // The engine's own time is on /metrics too: decode steps and seconds, and the host seconds
    // between decodes, all moved by the two answers.
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "triage_local_decode_steps_total",
        "triage_local_decode_seconds_total",
        "triage_local_host_seconds_total",
    ] {
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{backend=\"slm\"}} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} for slm missing from /metrics:\n{metrics}"));
        assert!(value > 0.0, "{name} = {value}");
    }

    drop(gateway);
    std::fs::remove_dir_all(&dir).ok();
}
