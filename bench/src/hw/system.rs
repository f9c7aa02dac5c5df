//! Facts about the machine and the llama.cpp build, with a loud warning when ggml was built
//! without SIMD the CPU has.

use serde::{Deserialize, Serialize};

/// The machine a `triage hw` report was measured on, and the llama.cpp build that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemFacts {
    /// CPU model name from `/proc/cpuinfo` (the architecture name when unavailable).
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub logical_cpus: usize,
    /// Distinct physical cores from `/proc/cpuinfo`; `None` when it does not say.
    pub physical_cores: Option<usize>,
    /// SIMD features the CPU reports.
    pub cpu_simd: Vec<String>,
    /// SIMD features ggml was compiled with (from `llama_print_system_info`).
    pub ggml_simd: Vec<String>,
    /// Total memory in bytes (`MemTotal` of `/proc/meminfo`; 0 when unknown).
    pub memory_bytes: u64,
    /// The OS's `PRETTY_NAME` from `/etc/os-release`, else its short name (`linux`, …).
    pub os: String,
    /// Which llama.cpp binding and version the engine runs.
    pub llama_cpp_build: String,
    /// llama.cpp's `llama_print_system_info` line (CPU backend features), verbatim.
    pub llama_system_info: String,
    /// Problems worth shouting about (e.g. a build without AVX2 on a CPU that has it).
    pub warnings: Vec<String>,
}

const SIMD: [&str; 8] = [
    "SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "AVX512", "AVX_VNNI",
];

/// Collect the facts about this machine and the llama.cpp build, with warnings for a build missing
/// the CPU's AVX2.
pub fn system_facts() -> SystemFacts {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|r| {
            r.trim_start_matches([' ', '\t', ':'])
                .split_whitespace()
                .collect()
        })
        .unwrap_or_default();
    let physical_cores = {
        let mut ids: Vec<(String, String)> = Vec::new();
        let mut phys = String::new();
        for l in cpuinfo.lines() {
            if let Some(v) = l.strip_prefix("physical id") {
                phys = v.trim_start_matches([' ', '\t', ':']).to_string();
            } else if let Some(v) = l.strip_prefix("core id") {
                ids.push((
                    phys.clone(),
                    v.trim_start_matches([' ', '\t', ':']).to_string(),
                ));
            }
        }
        ids.sort();
        ids.dedup();
        (!ids.is_empty()).then_some(ids.len())
    };
    let cpu_simd: Vec<String> = SIMD
        .iter()
        .filter(|f| {
            let flag = match **f {
                "SSE3" => "pni",
                "AVX512" => "avx512f",
                "AVX_VNNI" => "avx_vnni",
                other => return flags.iter().any(|x| x.eq_ignore_ascii_case(other)),
            };
            flags.contains(&flag)
        })
        .map(|s| s.to_string())
        .collect();
    let info = backends::llama::system_info();
    let ggml_simd: Vec<String> = info
        .split('|')
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            let k = k.trim();
            (v.trim() == "1" && SIMD.contains(&k)).then(|| k.to_string())
        })
        .collect();
    let mut warnings = Vec::new();
    if cpu_simd.iter().any(|f| f == "AVX2") && !ggml_simd.iter().any(|f| f == "AVX2") {
        warnings.push(
            "ggml was built WITHOUT AVX2 although this CPU has it: generation will be several times \
             slower. Build with RUSTFLAGS=\"-C target-cpu=native\" (see .cargo/config.toml)."
                .to_string(),
        );
    }
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    SystemFacts {
        cpu_model,
        logical_cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        physical_cores,
        cpu_simd,
        ggml_simd,
        memory_bytes,
        os,
        llama_cpp_build: backends::llama::build_id(),
        llama_system_info: info,
        warnings,
    }
}
