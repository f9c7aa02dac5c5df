//! End to end with real parts: gateway B (`triage serve` with Gemma-3-270M as its only backend)
//! plays the remote LLM over real HTTP; gateway A routes between its local SmolLM2 and B. The
//! official `openai` Python SDK (installed by `make setup`) is the client
//! (`tests/e2e/openai_sdk_client.py` holds the checks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{root, serve};

fn python(mode: &str, a: &str, b_ledger: &Path) {
    let status = Command::new("python3")
        .arg(root().join("tests/e2e/openai_sdk_client.py"))
        .args([mode, a])
        .arg(b_ledger)
        .status()
        .expect("python3 runs (make setup installs the openai SDK)");
    assert!(
        status.success(),
        "openai SDK checks ({mode}) failed: see the lines above"
    );
}

#[test]
fn two_gateways_with_the_openai_sdk() {
    let dir = std::env::temp_dir().join(format!("triage-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = root().join("models");
    let b_ledger = dir.join("gateway-b.sqlite");
    let b_config = dir.join("b.yaml");
    std::fs::write(
        &b_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n  gemma: {{ kind: llama, model: {}, slots: 2, threads: 1, context: 1024 }}\n\
             routes:\n  - {{ name: default, to: gemma }}\n",
            b_ledger.display(),
            models.join("gemma-3-270m-q4_k_m.gguf").display()
        ),
    )
    .unwrap();
    let b = serve(&b_config, &[]);

    let a_config = dir.join("a.yaml");
    std::fs::write(
        &a_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {}, api_keys_env: E2E_TRIAGE_KEYS }}\n\
             backends:\n\
             \x20 slm: {{ kind: llama, model: {}, slots: 2, threads: 1, context: 1024 }}\n\
             \x20 llm: {{ kind: openai, base_url: \"{}/v1\", model: gemma, retry: {{ max_attempts: 1 }} }}\n\
             pricing:\n  llm: {{ input: 1000.0, output: 1000.0 }}\n  slm: {{ machine_usd_per_hour: 0.05 }}\n\
             routes:\n\
             \x20 - {{ name: private, when: {{ pii: true }}, to: slm }}\n\
             \x20 - {{ name: small-tasks, when: {{ task: [sentiment] }}, to: slm }}\n\
             \x20 - {{ name: default, to: llm, fallback: [slm] }}\n\
             budgets: {{ tenants: {{ bob: {{ daily_usd: 0.04 }} }}, on_exhausted: slm }}\n",
            dir.join("gateway-a.sqlite").display(),
            models.join("SmolLM2-135M-Instruct.Q4_1.gguf").display(),
            b.url
        ),
    )
    .unwrap();
    let a = serve(
        &a_config,
        &[("E2E_TRIAGE_KEYS", "alice:sk-alice-e2e,bob:sk-bob-e2e")],
    );

    python("main", &a.url, &b_ledger);
    drop(b);
    python("fallback", &a.url, &b_ledger);
    drop(a);
    std::fs::remove_dir_all(&dir).ok();
}
