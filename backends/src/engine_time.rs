//! Where a local engine's time went: the figures both `triage hw` and the gateway's `/metrics`
//! report. Outside the `llama` feature so the gateway can name it without the engine.

/// Cumulative time of a local engine since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EngineTime {
    /// `llama_decode` calls.
    pub decode_steps: u64,
    /// Seconds spent inside `llama_decode`.
    pub decode_secs: f64,
    /// Seconds the engine thread spent between two consecutive decodes while sequences were
    /// running (sampling, detokenizing, streaming, admission, building the next batch): the
    /// engine's own overhead on top of llama.cpp. Idle time waiting for requests is not counted.
    pub host_secs: f64,
}
