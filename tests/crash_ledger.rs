//! Crash safety of the ledger (issue 14, item 8): `kill -9` a real `triage serve` while several
//! clients keep it busy, then check the SQLite file it leaves behind — it opens, passes
//! `PRAGMA integrity_check`, and holds the row of every request whose response had completed
//! before the kill — and that a gateway restarted on the same file serves and appends to it.
//!
//! Each request carries its own task name (`x-triage-task: crash-N`), which the gateway writes
//! into its ledger row, so rows are matched to responses one by one, not just counted.
//!
//! The bound: a row is queued for the ledger writer thread before the response's last byte is
//! sent, and committed (its own WAL transaction) by that thread a few microseconds later; a
//! committed row survives the death of the process. A kill can therefore lose only rows still
//! queued — responses that completed within the writer's lag of the kill. The test asserts that
//! every response completed more than `WRITER_LAG` before the kill has its row (a bound no
//! starved thread on a busy machine comes near), and reports how many younger ones were lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::soak::upstream::{FaultPlan, FaultUpstream};
use serde_json::{json, Value};
use support::serve;

/// Concurrent clients.
const CLIENTS: u64 = 8;
/// Completed responses before the kill (the load is at full speed by then).
const KILL_AFTER: usize = 400;
/// Rows of responses completed longer ago than this before the kill must be in the ledger.
const WRITER_LAG: Duration = Duration::from_secs(2);

/// Send request `n` (task `crash-N`, streamed when odd); true when its response was complete.
async fn complete(client: &reqwest::Client, url: &str, task: &str, stream: bool) -> bool {
    let sent = client
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-triage-task", task)
        .body(
            json!({
                "model": "auto",
                "stream": stream,
                "messages": [{"role": "user", "content": format!("request {task}")}],
            })
            .to_string(),
        )
        .send()
        .await;
    let Ok(response) = sent else { return false };
    if response.status().as_u16() != 200 {
        return false;
    }
    let Ok(body) = response.text().await else {
        return false;
    };
    if stream {
        body.trim_end().ends_with("data: [DONE]")
    } else {
        serde_json::from_str::<Value>(&body)
            .map(|v| v["choices"][0]["message"]["content"].is_string())
            .unwrap_or(false)
    }
}

fn integrity(db: &std::path::Path) -> (String, HashSet<String>, u64) {
    let conn = rusqlite::Connection::open(db).expect("the ledger opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let mut stmt = conn.prepare("SELECT task FROM ledger").unwrap();
    let tasks: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rows = tasks.len() as u64;
    (check, tasks.into_iter().collect(), rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_leaves_an_intact_ledger_with_every_completed_row() {
    let upstream = FaultUpstream::start(FaultPlan::none()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("triage-crash-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = dir.join("ledger.sqlite");
    let config = dir.join("triage.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {:?} }}\n\
             backends:\n  llm: {{ kind: openai, base_url: {:?}, model: mock, retry: {{ max_attempts: 1 }} }}\n\
             pricing:\n  llm: {{ input: 0.15, output: 0.60 }}\n\
             routes:\n  - {{ name: default, to: llm }}\n",
            ledger.display().to_string(),
            upstream.base_url()
        ),
    )
    .unwrap();
    let cfg = config.clone();
    let mut gateway = tokio::task::spawn_blocking(move || serve(&cfg, &[]))
        .await
        .unwrap();
    let url = gateway.url.clone();

    let completed: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (completed, stop, next, client, url) = (
            completed.clone(),
            stop.clone(),
            next.clone(),
            client.clone(),
            url.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let task = format!("crash-{n}");
                if complete(&client, &url, &task, n % 2 == 1).await {
                    let at = Instant::now();
                    completed.lock().unwrap().push((task, at));
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while completed.lock().unwrap().len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = Instant::now();
    gateway.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    gateway.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let sent = next.load(Ordering::Relaxed);

    let (check, tasks, rows) = integrity(&ledger);
    assert_eq!(check, "ok", "PRAGMA integrity_check after kill -9");
    assert_eq!(
        rows as usize,
        tasks.len(),
        "one row per request, none twice"
    );
    let done = completed.lock().unwrap().clone();
    let before: Vec<&(String, Instant)> = done.iter().filter(|(_, t)| *t < killed_at).collect();
    let missing: Vec<&(String, Instant)> = before
        .iter()
        .copied()
        .filter(|(task, _)| !tasks.contains(task))
        .collect();
    let old_missing: Vec<&String> = missing
        .iter()
        .filter(|(_, t)| killed_at.duration_since(*t) > WRITER_LAG)
        .map(|(task, _)| task)
        .collect();
    eprintln!(
        "kill -9 after {} completed responses ({} requests sent): {} rows, {} completed rows missing \
         ({} completed more than {WRITER_LAG:?} before the kill)",
        before.len(),
        sent,
        rows,
        missing.len(),
        old_missing.len()
    );
    assert!(
        old_missing.is_empty(),
        "rows lost for responses completed long before the kill: {old_missing:?}"
    );
    assert!(
        before.len() >= KILL_AFTER,
        "the kill came after {KILL_AFTER} completions"
    );
    assert!(
        rows <= sent,
        "no more rows ({rows}) than requests sent ({sent})"
    );
    drop(gateway);

    // Restart on the same ledger: it opens, serves, appends, and stays intact.
    let cfg = config.clone();
    let gateway = tokio::task::spawn_blocking(move || serve(&cfg, &[]))
        .await
        .unwrap();
    assert!(
        complete(&client, &gateway.url, "after-restart", false).await,
        "the restarted gateway answers"
    );
    tokio::task::spawn_blocking(move || gateway.stop())
        .await
        .unwrap();
    let (check, tasks_after, rows_after) = integrity(&ledger);
    assert_eq!(check, "ok", "PRAGMA integrity_check after the restart");
    assert!(tasks_after.contains("after-restart"));
    assert_eq!(rows_after, rows + 1, "the restart appended its one row");
    let _ = std::fs::remove_dir_all(&dir);
}
