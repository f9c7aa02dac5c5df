#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The published JSON schema of `triage.yaml` (`schema/triage.schema.json`): it is the one the
//! raw config types generate, every shipped config validates against it and names it in its
//! `# yaml-language-server: $schema=...` header, and what the schema refuses the loader
//! refuses too.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn published() -> PathBuf {
    repo_root().join("schema/triage.schema.json")
}

/// `BLESS=1` rewrites the published file.
#[test]
fn published_schema_is_the_generated_one() {
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&router::config::schema()).unwrap()
    );
    let path = published();
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        text,
        "{} is out of date: run `triage config schema > schema/triage.schema.json` \
         (or this test with BLESS=1)",
        path.display()
    );
}

/// Every shipped config: `triage.yaml` and `examples/*.yaml`.
fn shipped_configs() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = vec![root.join("triage.yaml")];
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(published()).unwrap())
        .expect("the published schema is JSON");
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn shipped_configs_validate_against_the_schema_and_name_it() {
    let validator = validator();
    let configs = shipped_configs();
    assert!(configs.len() >= 4, "{configs:?}");
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap();
        let yaml: Value = serde_yaml::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&yaml)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        // The header points at the schema relative to the file, as editors resolve it.
        let header = text
            .lines()
            .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="))
            .unwrap_or_else(|| panic!("{} has no yaml-language-server header", path.display()));
        let target = path.parent().unwrap().join(header.trim());
        assert_eq!(
            target.canonicalize().unwrap(),
            published().canonicalize().unwrap(),
            "{}",
            path.display()
        );
    }
}

/// Shape mistakes the loader reports are refused by the schema too (so an editor flags them
/// while typing): unknown fields, a field of the other backend kind, a wrong type, a missing
/// `routes`.
#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let validator = validator();
    let base = "backends:\n  slm: { kind: llama, model: m.gguf }\n";
    let good = format!("{base}routes:\n  - {{ name: d, to: slm }}\n");
    let good_yaml: Value = serde_yaml::from_str(&good).unwrap();
    assert!(validator.is_valid(&good_yaml));
    for bad in [
        format!("{base}routes:\n  - {{ name: d, to: slm, tooo: 1 }}\n"),
        "backends:\n  slm: { kind: llama, model: m.gguf, base_url: \"http://x\" }\nroutes: [{ name: d, to: slm }]\n".to_string(),
        "backends:\n  slm: { kind: lama, model: m.gguf }\nroutes: [{ name: d, to: slm }]\n".to_string(),
        format!("{base}routes:\n  - {{ name: d, to: slm, when: {{ pii: maybe }} }}\n"),
        base.to_string(),
        format!("{base}routes: []\nserver: {{ listen: 1, lissen: 2 }}\n"),
    ] {
        let yaml: Value = serde_yaml::from_str(&bad).unwrap();
        assert!(!validator.is_valid(&yaml), "schema accepts:\n{bad}");
        let loaded = router::config::Config::parse(&bad, "t.yaml", Path::new("."));
        assert!(loaded.is_err(), "loader accepts:\n{bad}");
    }
}
