//! The 30-second soak of `make test` (issue 14, item 7): `triage bench soak` — the built binary,
//! as a user runs it — drives a real `triage serve` at 50 requests/s (half streamed) against
//! the fault-injecting mock upstream (5% resets, HTTP 500s, stalls past the first-byte timeout
//! and bodies cut mid-way), stops it with SIGTERM and reports. This test reads the JSON report
//! and asserts each check on its own, so a failure names what broke.
//!
//! Nothing here depends on speed: the request count is fixed by rate × duration, every check
//! counts outcomes, and a slow answer is still one answer (a normal answer slower than the
//! 2 s first-byte timeout would be one more well-formed error, which the checks allow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

#[test]
fn thirty_second_soak_with_faults_gives_one_answer_and_one_row_per_request() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage"))
        .args([
            "bench",
            "soak",
            "--duration",
            "30s",
            "--rate",
            "50",
            "--faults",
            "0.05",
            "--warmup",
            "10s",
            "--json",
        ])
        .output()
        .expect("triage bench soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}); stdout: {stdout}; stderr: {stderr}"));
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&report["requests"]), 1500);
    assert_eq!(n(&report["streamed"]), 750);
    let upstream = &report["upstream"];
    assert!(
        n(&upstream["reset"]) > 0
            && n(&upstream["server_error"]) > 0
            && n(&upstream["stall"]) > 0
            && n(&upstream["cut"]) > 0,
        "every kind of fault was injected: {upstream}"
    );
    for check in report["checks"].as_array().unwrap() {
        assert!(
            check["passed"].as_bool().unwrap(),
            "{}: {}",
            check["name"],
            check["detail"]
        );
    }
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "one_response_per_request",
            "distinct_request_ids",
            "one_ledger_row_per_request",
            "rss_drift",
            "graceful_exit",
            "faults_reach_clients"
        ]
    );
    assert!(out.status.success(), "exit status: {}", out.status);
}
