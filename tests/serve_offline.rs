//! `triage serve` starts without any key (issue 16 item 1): an unset `server.api_keys_env`
//! variable means no authentication (said in a warning, loopback only), and a remote backend
//! whose API key variable is unset is marked down — named in `/readyz` (`degraded`) and
//! `triage_backend_up 0` — while its routes fall back to the local backend. Only when no
//! backend at all can be built does `serve` stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

const UNSET: &str = "TRIAGE_TEST_SURELY_UNSET_KEY";

fn write_config(dir: &std::path::Path, with_local: bool) -> std::path::PathBuf {
    let model = support::root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let local = if with_local {
        format!(
            "  slm: {{ kind: llama, model: {}, slots: 1, context: 1024 }}\n",
            model.display()
        )
    } else {
        String::new()
    };
    let routes = if with_local {
        "  - { name: default, to: llm, fallback: [slm] }\n"
    } else {
        "  - { name: default, to: llm }\n"
    };
    let text = format!(
        "server: {{ ledger: {ledger}, api_keys_env: TRIAGE_TEST_SURELY_UNSET_KEYS }}\n\
         backends:\n{local}  llm: {{ kind: openai, model: gpt-4o-mini, api_key_env: {UNSET} }}\n\
         routes:\n{routes}",
        ledger = dir.join("ledger.sqlite").display(),
    );
    let path = dir.join("triage.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_marks_the_remote_down_and_the_local_model_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let gw = support::serve(&config, &[]);
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["down"][0]["backend"], "llm", "{body}");
    assert!(
        body["down"][0]["error"].as_str().unwrap().contains(UNSET),
        "{body}"
    );
    let metrics = client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("triage_backend_up{backend=\"llm\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("triage_backend_up{backend=\"slm\"} 1"));
    let reply = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("content-type", "application/json")
        .body(r#"{"model":"auto","max_tokens":4,"messages":[{"role":"user","content":"Hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["x-triage-backend"].to_str().unwrap(),
        "slm",
        "the route fell back to the local model"
    );
    gw.stop();
}

#[test]
fn with_no_backend_left_serve_stops_naming_the_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let out = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(UNSET), "{stderr}");
}
