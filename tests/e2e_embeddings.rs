//! `/v1/embeddings` end to end with the official `openai` Python SDK as the client
//! (`tests/e2e/openai_sdk_embeddings.py` holds the checks): gateway A answers `emb` from its
//! in-process all-MiniLM-L6-v2 and forwards `remote` to gateway B (a second `triage serve` with
//! the same model) over real HTTP, under a privacy rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{root, serve};

#[test]
fn embeddings_with_the_openai_sdk_local_and_passed_through() {
    let dir = std::env::temp_dir().join(format!("triage-e2e-emb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = root().join("models");
    let minilm = models.join("all-MiniLM-L6-v2.gguf");
    let smol = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let b_ledger = dir.join("gateway-b.sqlite");
    let b_config = dir.join("b.yaml");
    std::fs::write(
        &b_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n\
             \x20 emb: {{ kind: embedding, model: {}, threads: 1 }}\n\
             \x20 slm: {{ kind: llama, model: {}, slots: 1, threads: 1, context: 512 }}\n\
             routes:\n  - {{ name: default, to: slm }}\n",
            b_ledger.display(),
            minilm.display(),
            smol.display()
        ),
    )
    .unwrap();
    let b = serve(&b_config, &[]);

    let a_ledger = dir.join("gateway-a.sqlite");
    let a_config = dir.join("a.yaml");
    std::fs::write(
        &a_config,
        format!(
            "server: {{ listen: 127.0.0.1:0, ledger: {} }}\n\
             backends:\n\
             \x20 emb: {{ kind: embedding, model: {}, threads: 1 }}\n\
             \x20 slm: {{ kind: llama, model: {}, slots: 1, threads: 1, context: 512 }}\n\
             \x20 remote: {{ kind: openai, base_url: \"{}/v1\", model: emb, retry: {{ max_attempts: 1 }} }}\n\
             pricing:\n  remote: {{ input: 0.02, output: 0.0 }}\n\
             routes:\n\
             \x20 - {{ name: private, when: {{ pii: true }}, to: slm }}\n\
             \x20 - {{ name: default, to: slm }}\n",
            a_ledger.display(),
            minilm.display(),
            smol.display(),
            b.url
        ),
    )
    .unwrap();
    let a = serve(&a_config, &[]);

    let status = Command::new("python3")
        .arg(root().join("tests/e2e/openai_sdk_embeddings.py"))
        .arg(&a.url)
        .arg(&a_ledger)
        .arg(&b_ledger)
        .arg(root().join("backends/tests/data/minilm_reference.json"))
        .status()
        .expect("python3 runs (make setup installs the openai SDK)");
    drop(a);
    drop(b);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        status.success(),
        "openai SDK embeddings checks failed: see the lines above"
    );
}
