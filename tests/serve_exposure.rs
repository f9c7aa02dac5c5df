//! `triage serve` without API keys listens only on loopback addresses unless
//! `--allow-unauthenticated` is given (issue 14).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Stdio};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("exposed.yaml");
    std::fs::write(
        &path,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n  llm: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: m }}\n\
             pricing:\n  llm: {{ input: 1.0, output: 1.0 }}\n\
             routes:\n  - {{ name: default, to: llm }}\n",
            dir.join("ledger.sqlite").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_public_address_without_keys_needs_allow_unauthenticated() {
    let dir = std::env::temp_dir().join(format!("triage-exposure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir);
    let refused = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "{stderr}");
    assert!(
        !dir.join("ledger.sqlite").exists(),
        "refused before opening anything"
    );

    let allowed = support::ServeCommand::new(&config)
        .listen("0.0.0.0:0")
        .args(&["--allow-unauthenticated"])
        .stderr(Stdio::null())
        .spawn();
    assert!(
        allowed.url.starts_with("http://0.0.0.0:"),
        "{}",
        allowed.url
    );
    drop(allowed);
    let _ = std::fs::remove_dir_all(&dir);
}
