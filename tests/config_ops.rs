#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The operations commands, run as a user runs them: `triage config check` (the resolved
//! config, keys by tenant only, located errors, exit 1), `triage config schema` (the published
//! file), a real `triage serve` reloading on SIGHUP, and `triage models pull` of a plain URL
//! from a local HTTP server (a TEST DOUBLE for a model host), with its checksum enforced.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn triage(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage"));
    cmd.args(args).current_dir(support::root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_check_prints_the_resolved_config_and_never_a_key() {
    let out = triage(
        &["config", "check", "triage.yaml"],
        &[("TRIAGE_KEYS", "alice:sk-alice-secret,bob:sk-bob-secret")],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for part in [
        "triage.yaml: valid",
        "backends:",
        "routes (first match wins):",
        "  1. ",
        "budgets:",
        "keys:",
        "2 key(s) from TRIAGE_KEYS, tenants: alice, bob",
    ] {
        assert!(stdout.contains(part), "missing {part:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("secret"), "a key was printed:\n{stdout}");
}

#[test]
fn config_check_locates_errors_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "backends:\n  slm: { kind: llama, model: m.gguf }\nroutes:\n  - { name: d, to: slmm }\n",
    )
    .unwrap();
    let out = triage(&["config", "check", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:4:") && stderr.contains("routes[0].to"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown backend \"slmm\""), "{stderr}");
}

#[test]
fn config_schema_prints_the_published_schema() {
    let out = triage(&["config", "schema"], &[]);
    assert!(out.status.success());
    let published =
        std::fs::read_to_string(support::root().join("schema/triage.schema.json")).unwrap();
    assert_eq!(text(&out.stdout), published);
}

fn routes_of(url: &str) -> Vec<String> {
    let body = http_get(url, "/v1/models");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["triage_routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// A GET over plain HTTP/1.0, body only.
fn http_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn serve_config(route: &str) -> String {
    // A remote backend is built without calling it: nothing listens at its URL.
    format!(
        "# yaml-language-server: $schema=schema/triage.schema.json\n\
         server: {{ ledger: ledger.sqlite }}\n\
         backends:\n  llm: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }}\n\
         routes:\n  - {{ name: {route}, to: llm }}\n"
    )
}

#[test]
fn serve_reloads_on_sighup_and_keeps_its_config_when_the_file_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.yaml");
    std::fs::write(&path, serve_config("before")).unwrap();
    // The file watcher is off: only SIGHUP reloads here.
    let gateway = support::serve_with_args(&path, &[], &["--watch-interval-ms", "0"]);
    assert_eq!(routes_of(&gateway.url), ["before"]);

    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while routes_of(&gateway.url) != [want] {
            assert!(Instant::now() < deadline, "no reload to {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    std::fs::write(&path, serve_config("after")).unwrap();
    assert_eq!(
        routes_of(&gateway.url),
        ["before"],
        "no reload without SIGHUP"
    );
    hup(gateway.child.id());
    wait_for("after");

    // A broken file: the gateway keeps serving the configuration in force.
    std::fs::write(&path, "routes: [").unwrap();
    hup(gateway.child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = http_get(&gateway.url, "/metrics");
        if metrics.contains("triage_config_reloads_total{result=\"error\"} 1") {
            assert!(metrics.contains("triage_config_reloads_total{result=\"ok\"} 1"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed reload was not counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(routes_of(&gateway.url), ["after"]);
    gateway.stop();
}

/// A one-file HTTP server (TEST DOUBLE for a model host) on a free port.
async fn model_host(body: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/m/tiny.gguf",
        axum::routing::get(move || async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/m/tiny.gguf", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_pull_fetches_a_url_only_with_the_right_checksum() {
    const BODY: &[u8] = b"GGUF not really a model, but bytes with a known checksum";
    let right = sha256_hex(BODY);
    let wrong = "0".repeat(64);
    let (url, host) = model_host(BODY).await;
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().to_str().unwrap().to_string();
    let run = |sha: String| {
        let url = url.clone();
        let models = models.clone();
        tokio::task::spawn_blocking(move || {
            triage(
                &["models", "pull", &url, "--sha256", &sha, "--dir", &models],
                &[],
            )
        })
    };

    let out = run(wrong).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SHA-256"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a file with the wrong checksum was left behind"
    );

    let out = run(right.clone()).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fetched"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(dir.path().join("tiny.gguf")).unwrap(), BODY);

    let out = run(right).await.unwrap();
    assert!(
        text(&out.stdout).contains("already present"),
        "{}",
        text(&out.stdout)
    );

    let out = tokio::task::spawn_blocking(|| {
        triage(&["models", "pull", "https://example.com/x.gguf"], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--sha256"),
        "{}",
        text(&out.stderr)
    );
    host.abort();
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&p).output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
